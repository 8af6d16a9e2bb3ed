//! Typed errors of soci-oci. Every variant names the image, blob or file concerned.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    #[error("invalid platform {input:?}: {reason}")]
    InvalidPlatform { input: String, reason: String },

    #[error("no manifest of {image} matches platform {wanted}; available platforms: {available}")]
    PlatformNotFound {
        image: String,
        wanted: String,
        available: String,
    },

    #[error("{image}: {reason}")]
    BadImage { image: String, reason: String },

    #[error("{image}: blob {digest} not found")]
    BlobNotFound { image: String, digest: String },

    #[error("{image}: blob {digest} is {size} bytes, more than the {limit}-byte limit for in-memory blobs")]
    BlobTooLarge {
        image: String,
        digest: String,
        size: u64,
        limit: u64,
    },

    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("unsupported digest {digest:?} (only sha256 is supported)")]
    UnsupportedDigest { digest: String },

    /// A digest that arrived as text and breaks the OCI digest grammar. (No
    /// `From`: a second conversion into this type would break the type
    /// inference of `?` in async blocks that convert one already.)
    #[error(transparent)]
    InvalidDigest(soci_digest::InvalidDigest),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{what}: invalid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// A setting (environment variable or option) with an unusable value: a
    /// usage error, not a failure of the work.
    #[error("{name}={value:?}: {reason}")]
    InvalidSetting {
        name: String,
        value: String,
        reason: String,
    },

    #[error("registry {registry}: {context}: {message}")]
    Registry {
        registry: String,
        context: String,
        message: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json {
            what: what.into(),
            source,
        }
    }
    pub(crate) fn invalid_reference(input: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidReference {
            input: input.to_string(),
            reason: reason.into(),
        }
    }
    pub(crate) fn bad_image(image: impl ToString, reason: impl Into<String>) -> Self {
        Error::BadImage {
            image: image.to_string(),
            reason: reason.into(),
        }
    }
}

/// Longest piece of a server's answer quoted in an error message.
pub const MAX_SHOWN_BODY: usize = 300;

/// `text` made safe to print and short: control characters (escape
/// sequences, newlines, carriage returns that could forge or hide terminal
/// lines) written as visible escapes, and everything past `max` characters
/// cut with an ellipsis. A registry's error body goes through this before it
/// reaches an error message.
pub fn shown(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn shown_escapes_control_characters_and_shortens() {
        assert_eq!(shown("ok", 10), "ok");
        assert_eq!(
            shown("a\x1b[2J\nsoci index OK\r", 100),
            "a\\u{1b}[2J\\nsoci index OK"
        );
        assert_eq!(shown(&"x".repeat(50), 10), format!("{}...", "x".repeat(10)));
        assert_eq!(shown("\u{202e}evil", 10), "\\u{202e}evil");
    }
}
