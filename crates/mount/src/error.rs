//! The mount's typed errors.

/// Everything that can keep an image from being mounted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image source failed (registry, layout, archive).
    #[error(transparent)]
    Source(#[from] soci_oci::Error),
    /// Finding or reading the SOCI index failed.
    #[error(transparent)]
    Image(#[from] soci_image::Error),
    /// The SOCI index or a prefetch artifact does not decode.
    #[error("the SOCI index does not decode: {0}")]
    Index(#[source] soci_index::Error),
    /// The platform choice matched no image manifest.
    #[error("no image manifest matches the platform")]
    NoPlatform,
    /// More than one platform: a mount shows one root filesystem.
    #[error("{0} platforms match: a mount shows one image; choose one with --platform")]
    ManyPlatforms(usize),
    /// No SOCI index for the image manifest.
    #[error("no SOCI index found for image manifest {0} (looked for the v2 annotation, the image index, the v1 referrers or fallback tag, and the local store); build one with `soci create`")]
    NoIndex(soci_digest::Digest),
    /// The index bytes are not the ones their digest names.
    #[error("the SOCI index {digest} fetched has digest {actual}")]
    IndexDigest {
        /// Digest asked for.
        digest: soci_digest::Digest,
        /// Digest of what came.
        actual: String,
    },
    /// A prefetch artifact's bytes do not match its digest.
    #[error("prefetch artifact {0} does not match its digest")]
    Prefetch(soci_digest::Digest),
    /// A zTOC does not decode.
    #[error("zTOC {digest} does not decode: {why}")]
    Ztoc {
        /// Digest of the zTOC.
        digest: soci_digest::Digest,
        /// The decoder's message.
        why: String,
    },
    /// A layer without a zTOC has a media type that cannot be unpacked.
    #[error("layer {1} has media type {0:?}, which cannot be unpacked")]
    MediaType(String, soci_digest::Digest),
    /// A layer fetched whole is not what the manifest names, or not a tar.
    #[error("layer {layer}: {why}")]
    Layer {
        /// Digest of the layer.
        layer: soci_digest::Digest,
        /// What is wrong.
        why: String,
    },
    /// The local copy of a layer could not be written.
    #[error("cannot keep a local copy of layer {layer}: {source}")]
    Local {
        /// Digest of the layer.
        layer: soci_digest::Digest,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The cache directory cannot be used.
    #[error("cannot use the cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// FUSE is not available or the mount was refused.
    #[error("cannot mount on {mountpoint}: {why}")]
    Mount {
        /// The mount point.
        mountpoint: std::path::PathBuf,
        /// What went wrong, with a hint.
        why: String,
    },
}

/// The mount's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
