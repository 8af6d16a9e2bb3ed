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

/// Whether the fallback index `bytes` lists `entry` (same mediaType, digest
/// and size, the key [`merge_fallback_index`] dedups by). A document that is
/// not an index lists nothing.
pub fn fallback_has_entry(bytes: &[u8], entry: &Descriptor) -> bool {
    serde_json::from_slice::<Index<MaybeDigest>>(bytes).is_ok_and(|i| {
        i.manifests.iter().any(|d| {
            d.media_type == entry.media_type
                && d.digest.0.as_ref() == Some(&entry.digest)
                && d.size == entry.size
        })
    })
}

/// The fallback index `bytes` without the entries whose digest is in `dead`,
/// written as [`merge_fallback_index`] writes it; `None` when no entry is left
/// (the tag should then go). Entries of other tools (signatures, SBOMs) stay.
pub fn remove_fallback_entries(bytes: &[u8], dead: &[Digest]) -> Result<Option<Vec<u8>>> {
    // Entries without a digest are not ours: kept as they are (see
    // `merge_fallback_index`).
    let index = serde_json::from_slice::<Index<MaybeDigest>>(bytes)
        .map_err(|e| Error::json("referrers fallback index", e))?;
    let manifests: Vec<Descriptor<MaybeDigest>> = index
        .manifests
        .into_iter()
        .filter(|d| !d.digest.0.as_ref().is_some_and(|x| dead.contains(x)))
        .collect();
    if manifests.is_empty() {
        return Ok(None);
    }
    let index: Index<MaybeDigest> = Index {
        schema_version: 2,
        media_type: spec::MEDIA_TYPE_OCI_INDEX.into(),
        manifests,
        ..Default::default()
    };
    Ok(Some(spec::to_go_json(&index)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: &Digest) -> Descriptor {
        Descriptor {
            artifact_type: crate::SOCI_INDEX_ARTIFACT_TYPE_V1.into(),
            ..Descriptor::new(spec::MEDIA_TYPE_OCI_MANIFEST, digest.clone(), 10)
        }
    }

    #[test]
    fn entries_are_found_and_removed() {
        let a = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let b = Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap();
        let one = merge_fallback_index(None, entry(&a)).unwrap();
        let both = merge_fallback_index(Some(&one), entry(&b)).unwrap();
        assert!(fallback_has_entry(&both, &entry(&a)));
        assert!(fallback_has_entry(&both, &entry(&b)));
        assert!(!fallback_has_entry(&one, &entry(&b)));
        // Same digest, other size: another entry.
        let mut other = entry(&a);
        other.size = 11;
        assert!(!fallback_has_entry(&one, &other));
        assert!(!fallback_has_entry(b"not json", &entry(&a)));
        let left = remove_fallback_entries(&both, std::slice::from_ref(&b))
            .unwrap()
            .unwrap();
        assert_eq!(left, one);
        assert_eq!(remove_fallback_entries(&both, &[a, b]).unwrap(), None);
    }
}
