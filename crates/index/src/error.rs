//! Typed errors. Every variant names the digest, file or field concerned.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no ztocs created, all layers either skipped or produced errors")]
    EmptyIndex,
    #[error("cannot build a v1 SOCI index without a subject (image manifest descriptor)")]
    MissingSubject,
    #[error("a v2 SOCI index has no subject, but subject {0} was given")]
    UnexpectedSubject(String),
    #[error("prefetch artifact {prefetch} is for layer {layer}, which has no ztoc in the index")]
    PrefetchLayerNotIndexed { prefetch: String, layer: String },
    #[error("unknown index version: {0:?}")]
    UnknownIndexVersion(String),
    #[error("invalid JSON in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("prefetch artifact is empty")]
    EmptyPrefetchArtifact,
    #[error("unsupported prefetch artifact version: {0} (expected 1.0)")]
    UnsupportedPrefetchVersion(String),
    #[error("{digest}: media type {found:?} in the content does not match descriptor media type {expected:?}")]
    MediaTypeMismatch {
        digest: String,
        expected: String,
        found: String,
    },
    #[error("{digest}: {media_type:?} is neither an image manifest nor an image index")]
    NotAnImage { digest: String, media_type: String },
    #[error("image manifest {0} has a SOCI index but is not present locally")]
    ManifestMissing(String),
    #[error("SOCI index {index} is for image manifest {manifest}, which is not in the image")]
    ManifestNotInImage { index: String, manifest: String },
    #[error("invalid digest {0:?} (expected sha256:<64 lowercase hex>)")]
    InvalidDigest(String),
    #[error("digest mismatch: expected {expected}, content is {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("size mismatch for {digest}: expected {expected}, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} in the local store is corrupt (its content is {actual}); `soci create --force` rebuilds it")]
    CorruptBlob { digest: String, actual: String },
    #[error("SOCI index {index} needs blob {blob}, which is no longer in the local store (removed meanwhile, e.g. by `soci index rm`); run the command again")]
    IndexBlobMissing { index: String, blob: String },
    #[error("blob {0} not found in the local store")]
    BlobNotFound(String),
    #[error("artifact {0} not found in the local store")]
    ArtifactNotFound(String),
    #[error("artifact {digest} is a {kind}, not a SOCI index")]
    NotAnIndex { digest: String, kind: String },
    #[error("cannot determine the default store directory: neither XDG_DATA_HOME nor HOME is set")]
    NoHomeDir,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
}

/// Check that `bytes` have `expected`, a well-formed sha256 digest.
pub(crate) fn check_content(expected: &str, bytes: &[u8]) -> Result<()> {
    parse_digest(expected)?;
    let actual = soci_oci::spec::sha256_digest(bytes);
    if actual != expected {
        return Err(Error::DigestMismatch {
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Parses a digest that arrives as text (a flag, a record, a manifest) into
/// the sha256 [`Digest`](soci_digest::Digest) the store's blob functions take;
/// anything else is [`Error::InvalidDigest`] naming it.
pub fn parse_digest(digest: &str) -> Result<soci_digest::Digest> {
    soci_digest::Digest::parse(digest)
        .ok()
        .filter(|d| d.is_sha256())
        .ok_or_else(|| Error::InvalidDigest(digest.to_string()))
}
