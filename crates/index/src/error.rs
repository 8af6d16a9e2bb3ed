//! Typed errors. Every variant names the digest, file or field concerned.
use std::path::PathBuf;

/// A result whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong building, parsing, converting or storing SOCI artifacts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No layer produced a ztoc, so there is nothing to index.
    #[error("no ztocs created, all layers either skipped or produced errors")]
    EmptyIndex,
    /// A v1 index was requested without the image manifest it refers to.
    #[error("cannot build a v1 SOCI index without a subject (image manifest descriptor)")]
    MissingSubject,
    /// A subject (its digest here) was given for a v2 index, which has none.
    #[error("a v2 SOCI index has no subject, but subject {0} was given")]
    UnexpectedSubject(String),
    #[error("prefetch artifact {prefetch} is for layer {layer}, which has no ztoc in the index")]
    /// A prefetch artifact refers to a layer that has no ztoc in the index.
    PrefetchLayerNotIndexed {
        /// Digest of the prefetch artifact.
        prefetch: String,
        /// Digest of the layer it is for.
        layer: String,
    },
    /// An index version string other than v1 or v2.
    #[error("unknown index version: {0:?}")]
    UnknownIndexVersion(String),
    #[error("invalid JSON in {what}: {source}")]
    /// Some JSON content could not be parsed.
    Json {
        /// What was being parsed (a digest or a description of the content).
        what: String,
        /// The JSON parse error underneath.
        #[source]
        source: serde_json::Error,
    },
    /// A prefetch artifact with no bytes.
    #[error("prefetch artifact is empty")]
    EmptyPrefetchArtifact,
    /// A prefetch artifact whose version (given here) is not 1.0.
    #[error("unsupported prefetch artifact version: {0} (expected 1.0)")]
    UnsupportedPrefetchVersion(String),
    #[error("{digest}: media type {found:?} in the content does not match descriptor media type {expected:?}")]
    /// The `mediaType` inside some content disagrees with its descriptor.
    MediaTypeMismatch {
        /// Digest of the content.
        digest: String,
        /// Media type on the descriptor.
        expected: String,
        /// Media type found in the content.
        found: String,
    },
    #[error("{digest}: {media_type:?} is neither an image manifest nor an image index")]
    /// Content that should be an image manifest or index has another media type.
    NotAnImage {
        /// Digest of the content.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// An image manifest (digest given) has a SOCI index but is not stored locally.
    #[error("image manifest {0} has a SOCI index but is not present locally")]
    ManifestMissing(String),
    #[error("SOCI index {index} is for image manifest {manifest}, which is not in the image")]
    /// A SOCI index refers to an image manifest that is not part of the image.
    ManifestNotInImage {
        /// Digest of the SOCI index.
        index: String,
        /// Digest of the image manifest it is for.
        manifest: String,
    },
    /// Text (given here) that is not a `sha256:<64 lowercase hex>` digest.
    #[error("invalid digest {0:?} (expected sha256:<64 lowercase hex>)")]
    InvalidDigest(String),
    #[error("digest mismatch: expected {expected}, content is {actual}")]
    /// Content does not hash to the digest it was expected to have.
    DigestMismatch {
        /// The digest the content should have.
        expected: String,
        /// The digest the content actually has.
        actual: String,
    },
    #[error("size mismatch for {digest}: expected {expected}, got {actual}")]
    /// Content does not have the size its descriptor gives.
    SizeMismatch {
        /// Digest of the content.
        digest: String,
        /// Size in bytes from the descriptor.
        expected: u64,
        /// Size in bytes of the content.
        actual: u64,
    },
    #[error("blob {digest} in the local store is corrupt (its content is {actual}); `soci create --force` rebuilds it")]
    /// A blob in the local store does not hash to the digest it is stored under.
    CorruptBlob {
        /// The digest the blob is stored under.
        digest: String,
        /// The digest of its actual content.
        actual: String,
    },
    #[error("SOCI index {index} needs blob {blob}, which is no longer in the local store (removed meanwhile, e.g. by `soci index rm`); run the command again")]
    /// A blob a stored SOCI index needs has vanished from the local store.
    IndexBlobMissing {
        /// Digest of the SOCI index.
        index: String,
        /// Digest of the missing blob.
        blob: String,
    },
    /// No blob with this digest in the local store.
    #[error("blob {0} not found in the local store")]
    BlobNotFound(String),
    /// No artifact record with this digest in the local store.
    #[error("artifact {0} not found in the local store")]
    ArtifactNotFound(String),
    #[error("artifact {digest} is a {kind}, not a SOCI index")]
    /// An artifact that was expected to be a SOCI index is of another kind.
    NotAnIndex {
        /// Digest of the artifact.
        digest: String,
        /// The kind of artifact it is.
        kind: String,
    },
    /// Neither `XDG_DATA_HOME` nor `HOME` is set, so there is no default store directory.
    #[error("cannot determine the default store directory: neither XDG_DATA_HOME nor HOME is set")]
    NoHomeDir,
    #[error("{path}: {source}")]
    /// A file system operation failed.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error underneath.
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

/// Check that `bytes` have `expected`, a sha256 digest.
pub(crate) fn check_content(expected: &soci_digest::Digest, bytes: &[u8]) -> Result<()> {
    if !expected.is_sha256() {
        return Err(Error::InvalidDigest(expected.to_string()));
    }
    let actual = soci_oci::spec::sha256_digest(bytes);
    if *expected != actual {
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
