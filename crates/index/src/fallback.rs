//! Referrers fallback (§2.3): the distribution-spec tag schema index
//! `sha256-<subject hex>` that oras-go maintains when the registry has no
//! referrers API.
use crate::error::{digest_hex, Error, Result};
use soci_oci::spec::{self, Descriptor, Index};

/// `sha256:<hex>` → `sha256-<hex>`.
pub fn fallback_tag(subject_digest: &str) -> Result<String> {
    Ok(format!("sha256-{}", digest_hex(subject_digest)?))
}

/// The fallback-index entry for a SOCI index manifest: `{mediaType, digest, size,
/// annotations, artifactType = config.mediaType}`.
pub fn fallback_entry(index_descriptor: &Descriptor, manifest: &spec::Manifest) -> Descriptor {
    Descriptor {
        media_type: index_descriptor.media_type.clone(),
        digest: index_descriptor.digest.clone(),
        size: index_descriptor.size,
        annotations: manifest.annotations.clone(),
        artifact_type: manifest.config.media_type.clone(),
        ..Default::default()
    }
}

/// Add `entry` to the existing fallback index (if any) and return the new Go-JSON
/// bytes. Every existing entry is kept (other SOCI indexes, signatures, ...), in
/// order, duplicates by digest dropped (first kept); an entry with `entry`'s digest is
/// replaced in place, else `entry` is appended. Existing top-level `annotations`
/// and `subject` are kept; fields unknown to `ocispec.Index`/`Descriptor` are
/// dropped (as when oras-go rewrites the index).
pub fn merge_fallback_index(existing: Option<&[u8]>, entry: Descriptor) -> Result<Vec<u8>> {
    let mut index = match existing {
        Some(b) => serde_json::from_slice::<Index>(b)
            .map_err(|e| Error::json("referrers fallback index", e))?,
        None => Index::default(),
    };
    index.schema_version = 2;
    index.media_type = spec::MEDIA_TYPE_OCI_INDEX.into();
    let mut manifests: Vec<Descriptor> = Vec::with_capacity(index.manifests.len() + 1);
    for d in index.manifests.drain(..) {
        if !manifests.iter().any(|m| m.digest == d.digest) {
            manifests.push(d);
        }
    }
    match manifests.iter().position(|m| m.digest == entry.digest) {
        Some(i) => manifests[i] = entry,
        None => manifests.push(entry),
    }
    index.manifests = manifests;
    Ok(spec::to_go_json(&index))
}
