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
    pub(crate) fn bad_image(image: impl ToString, reason: impl Into<String>) -> Self {
        Error::BadImage {
            image: image.to_string(),
            reason: reason.into(),
        }
    }
}
