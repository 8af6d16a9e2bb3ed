//! The token exchange: a bearer token per repository from the registry's
//! challenge (through oci-client's `auth`), briefly cached; and which
//! `Authorization` header, if any, a request of ours carries (only what the
//! host's own 401 challenge asked for).
use super::credentials::{is_loopback, Resolved};
use super::error_chain;
use super::fetch::Fetcher;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per client (shared by the fetcher's clones): tokens, the host's challenge,
/// and the credentials chosen for it.
pub(super) type TokenCache = Arc<AuthState>;

pub(super) struct AuthState {
    /// Bearer token (if any) and when it was obtained, per repository.
    tokens: tokio::sync::Mutex<std::collections::HashMap<String, (Option<String>, Instant)>>,
    /// How the host asks for credentials: from its answer to `GET /v2/`
    /// (asked once per client), or from a 401 to one of our requests.
    challenge: std::sync::Mutex<Option<Challenge>>,
    pub(super) resolved: Resolved,
    /// Print our HTTP exchanges on stderr (`--http-dump`).
    pub(super) dump: bool,
}

impl AuthState {
    pub(super) fn new(resolved: Resolved, dump: bool) -> Self {
        AuthState {
            tokens: Default::default(),
            challenge: Default::default(),
            resolved,
            dump,
        }
    }
}

/// How the registry asks for credentials (`WWW-Authenticate` of a 401 to `GET /v2/`).
#[derive(Debug, Clone)]
enum Challenge {
    /// It did not ask: nothing is ever sent to it.
    None,
    Basic,
    /// A token service at `realm`.
    Bearer {
        realm: String,
    },
}

/// The `Authorization` header of one request.
pub(super) enum Authorization {
    None,
    Basic(String, String),
    Bearer(String),
}

impl Authorization {
    pub(super) fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Authorization::None => req,
            Authorization::Basic(u, p) => req.basic_auth(u, Some(p)),
            Authorization::Bearer(t) => req.bearer_auth(t),
        }
    }
}

/// The challenge of a 401 answer (`WWW-Authenticate`), if it names one.
fn parse_challenge(resp: &reqwest::Response) -> Option<Challenge> {
    let header = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)?
        .to_str()
        .ok()?
        .trim();
    let scheme = header.split_whitespace().next()?.to_ascii_lowercase();
    match scheme.as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: realm_of(header).unwrap_or_default(),
        }),
        _ => None,
    }
}

/// Whether a token service at `realm` would get credentials in plain HTTP on
/// a host other than the registry `host` and not this machine.
fn clear_text_elsewhere(realm: &str, host: &str) -> bool {
    realm
        .strip_prefix("http://")
        .map(|rest| rest.split(['/', '?']).next().unwrap_or(""))
        .is_some_and(|h| h != host && !is_loopback(h))
}

/// `realm="…"` of a Bearer challenge.
fn realm_of(header: &str) -> Option<String> {
    let i = header.to_ascii_lowercase().find("realm=")?;
    let rest = header[i + 6..].trim_start();
    let v = match rest.strip_prefix('"') {
        Some(q) => q.split('"').next()?,
        None => rest.split([',', ' ']).next()?,
    };
    Some(v.to_string())
}

const TOKEN_TTL: Duration = Duration::from_secs(50);

impl Fetcher {
    /// The host's challenge: `GET /v2/` asked once; a 200 or 404 (no
    /// challenge) is kept too, a failure or a 5xx is not (asked again next time).
    async fn challenge(&self, r: &Reference) -> std::result::Result<Challenge, String> {
        if let Some(c) = self.tokens.challenge.lock().unwrap().clone() {
            return Ok(c);
        }
        let url = format!("{}://{}/v2/", self.scheme, r.resolve_registry());
        let req = super::dump::request(self.tokens.dump, self.http.get(&url));
        let resp = tokio::time::timeout(self.policy.stall_timeout, req.send())
            .await
            .map_err(|_| {
                format!(
                    "GET {url}: no response within {:.1?} (stalled)",
                    self.policy.stall_timeout
                )
            })?
            .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        super::dump::response(self.tokens.dump, &resp);
        let status = resp.status().as_u16();
        let c = match status {
            401 => parse_challenge(&resp).unwrap_or(Challenge::None),
            200..=299 | 404 => Challenge::None,
            // Not an answer about credentials: go without this time, and a
            // 401 on the request itself still teaches us the challenge.
            _ => return Ok(Challenge::None),
        };
        *self.tokens.challenge.lock().unwrap() = Some(c.clone());
        Ok(c)
    }

    /// A 401 to one of our requests: its challenge counts from now on (some
    /// registries leave `/v2/` open and ask per repository).
    pub(super) fn learn_challenge(&self, resp: &reqwest::Response) {
        if let Some(c) = parse_challenge(resp) {
            *self.tokens.challenge.lock().unwrap() = Some(c);
        }
    }

    /// What our request to `r` carries: credentials only in the form the
    /// host's own 401 challenge asked for (none to a registry that never
    /// asked), and a token service reached in plain HTTP on another host
    /// is asked anonymously.
    pub(super) async fn authorization(
        &self,
        r: &Reference,
        fresh: bool,
    ) -> std::result::Result<Authorization, String> {
        match self.challenge(r).await? {
            Challenge::None => Ok(Authorization::None),
            Challenge::Basic => Ok(match &self.auth {
                RegistryAuth::Basic(u, p) => Authorization::Basic(u.clone(), p.clone()),
                _ => Authorization::None,
            }),
            Challenge::Bearer { realm } => Ok(self
                .token(r, fresh, clear_text_elsewhere(&realm, r.resolve_registry()))
                .await?
                .map_or(Authorization::None, Authorization::Bearer)),
        }
    }

    /// The credentials oci-client may hold for its own requests (HEADs,
    /// uploads, mounts): it would send an identity token to a host that never
    /// asked, and a password to any token service: so none for a host that
    /// does not ask, nor when its token service is plain HTTP on another host.
    /// When the host's answer is not known (unreachable, 5xx), oci-client's
    /// own per-request challenge decides, as before.
    pub(super) async fn client_credentials(&self, r: &Reference) -> RegistryAuth {
        let _ = self.challenge(r).await;
        let known = self.tokens.challenge.lock().unwrap().clone();
        match known {
            Some(Challenge::None) => RegistryAuth::Anonymous,
            Some(Challenge::Bearer { realm })
                if clear_text_elsewhere(&realm, r.resolve_registry()) =>
            {
                RegistryAuth::Anonymous
            }
            _ => self.auth.clone(),
        }
    }

    pub(super) async fn token(
        &self,
        r: &Reference,
        fresh: bool,
        anonymous: bool,
    ) -> std::result::Result<Option<String>, String> {
        let key = r.repository().to_string();
        if !fresh {
            if let Some((t, at)) = self.tokens.tokens.lock().await.get(&key) {
                if at.elapsed() < TOKEN_TTL {
                    return Ok(t.clone());
                }
            }
        }
        let auth = if anonymous {
            &RegistryAuth::Anonymous
        } else {
            &self.auth
        };
        let t = self
            .client
            .auth(r, auth, RegistryOperation::Pull)
            .await
            .map_err(|e| match e {
                oci_client::errors::OciDistributionError::AuthenticationFailure(_) => {
                    format!("authentication: {}", self.tokens.resolved.refused())
                }
                e => format!("authentication: {}", error_chain(&e)),
            })?;
        self.tokens
            .tokens
            .lock()
            .await
            .insert(key, (t.clone(), Instant::now()));
        Ok(t)
    }
}
