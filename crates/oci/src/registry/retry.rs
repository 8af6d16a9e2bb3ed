//! The one retry policy of every registry request (token, manifest and blob
//! GETs, HEAD, uploads, mounts, manifest PUTs, the referrers probe): how many
//! attempts, how long to wait between them (`Retry-After` honoured), the
//! overall deadline, and the stall-timeout read loop.
use crate::error::{error_chain, Error, Result};
use bytes::Bytes;
use std::future::Future;
use std::time::{Duration, Instant};

/// Retries and timeouts of registry requests. Defaults, overridable with
/// environment variables (seconds may be fractional):
/// - `SOCI_REGISTRY_RETRIES` (5): retries after the first attempt;
/// - `SOCI_REGISTRY_STALL_TIMEOUT` (120 s): longest wait for a response or
///   for the next bytes of a body;
/// - `SOCI_REGISTRY_TIMEOUT` (3600 s): overall limit for one request,
///   retries included (a whole blob download or upload is one request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`SOCI_REGISTRY_RETRIES`).
    pub retries: u32,
    /// First backoff delay; doubled per retry up to `max_delay`.
    pub base_delay: Duration,
    /// Longest backoff delay between two attempts.
    pub max_delay: Duration,
    /// Longest `Retry-After` we wait for (longer ones are cut to this).
    pub max_retry_after: Duration,
    /// Longest wait for a response or for the next bytes of a body
    /// (`SOCI_REGISTRY_STALL_TIMEOUT`).
    pub stall_timeout: Duration,
    /// Overall limit for one request, retries included (`SOCI_REGISTRY_TIMEOUT`).
    pub total_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(120),
            total_timeout: Duration::from_secs(3600),
        }
    }
}

/// Largest value accepted for the `SOCI_REGISTRY_*` timeouts: one year. Far
/// beyond any real transfer, and far below what `Duration` (and the timers
/// built on it) can hold.
pub const MAX_TIMEOUT_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// Largest `SOCI_REGISTRY_RETRIES`.
pub const MAX_RETRIES: u32 = 1000;

impl RetryPolicy {
    /// The defaults with the `SOCI_REGISTRY_*` environment overrides. A value
    /// that is not a number in range is an [`Error::InvalidSetting`] naming the
    /// variable (a typo must not silently fall back to a default, and
    /// `1e19` must not overflow a timer).
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string());
        let invalid = |name: &str, value: &str, reason: String| Error::InvalidSetting {
            name: name.into(),
            value: value.into(),
            reason,
        };
        let secs = |name: &str| -> Result<Option<Duration>> {
            let Some(v) = var(name) else { return Ok(None) };
            match v.parse::<f64>() {
                Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT_SECS => {
                    Ok(Some(Duration::from_secs_f64(s)))
                }
                _ => Err(invalid(
                    name,
                    &v,
                    format!("expected seconds, more than 0 and at most {MAX_TIMEOUT_SECS}"),
                )),
            }
        };
        let mut p = RetryPolicy::default();
        if let Some(v) = var("SOCI_REGISTRY_RETRIES") {
            p.retries = v
                .parse()
                .ok()
                .filter(|n| *n <= MAX_RETRIES)
                .ok_or_else(|| {
                    invalid(
                        "SOCI_REGISTRY_RETRIES",
                        &v,
                        format!("expected a whole number from 0 to {MAX_RETRIES}"),
                    )
                })?;
        }
        if let Some(d) = secs("SOCI_REGISTRY_STALL_TIMEOUT")? {
            p.stall_timeout = d;
        }
        if let Some(d) = secs("SOCI_REGISTRY_TIMEOUT")? {
            p.total_timeout = d;
        }
        Ok(p)
    }

    pub(super) fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.max_retry_after),
            None => self
                .base_delay
                .saturating_mul(1u32 << retry.min(16))
                .min(self.max_delay),
        }
    }
}

/// Why one attempt failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// Worth another attempt (transport error, 408/429/5xx, stall, short
    /// body, a 401 with a cached token).
    Retry {
        message: String,
        retry_after: Option<Duration>,
        /// Ask for a new token on the next attempt (the last one was refused).
        fresh_token: bool,
    },
    /// Final: retrying cannot help (4xx, digest mismatch, too large, a plain
    /// HTTP answer to a TLS request).
    Fatal(Error),
}

impl Failure {
    pub(super) fn retry(message: impl Into<String>) -> Self {
        Failure::Retry {
            message: message.into(),
            retry_after: None,
            fresh_token: false,
        }
    }
}

/// One attempt's limits, handed to the code that makes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Try {
    /// When the whole request (all attempts) must be over.
    pub deadline: Instant,
    /// Longest silence while waiting for an answer or body bytes.
    pub stall: Duration,
    /// Get a new token instead of the cached one.
    pub fresh_token: bool,
}

impl Try {
    /// How long we may wait for the next thing: the stall timeout, cut by the deadline.
    pub(crate) fn wait(&self) -> Duration {
        self.stall
            .min(self.deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1))
    }
}

/// The retry loop's state for one request: every request kind goes through
/// [`Retrier::run`] (or [`Retrier::run_blocking`] on a plain thread), so they
/// all share one policy.
pub(super) struct Retrier<'a> {
    policy: &'a RetryPolicy,
    registry: &'a str,
    ctx: String,
    started: Instant,
    deadline: Instant,
    failures: u32,
    fresh_token: bool,
}

impl<'a> Retrier<'a> {
    pub(crate) fn new(policy: &'a RetryPolicy, registry: &'a str, ctx: impl Into<String>) -> Self {
        let started = Instant::now();
        Retrier {
            policy,
            registry,
            ctx: ctx.into(),
            started,
            deadline: started + policy.total_timeout,
            failures: 0,
            fresh_token: false,
        }
    }

    /// Make attempts until one succeeds or the policy gives up: `attempt` is
    /// called with each attempt's limits, and what it returns is cut off at
    /// the overall deadline; between attempts we wait as
    /// [`RetryPolicy::backoff`] says (`Retry-After` honoured). The first
    /// success, or the final failure.
    ///
    /// `attempt` is a plain closure returning a future, not an async closure:
    /// the futures of async closures are higher-ranked, and rustc cannot yet
    /// prove them `Send` inside a spawned task (the blob download is one).
    pub(crate) async fn run<T, Fut>(mut self, mut attempt: impl FnMut(Try) -> Fut) -> Result<T>
    where
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        loop {
            let t = self.attempt();
            match self.bounded(attempt(t)).await {
                Ok(v) => return Ok(v),
                Err(f) => self.pause(f).await?,
            }
        }
    }

    /// [`Self::run`] for a caller on a plain thread (streamed uploads, whose
    /// reader is read on the caller's thread). Such an attempt cannot be cut
    /// off from outside, so it bounds itself by [`Try::deadline`]; one that
    /// fails in a retryable way after the deadline ends the request.
    pub(crate) fn run_blocking<T>(
        mut self,
        mut attempt: impl FnMut(Try) -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        loop {
            let t = self.attempt();
            let failure = match attempt(t) {
                Ok(v) => return Ok(v),
                Err(Failure::Retry { .. }) if Instant::now() >= t.deadline => {
                    Failure::Fatal(self.deadline_error(""))
                }
                Err(f) => f,
            };
            self.pause_blocking(failure)?;
        }
    }

    /// The limits of the next attempt.
    fn attempt(&self) -> Try {
        Try {
            deadline: self.deadline,
            stall: self.policy.stall_timeout,
            fresh_token: self.fresh_token,
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Registry {
            registry: self.registry.into(),
            context: self.ctx.clone(),
            message: message.to_string(),
        }
    }

    fn deadline_error(&self, message: &str) -> Error {
        let gave_up = format!(
            "gave up: the overall timeout of {:.1?} was reached after {} attempts in {:.1?}",
            self.policy.total_timeout,
            self.failures + 1,
            self.started.elapsed()
        );
        self.error(if message.is_empty() {
            gave_up
        } else {
            format!("{message} ({gave_up})")
        })
    }

    /// Run one attempt, cut off at the overall deadline whatever it is doing
    /// (a token endpoint trickling a byte at a time included).
    async fn bounded<T>(
        &self,
        attempt: impl Future<Output = std::result::Result<T, Failure>>,
    ) -> std::result::Result<T, Failure> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Fatal(self.deadline_error(""))),
        }
    }

    /// After a failed attempt: the final error, or how long to wait before
    /// the next attempt.
    fn next_delay(&mut self, failure: Failure) -> Result<Duration> {
        let (message, retry_after, fresh_token) = match failure {
            Failure::Fatal(e) => return Err(e),
            Failure::Retry {
                message,
                retry_after,
                fresh_token,
            } => (message, retry_after, fresh_token),
        };
        self.failures += 1;
        self.fresh_token = fresh_token;
        if self.failures > self.policy.retries {
            return Err(self.error(format!(
                "{message} (gave up after {} attempts)",
                self.failures
            )));
        }
        let delay = self.policy.backoff(self.failures - 1, retry_after);
        if Instant::now() + delay >= self.deadline {
            self.failures -= 1;
            return Err(self.deadline_error(&message));
        }
        Ok(delay)
    }

    /// After a failed attempt: wait for the next one, or the final error.
    async fn pause(&mut self, failure: Failure) -> Result<()> {
        let delay = self.next_delay(failure)?;
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// [`Self::pause`] on a plain thread.
    fn pause_blocking(&mut self, failure: Failure) -> Result<()> {
        let delay = self.next_delay(failure)?;
        std::thread::sleep(delay);
        Ok(())
    }
}

/// The next chunk of `resp`'s body (`None` at its end), waiting at most the
/// attempt's stall limit; `got` (bytes read so far) is for the message.
pub(super) async fn next_chunk(
    resp: &mut reqwest::Response,
    t: &Try,
    got: u64,
) -> std::result::Result<Option<Bytes>, Failure> {
    let wait = t.wait();
    match tokio::time::timeout(wait, resp.chunk()).await {
        Err(_) => Err(Failure::retry(format!(
            "no data for {wait:.1?} after {got} bytes (stalled)"
        ))),
        Ok(Err(e)) if e.is_timeout() => Err(Failure::retry(format!(
            "no data for {wait:.1?} after {got} bytes (stalled): {}",
            error_chain(&e)
        ))),
        Ok(Err(e)) => Err(Failure::retry(error_chain(&e))),
        Ok(Ok(b)) => Ok(b),
    }
}

/// A whole body of at most `limit` bytes (refused from its `Content-Length`
/// unread, or as soon as it passes the limit). `what` names it in errors
/// ("the manifest", "the token answer").
pub(super) async fn read_limited(
    mut resp: reqwest::Response,
    t: &Try,
    limit: u64,
    what: &str,
    fatal: impl Fn(String) -> Error,
) -> std::result::Result<Vec<u8>, Failure> {
    let len = resp.content_length();
    if let Some(len) = len.filter(|l| *l > limit) {
        return Err(Failure::Fatal(fatal(format!(
            "{what} is {len} bytes, more than the {limit}-byte limit; not read"
        ))));
    }
    let mut body = Vec::with_capacity(len.unwrap_or(0) as usize);
    while let Some(b) = next_chunk(&mut resp, t, body.len() as u64).await? {
        if (body.len() + b.len()) as u64 > limit {
            return Err(Failure::Fatal(fatal(format!(
                "{what} is more than the {limit}-byte limit; not read"
            ))));
        }
        body.extend_from_slice(&b);
    }
    if let Some(l) = len.filter(|l| *l != body.len() as u64) {
        return Err(Failure::retry(format!(
            "the body ended after {} of {l} bytes",
            body.len()
        )));
    }
    Ok(body)
}

/// Statuses worth another attempt.
pub(super) const RETRY_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

pub(super) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get(reqwest::header::RETRY_AFTER)?;
    parse_retry_after(v.to_str().ok()?, std::time::SystemTime::now())
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP date (a date
/// already past means "now"). Anything else: `None`, our own backoff applies.
fn parse_retry_after(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::parse_retry_after;
    use std::time::{Duration, SystemTime};

    #[test]
    fn retry_after_seconds_and_dates() {
        // 2015-10-21 07:28:00 UTC
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms HTTP still allows.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:05 2015", now),
            Some(Duration::from_secs(5))
        );
        // Past dates mean now; garbage means "use our backoff".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
