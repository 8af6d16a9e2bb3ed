//! soci-index: the SOCI artifacts themselves (index manifests v1/v2, prefetch
//! artifacts), the `soci convert` OCI-index rewriting, the referrers fallback tag
//! and the local artifact store.
//!
//! Everything here is deterministic and prints nothing: callers (the CLI) decide
//! what to show. Byte forms follow `docs/format.md` §1 and §4 to §8 and are
//! Go-canonical (see [`soci_oci::spec::to_go_json`]).

pub mod convert;
pub mod error;
pub mod fallback;
pub mod manifest;
pub mod prefetch;
pub mod size;
pub mod store;
mod time;

pub use convert::{convert, ConvertInput, ConvertOutput, ConvertedManifest, PlatformIndex};
pub use error::{parse_digest, Error, Result};
pub use fallback::{fallback_entry, fallback_tag, merge_fallback_index};
pub use manifest::{
    build_index_manifest, disable_xattrs_applies, parse_index_manifest, BuiltIndex, IndexVersion,
    ParsedIndex, PrefetchRecord, ZtocRecord,
};
pub use prefetch::{
    clean_prefetch_path, normalize_prefetch_spans, plan_prefetch, plan_prefetch_requests,
    trim_prefetch_paths, LayerPrefetch, PrefetchArtifact, PrefetchLayer, PrefetchPlan,
    PrefetchRequest, PrefetchSpan,
};
pub use soci_digest::Digest;
pub use store::{
    ArtifactKind, ArtifactRecord, BlobRef, BlobWriter, IndexEntry, IndexFilter, Store, ZtocFilter,
};

/// Artifact type (= `config.mediaType`) of a v1 SOCI index (referrers API, `subject`).
pub const SOCI_INDEX_ARTIFACT_TYPE_V1: &str = "application/vnd.amazon.soci.index.v1+json";
/// Artifact type (= `config.mediaType`) of a v2 SOCI index (no subject; linked from the
/// image manifest by [`IMAGE_ANNOTATION_SOCI_INDEX_DIGEST`]).
pub const SOCI_INDEX_ARTIFACT_TYPE_V2: &str = "application/vnd.amazon.soci.index.v2+json";
/// Media type of the SOCI index manifest itself.
pub const SOCI_INDEX_MEDIA_TYPE: &str = soci_oci::spec::MEDIA_TYPE_OCI_MANIFEST;
/// Media type of a ztoc blob descriptor in the index.
pub const SOCI_LAYER_MEDIA_TYPE: &str = "application/octet-stream";
/// Media type of a prefetch artifact descriptor in the index.
pub const SOCI_PREFETCH_MEDIA_TYPE: &str = "application/vnd.amazon.soci.prefetch.v1+json";
/// `version` of a prefetch artifact.
pub const PREFETCH_ARTIFACT_VERSION: &str = "1.0";

/// Content of the index config blob.
pub const EMPTY_CONFIG_CONTENT: &[u8] = b"{}";
/// Digest of [`EMPTY_CONFIG_CONTENT`].
pub const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// Size of [`EMPTY_CONFIG_CONTENT`].
pub const EMPTY_CONFIG_SIZE: i64 = 2;

/// Annotation on the index manifest (the only one).
pub const ANNOTATION_BUILD_TOOL_IDENTIFIER: &str = "com.amazon.soci.build-tool-identifier";
/// Ztoc descriptor annotation: the layer's media type.
pub const ANNOTATION_IMAGE_LAYER_MEDIA_TYPE: &str = "com.amazon.soci.image-layer-mediaType";
/// Ztoc and prefetch descriptor annotation: the layer's digest.
pub const ANNOTATION_IMAGE_LAYER_DIGEST: &str = "com.amazon.soci.image-layer-digest";
/// Ztoc descriptor annotation: span size as a decimal string.
pub const ANNOTATION_SPAN_SIZE: &str = "com.amazon.soci.span-size";
/// Ztoc descriptor annotation `"true"` when the xattr optimisation applies.
pub const ANNOTATION_DISABLE_XATTRS: &str = "com.amazon.soci.disable-xattrs";
/// On a SOCI-index descriptor inside a converted OCI index: the (new) image manifest digest.
pub const ANNOTATION_IMAGE_MANIFEST_DIGEST: &str = "com.amazon.soci.image-manifest-digest";
/// On a converted image manifest: the SOCI v2 index manifest digest.
pub const IMAGE_ANNOTATION_SOCI_INDEX_DIGEST: &str = "com.amazon.soci.index-digest";

/// Suffix of the opaque-directory whiteout; its presence disables the xattr optimisation.
pub const WHITEOUT_OPAQUE_DIR: &str = ".wh..wh..opq";
/// The only known `--optimizations` value.
pub const XATTR_OPTIMIZATION: &str = "xattr";
