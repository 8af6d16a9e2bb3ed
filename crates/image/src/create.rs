//! `create`: the zTOCs of an image's layers and one SOCI index per platform.
//!
//! Every layer to index is read once, straight from the source (registry stream,
//! OCI layout blob, docker archive entry): the digest check, inflate, checkpoints
//! and file table happen in that one pass. Layers are built in parallel by
//! `jobs` worker threads; a layer already indexed in the local store with the same
//! span size and build options is reused instead, else one found in a registry's
//! SOCI index ([`crate::cache`]); `force` rebuilds.
use crate::cache::RegistryCache;
use crate::error::{Error, Result};
use crate::layers::{plan_layer, why_nothing_indexed, LayerKind, LayerPlan};
use crate::pool::parallel_by;
use crate::tee::{OnHangup, QueueReader, Tee};
use crate::{LayerProgress, Reporter};
use soci_index::manifest::{disable_xattrs_applies, PrefetchRecord, ZtocRecord};
use soci_index::prefetch::{plan_prefetch_requests, PrefetchLayer};
use soci_index::store::{IndexEntry, Store};
use soci_oci::source::{select_manifests, ImageManifest, ImageSource};
use soci_oci::spec::{Descriptor, Digest};
use soci_ztoc::build::{build_ztoc, BuildOptions, BuiltZtoc, LayerCompression};
use soci_ztoc::codec;
use std::collections::HashMap;
use std::io::Read;

pub(crate) use crate::model::options_key;
pub use crate::model::{
    CreateOptions, Created, LayerOutcome, PlatformIndexBuilt, DEFAULT_MIN_LAYER_SIZE,
};

/// Gets a copy of a layer's bytes while the zTOC builder reads them, so that
/// `create --dest` reads each layer once (see `publish::Destination`).
pub trait LayerTee: Sync {
    /// Whether `layer` should be handed over (false when the destination has it,
    /// or got it another way, e.g. by a cross-repository mount).
    fn wants(&self, layer: &Descriptor) -> Result<bool>;
    /// Takes `layer` from `bytes` (the layer as the builder reads it; it ends
    /// early if the build stops). Runs on its own thread while the build runs.
    fn take(&self, layer: &Descriptor, bytes: Box<dyn Read + Send + '_>) -> Result<()>;
}

/// Chunks queued between the builder's reader and a [`LayerTee`].
const TEE_DEPTH: usize = 16;

/// Builds (or reuses) the zTOC of one layer and stores it; a layer that is read
/// goes to `tee` in the same pass when it wants it.
#[allow(clippy::too_many_arguments)]
fn index_layer(
    source: &dyn ImageSource,
    store: &Store,
    layer: &Descriptor,
    kind: LayerKind,
    opts: &CreateOptions,
    reporter: &dyn Reporter,
    tee: Option<&dyn LayerTee>,
    cache: Option<&RegistryCache<'_>>,
) -> Result<LayerOutcome> {
    let key = options_key(opts);
    // Another image of this run may be indexing the same layer: wait for it,
    // then reuse what it stored (see `claim`).
    let claim = crate::claim::Claim::take(&layer.digest, opts.span_size, &key, reporter);
    if !opts.force || claim.built_here() {
        if let Some(rec) = store.find_ztoc(&layer.digest, opts.span_size, &key)? {
            if let Some(mut ztoc) = rec.to_ztoc_record() {
                if store.has_blob(&ztoc.ztoc_digest) {
                    // The same layer bytes can be in another image under another
                    // media type (Docker vs OCI): the index describes this image's.
                    ztoc.layer_media_type = layer.media_type.clone();
                    return Ok(LayerOutcome::Reused { ztoc });
                }
            }
        }
    }
    if opts.require_stored {
        return Err(Error::NotStored {
            layer: layer.digest.clone(),
            span_size: opts.span_size,
        });
    }
    // After the store (local, free), before reading the layer.
    if let Some(cache) = cache.filter(|_| !opts.force) {
        if let Some(outcome) = cache.reuse(layer, kind, opts, store)? {
            return Ok(outcome);
        }
    }
    reporter.layer_start(&layer.digest, layer.size.max(0) as u64);
    let reader = source.open_blob(layer).map_err(|source| Error::ReadLayer {
        layer: layer.digest.clone(),
        source,
    })?;
    let mut bo = BuildOptions::new(match kind {
        LayerKind::Gzip => LayerCompression::Gzip,
        _ => LayerCompression::Uncompressed,
    });
    bo.span_size = opts.span_size;
    bo.build_tool_identifier = opts.build_tool_identifier.clone();
    bo.expected_digest = Some(layer.digest.clone());
    bo.expected_size = Some(layer.size.max(0) as u64);
    bo.max_uncompressed_size = opts.max_uncompressed_size;
    bo.max_files = opts.max_files;
    let mut progress = LayerProgress {
        reporter,
        digest: &layer.digest,
        tar_bytes: false,
    };
    let cannot_build = |source| Error::BuildZtoc {
        layer: layer.digest.clone(),
        source,
    };
    let built = match tee {
        Some(tee) if tee.wants(layer)? => {
            let (tx, rx) = std::sync::mpsc::sync_channel(TEE_DEPTH);
            std::thread::scope(|s| {
                let taken = s.spawn(|| tee.take(layer, Box::new(QueueReader::new(rx))));
                // If the tee stops taking chunks, the builder goes on alone.
                let teed = Tee::new(reader, Some(tx), OnHangup::Continue);
                // The reader (and so the queue) is dropped when the build ends.
                let built = build_ztoc(teed, &bo, &mut progress);
                let taken = taken.join().expect("the layer tee does not panic");
                match (built, taken) {
                    (Err(e), _) => Err(cannot_build(e)),
                    (Ok(b), Ok(())) => {
                        reporter.layer_uploaded(&layer.digest, layer.size.max(0) as u64);
                        Ok(b)
                    }
                    (Ok(_), Err(e)) => Err(Error::TeeLayer {
                        layer: layer.digest.clone(),
                        source: Box::new(e),
                    }),
                }
            })
        }
        _ => build_ztoc(reader, &bo, &mut progress).map_err(cannot_build),
    }?;
    let outcome = store_built(store, layer, &built, opts)?;
    claim.mark_built();
    Ok(outcome)
}

/// Stores a freshly built zTOC and records it for reuse.
pub(crate) fn store_built(
    store: &Store,
    layer: &Descriptor,
    built: &BuiltZtoc,
    opts: &CreateOptions,
) -> Result<LayerOutcome> {
    let key = options_key(opts);
    let bytes = codec::encode(&built.ztoc);
    let blob = store.put_blob(&bytes).map_err(|source| Error::StoreZtoc {
        layer: layer.digest.clone(),
        source,
    })?;
    let applies = disable_xattrs_applies(
        built
            .ztoc
            .toc
            .entries
            .iter()
            .map(|e| (e.name.as_slice(), e.has_xattrs())),
    );
    let ztoc = ZtocRecord {
        ztoc_digest: blob.digest,
        ztoc_size: blob.size,
        layer_digest: layer.digest.clone(),
        layer_media_type: layer.media_type.clone(),
        span_size: opts.span_size,
        disable_xattrs: applies,
    };
    store.record_ztoc(&ztoc, &key)?;
    Ok(LayerOutcome::Built {
        files: built.ztoc.toc.entries.len(),
        spans: built.ztoc.compression_info.span_digests.len(),
        ztoc,
    })
}

/// Builds the zTOCs and SOCI indexes of `source` for the chosen platforms into
/// `store`. Nothing is pushed.
pub fn create(
    source: &dyn ImageSource,
    store: &Store,
    opts: &CreateOptions,
    reporter: &dyn Reporter,
) -> Result<Created> {
    create_with(source, store, opts, reporter, &HashMap::new(), None, None)
}

/// [`create`], with the outcomes of layers already built by the caller (the
/// docker-archive path builds zTOCs while it compresses, see `recompress`), and
/// optionally handing every layer it reads to `tee` in the same pass, and
/// looking in `cache` for a layer's zTOC the store lacks before building it.
pub fn create_with(
    source: &dyn ImageSource,
    store: &Store,
    opts: &CreateOptions,
    reporter: &dyn Reporter,
    prebuilt: &HashMap<Digest, LayerOutcome>,
    tee: Option<&dyn LayerTee>,
    cache: Option<&RegistryCache<'_>>,
) -> Result<Created> {
    if opts.span_size == 0 {
        return Err(Error::ZeroSpanSize);
    }
    let (root, root_bytes) = source.resolve_root()?;
    let images = select_manifests(source, &opts.platforms)?;

    let layers = distinct_layers(&images);
    let plans = plan_layers(&layers, opts.min_layer_size)?;
    let outcomes = parallel_by(
        &plans,
        opts.jobs,
        |(layer, _)| layer.size.max(0) as u64,
        |(layer, plan)| {
            let outcome = match plan {
                LayerPlan::Skip(reason) => LayerOutcome::Skipped {
                    reason: reason.clone(),
                },
                LayerPlan::Index(_) if prebuilt.contains_key(&layer.digest) => {
                    prebuilt[&layer.digest].clone()
                }
                LayerPlan::Index(kind) => {
                    index_layer(source, store, layer, *kind, opts, reporter, tee, cache)?
                }
            };
            reporter.layer_done(&layer.digest, &outcome.line(&layer.digest));
            Ok::<_, Error>(outcome)
        },
    )?;
    let by_digest: HashMap<&str, &LayerOutcome> = layers
        .iter()
        .map(|l| l.digest.as_str())
        .zip(outcomes.iter())
        .collect();

    let mut platforms = Vec::new();
    let mut skipped_platforms = Vec::new();
    let mut not_found_everywhere: Option<Vec<String>> = None;
    for img in images {
        let ztocs = platform_ztocs(&img, &by_digest, opts);
        if ztocs.is_empty() {
            skipped_platforms.push((img.platform.clone(), "no layer was indexed".to_string()));
            continue;
        }
        let (prefetches, not_found) = prefetch_for(store, &img, &ztocs, opts)?;
        not_found_everywhere = Some(match not_found_everywhere {
            None => not_found,
            Some(prev) => prev.into_iter().filter(|p| not_found.contains(p)).collect(),
        });
        platforms.push(index_platform(
            source, store, &root, img, ztocs, prefetches, opts,
        )?);
    }
    if platforms.is_empty() {
        let why = why_nothing_indexed(&plans, opts.min_layer_size);
        return Err(Error::NothingIndexed {
            layers: layers.into_iter().zip(outcomes).collect(),
            why,
        });
    }
    let layers = layers.into_iter().zip(outcomes).collect();
    Ok(Created {
        root,
        root_bytes,
        platforms,
        skipped_platforms,
        layers,
        prefetch_not_found: not_found_everywhere.unwrap_or_default(),
    })
}

/// Distinct layers across platforms, in image order.
fn distinct_layers(images: &[ImageManifest]) -> Vec<Descriptor> {
    let mut layers: Vec<Descriptor> = Vec::new();
    for img in images {
        for l in &img.manifest.layers {
            if !layers.iter().any(|x| x.digest == l.digest) {
                layers.push(l.clone());
            }
        }
    }
    layers
}

/// What to do with each layer (index it, or why it is skipped); an unknown
/// media type is an error.
fn plan_layers(layers: &[Descriptor], min_layer_size: u64) -> Result<Vec<(Descriptor, LayerPlan)>> {
    layers
        .iter()
        .map(|l| {
            plan_layer(l, min_layer_size)
                .map(|p| (l.clone(), p))
                .map_err(Error::UnknownLayerType)
        })
        .collect()
}

/// The zTOCs of one platform's layers, in its layer order; the disable-xattrs
/// flag is kept only when the xattr optimisation was asked for.
fn platform_ztocs(
    img: &ImageManifest,
    by_digest: &HashMap<&str, &LayerOutcome>,
    opts: &CreateOptions,
) -> Vec<ZtocRecord> {
    img.manifest
        .layers
        .iter()
        .filter_map(|l| {
            by_digest
                .get(l.digest.as_str())
                .and_then(|o| o.ztoc())
                .cloned()
        })
        .map(|mut z| {
            z.disable_xattrs = opts.xattr_optimization && z.disable_xattrs;
            z
        })
        .collect()
}

/// Builds one platform's SOCI index manifest (v1 names the image manifest as
/// its subject, v2 does not), stores it and records it in the store.
fn index_platform(
    source: &dyn ImageSource,
    store: &Store,
    root: &Descriptor,
    img: ImageManifest,
    ztocs: Vec<ZtocRecord>,
    prefetches: Vec<PrefetchRecord>,
    opts: &CreateOptions,
) -> Result<PlatformIndexBuilt> {
    let built = PlatformIndexBuilt::build(img, ztocs, prefetches, opts)?;
    let index = &built.index;
    store.put_blob_expecting(&index.bytes, &index.descriptor.digest)?;
    store.record_index(&IndexEntry {
        digest: index.descriptor.digest.clone(),
        size: index.bytes.len() as u64,
        version: opts.index_version,
        image_ref: Some(source.reference().to_string()),
        image_digest: Some(root.digest.clone()),
        manifest_digest: built.image.descriptor.digest.clone(),
        platform: Some(built.image.platform.clone()),
    })?;
    Ok(built)
}

/// Plans and stores the prefetch artifacts of one platform.
fn prefetch_for(
    store: &Store,
    img: &ImageManifest,
    ztocs: &[ZtocRecord],
    opts: &CreateOptions,
) -> Result<(Vec<PrefetchRecord>, Vec<String>)> {
    if !opts.has_prefetch() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Decode each indexed layer's zTOC for its names, offsets and span lookup.
    let mut decoded = Vec::new();
    for z in ztocs {
        let bytes = store.get_blob(&z.ztoc_digest)?;
        let ztoc = codec::decode(&bytes).map_err(|source| Error::InvalidStoredZtoc {
            ztoc: z.ztoc_digest.clone(),
            source,
        })?;
        let zinfo = ztoc.zinfo()?;
        decoded.push((z.layer_digest.clone(), ztoc, zinfo));
    }
    let files: Vec<Vec<(&[u8], u64, u64)>> = decoded
        .iter()
        .map(|(_, z, _)| {
            z.toc
                .entries
                .iter()
                .map(|e| {
                    (
                        e.name.as_slice(),
                        e.uncompressed_offset.max(0) as u64,
                        e.uncompressed_size.max(0) as u64,
                    )
                })
                .collect()
        })
        .collect();
    let span_fns: Vec<Box<dyn Fn(u64) -> u64 + '_>> = decoded
        .iter()
        .map(|(_, _, zi)| Box::new(move |off| zi.span_of(off)) as Box<dyn Fn(u64) -> u64>)
        .collect();
    // Image order of the layers (bottom first), as the planner expects.
    let layers: Vec<PrefetchLayer> = img
        .manifest
        .layers
        .iter()
        .filter_map(|l| decoded.iter().position(|(d, _, _)| *d == l.digest))
        .map(|i| PrefetchLayer {
            layer_digest: &decoded[i].0,
            files: &files[i],
            span_of: &*span_fns[i],
        })
        .collect();
    let plan = plan_prefetch_requests(&opts.all_prefetch_requests(), &layers);
    let mut records = Vec::new();
    for lp in plan.layers {
        let json = lp.artifact.to_json()?;
        let blob = store.put_blob(&json)?;
        let rec = PrefetchRecord {
            digest: blob.digest,
            size: blob.size,
            layer_digest: lp.layer_digest,
        };
        store.record_prefetch(&rec)?;
        records.push(rec);
    }
    Ok((records, plan.not_found))
}
