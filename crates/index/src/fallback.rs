//! Referrers fallback (docs/format.md §8.2): the distribution-spec tag schema index
//! `sha256-<subject hex>` that oras-go maintains when the registry has no
//! referrers API.
use crate::error::{Error, Result};
use soci_oci::spec::{self, Descriptor, Digest, Index, MaybeDigest};

/// `sha256:<hex>` → `sha256-<hex>`.
pub fn fallback_tag(subject_digest: &Digest) -> Result<String> {
    if !subject_digest.is_sha256() {
        return Err(Error::InvalidDigest(subject_digest.to_string()));
    }
    Ok(format!("sha256-{}", subject_digest.encoded()))
}

/// The fallback-index entry for a SOCI index manifest: `{mediaType, digest, size,
/// annotations, artifactType = config.mediaType}` (oras-go prefers a top-level
/// `artifactType`, which SOCI indexes never have).
pub fn fallback_entry(index_descriptor: &Descriptor, manifest: &spec::Manifest) -> Descriptor {
    Descriptor {
        annotations: manifest.annotations.clone(),
        artifact_type: if manifest.artifact_type.is_empty() {
            manifest.config.media_type.clone()
        } else {
            manifest.artifact_type.clone()
        },
        ..Descriptor::new(
            index_descriptor.media_type.clone(),
            index_descriptor.digest.clone(),
            index_descriptor.size,
        )
    }
}

/// Add `entry` to the existing fallback index (if any) and return the new Go-JSON
/// bytes, as oras-go's `applyReferrerChanges` + `generateIndex` do:
/// - every existing entry is kept, in order (other SOCI indexes, signatures, ...),
///   except empty descriptors and duplicates (same mediaType+digest+size; first kept);
/// - `entry` is appended unless an entry with the same mediaType+digest+size is
///   already there (then the existing one stays as it is);
/// - the result is a fresh `{"schemaVersion":2,"mediaType":<OCI index>,"manifests":[...]}`:
///   top-level `annotations`/`subject`/`artifactType` of the old index, and fields
///   unknown to `ocispec.Descriptor` in its entries, are dropped.
pub fn merge_fallback_index(existing: Option<&[u8]>, entry: Descriptor) -> Result<Vec<u8>> {
    // The old entries are read with `MaybeDigest`: Go's zero-value descriptor
    // (`"digest":""`) may be among them and is dropped below, and an entry
    // that has other fields but no digest is kept byte for byte, as oras-go
    // keeps it; a strict `Descriptor` would refuse the whole index instead.
    let old = match existing {
        Some(b) => {
            let index = serde_json::from_slice::<Index<MaybeDigest>>(b)
                .map_err(|e| Error::json("referrers fallback index", e))?;
            // Something else under the tag (a manifest, an unknown document) is
            // not overwritten: refusing keeps whatever it is.
            let is_index = spec::is_index_media_type(&index.media_type)
                || (index.media_type.is_empty() && has_manifests_field(b));
            if !is_index {
                return Err(Error::json(
                    "referrers fallback index",
                    serde::de::Error::custom(format!(
                        "the document under the fallback tag is not an image index (mediaType {:?}); not overwriting it",
                        index.media_type
                    )),
                ));
            }
            index.manifests
        }
        None => Vec::new(),
    };
    let entry = entry.into_maybe();
    let key = |d: &Descriptor<MaybeDigest>| (d.media_type.clone(), d.digest.clone(), d.size);
    let mut seen = std::collections::HashSet::new();
    let mut manifests: Vec<Descriptor<MaybeDigest>> = Vec::with_capacity(old.len() + 1);
    for d in old {
        if d == Descriptor::default() || !seen.insert(key(&d)) {
            continue;
        }
        manifests.push(d);
    }
    if seen.insert(key(&entry)) {
        manifests.push(entry);
    }
    let index: Index<MaybeDigest> = Index {
        schema_version: 2,
        media_type: spec::MEDIA_TYPE_OCI_INDEX.into(),
        manifests,
        ..Default::default()
    };
    Ok(spec::to_go_json(&index))
}

/// Whether the JSON object has a `manifests` member (an index without `mediaType`).
fn has_manifests_field(b: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(b)
        .is_ok_and(|m| m.get("manifests").is_some_and(|v| v.is_array()))
}
