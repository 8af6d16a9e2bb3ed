//! Registries (OCI distribution API over reqwest + rustls) behind a
//! synchronous API.
//!
//! One process-wide tokio runtime drives all requests (`bridge`); callers
//! are plain threads that block on it. Blob streams are downloaded by a task
//! on that runtime and handed over through a bounded channel, so reading a
//! layer keeps at most a few chunks in memory and nothing on disk.
//!
//! Every request is our own (oci-client only supplies the credential type):
//! - `auth`: the challenge, the token request, the `Authorization` header;
//! - `fetch`: manifest and blob GETs (resumed with `Range`), HEAD, the
//!   referrers probe;
//! - `upload`: blob uploads (whole or streamed from a reader), mounts,
//!   manifest PUTs;
//! - `manage`: the tag list and manifest DELETE (`soci gc`);
//! - `retry`: the one policy all of them follow: retries on transport errors,
//!   408/429/5xx (honouring `Retry-After`) and stalls, with exponential
//!   backoff; one stall timeout for every wait; one overall deadline per
//!   request, token exchange included. A digest mismatch, an answer over its
//!   size limit or a plain-HTTP answer to a TLS request is never retried. See
//!   [`RetryPolicy`] and `docs/reliability.md`.
//!
//! Credentials (`credentials`) belong to one registry host and travel only in
//! the form that host's own 401 challenge asked for (`auth`); every request,
//! uploads and token requests included, goes through `Conn::send_raw`, so
//! `--http-dump`, `-k` and the client certificate cover all of them.
mod auth;
mod bridge;
mod credentials;
mod dump;
mod fetch;
mod manage;
mod retry;
mod source;
mod upload;

pub use auth::MAX_TOKEN_ANSWER;
pub use credentials::{
    is_loopback, valid_helper_name, ClientCert, Credentials, HostCredentials, RegistryOptions,
};
pub use fetch::{MAX_ERROR_BODY, MAX_MANIFEST_SIZE, MAX_REFERRERS_SIZE};
pub use retry::{RetryPolicy, MAX_RETRIES, MAX_TIMEOUT_SECS};
pub use source::RegistrySource;

use crate::error::error_chain;
use crate::error::{shown, Error, Result, MAX_SHOWN_BODY};
use retry::{Failure, Try, RETRY_STATUSES};
use std::sync::Arc;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one registry host with one credential set.
pub struct RegistryClient {
    conn: Arc<Conn>,
}

/// What every request needs; shared with the download tasks.
pub(super) struct Conn {
    /// `host[:port]` as the user wrote it (for messages).
    registry: String,
    /// `scheme://host[:port]` of the API.
    base: String,
    http: reqwest::Client,
    /// The credentials chosen for this host, and how to name them in a refusal.
    creds: credentials::Resolved,
    auth_state: auth::AuthState,
    policy: RetryPolicy,
    /// Print every exchange on stderr (`--http-dump`).
    dump: bool,
}

fn reg_err(registry: &str, context: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Registry {
        registry: registry.into(),
        context: context.into(),
        message: e.to_string(),
    }
}

impl RegistryClient {
    /// Connect (lazily: no request is made) to `registry` (`host[:port]`),
    /// with the retry policy of [`RetryPolicy::from_env`] (its overall
    /// deadline replaced by `opts.timeout`, `--timeout`, when given).
    pub fn new(registry: &str, opts: &RegistryOptions) -> Result<Arc<Self>> {
        let mut policy = RetryPolicy::from_env()?;
        if let Some(t) = opts.timeout {
            policy.total_timeout = t;
        }
        Self::with_policy(registry, opts, policy)
    }

    /// [`Self::new`] with an explicit retry policy.
    pub fn with_policy(
        registry: &str,
        opts: &RegistryOptions,
        policy: RetryPolicy,
    ) -> Result<Arc<Self>> {
        let plain_http = opts.plain_http_for(registry);
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(policy.stall_timeout)
            .danger_accept_invalid_certs(opts.insecure);
        if let Some(cc) = &opts.client_cert {
            // reqwest wants the certificate and its key in one PEM.
            let mut pem = std::fs::read(&cc.cert).map_err(|e| Error::io(&cc.cert, e))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(&cc.key).map_err(|e| Error::io(&cc.key, e))?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                reg_err(
                    registry,
                    format!(
                        "client certificate {} with key {}",
                        cc.cert.display(),
                        cc.key.display()
                    ),
                    format!("not a PEM certificate and private key: {}", error_chain(&e)),
                )
            })?;
            http = http.identity(id);
        }
        if let Some(ca) = &opts.tls_ca {
            let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| reg_err(registry, format!("TLS CA {}", ca.display()), e))?;
            http = http.add_root_certificate(cert);
        }
        let http = http
            .build()
            .map_err(|e| reg_err(registry, "creating the HTTP client", e))?;
        let creds = credentials::resolve(registry, opts)?;
        // Docker Hub's API lives on another name than its references use.
        let host = if registry == "docker.io" {
            "index.docker.io"
        } else {
            registry
        };
        let scheme = if plain_http { "http" } else { "https" };
        Ok(Arc::new(RegistryClient {
            conn: Arc::new(Conn {
                registry: registry.into(),
                base: format!("{scheme}://{host}"),
                http,
                creds,
                auth_state: Default::default(),
                policy,
                dump: opts.http_dump,
            }),
        }))
    }

    /// The registry host, `host[:port]`, this client talks to.
    pub fn registry(&self) -> &str {
        &self.conn.registry
    }

    /// The retry policy every request of this client follows.
    pub fn policy(&self) -> &RetryPolicy {
        &self.conn.policy
    }
}

impl Conn {
    fn err(&self, ctx: impl Into<String>, message: impl std::fmt::Display) -> Error {
        reg_err(&self.registry, ctx, message)
    }

    fn retrier(&self, ctx: impl Into<String>) -> retry::Retrier<'_> {
        retry::Retrier::new(&self.policy, &self.registry, ctx)
    }

    fn url(&self, repo: &str, tail: &str) -> String {
        format!("{}/v2/{repo}/{tail}", self.base)
    }

    /// Send `req` and wait for the answer's head at most the stall limit. A
    /// transport error is worth another attempt, except a TLS handshake that
    /// met plain HTTP: that is a configuration mistake, said at once. Every
    /// request goes through here, so `--http-dump` shows all of them
    /// (streamed uploads too: the request is printed once built, not cloned).
    async fn send_raw(
        &self,
        req: reqwest::RequestBuilder,
        t: &Try,
    ) -> std::result::Result<reqwest::Response, Failure> {
        let (client, built) = req.build_split();
        let built =
            built.map_err(|e| Failure::Fatal(self.err("building a request", error_chain(&e))))?;
        if self.dump {
            dump::request(&built);
        }
        let wait = t.wait();
        let sent = match tokio::time::timeout(wait, client.execute(built)).await {
            Err(_) => Err(Failure::retry(format!(
                "no response within {wait:.1?} (stalled)"
            ))),
            Ok(Err(e)) => {
                let chain = error_chain(&e);
                if chain.contains("InvalidContentType") || chain.contains("corrupt message") {
                    let host = e
                        .url()
                        .and_then(|u| {
                            u.host_str().map(|h| match u.port() {
                                Some(p) => format!("{h}:{p}"),
                                None => h.to_string(),
                            })
                        })
                        .unwrap_or_else(|| self.registry.clone());
                    return Err(Failure::Fatal(self.err(
                        "connecting",
                        format!("{host} answered plain HTTP to a TLS request: use --plain-http"),
                    )));
                }
                Err(Failure::retry(if e.is_timeout() {
                    format!("no response within {wait:.1?} (stalled): {chain}")
                } else {
                    chain
                }))
            }
            Ok(Ok(resp)) => Ok(resp),
        };
        if let (true, Ok(resp)) = (self.dump, &sent) {
            dump::response(resp);
        }
        sent
    }

    /// One authenticated request for `scope`: `build` makes the request
    /// (called once per call, so a retry builds a fresh one). Retryable
    /// statuses and a refused token become a [`Failure::Retry`]; every other
    /// answer is the caller's to judge.
    async fn send(
        &self,
        scope: &auth::Scope<'_>,
        t: &Try,
        req: reqwest::RequestBuilder,
    ) -> std::result::Result<reqwest::Response, Failure> {
        let req = match self.authorization(scope, t).await? {
            Some(h) => req.header(reqwest::header::AUTHORIZATION, h),
            None => req,
        };
        let resp = self.send_raw(req, t).await?;
        let status = resp.status().as_u16();
        if RETRY_STATUSES.contains(&status) {
            return Err(self.retryable_status(&resp, ""));
        }
        // We sent nothing or a stale token: learn the challenge this answer
        // carries (a repository may ask when `/v2/` did not) and try once more.
        if status == 401 && !t.fresh_token {
            self.learn_challenge(&resp).await;
            return Err(Failure::Retry {
                message: format!("HTTP {}", resp.status()),
                retry_after: Some(Duration::ZERO),
                fresh_token: true,
            });
        }
        Ok(resp)
    }

    fn retryable_status(&self, resp: &reqwest::Response, ctx: &str) -> Failure {
        Failure::Retry {
            message: if ctx.is_empty() {
                format!("HTTP {}", resp.status())
            } else {
                format!("{ctx}: HTTP {}", resp.status())
            },
            retry_after: retry::retry_after(resp),
            fresh_token: false,
        }
    }

    /// A final error for an unexpected answer, quoting the start of its body
    /// (at most [`MAX_ERROR_BODY`] bytes read, shown escaped and shortened).
    /// A refusal (401, 403) says which credentials were tried and what to do
    /// instead: its body is the registry's JSON, no help to the user.
    async fn fatal_status(&self, mut resp: reqwest::Response, ctx: &str, t: &Try) -> Failure {
        let s = resp.status();
        if matches!(s.as_u16(), 401 | 403) {
            return Failure::Fatal(self.err(ctx, format!("HTTP {s}: {}", self.creds.refused())));
        }
        let read = async {
            let mut body = Vec::new();
            while let Ok(Some(b)) = resp.chunk().await {
                body.extend_from_slice(&b[..b.len().min(MAX_ERROR_BODY as usize - body.len())]);
                if body.len() as u64 >= MAX_ERROR_BODY {
                    break;
                }
            }
            body
        };
        let body = tokio::time::timeout(t.wait().min(Duration::from_secs(5)), read)
            .await
            .unwrap_or_default();
        let body = shown(&String::from_utf8_lossy(&body), MAX_SHOWN_BODY);
        Failure::Fatal(self.err(
            ctx,
            if body.is_empty() {
                format!("HTTP {s}")
            } else {
                format!("HTTP {s}: {body}")
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_timeouts_are_a_setting_error_naming_the_variable() {
        // The only test in this binary touching these variables.
        for (name, value) in [
            ("SOCI_REGISTRY_TIMEOUT", "1e19"),
            ("SOCI_REGISTRY_TIMEOUT", "inf"),
            ("SOCI_REGISTRY_STALL_TIMEOUT", "-1"),
            ("SOCI_REGISTRY_STALL_TIMEOUT", "soon"),
            ("SOCI_REGISTRY_RETRIES", "1e3"),
        ] {
            std::env::set_var(name, value);
            let e = RetryPolicy::from_env().unwrap_err();
            std::env::remove_var(name);
            assert!(
                matches!(&e, Error::InvalidSetting { name: n, .. } if n == name),
                "{name}={value}: {e}"
            );
            assert!(e.to_string().starts_with(name), "{e}");
        }
        std::env::set_var("SOCI_REGISTRY_TIMEOUT", "2.5");
        let p = RetryPolicy::from_env().unwrap();
        std::env::remove_var("SOCI_REGISTRY_TIMEOUT");
        assert_eq!(p.total_timeout, Duration::from_millis(2500));
    }
}
