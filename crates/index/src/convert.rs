//! `soci convert` (docs/format.md §7): rewrite the image manifests with the SOCI v2 index link
//! and produce the OCI image index that bundles images and SOCI indexes.
//!
//! Order of work for the caller: build ztocs → build the v2 index manifest (no
//! subject, so it does not depend on the rewritten image manifest) → call
//! [`convert`], which rewrites each indexed image manifest with
//! `com.amazon.soci.index-digest` and appends the index descriptor carrying the
//! *new* manifest digest.
use crate::error::{check_content, Error, Result};
use crate::*;
use serde::Deserialize;
use soci_oci::spec::{self, Descriptor, Digest, Index, Manifest, Platform};
use std::collections::HashMap;

/// The SOCI v2 index built for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformIndex {
    /// Digest of the (original) image manifest the index was built from.
    pub image_manifest_digest: Digest,
    /// The build platform as given (written as-is on the SOCI descriptor).
    pub platform: Platform,
    /// Digest of the SOCI v2 index manifest.
    pub index_digest: Digest,
    /// Size in bytes of the SOCI v2 index manifest.
    pub index_size: u64,
}

/// What to convert.
#[derive(Debug, Clone)]
pub struct ConvertInput<'a> {
    /// The image target (index, manifest list or single manifest). For a single
    /// manifest set `platform` to the image config's (normalised) platform: it is
    /// kept on the manifest's entry in the new OCI index.
    pub root: Descriptor,
    /// Raw bytes of `root`.
    pub root_bytes: &'a [u8],
    /// Raw image manifests present locally, by digest (a single-manifest root need
    /// not be repeated here). Entries of the index absent here are left untouched.
    pub manifests: &'a HashMap<Digest, Vec<u8>>,
    /// One SOCI v2 index per converted platform, in platform order.
    pub indexes: &'a [PlatformIndex],
}

/// A rewritten image manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedManifest {
    /// Digest of the image manifest before the rewrite.
    pub original_digest: Digest,
    /// `{mediaType: OCI manifest, digest, size}`.
    pub descriptor: Descriptor,
    /// Go-JSON bytes to store under `descriptor.digest`.
    pub bytes: Vec<u8>,
}

/// Result of [`convert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertOutput {
    /// Every locally present image manifest of the index, rewritten (index order).
    pub manifests: Vec<ConvertedManifest>,
    /// The new OCI image index bundling the rewritten manifests and the SOCI indexes.
    pub index: Index,
    /// Go-JSON bytes of `index`.
    pub index_bytes: Vec<u8>,
    /// `{mediaType: OCI index, digest, size}`.
    pub index_descriptor: Descriptor,
    /// The SOCI index descriptors as placed in the index (same order as `indexes`).
    pub soci_descriptors: Vec<Descriptor>,
}

use spec::{is_index_media_type as is_index_type, is_manifest_media_type as is_manifest_type};

/// containerd `ValidateMediaType`-like check: a `mediaType` in the content must
/// agree with the descriptor.
fn check_media_type(digest: &str, expected: &str, bytes: &[u8]) -> Result<()> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: String,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| Error::json(digest, e))?;
    if !probe.media_type.is_empty() && probe.media_type != expected {
        return Err(Error::MediaTypeMismatch {
            digest: digest.to_string(),
            expected: expected.to_string(),
            found: probe.media_type,
        });
    }
    Ok(())
}

/// containerd `platforms.Normalize` (OS and architecture/variant aliases).
pub(crate) fn normalize_platform(p: &Platform) -> Platform {
    let mut os = p.os.to_lowercase();
    if os == "macos" {
        os = "darwin".into();
    }
    let mut arch = p.architecture.to_lowercase();
    let mut variant = p.variant.to_lowercase();
    match arch.as_str() {
        "i386" => {
            arch = "386".into();
            variant.clear();
        }
        "x86_64" | "x86-64" | "amd64" => {
            arch = "amd64".into();
            if variant == "v1" {
                variant.clear();
            }
        }
        "aarch64" | "arm64" => {
            arch = "arm64".into();
            match variant.as_str() {
                "8" | "v8" | "v8.0" => variant.clear(),
                "9" | "9.0" | "v9.0" => variant = "v9".into(),
                _ => {}
            }
        }
        "armhf" => {
            arch = "arm".into();
            variant = "v7".into();
        }
        "armel" => {
            arch = "arm".into();
            variant = "v6".into();
        }
        "arm" => match variant.as_str() {
            "" | "7" => variant = "v7".into(),
            "5" | "6" | "8" => variant = format!("v{variant}"),
            _ => {}
        },
        _ => {}
    }
    Platform {
        architecture: arch,
        os,
        variant,
        ..p.clone()
    }
}

/// containerd `platforms.OnlyStrict(a).Match(b)`: same normalised OS, architecture
/// and variant (and OS version when both have one).
pub(crate) fn platform_matches_strict(a: &Platform, b: &Platform) -> bool {
    let (na, nb) = (normalize_platform(a), normalize_platform(b));
    na.os == nb.os
        && na.architecture == nb.architecture
        && na.variant == nb.variant
        && (na.os_version.is_empty() || nb.os_version.is_empty() || na.os_version == nb.os_version)
}

fn is_soci_index_entry(d: &Descriptor) -> bool {
    d.artifact_type == SOCI_INDEX_ARTIFACT_TYPE_V2 || d.artifact_type == SOCI_INDEX_ARTIFACT_TYPE_V1
}

/// Convert an image into a SOCI-enabled (v2) image; see the module docs.
pub fn convert(input: &ConvertInput<'_>) -> Result<ConvertOutput> {
    let (mut index, single) = root_as_index(&input.root, input.root_bytes)?;
    check_indexed_manifests_listed(&index, input.indexes)?;

    let mut new_manifest_digest: HashMap<Digest, Digest> = HashMap::new();
    let mut converted = Vec::new();
    for entry in index.manifests.iter_mut() {
        // Existing SOCI index entries (re-convert) and nested indexes are left as they
        // are; a SOCI entry for a re-indexed platform is replaced below.
        if is_soci_index_entry(entry) || !is_manifest_type(&entry.media_type) {
            continue;
        }
        let soci = input
            .indexes
            .iter()
            .rev()
            .find(|p| p.image_manifest_digest == entry.digest);
        let raw: &[u8] = match (single, input.manifests.get(&entry.digest)) {
            (_, Some(b)) => b,
            (Some((d, b)), None) if *d == entry.digest => b,
            _ => {
                if soci.is_some() {
                    return Err(Error::ManifestMissing(entry.digest.to_string()));
                }
                continue;
            }
        };
        let rewritten = rewrite_manifest(entry, raw, soci)?;
        new_manifest_digest.insert(
            rewritten.original_digest.clone(),
            rewritten.descriptor.digest.clone(),
        );
        converted.push(rewritten);
    }

    let soci_descriptors = place_soci_descriptors(&mut index, input.indexes, &new_manifest_digest);

    let index_bytes = spec::to_go_json(&index);
    let index_descriptor = Descriptor::of(spec::MEDIA_TYPE_OCI_INDEX, &index_bytes);
    Ok(ConvertOutput {
        manifests: converted,
        index,
        index_bytes,
        index_descriptor,
        soci_descriptors,
    })
}

/// A single-manifest root's digest and bytes.
type SingleManifest<'a> = Option<(&'a Digest, &'a [u8])>;

/// The root as an OCI image index to rewrite: an index or manifest list as
/// read (its media type made OCI), a single manifest wrapped in a new index
/// (then also returned, as its bytes are not in `manifests`).
fn root_as_index<'a>(
    root: &'a Descriptor,
    root_bytes: &'a [u8],
) -> Result<(Index, SingleManifest<'a>)> {
    check_content(&root.digest, root_bytes)?;
    if is_index_type(&root.media_type) {
        check_media_type(root.digest.as_str(), &root.media_type, root_bytes)?;
        let mut idx: Index = serde_json::from_slice(root_bytes)
            .map_err(|e| Error::json(root.digest.to_string(), e))?;
        idx.media_type = spec::MEDIA_TYPE_OCI_INDEX.into();
        Ok((idx, None))
    } else if is_manifest_type(&root.media_type) {
        let idx = Index {
            schema_version: 2,
            media_type: spec::MEDIA_TYPE_OCI_INDEX.into(),
            manifests: vec![root.clone()],
            ..Default::default()
        };
        Ok((idx, Some((&root.digest, root_bytes))))
    } else {
        Err(Error::NotAnImage {
            digest: root.digest.to_string(),
            media_type: root.media_type.clone(),
        })
    }
}

/// Every SOCI index must have been built from an image manifest of this image.
fn check_indexed_manifests_listed(index: &Index, indexes: &[PlatformIndex]) -> Result<()> {
    for pi in indexes {
        if !index
            .manifests
            .iter()
            .any(|d| d.digest == pi.image_manifest_digest && !is_soci_index_entry(d))
        {
            return Err(Error::ManifestNotInImage {
                index: pi.index_digest.to_string(),
                manifest: pi.image_manifest_digest.to_string(),
            });
        }
    }
    Ok(())
}

/// Rewrites one image manifest as an OCI manifest (with the SOCI index digest
/// annotation when `soci` indexes it) and points its index `entry` at the new
/// bytes.
fn rewrite_manifest(
    entry: &mut Descriptor,
    raw: &[u8],
    soci: Option<&PlatformIndex>,
) -> Result<ConvertedManifest> {
    check_content(&entry.digest, raw)?;
    check_media_type(entry.digest.as_str(), &entry.media_type, raw)?;
    let mut m: Manifest =
        serde_json::from_slice(raw).map_err(|e| Error::json(entry.digest.to_string(), e))?;
    m.media_type = spec::MEDIA_TYPE_OCI_MANIFEST.into();
    m.config.media_type = spec::MEDIA_TYPE_OCI_CONFIG.into();
    if let Some(p) = soci {
        m.annotations.insert(
            IMAGE_ANNOTATION_SOCI_INDEX_DIGEST.into(),
            p.index_digest.to_string(),
        );
    }
    let bytes = spec::to_go_json(&m);
    let descriptor = Descriptor::of(spec::MEDIA_TYPE_OCI_MANIFEST, &bytes);
    let original_digest = std::mem::replace(&mut entry.digest, descriptor.digest.clone());
    entry.size = descriptor.size;
    entry.media_type = spec::MEDIA_TYPE_OCI_MANIFEST.into();
    entry.annotations = m.annotations;
    Ok(ConvertedManifest {
        original_digest,
        descriptor,
        bytes,
    })
}

/// Adds one SOCI index descriptor per platform to `index`, naming the
/// rewritten manifest digest; one already there for the same platform (a
/// re-convert) is replaced in place. Returns them in `indexes` order.
fn place_soci_descriptors(
    index: &mut Index,
    indexes: &[PlatformIndex],
    new_manifest_digest: &HashMap<Digest, Digest>,
) -> Vec<Descriptor> {
    let mut soci_descriptors = Vec::with_capacity(indexes.len());
    for pi in indexes {
        let manifest_digest = new_manifest_digest
            .get(&pi.image_manifest_digest)
            .cloned()
            .unwrap_or_else(|| pi.image_manifest_digest.clone());
        let desc = Descriptor {
            annotations: [(
                ANNOTATION_IMAGE_MANIFEST_DIGEST.to_string(),
                manifest_digest.to_string(),
            )]
            .into_iter()
            .collect(),
            platform: Some(pi.platform.clone()),
            artifact_type: SOCI_INDEX_ARTIFACT_TYPE_V2.into(),
            ..Descriptor::new(
                spec::MEDIA_TYPE_OCI_MANIFEST,
                pi.index_digest.clone(),
                pi.index_size as i64,
            )
        };
        let existing = index.manifests.iter().position(|d| {
            d.artifact_type == SOCI_INDEX_ARTIFACT_TYPE_V2
                && d.platform
                    .as_ref()
                    .is_some_and(|p| platform_matches_strict(&pi.platform, p))
        });
        match existing {
            Some(i) => index.manifests[i] = desc.clone(),
            None => index.manifests.push(desc.clone()),
        }
        soci_descriptors.push(desc);
    }
    soci_descriptors
}
