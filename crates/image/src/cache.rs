//! The registry as a zTOC cache: the SOCI indexes already at the source image,
//! at the destination `create --push`/`--dest` replaces, and at every
//! `--cache-from` image.
//!
//! A zTOC's bytes depend on the layer's bytes (its digest), the span size,
//! the build tool identifier, the zTOC format version and the layer's
//! compression, nothing else (docs/format.md §2.4, §3): the per-layer limits
//! only decide whether a build fails, and the xattr optimisation and prefetch
//! files are index-level. So a zTOC found in any SOCI index under the same
//! layer digest, span size and build tool identifier is the one a build would
//! produce, once its bytes are checked ([`check_cached`]); what cannot be
//! checked without the layer (the span digests, the file table) is what a
//! runtime checks anyway when it fetches a span.
//!
//! Each place is listed once, on first need, reading manifests only (the
//! image index or manifest, the SOCI index manifests, for v1 the referrers):
//! zTOC blobs are fetched only for the layers the local store does not have.
//!
//! The same listing of the destination decides whether it is already indexed
//! ([`RegistryCache::already_indexed`]): the SOCI index and image index this
//! run would publish, predicted from the zTOC descriptors found there, are
//! the ones it has.
use crate::error::{Error, Result};
use crate::layers::{plan_layer, LayerKind, LayerPlan};
use crate::model::{options_key, CreateOptions, Created, LayerOutcome, PlatformIndexBuilt};
use soci_index::convert::{convert, ConvertInput};
use soci_index::manifest::{disable_xattrs_applies, IndexVersion, ParsedIndex, ZtocRecord};
use soci_index::store::Store;
use soci_oci::source::{select_manifests, ImageSource};
use soci_oci::spec::{self, Descriptor, Digest};
use soci_ztoc::{codec, CompressionAlgorithm, Zinfo, Ztoc, ZTOC_VERSION};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// An image whose SOCI indexes may hold zTOCs to reuse.
enum Handle<'a> {
    Borrowed(&'a dyn ImageSource),
    Owned(Box<dyn ImageSource>),
}

impl Handle<'_> {
    fn get(&self) -> &dyn ImageSource {
        match self {
            Handle::Borrowed(s) => *s,
            Handle::Owned(s) => &**s,
        }
    }
}

/// One place searched, and what was found there (listed on first need).
struct Place<'a> {
    /// The reference as the user wrote it, for messages and reports.
    label: String,
    source: Handle<'a>,
    /// The destination: an image missing there is the normal case (a new tag)
    /// and says nothing.
    is_destination: bool,
    listed: OnceLock<Listed>,
}

/// The SOCI indexes of one image, and their zTOC descriptors by layer.
#[derive(Default)]
struct Listed {
    /// The image's root as found (`None`: nothing there).
    root: Option<Descriptor>,
    /// zTOC descriptors by the layer digest their index names, with the
    /// index's build tool identifier.
    by_layer: HashMap<Digest, Vec<(Descriptor, String)>>,
    /// v1 index manifests found, by the image manifest they are referrers of.
    v1_indexes: HashMap<Digest, Vec<Digest>>,
}

/// The destination already holds what this run would publish.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlreadyIndexed {
    /// The destination.
    pub destination: String,
    /// The SOCI index manifests it has for the chosen platforms.
    pub soci_indexes: Vec<Digest>,
    /// v2: the SOCI-enabled image index tagged there.
    pub image_index: Option<Digest>,
}

/// The places searched for zTOCs, in order: the source image, the
/// destination, then each `--cache-from` image.
pub struct RegistryCache<'a> {
    places: Vec<Place<'a>>,
    warnings: Mutex<Vec<String>>,
}

impl<'a> RegistryCache<'a> {
    /// The source image (already opened), the destination (`dest_source` when
    /// the caller has it open, else opened here, unless it is the source) and
    /// the `--cache-from` images. Nothing is read yet.
    pub fn new(
        source: &'a dyn ImageSource,
        dest: Option<&soci_oci::ImageRef>,
        dest_source: Option<Box<dyn ImageSource>>,
        cache_from: &[soci_oci::ImageRef],
        registry: &soci_oci::registry::RegistryOptions,
    ) -> Self {
        let mut cache = RegistryCache {
            places: Vec::new(),
            warnings: Mutex::new(Vec::new()),
        };
        let src_ref = source.reference().clone();
        cache.places.push(Place {
            label: src_ref.to_string(),
            source: Handle::Borrowed(source),
            is_destination: dest == Some(&src_ref),
            listed: OnceLock::new(),
        });
        let mut others: Vec<(&soci_oci::ImageRef, bool)> = Vec::new();
        let mut dest_source = dest_source;
        if let Some(d) = dest.filter(|d| **d != src_ref) {
            others.push((d, true));
        }
        others.extend(cache_from.iter().map(|c| (c, false)));
        for (r, is_destination) in others {
            if cache.places.iter().any(|p| p.label == r.to_string()) {
                continue;
            }
            let opened = match dest_source.take().filter(|_| is_destination) {
                Some(s) => Ok(s),
                None => soci_oci::open_source(r, registry),
            };
            match opened {
                Ok(s) => cache.places.push(Place {
                    label: r.to_string(),
                    source: Handle::Owned(s),
                    is_destination,
                    listed: OnceLock::new(),
                }),
                Err(e) if is_destination => drop(e),
                Err(e) => cache.warn(format!(
                    "--cache-from {r}: cannot open it, not used: {}",
                    crate::error::chain_text(&e)
                )),
            }
        }
        cache
    }

    fn warn(&self, line: String) {
        self.warnings.lock().expect("cache warnings").push(line);
    }

    /// What went wrong with the cache (places that could not be read, zTOCs
    /// refused): each time the layer was built instead.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("cache warnings").clone()
    }

    fn listed<'p>(&self, place: &'p Place<'_>) -> &'p Listed {
        place.listed.get_or_init(|| match list(place.source.get()) {
            Ok(l) => l,
            Err(e) => {
                if !place.is_destination {
                    self.warn(format!(
                        "{}: cannot read its SOCI indexes, not used as a zTOC cache: {}",
                        place.label,
                        crate::error::chain_text(&e)
                    ));
                }
                Listed::default()
            }
        })
    }

    /// A zTOC of `layer` for `opts` found in one of the places, checked, put in
    /// `store` and recorded as if built; `None` when there is none (or none
    /// that passes the checks: each refusal is a warning).
    pub(crate) fn reuse(
        &self,
        layer: &Descriptor,
        kind: LayerKind,
        opts: &CreateOptions,
        store: &Store,
    ) -> Result<Option<LayerOutcome>> {
        for place in &self.places {
            let Some(found) = self.listed(place).by_layer.get(&layer.digest) else {
                continue;
            };
            for (zdesc, tool) in found {
                if span_annotation(zdesc) != Some(opts.span_size)
                    || *tool != opts.build_tool_identifier
                {
                    continue;
                }
                let checked = crate::fetch_ztoc(place.source.get(), zdesc)
                    .map_err(|e| crate::error::chain_text(&e))
                    .and_then(|bytes| {
                        check_cached(&bytes, layer, kind, opts).map(|ztoc| (bytes, ztoc))
                    });
                let (bytes, ztoc) = match checked {
                    Ok(ok) => ok,
                    Err(why) => {
                        // One line, whatever the decoder's message looks like.
                        let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
                        self.warn(format!(
                            "refusing zTOC {} of layer {} from {}: {why}; building the layer instead",
                            zdesc.digest,
                            layer.digest,
                            place.label
                        ));
                        continue;
                    }
                };
                // Written through the store's writer, which hashes what it
                // writes: one pass over the bytes (`put_blob` would take two).
                let stored = |source| Error::StoreZtoc {
                    layer: layer.digest.clone(),
                    source,
                };
                let mut w = store.blob_writer().map_err(stored)?;
                std::io::Write::write_all(&mut w, &bytes)?;
                let blob = w.commit_expecting(&zdesc.digest).map_err(stored)?;
                let record = ZtocRecord {
                    ztoc_digest: blob.digest,
                    ztoc_size: blob.size,
                    layer_digest: layer.digest.clone(),
                    layer_media_type: layer.media_type.clone(),
                    span_size: opts.span_size,
                    disable_xattrs: disable_xattrs_applies(
                        ztoc.toc
                            .entries
                            .iter()
                            .map(|e| (e.name.as_slice(), e.has_xattrs())),
                    ),
                };
                store.record_ztoc(&record, &options_key(opts))?;
                return Ok(Some(LayerOutcome::Fetched {
                    ztoc: record,
                    from: place.label.clone(),
                }));
            }
        }
        Ok(None)
    }

    /// Whether the destination already has exactly what indexing `source`
    /// with `opts` would publish there (see the module docs): then the
    /// [`Created`] this run would have made (its zTOCs are not fetched, so
    /// not in the local store) and what the destination has.
    ///
    /// "The same options" is what the published bytes depend on: the chosen
    /// platforms, the index version, the span size, the build tool identifier
    /// and the minimum layer size (which layers have a zTOC). Prefetch files
    /// and the xattr optimisation need the zTOCs' contents to predict, so a
    /// run with either is never taken for a no-op (the zTOCs are reused
    /// instead, and the same bytes are published again).
    pub(crate) fn already_indexed(
        &self,
        source: &dyn ImageSource,
        opts: &CreateOptions,
    ) -> Result<Option<(Created, AlreadyIndexed)>> {
        if opts.has_prefetch() || opts.xattr_optimization {
            return Ok(None);
        }
        let Some(place) = self.places.iter().find(|p| p.is_destination) else {
            return Ok(None);
        };
        let listed = self.listed(place);
        let Some(dest_root) = &listed.root else {
            return Ok(None);
        };
        let (root, root_bytes) = source.resolve_root()?;
        let images = select_manifests(source, &opts.platforms)?;
        let mut layers: Vec<(Descriptor, LayerOutcome)> = Vec::new();
        let mut platforms = Vec::new();
        for img in images {
            let mut ztocs = Vec::new();
            for l in &img.manifest.layers {
                let plan = plan_layer(l, opts.min_layer_size).map_err(Error::UnknownLayerType)?;
                let outcome = match plan {
                    LayerPlan::Skip(reason) => LayerOutcome::Skipped { reason },
                    LayerPlan::Index(_) => {
                        let Some(z) = predicted_record(listed, l, opts) else {
                            return Ok(None);
                        };
                        ztocs.push(z.clone());
                        LayerOutcome::Fetched {
                            ztoc: z,
                            from: place.label.clone(),
                        }
                    }
                };
                if !layers.iter().any(|(d, _)| d.digest == l.digest) {
                    layers.push((l.clone(), outcome));
                }
            }
            if ztocs.is_empty() {
                // A platform without an index: what to publish is not simply
                // "the same again"; let the run decide.
                return Ok(None);
            }
            platforms.push(PlatformIndexBuilt::build(img, ztocs, Vec::new(), opts)?);
        }
        let soci_indexes: Vec<Digest> = platforms
            .iter()
            .map(|p| p.index.descriptor.digest.clone())
            .collect();
        let image_index = match opts.index_version {
            IndexVersion::V2 => {
                let (root, manifests, indexes) = crate::model::convert_parts(&root, &platforms);
                let out = convert(&ConvertInput {
                    root,
                    root_bytes: &root_bytes,
                    manifests: &manifests,
                    indexes: &indexes,
                })?;
                if out.index_descriptor.digest != dest_root.digest {
                    return Ok(None);
                }
                Some(out.index_descriptor.digest)
            }
            IndexVersion::V1 => {
                // Found as referrers of each image manifest, and (a copy
                // elsewhere) the destination tag names the same image.
                let all_there = platforms.iter().all(|p| {
                    listed
                        .v1_indexes
                        .get(&p.image.descriptor.digest)
                        .is_some_and(|found| found.contains(&p.index.descriptor.digest))
                });
                if !all_there || dest_root.digest != root.digest {
                    return Ok(None);
                }
                None
            }
        };
        let created = Created {
            root,
            root_bytes,
            platforms,
            skipped_platforms: Vec::new(),
            layers,
            prefetch_not_found: Vec::new(),
        };
        Ok(Some((
            created,
            AlreadyIndexed {
                destination: place.label.clone(),
                soci_indexes,
                image_index,
            },
        )))
    }
}

/// The span size a zTOC descriptor's annotation gives.
fn span_annotation(d: &Descriptor) -> Option<u64> {
    d.annotations
        .get(soci_index::ANNOTATION_SPAN_SIZE)?
        .parse()
        .ok()
}

/// The zTOC record the destination's descriptors give for `layer` under
/// `opts` (the media type annotation is part of the index bytes).
fn predicted_record(
    listed: &Listed,
    layer: &Descriptor,
    opts: &CreateOptions,
) -> Option<ZtocRecord> {
    let (d, _) = listed
        .by_layer
        .get(&layer.digest)?
        .iter()
        .find(|(d, tool)| {
            span_annotation(d) == Some(opts.span_size)
                && *tool == opts.build_tool_identifier
                && d.annotations
                    .get(soci_index::ANNOTATION_IMAGE_LAYER_MEDIA_TYPE)
                    == Some(&layer.media_type)
                && !d
                    .annotations
                    .contains_key(soci_index::ANNOTATION_DISABLE_XATTRS)
        })?;
    Some(ZtocRecord {
        ztoc_digest: d.digest.clone(),
        ztoc_size: d.size.max(0) as u64,
        layer_digest: layer.digest.clone(),
        layer_media_type: layer.media_type.clone(),
        span_size: opts.span_size,
        disable_xattrs: false,
    })
}

/// The SOCI index manifests of `source` and their zTOC descriptors: v2, the
/// entries of a SOCI-enabled image index (or a manifest's index-digest
/// annotation); else v1, the referrers of each image manifest.
fn list(source: &dyn ImageSource) -> Result<Listed> {
    let mut listed = Listed::default();
    // Not there (a new destination tag) is an error too: the caller says
    // nothing for the destination, and warns for a `--cache-from` image.
    let (root, raw) = source.resolve_root()?;
    // (SOCI index descriptor, the image manifest it belongs to, if known)
    let mut found: Vec<(Descriptor, Option<Digest>)> = Vec::new();
    let mut manifests: Vec<Digest> = Vec::new();
    if spec::is_index_media_type(&root.media_type) {
        let index: spec::Index = serde_json::from_slice(&raw).map_err(Error::BadImageIndex)?;
        for d in index.manifests {
            if d.artifact_type == soci_index::SOCI_INDEX_ARTIFACT_TYPE_V2 {
                let img = d
                    .annotations
                    .get(soci_index::ANNOTATION_IMAGE_MANIFEST_DIGEST)
                    .and_then(|a| Digest::parse(a).ok());
                found.push((d, img));
            } else if spec::is_manifest_media_type(&d.media_type) {
                manifests.push(d.digest);
            }
        }
    } else {
        let m: spec::Manifest = serde_json::from_slice(&raw).map_err(|e| Error::BadManifest {
            image: source.reference().to_string(),
            source: e,
        })?;
        // An annotation is untrusted text: parsed before it goes into a request.
        if let Some(d) = m
            .annotations
            .get(soci_index::IMAGE_ANNOTATION_SOCI_INDEX_DIGEST)
            .and_then(|d| Digest::parse(d).ok())
        {
            found.push((
                Descriptor::new(spec::MEDIA_TYPE_OCI_MANIFEST, d, 0),
                Some(root.digest.clone()),
            ));
        }
        manifests.push(root.digest.clone());
    }
    // v1 only where no v2 index was found: a SOCI-enabled image index says
    // everything, and its referrers would cost requests for nothing.
    if found.is_empty() {
        for m in &manifests {
            if let Ok(Some(refs)) = source.referrers(m) {
                for d in refs {
                    if d.artifact_type == soci_index::SOCI_INDEX_ARTIFACT_TYPE_V1 {
                        found.push((d, Some(m.clone())));
                    }
                }
            }
        }
    }
    for (d, img) in found {
        let d = Descriptor::new(spec::MEDIA_TYPE_OCI_MANIFEST, d.digest, d.size);
        let Ok(bytes) = source.fetch_manifest(&d) else {
            continue;
        };
        let Ok(parsed) = soci_index::parse_index_manifest(&bytes) else {
            continue;
        };
        add_index(&mut listed, &d.digest, &parsed, img);
    }
    listed.root = Some(root);
    Ok(listed)
}

/// Records the zTOC descriptors of one SOCI index.
fn add_index(listed: &mut Listed, digest: &Digest, parsed: &ParsedIndex, img: Option<Digest>) {
    let tool = parsed
        .manifest
        .annotations
        .get(soci_index::ANNOTATION_BUILD_TOOL_IDENTIFIER)
        .cloned()
        .unwrap_or_default();
    if parsed.version == IndexVersion::V1 {
        let subject = parsed.manifest.subject.as_ref().map(|s| s.digest.clone());
        if let Some(img) = subject.or(img) {
            listed
                .v1_indexes
                .entry(img)
                .or_default()
                .push(digest.clone());
        }
    }
    for z in parsed.ztocs() {
        // Untrusted text: a layer digest that does not parse names no layer.
        let Some(layer) = z
            .annotations
            .get(soci_index::ANNOTATION_IMAGE_LAYER_DIGEST)
            .and_then(|l| Digest::parse(l).ok())
        else {
            continue;
        };
        let entry = listed.by_layer.entry(layer).or_default();
        if !entry
            .iter()
            .any(|(d, t)| d.digest == z.digest && *t == tool)
        {
            entry.push((z.clone(), tool.clone()));
        }
    }
}

/// Checks that `bytes`, a zTOC found under `layer`'s digest, is the zTOC a
/// build of `layer` with `opts` would produce, as far as that can be told
/// without the layer: it decodes, re-encodes to the very same bytes (so it is
/// in the builder's encoding), has this format version, build tool, span
/// size and compression, names the layer's size, its spans lie inside the
/// layer, and it is within the per-layer limits a build would apply. The
/// reason when not.
pub(crate) fn check_cached(
    bytes: &[u8],
    layer: &Descriptor,
    kind: LayerKind,
    opts: &CreateOptions,
) -> std::result::Result<Ztoc, String> {
    let z = codec::decode(bytes).map_err(|e| format!("it does not decode: {e}"))?;
    if z.version != ZTOC_VERSION {
        return Err(format!(
            "its version is {:?}, not {ZTOC_VERSION:?}",
            z.version
        ));
    }
    if z.build_tool_identifier != opts.build_tool_identifier {
        return Err(format!(
            "its build tool identifier is {:?}, not {:?}",
            spec::escape_untrusted(&z.build_tool_identifier),
            opts.build_tool_identifier
        ));
    }
    if z.compressed_archive_size != layer.size {
        return Err(format!(
            "it describes a layer of {} bytes, the layer has {}",
            z.compressed_archive_size, layer.size
        ));
    }
    let want = match kind {
        LayerKind::Gzip => CompressionAlgorithm::Gzip,
        _ => CompressionAlgorithm::Uncompressed,
    };
    if z.compression_info.compression_algorithm != want {
        return Err(format!(
            "its compression is {}, the layer's is {}",
            z.compression_info.compression_algorithm.name(),
            want.name()
        ));
    }
    let zinfo = z
        .zinfo()
        .map_err(|e| format!("its zinfo does not decode: {e}"))?;
    let span_size = match &zinfo {
        Zinfo::Gzip(g) if g.legacy_v1 => {
            return Err("its zinfo is the legacy version 1, which this build does not write".into())
        }
        Zinfo::Gzip(g) => g.span_size,
        Zinfo::Tar(t) => t.span_size,
    };
    if span_size < 0 || span_size as u64 != opts.span_size {
        return Err(format!(
            "its span size is {span_size}, not {}",
            opts.span_size
        ));
    }
    let spans = zinfo.num_spans();
    let ci = &z.compression_info;
    if spans == 0
        || ci.span_digests.len() as u64 != spans
        || i64::from(ci.max_span_id) != spans as i64 - 1
    {
        return Err(format!(
            "it has {spans} spans, {} span digests and max_span_id {}",
            ci.span_digests.len(),
            ci.max_span_id
        ));
    }
    let size = layer.size.max(0) as u64;
    match &zinfo {
        Zinfo::Gzip(g) => {
            let inside = g.checkpoints.windows(2).all(|w| {
                w[0].compressed_offset <= w[1].compressed_offset
                    && w[0].uncompressed_offset <= w[1].uncompressed_offset
            }) && g.checkpoints.iter().all(|c| {
                c.compressed_offset <= size
                    && c.uncompressed_offset <= z.uncompressed_archive_size.max(0) as u64
            });
            if !inside {
                return Err("its spans do not lie in order inside the layer".into());
            }
        }
        Zinfo::Tar(t) if t.size != layer.size => {
            return Err(format!(
                "its tar zinfo is for {} bytes, the layer has {}",
                t.size, layer.size
            ))
        }
        Zinfo::Tar(_) => {}
    }
    if z.uncompressed_archive_size < 0
        || z.uncompressed_archive_size as u64 > opts.max_uncompressed_size
    {
        return Err(format!(
            "its uncompressed size {} is beyond the --max-uncompressed-size of {}",
            z.uncompressed_archive_size, opts.max_uncompressed_size
        ));
    }
    if z.toc.entries.len() as u64 > opts.max_files {
        return Err(format!(
            "it has {} files, beyond the --max-files of {}",
            z.toc.entries.len(),
            opts.max_files
        ));
    }
    if codec::encode(&z) != bytes {
        return Err(
            "it is not in the encoding a build writes (re-encoded, its bytes differ)".into(),
        );
    }
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use soci_ztoc::build::{build_ztoc, BuildOptions, LayerCompression, NoProgress};

    /// A gzip layer of the fixture, its descriptor and its zTOC built with `opts`.
    fn built(opts: &CreateOptions) -> (Descriptor, Vec<u8>) {
        let work = tempfile::tempdir().unwrap();
        let fx = soci_testkit::fixture::make_oci_layout(&work.path().join("img"), "t");
        let layer = &fx.images[0].layers[1];
        let mut bo = BuildOptions::new(LayerCompression::Gzip);
        bo.span_size = opts.span_size;
        bo.build_tool_identifier = opts.build_tool_identifier.clone();
        let z = build_ztoc(&layer.bytes[..], &bo, &mut NoProgress).unwrap();
        let d = Descriptor::of(layer.media_type.clone(), &layer.bytes);
        (d, codec::encode(&z.ztoc))
    }

    #[test]
    fn a_cached_ztoc_must_be_what_a_build_with_these_options_gives() {
        let opts = CreateOptions {
            span_size: 65536,
            ..Default::default()
        };
        let (layer, bytes) = built(&opts);
        let ok = |b: &[u8], o: &CreateOptions| check_cached(b, &layer, LayerKind::Gzip, o);
        assert!(ok(&bytes, &opts).is_ok());
        let why = |r: std::result::Result<Ztoc, String>| r.unwrap_err();
        // Other span size, build tool, compression, layer size, limits.
        let other_span = CreateOptions {
            span_size: 1 << 20,
            ..opts.clone()
        };
        assert!(why(ok(&bytes, &other_span)).contains("span size is 65536"));
        let other_tool = CreateOptions {
            build_tool_identifier: "x".into(),
            ..opts.clone()
        };
        assert!(why(ok(&bytes, &other_tool)).contains("build tool identifier"));
        let tar = check_cached(&bytes, &layer, LayerKind::Uncompressed, &opts);
        assert!(why(tar).contains("compression"));
        let bigger = Descriptor {
            size: layer.size + 1,
            ..layer.clone()
        };
        let r = check_cached(&bytes, &bigger, LayerKind::Gzip, &opts);
        assert!(why(r).contains("describes a layer of"));
        let few_files = CreateOptions {
            max_files: 1,
            ..opts.clone()
        };
        assert!(why(ok(&bytes, &few_files)).contains("--max-files"));
        // Same content, other version or another encoding: not a build's bytes.
        let mut z = codec::decode(&bytes).unwrap();
        z.version = "0.8".into();
        assert!(why(ok(&codec::encode(&z), &opts)).contains("version"));
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 8]);
        assert!(ok(&padded, &opts).is_err());
        assert!(why(ok(b"not a ztoc", &opts)).contains("does not decode"));
    }
}
