//! Typed errors of soci-oci. Every variant names the image, blob or file concerned.
use std::path::PathBuf;

/// The result type of soci-oci's fallible functions, with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in soci-oci: bad input, a bad image, a failed
/// check, file-system, JSON or registry failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference that cannot be parsed.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        input: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A platform string (`os/arch[/variant]`) that cannot be parsed.
    #[error("invalid platform {input:?}: {reason}")]
    InvalidPlatform {
        /// The platform string as given.
        input: String,
        /// Why it was rejected.
        reason: String,
    },

    #[error("no manifest of {image} matches platform {wanted}; available platforms: {available}")]
    /// A multi-platform image with no manifest for the wanted platform.
    PlatformNotFound {
        /// The image that was searched.
        image: String,
        /// The platform asked for.
        wanted: String,
        /// The platforms the image does offer, as one printable list.
        available: String,
    },

    /// An image whose manifests, index or config break the rules we rely on.
    #[error("{image}: {reason}")]
    BadImage {
        /// The image concerned.
        image: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A blob the image refers to that its store does not hold.
    #[error("{image}: blob {digest} not found")]
    BlobNotFound {
        /// The image whose store was searched.
        image: String,
        /// The digest of the missing blob.
        digest: String,
    },

    #[error("{image}: blob {digest} is {size} bytes, more than the {limit}-byte limit for in-memory blobs")]
    /// A blob too large to be read whole into memory.
    BlobTooLarge {
        /// The image the blob belongs to.
        image: String,
        /// The digest of the blob.
        digest: String,
        /// The blob's size in bytes.
        size: u64,
        /// The largest size in bytes read into memory.
        limit: u64,
    },

    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    /// Content whose digest is not the one it was announced with.
    DigestMismatch {
        /// The content that was checked (a blob, a file, a manifest).
        what: String,
        /// The digest announced for it.
        expected: String,
        /// The digest of the bytes actually read.
        actual: String,
    },

    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    /// Content whose length is not the size it was announced with.
    SizeMismatch {
        /// The content that was checked (a blob, a file, a manifest).
        what: String,
        /// The size in bytes announced for it.
        expected: u64,
        /// The number of bytes actually read.
        actual: u64,
    },

    /// A well-formed digest of an algorithm other than sha256.
    #[error("unsupported digest {digest:?} (only sha256 is supported)")]
    UnsupportedDigest {
        /// The digest as given.
        digest: String,
    },

    /// A digest that arrived as text and breaks the OCI digest grammar. (No
    /// `From`: a second conversion into this type would break the type
    /// inference of `?` in async blocks that convert one already.)
    #[error(transparent)]
    InvalidDigest(soci_digest::InvalidDigest),

    #[error("{path}: {source}")]
    /// A file-system operation that failed.
    Io {
        /// The file or directory operated on.
        path: PathBuf,
        /// The I/O error underneath.
        #[source]
        source: std::io::Error,
    },

    #[error("{what}: invalid JSON: {source}")]
    /// JSON that cannot be decoded into the type expected.
    Json {
        /// The document that was decoded (a manifest, an index, a file).
        what: String,
        /// The serde_json error underneath.
        #[source]
        source: serde_json::Error,
    },

    /// A setting (environment variable or option) with an unusable value: a
    /// usage error, not a failure of the work.
    #[error("{name}={value:?}: {reason}")]
    InvalidSetting {
        /// The name of the environment variable or option.
        name: String,
        /// The value it was given.
        value: String,
        /// Why the value is unusable.
        reason: String,
    },

    #[error("registry {registry}: {context}: {message}")]
    /// A registry request that failed or was answered with an error.
    Registry {
        /// The registry host.
        registry: String,
        /// What was being done or consulted (a request, a credentials source).
        context: String,
        /// The registry's or the client's error message.
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

/// `e` and its sources on one line ("error sending request: connection reset").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
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
