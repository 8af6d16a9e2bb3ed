//! `soci push`: the SOCI index that `create` left in the local store, made ready
//! for [`crate::publish::publish_to`]. Nothing is rebuilt: the index manifest,
//! its zTOCs and prefetch artifacts go out byte for byte as they were stored,
//! so the options `create` was given (span size, min layer size, prefetch
//! files, optimisations, build tool) are the ones the registry gets.
use crate::create::{Created, LayerOutcome, PlatformIndexBuilt};
use crate::error::{Error, Result};
use soci_index::manifest::{BuiltIndex, IndexVersion, PrefetchRecord, ZtocRecord};
use soci_index::store::{ArtifactRecord, IndexFilter, Store};
use soci_index::{
    ANNOTATION_DISABLE_XATTRS, ANNOTATION_IMAGE_LAYER_DIGEST, ANNOTATION_IMAGE_LAYER_MEDIA_TYPE,
    ANNOTATION_SPAN_SIZE,
};
use soci_oci::source::{select_manifests, ImageManifest, ImageSource, PlatformChoice};
use soci_oci::spec::{self, Descriptor, Digest};

/// Which stored index to push.
#[derive(Debug, Clone, Default)]
pub struct StoredChoice {
    /// `--index DIGEST` (full digest): exactly this one.
    pub index: Option<Digest>,
    /// Only indexes of this version (`--index-version`); default: the version of
    /// the newest stored index for the image.
    pub version: Option<IndexVersion>,
    /// `--platform`: only these platforms. `None`: every platform of the image
    /// that has a stored index (what `create` indexed, whatever flags it had).
    pub platforms: Option<PlatformChoice>,
}

/// The stored SOCI index(es) of `source`'s image manifests, as a [`Created`]
/// (for each platform the newest stored index, or the one `choice.index` names).
/// Fails, naming the image, when the store has none.
pub fn stored_created(
    source: &dyn ImageSource,
    store: &Store,
    choice: &StoredChoice,
) -> Result<Created> {
    let image = source.reference();
    let (root, root_bytes) = source.resolve_root()?;
    let platforms = choice.platforms.clone().unwrap_or(PlatformChoice::All);
    let images = select_manifests(source, &platforms)?;
    // Newest first.
    let records: Vec<ArtifactRecord> = store
        .list_indexes(&IndexFilter::default())?
        .into_iter()
        .filter(|r| choice.version.is_none_or(|v| r.manifest_version == Some(v)))
        .collect();
    // Built for this manifest; or, once pushed as v2, the manifest is the
    // converted one, which names its index: pushing that again is allowed.
    let for_image = |img: &ImageManifest, r: &ArtifactRecord| {
        r.manifest_digest.as_ref() == Some(&img.descriptor.digest)
            || (r.manifest_version == Some(IndexVersion::V2)
                && img
                    .manifest
                    .annotations
                    .get(soci_index::IMAGE_ANNOTATION_SOCI_INDEX_DIGEST)
                    .is_some_and(|a| *a == r.digest))
    };

    let mut picked: Vec<(ImageManifest, ArtifactRecord)> = Vec::new();
    if let Some(want) = &choice.index {
        let rec = records
            .iter()
            .find(|r| r.digest == *want)
            .ok_or_else(|| Error::Stored(format!("the local store has no SOCI index {want}")))?;
        let img = images
            .into_iter()
            .find(|i| for_image(i, rec))
            .ok_or_else(|| {
                Error::Stored(format!(
                    "SOCI index {want} was built for image manifest {}, which {image} does not have (for the chosen platforms)",
                    rec.manifest_digest.as_ref().map_or("(unknown)", Digest::as_str)
                ))
            })?;
        picked.push((img, rec.clone()));
    } else {
        // One version for the whole push (v2 makes one image index, v1 adds
        // referrers): that of the newest index stored for any chosen manifest.
        let version = records
            .iter()
            .find(|r| images.iter().any(|i| for_image(i, r)))
            .and_then(|r| r.manifest_version);
        let Some(version) = version else {
            let manifests: Vec<&str> = images
                .iter()
                .map(|i| i.descriptor.digest.as_str())
                .collect();
            return Err(Error::Stored(format!(
                "the local store has no SOCI index for {image} (image manifest {}): run `soci create {image}` first",
                manifests.join(", ")
            )));
        };
        for img in images {
            if let Some(rec) = records
                .iter()
                .find(|r| r.manifest_version == Some(version) && for_image(&img, r))
            {
                picked.push((img, rec.clone()));
            }
        }
    }

    let mut out_platforms = Vec::new();
    let mut layers: Vec<(Descriptor, LayerOutcome)> = Vec::new();
    for (mut img, rec) in picked {
        let bytes = store
            .get_blob(&rec.digest)
            .map_err(|source| Error::ReadStoredIndex {
                digest: rec.digest.clone(),
                source,
            })?;
        let parsed = soci_index::parse_index_manifest(&bytes).map_err(|source| {
            Error::InvalidStoredIndex {
                digest: rec.digest.clone(),
                source,
            }
        })?;
        let ztocs = parsed
            .ztocs()
            .map(|d| ztoc_record(d, &rec.digest))
            .collect::<Result<Vec<_>>>()?;
        let prefetches = parsed
            .prefetches()
            .map(|d| {
                Ok(PrefetchRecord {
                    digest: d.digest.clone(),
                    size: d.size.max(0) as u64,
                    layer_digest: annotated_digest(d, ANNOTATION_IMAGE_LAYER_DIGEST, &rec.digest)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Everything the index refers to must be there before anything is pushed.
        for d in ztocs
            .iter()
            .map(|z| &z.ztoc_digest)
            .chain(prefetches.iter().map(|p| &p.digest))
        {
            if !store.has_blob(d) {
                return Err(Error::Stored(format!(
                    "the local store lacks blob {d} of SOCI index {}: run `soci create --force {image}` again",
                    rec.digest
                )));
            }
        }
        for z in &ztocs {
            if !img
                .manifest
                .layers
                .iter()
                .any(|l| l.digest == z.layer_digest)
            {
                return Err(Error::Stored(format!(
                    "the stored SOCI index {} has a zTOC for layer {}, which image manifest {} does not have",
                    rec.digest,
                    z.layer_digest,
                    img.descriptor.digest
                )));
            }
        }
        // The platform `create` recorded: the v2 image index carries it on the
        // index descriptor, so pushing it gives what `create --push` would have.
        if let Some(p) = &rec.platform {
            img.platform = p.clone();
        }
        for l in &img.manifest.layers {
            if layers.iter().any(|(d, _)| d.digest == l.digest) {
                continue;
            }
            let outcome = match ztocs.iter().find(|z| z.layer_digest == l.digest) {
                Some(z) => LayerOutcome::Reused { ztoc: z.clone() },
                None => LayerOutcome::Skipped {
                    reason: format!("layer {}: no zTOC in the stored index", l.digest),
                },
            };
            layers.push((l.clone(), outcome));
        }
        let descriptor = Descriptor {
            artifact_type: parsed.version.artifact_type().into(),
            ..Descriptor::new(
                spec::MEDIA_TYPE_OCI_MANIFEST,
                rec.digest.clone(),
                bytes.len() as i64,
            )
        };
        out_platforms.push(PlatformIndexBuilt {
            image: img,
            index: BuiltIndex {
                manifest: parsed.manifest,
                bytes,
                descriptor,
            },
            ztocs,
            prefetches,
        });
    }
    Ok(Created {
        root,
        root_bytes,
        platforms: out_platforms,
        skipped_platforms: Vec::new(),
        layers,
        prefetch_not_found: Vec::new(),
    })
}

/// The version of the indexes in `created` (all the same, see [`stored_created`]).
pub fn version_of(created: &Created) -> Option<IndexVersion> {
    created
        .platforms
        .first()
        .and_then(|p| IndexVersion::from_artifact_type(&p.index.manifest.config.media_type))
}

fn annotation(d: &Descriptor, key: &str, index: &Digest) -> Result<String> {
    d.annotations.get(key).cloned().ok_or_else(|| {
        Error::Stored(format!(
            "the stored SOCI index {index} is invalid: layer {} has no {key} annotation",
            d.digest
        ))
    })
}

/// [`annotation`] that holds a digest (the layer's), parsed.
fn annotated_digest(d: &Descriptor, key: &str, index: &Digest) -> Result<Digest> {
    let text = annotation(d, key, index)?;
    Digest::parse(&text).map_err(|e| {
        Error::Stored(format!(
            "the stored SOCI index {index} is invalid: layer {}: {key}: {e}",
            d.digest
        ))
    })
}

fn ztoc_record(d: &Descriptor, index: &Digest) -> Result<ZtocRecord> {
    let span = annotation(d, ANNOTATION_SPAN_SIZE, index)?;
    Ok(ZtocRecord {
        ztoc_digest: d.digest.clone(),
        ztoc_size: d.size.max(0) as u64,
        layer_digest: annotated_digest(d, ANNOTATION_IMAGE_LAYER_DIGEST, index)?,
        layer_media_type: annotation(d, ANNOTATION_IMAGE_LAYER_MEDIA_TYPE, index)?,
        span_size: span.parse().map_err(|_| {
            Error::Stored(format!(
                "the stored SOCI index {index} is invalid: span size {span:?} of zTOC {}",
                d.digest
            ))
        })?,
        disable_xattrs: d
            .annotations
            .get(ANNOTATION_DISABLE_XATTRS)
            .map(String::as_str)
            == Some("true"),
    })
}

/// The SOCI indexes already at the destination `dest` for the image manifests
/// of `created` (`soci push --existing-index`): v2, the entries of a
/// SOCI-enabled image index at the destination tag; v1, the referrers of each
/// manifest with the v1 artifact type. A destination that cannot be read (a
/// new tag, a new repository) has none: the push itself reports real errors.
pub fn existing_indexes(dest: &dyn ImageSource, created: &Created) -> Vec<Digest> {
    let mut found = Vec::new();
    match version_of(created) {
        Some(IndexVersion::V2) => {
            let Ok((_, raw)) = dest.resolve_root() else {
                return found;
            };
            // Entries without a digest (Go's zero descriptor) are skipped.
            if let Ok(index) = serde_json::from_slice::<spec::Index<spec::MaybeDigest>>(&raw) {
                for d in index.into_known().manifests {
                    if d.artifact_type == soci_index::SOCI_INDEX_ARTIFACT_TYPE_V2 {
                        found.push(d.digest);
                    }
                }
            }
        }
        Some(IndexVersion::V1) => {
            for p in &created.platforms {
                if let Ok(Some(refs)) = dest.referrers(&p.image.descriptor.digest) {
                    for d in refs {
                        if d.artifact_type == soci_index::SOCI_INDEX_ARTIFACT_TYPE_V1 {
                            found.push(d.digest);
                        }
                    }
                }
            }
        }
        None => {}
    }
    found
}
