//! The challenge / token exchange: what the registry's `WWW-Authenticate`
//! asks for (nothing, Basic, or a Bearer token from a realm), the token
//! request itself (bounded in size and time like every other request), and
//! the one place that turns credentials or a token into an `Authorization`
//! header.
use super::retry::{read_limited, Failure, Try};
use super::Conn;
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

/// Per-client auth state: the challenge (asked once) and bearer tokens per
/// scope.
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

impl Conn {
    /// The registry's challenge, asked once per client (`GET /v2/`).
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
            _ => Challenge::None,
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

    /// The `Authorization` header for a request needing `scope`, if any: the
    /// identity token or user and password as they are, or a bearer token
    /// from the challenge's realm (cached per scope; `t.fresh_token` asks a
    /// new one after the registry refused the cached one).
    pub(super) async fn authorization(
        &self,
        scope: &Scope<'_>,
        t: &Try,
    ) -> Result<Option<HeaderValue>, Failure> {
        if let RegistryAuth::Bearer(token) = &self.auth {
            return Ok(header(&format!("Bearer {token}")));
        }
        match self.challenge(t).await? {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self.basic()),
            Challenge::Bearer { realm, service } => {
                let key = scope.to_param();
                if !t.fresh_token {
                    if let Some((tok, at)) = self.auth_state.tokens.lock().await.get(&key) {
                        if at.elapsed() < TOKEN_TTL {
                            return Ok(header(&format!("Bearer {tok}")));
                        }
                    }
                }
                let tok = self
                    .fetch_token(&realm, service.as_deref(), &key, t)
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
        match &self.auth {
            RegistryAuth::Basic(u, p) => {
                let mut v = HeaderValue::from_str(&format!(
                    "Basic {}",
                    base64(format!("{u}:{p}").as_bytes())
                ))
                .ok()?;
                v.set_sensitive(true);
                Some(v)
            }
            _ => None,
        }
    }

    /// GET the realm for a token: bounded size ([`MAX_TOKEN_ANSWER`]), and the
    /// whole answer within the stall timeout (a token is a few bytes: one
    /// trickled a byte at a time must not hold the build).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
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
        if let Some(b) = self.basic() {
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

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{base64, parse_challenge, Challenge};

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
        assert_eq!(base64(b"alice:pw"), "YWxpY2U6cHc=");
    }
}
