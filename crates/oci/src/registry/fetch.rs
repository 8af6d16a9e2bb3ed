//! Our own GETs of manifests and blobs ([`Fetcher`]): retried, resumed with
//! `Range`, bounded in size and time.
use super::auth::TokenCache;
use super::retry::{retry_after, Failure, RetryPolicy};
use super::{error_chain, reg_err};
use crate::error::{Error, Result};
use crate::reference::is_sha256_digest;
use crate::spec;
use bytes::Bytes;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Manifest media types we ask registries for.
pub(super) const ACCEPT_MANIFESTS: &[&str] = &[
    spec::MEDIA_TYPE_OCI_INDEX,
    spec::MEDIA_TYPE_OCI_MANIFEST,
    spec::MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    spec::MEDIA_TYPE_DOCKER_MANIFEST,
];

/// Largest manifest or index we read (refused from its `Content-Length`, or
/// when the body passes it, before it is held in memory). The distribution
/// spec asks registries to accept at least 4 MiB.
pub const MAX_MANIFEST_SIZE: u64 = 8 << 20;

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL if known).
fn content_range(resp: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let v = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, _) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Where downloaded bytes go.
pub(super) enum Sink<'a> {
    Channel(&'a tokio::sync::mpsc::Sender<std::io::Result<Bytes>>),
    Buffer(&'a mut Vec<u8>),
}

impl Sink<'_> {
    /// `false` when the receiving end has gone.
    async fn put(&mut self, b: Bytes) -> bool {
        match self {
            Sink::Channel(tx) => tx.send(Ok(b)).await.is_ok(),
            Sink::Buffer(v) => {
                v.extend_from_slice(&b);
                true
            }
        }
    }
}

/// Our own GETs of manifests and blobs, with retries, resume and timeouts.
#[derive(Clone)]
pub(super) struct Fetcher {
    pub(super) registry: String,
    pub(super) client: Client,
    pub(super) auth: RegistryAuth,
    pub(super) http: reqwest::Client,
    pub(super) scheme: &'static str,
    pub(super) policy: RetryPolicy,
    /// Bearer tokens per repository, briefly cached (`auth` costs two requests).
    pub(super) tokens: TokenCache,
}

impl Fetcher {
    /// One GET; `Ok` only for 200/206.
    async fn get_once(
        &self,
        r: &Reference,
        url: &str,
        accept: Option<&str>,
        range: Option<String>,
        deadline: Instant,
        fresh_token: bool,
    ) -> std::result::Result<reqwest::Response, Failure> {
        let authorization = self
            .authorization(r, fresh_token)
            .await
            .map_err(|message| Failure::Retry {
                message,
                retry_after: None,
            })?;
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(reqwest::header::ACCEPT, a);
        }
        if let Some(range) = range {
            req = req.header(reqwest::header::RANGE, range);
        }
        req = super::dump::request(self.tokens.dump, authorization.apply(req));
        let wait = self.wait_limit(deadline);
        let resp = match tokio::time::timeout(wait, req.send()).await {
            Err(_) => {
                return Err(Failure::Retry {
                    message: format!("no response within {:.1?} (stalled)", wait),
                    retry_after: None,
                })
            }
            Ok(Err(e)) => {
                return Err(Failure::Retry {
                    message: if e.is_timeout() {
                        format!(
                            "no response within {:.1?} (stalled): {}",
                            wait,
                            error_chain(&e)
                        )
                    } else {
                        error_chain(&e)
                    },
                    retry_after: None,
                })
            }
            Ok(Ok(resp)) => resp,
        };
        super::dump::response(self.tokens.dump, &resp);
        let status = resp.status().as_u16();
        match status {
            200 | 206 => Ok(resp),
            404 => Err(Failure::NotFound),
            408 | 429 | 500 | 502 | 503 | 504 => Err(Failure::Retry {
                message: format!("HTTP {}", resp.status()),
                retry_after: retry_after(&resp),
            }),
            401 if !fresh_token => {
                self.learn_challenge(&resp);
                Err(Failure::Retry {
                    message: format!("HTTP {}", resp.status()),
                    retry_after: Some(Duration::ZERO),
                })
            }
            // Refused again with a fresh token: say who we were, not the body.
            401 | 403 => Err(Failure::Fatal(reg_err(
                &self.registry,
                format!("GET {url}"),
                format!("HTTP {}: {}", resp.status(), self.tokens.resolved.refused()),
            ))),
            _ => {
                let s = resp.status();
                let body = tokio::time::timeout(Duration::from_secs(5), resp.bytes())
                    .await
                    .ok()
                    .and_then(|b| b.ok())
                    .map(|b| {
                        String::from_utf8_lossy(&b[..b.len().min(300)])
                            .trim()
                            .to_string()
                    })
                    .unwrap_or_default();
                Err(Failure::Fatal(reg_err(
                    &self.registry,
                    format!("GET {url}"),
                    if body.is_empty() {
                        format!("HTTP {s}")
                    } else {
                        format!("HTTP {s}: {body}")
                    },
                )))
            }
        }
    }

    /// GET manifest `reference`: its bytes and Docker-Content-Digest, `None` on 404.
    pub(super) async fn get_manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let url = format!(
            "{}://{}/v2/{}/manifests/{reference}",
            self.scheme,
            r.resolve_registry(),
            r.repository()
        );
        let ctx = format!("GET manifest {}:{reference}", r.repository());
        let accept = ACCEPT_MANIFESTS.join(", ");
        let started = Instant::now();
        let deadline = started + self.policy.total_timeout;
        let mut retry = 0u32;
        let mut fresh = false;
        loop {
            let failure = match self
                .get_once(r, &url, Some(&accept), None, deadline, fresh)
                .await
            {
                Err(f) => f,
                Ok(mut resp) => {
                    let len = resp.content_length();
                    if let Some(len) = len.filter(|l| *l > MAX_MANIFEST_SIZE) {
                        return Err(reg_err(
                            &self.registry,
                            &ctx,
                            format!("the manifest is {len} bytes, more than the {MAX_MANIFEST_SIZE}-byte limit; not read"),
                        ));
                    }
                    let digest = resp
                        .headers()
                        .get("Docker-Content-Digest")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let mut body = Vec::with_capacity(len.unwrap_or(0) as usize);
                    let failure = loop {
                        match tokio::time::timeout(self.wait_limit(deadline), resp.chunk()).await {
                            Err(_) => {
                                break Some(format!(
                                    "no data for {:.1?} after {} bytes (stalled)",
                                    self.wait_limit(deadline),
                                    body.len()
                                ))
                            }
                            Ok(Err(e)) if e.is_timeout() => {
                                break Some(format!(
                                    "no data for {:.1?} after {} bytes (stalled): {}",
                                    self.policy.stall_timeout,
                                    body.len(),
                                    error_chain(&e)
                                ))
                            }
                            Ok(Err(e)) => break Some(error_chain(&e)),
                            Ok(Ok(None)) => break None,
                            Ok(Ok(Some(b))) => {
                                if (body.len() + b.len()) as u64 > MAX_MANIFEST_SIZE {
                                    return Err(reg_err(
                                        &self.registry,
                                        &ctx,
                                        format!("the manifest is more than the {MAX_MANIFEST_SIZE}-byte limit; not read"),
                                    ));
                                }
                                body.extend_from_slice(&b);
                            }
                        }
                    };
                    match failure {
                        None if len.is_none_or(|l| l == body.len() as u64) => {
                            return Ok(Some((body, digest)))
                        }
                        None => Failure::Retry {
                            message: format!(
                                "the body ended after {} of {} bytes",
                                body.len(),
                                len.unwrap_or(0)
                            ),
                            retry_after: None,
                        },
                        Some(message) => Failure::Retry {
                            message,
                            retry_after: None,
                        },
                    }
                }
            };
            match failure {
                Failure::NotFound => return Ok(None),
                Failure::Fatal(e) => return Err(e),
                Failure::Retry {
                    message,
                    retry_after,
                } => {
                    retry += 1;
                    fresh = message.starts_with("HTTP 401");
                    self.before_retry(&ctx, retry, &message, retry_after, deadline, started)
                        .await?;
                }
            }
        }
    }

    /// Download blob `digest` (whole when `range` is None, digest verified if
    /// `verify`; else bytes `range`, length checked), handing every chunk to
    /// `sink` (which returns `false` to stop early). Retries and resumes from
    /// the byte reached.
    pub(super) async fn download(
        &self,
        r: &Reference,
        digest: &str,
        range: Option<Range<u64>>,
        verify: bool,
        mut sink: Sink<'_>,
    ) -> Result<()> {
        let verify = verify && range.is_none();
        use sha2::Digest as _;
        if !is_sha256_digest(digest) {
            return Err(Error::UnsupportedDigest {
                digest: digest.into(),
            });
        }
        let url = format!(
            "{}://{}/v2/{}/blobs/{digest}",
            self.scheme,
            r.resolve_registry(),
            r.repository()
        );
        let ctx = match &range {
            None => format!("GET blob {}@{digest}", r.repository()),
            Some(rg) => format!(
                "GET blob {}@{digest} bytes {}..{}",
                r.repository(),
                rg.start,
                rg.end
            ),
        };
        let (base, mut want) = match &range {
            None => (0u64, None),
            Some(rg) => (rg.start, Some(rg.end - rg.start)),
        };
        let mut hasher = sha2::Sha256::new();
        let mut pos = 0u64; // bytes delivered to `sink`
        let started = Instant::now();
        let deadline = started + self.policy.total_timeout;
        let mut retry = 0u32;
        let mut fresh = false;
        loop {
            let header = match (&range, pos) {
                (None, 0) => None,
                (None, p) => Some(format!("bytes={p}-")),
                (Some(rg), p) => Some(format!("bytes={}-{}", rg.start + p, rg.end - 1)),
            };
            let asked = base + pos;
            let failure = match self
                .get_once(r, &url, None, header.clone(), deadline, fresh)
                .await
            {
                Err(f) => f,
                Ok(mut resp) => {
                    // Where this body starts in the blob, and the blob size if told.
                    let (start, total) = if resp.status().as_u16() == 206 {
                        match content_range(&resp) {
                            Some((s, t)) => (s, t),
                            None if header.is_none() => (0, None),
                            None => {
                                return Err(reg_err(
                                    &self.registry,
                                    &ctx,
                                    "206 answer without a valid Content-Range",
                                ))
                            }
                        }
                    } else {
                        (0, resp.content_length())
                    };
                    if start > asked {
                        return Err(reg_err(
                            &self.registry,
                            &ctx,
                            format!("asked for bytes from {asked}, the registry sent from {start}"),
                        ));
                    }
                    if want.is_none() {
                        want = total;
                    }
                    let mut skip = asked - start;
                    let failure = loop {
                        match tokio::time::timeout(self.wait_limit(deadline), resp.chunk()).await {
                            Err(_) => {
                                break Some(format!(
                                    "no data for {:.1?} after {pos} bytes (stalled)",
                                    self.wait_limit(deadline)
                                ))
                            }
                            Ok(Err(e)) if e.is_timeout() => {
                                break Some(format!(
                                    "no data for {:.1?} after {pos} bytes (stalled): {}",
                                    self.policy.stall_timeout,
                                    error_chain(&e)
                                ))
                            }
                            Ok(Err(e)) => break Some(error_chain(&e)),
                            Ok(Ok(None)) => break None,
                            Ok(Ok(Some(mut b))) => {
                                if skip > 0 {
                                    let k = skip.min(b.len() as u64) as usize;
                                    let _ = b.split_to(k);
                                    skip -= k as u64;
                                }
                                if let Some(w) = want {
                                    let left = w.saturating_sub(pos);
                                    if b.len() as u64 > left {
                                        if range.is_some() {
                                            b.truncate(left as usize);
                                        } else {
                                            return Err(reg_err(
                                                &self.registry,
                                                &ctx,
                                                format!("the registry sent more than the {w} bytes it announced"),
                                            ));
                                        }
                                    }
                                }
                                if b.is_empty() {
                                    if range.is_some() && want == Some(pos) {
                                        break None;
                                    }
                                    continue;
                                }
                                pos += b.len() as u64;
                                if verify {
                                    hasher.update(&b);
                                }
                                if !sink.put(b).await {
                                    return Ok(()); // the reader went away
                                }
                                if range.is_some() && want == Some(pos) {
                                    break None;
                                }
                            }
                        }
                    };
                    match failure {
                        Some(message) => Failure::Retry {
                            message,
                            retry_after: None,
                        },
                        None => match want {
                            Some(w) if pos < w => Failure::Retry {
                                message: format!("the body ended after {pos} of {w} bytes"),
                                retry_after: None,
                            },
                            _ => {
                                if verify {
                                    let actual =
                                        format!("sha256:{}", hex::encode(hasher.finalize()));
                                    if actual != digest {
                                        return Err(Error::DigestMismatch {
                                            what: format!("{}: {ctx}", self.registry),
                                            expected: digest.into(),
                                            actual,
                                        });
                                    }
                                }
                                return Ok(());
                            }
                        },
                    }
                }
            };
            match failure {
                Failure::NotFound => {
                    return Err(reg_err(&self.registry, &ctx, "blob not found (HTTP 404)"))
                }
                Failure::Fatal(e) => return Err(e),
                Failure::Retry {
                    message,
                    retry_after,
                } => {
                    retry += 1;
                    fresh = message.starts_with("HTTP 401");
                    let message = if pos > 0 {
                        format!("{message} (resuming from byte {})", base + pos)
                    } else {
                        message
                    };
                    self.before_retry(&ctx, retry, &message, retry_after, deadline, started)
                        .await?;
                }
            }
        }
    }
}
