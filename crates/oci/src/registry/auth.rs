//! The challenge / token exchange: what the registry's `WWW-Authenticate`
//! asks for (nothing, Basic, or a Bearer token from a realm), the token
//! request itself (bounded in size and time like every other request), and
//! the one place that turns credentials or a token into an `Authorization`
//! header. Credentials go only where the host's own 401 challenge asked for
//! them, in the form it asked for: none to a registry that never asks, and
//! none to a token service reached in plain HTTP on another host.
use super::credentials::is_loopback;
use super::retry::{read_limited, Failure, Try};
use super::Conn;
use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Largest token answer we read. Real ones (Docker Hub, GHCR, ECR) are a few
/// KiB of JSON; a hostile realm must not fill memory.
pub const MAX_TOKEN_ANSWER: u64 = 1 << 20;

/// How long a token is reused before asking again (tokens typically live 60 s
/// or more; see `expires_in`).
const TOKEN_TTL: Duration = Duration::from_secs(50);

/// What the registry asked for in its `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Challenge {
    /// `/v2/` answered without a challenge: no credentials needed.
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Per-client (so per-host) auth state: the challenge (asked once) and
/// bearer tokens per scope.
#[derive(Default)]
pub(super) struct AuthState {
    challenge: tokio::sync::Mutex<Option<Challenge>>,
    tokens: tokio::sync::Mutex<HashMap<String, (String, Instant)>>,
}

/// What a request needs: pull from `repo`, or push to it (with pull on
/// `also_pull`, the source of a cross-repository mount).
#[derive(Debug, Clone)]
pub(super) enum Scope<'a> {
    Pull(&'a str),
    Push {
        repo: &'a str,
        also_pull: Option<&'a str>,
    },
    /// Delete manifests of `repo` (`soci gc --delete`).
    Delete(&'a str),
}

impl Scope<'_> {
    fn to_param(&self) -> String {
        match self {
            Scope::Pull(r) => format!("repository:{r}:pull"),
            Scope::Push { repo, also_pull } => {
                let mut s = format!("repository:{repo}:pull,push");
                if let Some(from) = also_pull {
                    s.push_str(&format!(" repository:{from}:pull"));
                }
                s
            }
            Scope::Delete(r) => format!("repository:{r}:delete"),
        }
    }
}

/// `Bearer realm="…",service="…"` / `Basic realm="…"`; unknown schemes are
/// treated as no challenge (the request then fails with the server's 401).
fn parse_challenge(v: &str) -> Challenge {
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Challenge::Basic;
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Challenge::None;
    }
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, after)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            // A quoted string; `\"` escapes a quote.
            let mut val = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            val.push(e);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => val.push(c),
                }
            }
            (val, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(k, val);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    match params.remove("realm") {
        Some(realm) => Challenge::Bearer {
            realm,
            service: params.remove("service"),
        },
        None => Challenge::None,
    }
}

/// Whether a token service at `realm` is reached in plain HTTP on a host
/// other than the registry's `host` and not this machine: it is asked
/// anonymously (a password must not cross the network in the clear to a
/// host the user never named).
fn clear_text_elsewhere(realm: &str, host: &str) -> bool {
    // A realm that is not a URL is refused when the token is asked for.
    let Ok(url) = reqwest::Url::parse(realm) else {
        return false;
    };
    let Some(h) = url.host_str().filter(|_| url.scheme() == "http") else {
        return false;
    };
    let h = match url.port() {
        Some(p) => format!("{h}:{p}"),
        None => h.to_string(),
    };
    !h.eq_ignore_ascii_case(host) && !is_loopback(&h)
}

impl Conn {
    /// The registry's challenge, asked once per client (`GET /v2/`). A 401
    /// (with or without a challenge), 2xx or 404 is kept; another answer says
    /// nothing about credentials: none this time, asked again next time (and a
    /// 401 on the request itself still teaches us the challenge).
    async fn challenge(&self, t: &Try) -> Result<Challenge, Failure> {
        let mut cached = self.auth_state.challenge.lock().await;
        if let Some(c) = &*cached {
            return Ok(c.clone());
        }
        let url = format!("{}/v2/", self.base);
        let resp = self.send_raw(self.http.get(&url), t).await?;
        let c = match resp.status().as_u16() {
            401 => resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(parse_challenge)
                .unwrap_or(Challenge::None),
            s if super::retry::RETRY_STATUSES.contains(&s) => {
                return Err(self.retryable_status(&resp, &format!("GET {url}")))
            }
            200..=299 | 404 => Challenge::None,
            _ => return Ok(Challenge::None),
        };
        *cached = Some(c.clone());
        Ok(c)
    }

    /// Take the challenge of a 401 answer as the registry's challenge (a
    /// registry may answer `/v2/` without one and still protect a repository).
    pub(super) async fn learn_challenge(&self, resp: &reqwest::Response) {
        if let Some(c) = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(parse_challenge)
            .filter(|c| *c != Challenge::None)
        {
            *self.auth_state.challenge.lock().await = Some(c);
        }
    }

    /// The `Authorization` header for a request needing `scope`, if any, in
    /// the form the host's challenge asks for: nothing when it never asked;
    /// user and password for Basic; for Bearer, the identity token as it is,
    /// or a token from the challenge's realm (cached per scope; `t.fresh_token`
    /// asks a new one after the registry refused the cached one).
    pub(super) async fn authorization(
        &self,
        scope: &Scope<'_>,
        t: &Try,
    ) -> Result<Option<HeaderValue>, Failure> {
        match self.challenge(t).await? {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self.basic()),
            Challenge::Bearer { realm, service } => {
                let host = self.base.split_once("://").map_or("", |(_, h)| h);
                let anonymous = clear_text_elsewhere(&realm, host);
                if let (RegistryAuth::Bearer(token), false) = (&self.creds.auth, anonymous) {
                    return Ok(header(&format!("Bearer {token}")));
                }
                let key = scope.to_param();
                if !t.fresh_token {
                    if let Some((tok, at)) = self.auth_state.tokens.lock().await.get(&key) {
                        if at.elapsed() < TOKEN_TTL {
                            return Ok(header(&format!("Bearer {tok}")));
                        }
                    }
                }
                let tok = self
                    .fetch_token(&realm, service.as_deref(), &key, anonymous, t)
                    .await?;
                self.auth_state
                    .tokens
                    .lock()
                    .await
                    .insert(key, (tok.clone(), Instant::now()));
                Ok(header(&format!("Bearer {tok}")))
            }
        }
    }

    fn basic(&self) -> Option<HeaderValue> {
        match &self.creds.auth {
            RegistryAuth::Basic(u, p) => {
                let mut v = HeaderValue::from_str(&format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                ))
                .ok()?;
                v.set_sensitive(true);
                Some(v)
            }
            _ => None,
        }
    }

    /// GET the realm for a token (with the user and password unless
    /// `anonymous`): bounded size ([`MAX_TOKEN_ANSWER`]), and the whole answer
    /// within the stall timeout (a token is a few bytes: one trickled a byte
    /// at a time must not hold the build).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        anonymous: bool,
        t: &Try,
    ) -> Result<String, Failure> {
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            Failure::Fatal(self.err(
                "authentication",
                format!("the registry's token realm {realm:?} is not a URL: {e}"),
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("scope", scope);
            if let Some(s) = service {
                q.append_pair("service", s);
            }
        }
        let ctx = format!("token from {}", url.host_str().unwrap_or(realm));
        let mut req = self.http.get(url.clone());
        if let Some(b) = self.basic().filter(|_| !anonymous) {
            req = req.header(AUTHORIZATION, b);
        }
        let whole = async {
            let resp = self.send_raw(req, t).await?;
            match resp.status().as_u16() {
                200 => {}
                s if super::retry::RETRY_STATUSES.contains(&s) => {
                    return Err(self.retryable_status(&resp, &ctx))
                }
                _ => return Err(self.fatal_status(resp, &ctx, t).await),
            }
            let body = read_limited(resp, t, MAX_TOKEN_ANSWER, "the token answer", |m| {
                self.err(&ctx, m)
            })
            .await?;
            #[derive(serde::Deserialize)]
            struct Answer {
                token: Option<String>,
                access_token: Option<String>,
            }
            let a: Answer = serde_json::from_slice(&body).map_err(|e| {
                Failure::Fatal(self.err(&ctx, format!("the token answer is not valid JSON: {e}")))
            })?;
            a.token
                .or(a.access_token)
                .filter(|t| !t.is_empty() && HeaderValue::from_str(t).is_ok())
                .ok_or_else(|| {
                    Failure::Fatal(self.err(&ctx, "the token answer holds no usable token"))
                })
        };
        let wait = t.wait();
        match tokio::time::timeout(wait, whole).await {
            Ok(r) => r,
            Err(_) => Err(Failure::retry(format!(
                "{ctx}: no complete answer within {wait:.1?} (stalled)"
            ))),
        }
    }
}

fn header(v: &str) -> Option<HeaderValue> {
    let mut h = HeaderValue::from_str(v).ok()?;
    h.set_sensitive(true);
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::{clear_text_elsewhere, parse_challenge, Challenge};

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#
            ),
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            }
        );
        assert_eq!(parse_challenge(r#"Basic realm="x""#), Challenge::Basic);
        assert_eq!(parse_challenge("Negotiate"), Challenge::None);
    }

    #[test]
    fn a_plain_http_realm_elsewhere_is_asked_anonymously() {
        let host = "registry.example:5000";
        // Plain HTTP to another host that is not this machine: no password.
        assert!(clear_text_elsewhere("http://auth.example/token", host));
        assert!(clear_text_elsewhere("http://auth.example:8080?x", host));
        assert!(clear_text_elsewhere("HTTP://Auth.Example/token", host));
        // TLS, the registry itself, or this machine: the credentials may go.
        assert!(!clear_text_elsewhere("https://auth.example/token", host));
        assert!(!clear_text_elsewhere(
            "http://registry.example:5000/token",
            host
        ));
        assert!(!clear_text_elsewhere("http://127.0.0.1:9/token", host));
        assert!(!clear_text_elsewhere("http://localhost/token", host));
        assert!(!clear_text_elsewhere("http://[::1]:5000/token", host));
    }
}
