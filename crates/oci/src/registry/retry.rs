//! Retries: the policy (counts, backoff, timeouts), which failures are worth
//! another attempt, and `Retry-After`.
use super::fetch::Fetcher;
use super::reg_err;
use crate::error::{Error, Result};
use oci_client::errors::OciDistributionError;
use std::time::{Duration, Instant};

/// Retries and timeouts of registry downloads. Defaults, overridable with
/// environment variables (seconds may be fractional):
/// - `SOCI_REGISTRY_RETRIES` (5): retries after the first attempt;
/// - `SOCI_REGISTRY_STALL_TIMEOUT` (120 s): longest wait for a response or
///   for the next bytes of a body;
/// - `SOCI_REGISTRY_TIMEOUT` (3600 s): overall limit for one download,
///   retries included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    /// First backoff delay; doubled per retry up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` we wait for (longer ones are cut to this).
    pub max_retry_after: Duration,
    pub stall_timeout: Duration,
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

impl RetryPolicy {
    /// The defaults with the `SOCI_REGISTRY_*` environment overrides.
    pub fn from_env() -> Self {
        let secs = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v > 0.0)
                .map(Duration::from_secs_f64)
        };
        let mut p = RetryPolicy::default();
        if let Some(n) = std::env::var("SOCI_REGISTRY_RETRIES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
        {
            p.retries = n;
        }
        if let Some(d) = secs("SOCI_REGISTRY_STALL_TIMEOUT") {
            p.stall_timeout = d;
        }
        if let Some(d) = secs("SOCI_REGISTRY_TIMEOUT") {
            p.total_timeout = d;
        }
        p
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

/// Why one attempt of a download failed.
pub(super) enum Failure {
    /// Worth another attempt (transport error, 408/429/5xx, stall, short body).
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 404.
    NotFound,
    /// Final: retrying cannot help (4xx, digest mismatch, too large).
    Fatal(Error),
}

/// Whether an oci-client error is worth another attempt.
pub(super) fn oci_retryable(e: &OciDistributionError) -> bool {
    const STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];
    match e {
        OciDistributionError::RequestError(e) => match e.status() {
            Some(s) => STATUSES.contains(&s.as_u16()),
            None => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
        },
        OciDistributionError::ServerError { code, .. } => STATUSES.contains(code),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| matches!(x.code, oci_client::errors::OciErrorCode::Toomanyrequests)),
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

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
impl Fetcher {
    /// How long we may wait for the next thing: the stall timeout, cut by the deadline.
    pub(super) fn wait_limit(&self, deadline: Instant) -> Duration {
        self.policy
            .stall_timeout
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1))
    }

    /// After failure number `retry` (1-based): sleep and return `Ok` to try
    /// again, or the final error.
    pub(super) async fn before_retry(
        &self,
        ctx: &str,
        retry: u32,
        message: &str,
        retry_after: Option<Duration>,
        deadline: Instant,
        started: Instant,
    ) -> Result<()> {
        if retry > self.policy.retries {
            return Err(reg_err(
                &self.registry,
                ctx,
                format!("{message} (gave up after {retry} attempts)"),
            ));
        }
        let delay = self.policy.backoff(retry - 1, retry_after);
        if Instant::now() + delay >= deadline {
            return Err(reg_err(
                &self.registry,
                ctx,
                format!(
                    "{message} (gave up: the overall timeout of {:.1?} was reached after {retry} attempts in {:.1?})",
                    self.policy.total_timeout,
                    started.elapsed()
                ),
            ));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }
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
