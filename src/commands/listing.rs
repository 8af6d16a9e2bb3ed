//! Which SOCI indexes of the local store belong to an image reference, for
//! `index list|rm --ref`, `ztoc list --image-ref` and `prefetch list --index`.
//!
//! An index row records the image it was built for (`image_ref`). Where it was
//! put (`--dest`, `--push`) is remembered on the index's entry in the store's
//! `index.json`, as an annotation listing the destinations, so that
//! `--ref DST` finds it too without another database.
use anyhow::{Context, Result};
use soci_index::store::{ArtifactKind, ArtifactRecord, IndexFilter, Store};
use soci_oci::reference::ImageRef;
use soci_oci::Platform;

/// Annotation on a SOCI index's `index.json` entry in the local store: the
/// references it was pushed to, one per line.
pub(super) const DESTINATIONS_ANNOTATION: &str = "dev.soci-rs.destinations";

/// The canonical text of a reference (`docker://h/r:t` and `h/r:t` are the same
/// image), or the text as given when it does not parse.
pub(super) fn ref_key(s: &str) -> String {
    s.parse::<ImageRef>()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// Remembers that the indexes `digests` were put at `dest`.
pub(super) fn remember_destination(
    store: &Store,
    digests: &[soci_oci::spec::Digest],
    dest: &ImageRef,
) -> Result<()> {
    let dest = dest.to_string();
    let roots = store.roots()?;
    for digest in digests {
        let Some(mut entry) = roots.iter().find(|d| d.digest == *digest).cloned() else {
            continue;
        };
        let mut dests: Vec<String> = entry
            .annotations
            .get(DESTINATIONS_ANNOTATION)
            .map(|v| v.lines().map(str::to_string).collect())
            .unwrap_or_default();
        if dests.contains(&dest) {
            continue;
        }
        dests.push(dest.clone());
        entry
            .annotations
            .insert(DESTINATIONS_ANNOTATION.into(), dests.join("\n"));
        store
            .add_root(&entry)
            .with_context(|| format!("cannot record that {digest} was pushed to {dest}"))?;
    }
    Ok(())
}

/// The destinations remembered for each index digest.
fn destinations(store: &Store) -> Result<Vec<(soci_oci::spec::Digest, Vec<String>)>> {
    Ok(store
        .roots()?
        .into_iter()
        .filter_map(|d| {
            let v = d.annotations.get(DESTINATIONS_ANNOTATION)?;
            Some((d.digest.clone(), v.lines().map(str::to_string).collect()))
        })
        .collect())
}

/// SOCI index rows, newest first, built for or pushed to `image_ref` (when
/// given) and built for `platform` (when given).
pub(super) fn matching_indexes(
    store: &Store,
    image_ref: Option<&str>,
    platform: Option<&str>,
) -> Result<Vec<ArtifactRecord>> {
    let platform: Option<Platform> = platform
        .map(|p| {
            p.parse()
                .with_context(|| format!("invalid --platform {p:?}"))
        })
        .transpose()?;
    let mut list = store.list_indexes(&IndexFilter::default())?;
    if let Some(r) = image_ref {
        let key = ref_key(r);
        let dests = destinations(store)?;
        list.retain(|rec| {
            rec.image_ref.as_deref().map(ref_key).as_deref() == Some(key.as_str())
                || dests
                    .iter()
                    .any(|(d, to)| *d == rec.digest && to.contains(&key))
        });
    }
    if let Some(p) = &platform {
        list.retain(|rec| rec.platform.as_ref().is_some_and(|q| p.matches_strict(q)));
    }
    Ok(list)
}

/// The blobs (zTOCs and prefetch artifacts) a stored SOCI index lists.
pub(super) fn index_blobs(
    store: &Store,
    index_digest: &str,
) -> Result<Vec<soci_oci::spec::Descriptor>> {
    // Text that is not a digest names no index (the same error as an unknown one).
    let digest = soci_oci::spec::Digest::parse(index_digest).ok();
    let is_index = match &digest {
        Some(d) => store
            .get_artifact(d)?
            .iter()
            .any(|r| r.kind == ArtifactKind::Index),
        None => false,
    };
    let (Some(digest), true) = (digest, is_index) else {
        anyhow::bail!(
            "no SOCI index {index_digest} in the local store {}",
            store.dir().display()
        );
    };
    let parsed = store
        .get_index_manifest(&digest)
        .with_context(|| format!("cannot read SOCI index {index_digest}"))?;
    Ok(parsed.manifest.layers)
}
