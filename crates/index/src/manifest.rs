//! SOCI index manifests (docs/format.md §5): building them byte-exactly and parsing them back.
use crate::error::{Error, Result};
use crate::*;
use serde::{Deserialize, Serialize};
use soci_oci::spec::{self, Annotations, Descriptor, Digest, Manifest};

/// SOCI index manifest version: v1 (`soci create`, has `subject`) or v2 (`soci
/// convert`, no subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum IndexVersion {
    /// Built by `soci create`; refers to its image manifest as `subject`.
    V1,
    /// Built by `soci convert`; has no subject, the image manifest links to it instead.
    V2,
}

impl IndexVersion {
    /// Artifact type = `config.mediaType` of the index manifest.
    pub fn artifact_type(self) -> &'static str {
        match self {
            IndexVersion::V1 => SOCI_INDEX_ARTIFACT_TYPE_V1,
            IndexVersion::V2 => SOCI_INDEX_ARTIFACT_TYPE_V2,
        }
    }
    /// `"v1"` / `"v2"` (as `index list` prints it).
    pub fn as_str(self) -> &'static str {
        match self {
            IndexVersion::V1 => "v1",
            IndexVersion::V2 => "v2",
        }
    }
    /// The version whose artifact type is `artifact_type`, if any.
    pub fn from_artifact_type(artifact_type: &str) -> Option<Self> {
        match artifact_type {
            SOCI_INDEX_ARTIFACT_TYPE_V1 => Some(IndexVersion::V1),
            SOCI_INDEX_ARTIFACT_TYPE_V2 => Some(IndexVersion::V2),
            _ => None,
        }
    }
    /// The `{}` config descriptor of this version.
    pub(crate) fn config_descriptor(self) -> Descriptor {
        Descriptor::new(
            self.artifact_type().to_string(),
            Digest::parse(EMPTY_CONFIG_DIGEST).expect("a constant sha256 digest"),
            EMPTY_CONFIG_SIZE,
        )
    }
}

impl std::fmt::Display for IndexVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ztoc of the index (one indexed layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZtocRecord {
    /// Digest of the ztoc blob.
    pub ztoc_digest: Digest,
    /// Size in bytes of the ztoc blob.
    pub ztoc_size: u64,
    /// Digest of the image layer the ztoc indexes.
    pub layer_digest: Digest,
    /// Media type of that image layer.
    pub layer_media_type: String,
    /// Span size in bytes the ztoc was built with.
    pub span_size: u64,
    /// Add `com.amazon.soci.disable-xattrs: "true"` (see [`disable_xattrs_applies`]).
    pub disable_xattrs: bool,
}

impl ZtocRecord {
    /// The ztoc descriptor as it appears in `layers`.
    pub fn descriptor(&self) -> Descriptor {
        let mut annotations = Annotations::new();
        annotations.insert(
            ANNOTATION_IMAGE_LAYER_MEDIA_TYPE.into(),
            self.layer_media_type.clone(),
        );
        annotations.insert(
            ANNOTATION_IMAGE_LAYER_DIGEST.into(),
            self.layer_digest.to_string(),
        );
        annotations.insert(ANNOTATION_SPAN_SIZE.into(), self.span_size.to_string());
        if self.disable_xattrs {
            annotations.insert(ANNOTATION_DISABLE_XATTRS.into(), "true".into());
        }
        Descriptor {
            annotations,
            ..Descriptor::new(
                SOCI_LAYER_MEDIA_TYPE,
                self.ztoc_digest.clone(),
                self.ztoc_size as i64,
            )
        }
    }
}

/// One prefetch artifact of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchRecord {
    /// Digest of the prefetch artifact.
    pub digest: Digest,
    /// Size in bytes of the prefetch artifact.
    pub size: u64,
    /// Digest of the image layer it lists files of.
    pub layer_digest: Digest,
}

impl PrefetchRecord {
    /// The prefetch descriptor as it appears in `layers`.
    pub fn descriptor(&self) -> Descriptor {
        let mut annotations = Annotations::new();
        annotations.insert(
            ANNOTATION_IMAGE_LAYER_DIGEST.into(),
            self.layer_digest.to_string(),
        );
        Descriptor {
            annotations,
            ..Descriptor::new(
                SOCI_PREFETCH_MEDIA_TYPE,
                self.digest.clone(),
                self.size as i64,
            )
        }
    }
}

/// A built index manifest: the typed value, its exact bytes and its descriptor
/// (`{mediaType: OCI manifest, digest, size, artifactType}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltIndex {
    /// The index manifest as a typed value.
    pub manifest: Manifest,
    /// Its exact Go-JSON bytes, which its digest is computed over.
    pub bytes: Vec<u8>,
    /// Its descriptor, with the index version's artifact type.
    pub descriptor: Descriptor,
}

/// Build a SOCI index manifest byte-exactly as the reference does (docs/format.md §5).
///
/// `ztocs` in image layer order (skipped layers omitted), `prefetches` in image
/// layer order too (as [`crate::plan_prefetch`] returns them), each for an indexed layer. `subject` is required for v1
/// (only its mediaType/digest/size are kept) and refused for v2.
pub fn build_index_manifest(
    version: IndexVersion,
    ztocs: &[ZtocRecord],
    prefetches: &[PrefetchRecord],
    subject: Option<Descriptor>,
    build_tool_identifier: &str,
) -> Result<BuiltIndex> {
    if ztocs.is_empty() {
        return Err(Error::EmptyIndex);
    }
    let subject = match (version, subject) {
        (IndexVersion::V1, None) => return Err(Error::MissingSubject),
        (IndexVersion::V1, Some(s)) => Some(Descriptor::new(s.media_type, s.digest, s.size)),
        (IndexVersion::V2, Some(s)) => return Err(Error::UnexpectedSubject(s.digest.to_string())),
        (IndexVersion::V2, None) => None,
    };
    let mut layers: Vec<Descriptor> = ztocs.iter().map(ZtocRecord::descriptor).collect();
    for p in prefetches {
        if !ztocs.iter().any(|z| z.layer_digest == p.layer_digest) {
            return Err(Error::PrefetchLayerNotIndexed {
                prefetch: p.digest.to_string(),
                layer: p.layer_digest.to_string(),
            });
        }
        layers.push(p.descriptor());
    }

    let mut annotations = Annotations::new();
    annotations.insert(
        ANNOTATION_BUILD_TOOL_IDENTIFIER.into(),
        build_tool_identifier.into(),
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: spec::MEDIA_TYPE_OCI_MANIFEST.into(),
        artifact_type: String::new(),
        config: version.config_descriptor(),
        layers,
        subject,
        annotations,
    };
    let bytes = spec::to_go_json(&manifest);
    let descriptor = Descriptor {
        artifact_type: version.artifact_type().into(),
        ..Descriptor::of(spec::MEDIA_TYPE_OCI_MANIFEST, &bytes)
    };
    Ok(BuiltIndex {
        manifest,
        bytes,
        descriptor,
    })
}

/// A parsed SOCI index manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedIndex {
    /// The index manifest as parsed.
    pub manifest: Manifest,
    /// The version read from its config media type.
    pub version: IndexVersion,
    /// The bytes equal their Go re-marshalling. The snapshotter re-marshals what it
    /// fetches and stores it under the original digest, so a non-canonical index
    /// cannot be used for lazy loading.
    pub go_canonical: bool,
}

impl ParsedIndex {
    /// Ztoc descriptors (`application/octet-stream` layers), as the snapshotter selects them.
    pub fn ztocs(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifest
            .layers
            .iter()
            .filter(|d| d.media_type == SOCI_LAYER_MEDIA_TYPE)
    }
    /// Prefetch artifact descriptors.
    pub fn prefetches(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifest
            .layers
            .iter()
            .filter(|d| d.media_type == SOCI_PREFETCH_MEDIA_TYPE)
    }
}

/// Parse a SOCI index manifest; fails unless `config.mediaType` is the v1 or v2
/// artifact type (as the reference `UnmarshalIndex` does).
pub fn parse_index_manifest(bytes: &[u8]) -> Result<ParsedIndex> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| Error::json("SOCI index manifest", e))?;
    let version = IndexVersion::from_artifact_type(&manifest.config.media_type)
        .ok_or_else(|| Error::UnknownIndexVersion(manifest.config.media_type.clone()))?;
    // The snapshotter re-marshals with `MarshalIndex`, which rebuilds the manifest
    // from the SOCI index fields only: schemaVersion 2, OCI manifest mediaType, no
    // top-level artifactType.
    let remarshalled = Manifest {
        schema_version: 2,
        media_type: spec::MEDIA_TYPE_OCI_MANIFEST.into(),
        artifact_type: String::new(),
        ..manifest.clone()
    };
    let go_canonical = spec::to_go_json(&remarshalled) == bytes;
    Ok(ParsedIndex {
        manifest,
        version,
        go_canonical,
    })
}

/// The `--optimizations xattr` rule (docs/format.md §4.3): true iff no entry has a
/// `SCHILY.xattr.*` PAX record and no raw name ends with `.wh..wh..opq`.
///
/// Items: (raw entry name, entry has at least one `SCHILY.xattr.` record, as
/// `soci_ztoc::TocEntry::has_xattrs` tells).
pub fn disable_xattrs_applies<'a>(entries: impl IntoIterator<Item = (&'a [u8], bool)>) -> bool {
    for (name, has_xattr) in entries {
        if has_xattr || name.ends_with(WHITEOUT_OPAQUE_DIR.as_bytes()) {
            return false;
        }
    }
    true
}
