//! `verify`: proves that an image's SOCI index works before a runtime finds out.
//!
//! For each platform image manifest, the SOCI index is found the way the
//! snapshotter finds it (v2: the manifest's `com.amazon.soci.index-digest`
//! annotation; v1: the referrers fallback tag; else the local store), decoded,
//! checked to be Go-canonical, and each zTOC is checked against its layer: it must
//! name a layer of this image with the same media type and span size, and a fresh
//! one-pass read of the layer must give the very same checkpoints (offsets, bits
//! and 32 KiB windows: what resuming from a checkpoint uses), span digests, file
//! table and sizes. Each layer is read once; layers are verified in parallel.
use crate::error::{chain_text, Error, Result};
use crate::layers::{layer_kind, LayerKind};
use crate::pool::parallel_map;
use crate::{LayerProgress, Reporter};
use soci_index::manifest::{parse_index_manifest, IndexVersion};
use soci_index::store::{IndexFilter, Store};
use soci_oci::source::{select_manifests, ImageManifest, ImageSource, PlatformChoice};
use soci_oci::spec::{self, Descriptor, Digest, Platform};
use soci_ztoc::build::{build_ztoc, BuildOptions, LayerCompression};
use soci_ztoc::Zinfo;
use soci_ztoc::{codec, Ztoc};

/// The verdict on one zTOC and its layer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerReport {
    /// Digest of the layer.
    /// (the annotation's text, escaped when it is not a digest).
    pub layer_digest: String,
    /// Digest of its zTOC.
    pub ztoc_digest: Digest,
    /// No problems found.
    pub ok: bool,
    /// What is wrong, one line each (empty when ok).
    pub problems: Vec<String>,
    /// Entries in the zTOC.
    pub files: usize,
    /// Spans in the zTOC.
    pub spans: usize,
}

/// The verdict on one platform's index.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlatformReport {
    /// The platform checked.
    pub platform: Platform,
    /// Digest of its image manifest.
    pub manifest_digest: Digest,
    /// Digest of the SOCI index found for it, if any.
    pub index_digest: Option<Digest>,
    /// `v1` or `v2`, when an index was found.
    pub index_version: Option<String>,
    /// Where the index was found.
    pub found_via: Option<String>,
    /// Problems with the index itself, one line each.
    pub problems: Vec<String>,
    /// One verdict per zTOC in the index.
    pub layers: Vec<LayerReport>,
    /// Layers of the image without a zTOC (pulled in full by a runtime).
    pub unindexed_layers: Vec<Digest>,
}

/// The verdict of `verify` on a whole image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// No problems on any platform.
    pub ok: bool,
    /// One report per platform checked.
    pub platforms: Vec<PlatformReport>,
}

/// Index bytes and where they came from.
struct FoundIndex {
    digest: Digest,
    bytes: Vec<u8>,
    via: String,
    /// Found in the local store: its zTOCs are there too, not in the image.
    from_store: bool,
}

/// A digest taken from an annotation (untrusted text), checked before it is
/// used in a request or printed.
fn annotated_digest(what: &str, d: &str) -> Result<Digest> {
    Digest::parse(d).map_err(|source| Error::BadAnnotation {
        what: what.to_string(),
        source,
    })
}

fn fetch_manifest(source: &dyn ImageSource, digest: &Digest) -> Result<Vec<u8>> {
    let d = Descriptor::new(spec::MEDIA_TYPE_OCI_MANIFEST, digest.clone(), 0);
    source
        .fetch_manifest(&d)
        .map_err(|source| Error::FetchIndex {
            digest: digest.clone(),
            source,
        })
}

/// Finds the SOCI index of one platform image manifest.
fn find_index(
    source: &dyn ImageSource,
    store: Option<&Store>,
    img: &ImageManifest,
    root: &(Descriptor, Vec<u8>),
) -> Result<Option<FoundIndex>> {
    // v2: annotation on the (converted) image manifest.
    if let Some(d) = img
        .manifest
        .annotations
        .get(soci_index::IMAGE_ANNOTATION_SOCI_INDEX_DIGEST)
    {
        let d = annotated_digest(soci_index::IMAGE_ANNOTATION_SOCI_INDEX_DIGEST, d)?;
        return Ok(Some(FoundIndex {
            bytes: fetch_manifest(source, &d)?,
            digest: d,
            via: "image manifest annotation (v2)".into(),
            from_store: false,
        }));
    }
    // v2 in an index that lists the SOCI index next to the image.
    if let Ok(index) = serde_json::from_slice::<spec::Index>(&root.1) {
        if let Some(d) = index.manifests.iter().find(|d| {
            d.artifact_type == soci_index::SOCI_INDEX_ARTIFACT_TYPE_V2
                && d.annotations
                    .get(soci_index::ANNOTATION_IMAGE_MANIFEST_DIGEST)
                    .is_some_and(|a| *a == img.descriptor.digest)
        }) {
            return Ok(Some(FoundIndex {
                digest: d.digest.clone(),
                bytes: fetch_manifest(source, &d.digest)?,
                via: "image index entry (v2)".into(),
                from_store: false,
            }));
        }
    }
    // v1: referrers (fallback tag).
    if let Ok(Some(list)) = source.referrers(&img.descriptor.digest) {
        if let Some(d) = list
            .iter()
            .find(|d| d.artifact_type == soci_index::SOCI_INDEX_ARTIFACT_TYPE_V1)
        {
            return Ok(Some(FoundIndex {
                digest: d.digest.clone(),
                bytes: fetch_manifest(source, &d.digest)?,
                via: "referrers (v1)".into(),
                from_store: false,
            }));
        }
    }
    // The local store.
    if let Some(store) = store {
        let found = store.list_indexes(&IndexFilter {
            manifest_digest: Some(img.descriptor.digest.to_string()),
            ..Default::default()
        })?;
        if let Some(rec) = found.first() {
            return Ok(Some(FoundIndex {
                digest: rec.digest.clone(),
                bytes: store.get_blob(&rec.digest)?,
                via: format!("local store {}", store.dir().display()),
                from_store: true,
            }));
        }
    }
    Ok(None)
}

/// Compares a stored zTOC with one rebuilt from the layer; lines describing the
/// differences (at most a few of each kind).
fn compare(stored: &Ztoc, fresh: &Ztoc) -> Vec<String> {
    let mut p = Vec::new();
    compare_sizes(stored, fresh, &mut p);
    compare_compression(stored, fresh, &mut p);
    compare_zinfo(stored, fresh, &mut p);
    compare_span_digests(stored, fresh, &mut p);
    compare_file_tables(stored, fresh, &mut p);
    p
}

/// The compressed and uncompressed archive sizes.
fn compare_sizes(stored: &Ztoc, fresh: &Ztoc, p: &mut Vec<String>) {
    if stored.compressed_archive_size != fresh.compressed_archive_size {
        p.push(format!(
            "compressed_archive_size is {} but the layer is {} bytes",
            stored.compressed_archive_size, fresh.compressed_archive_size
        ));
    }
    if stored.uncompressed_archive_size != fresh.uncompressed_archive_size {
        p.push(format!(
            "uncompressed_archive_size is {} but the layer's tar ends at {}",
            stored.uncompressed_archive_size, fresh.uncompressed_archive_size
        ));
    }
}

/// The compression algorithm and the number of spans.
fn compare_compression(stored: &Ztoc, fresh: &Ztoc, p: &mut Vec<String>) {
    let (sc, fc) = (&stored.compression_info, &fresh.compression_info);
    if sc.compression_algorithm != fc.compression_algorithm {
        p.push(format!(
            "compression is {} but the layer is {}",
            sc.compression_algorithm.name(),
            fc.compression_algorithm.name()
        ));
    }
    if sc.max_span_id != fc.max_span_id {
        p.push(format!(
            "max_span_id is {} but the layer has {} spans",
            sc.max_span_id,
            fc.max_span_id + 1
        ));
    }
}

/// The zinfo: gzip checkpoints (place and window; stops once `p` holds more
/// than 8 lines) or the tar zinfo.
fn compare_zinfo(stored: &Ztoc, fresh: &Ztoc, p: &mut Vec<String>) {
    match (stored.zinfo(), fresh.zinfo()) {
        (Ok(Zinfo::Gzip(s)), Ok(Zinfo::Gzip(f))) => {
            if s.checkpoints.len() != f.checkpoints.len() {
                p.push(format!(
                    "{} checkpoints, the layer gives {}",
                    s.checkpoints.len(),
                    f.checkpoints.len()
                ));
            }
            for (i, (a, b)) in s.checkpoints.iter().zip(&f.checkpoints).enumerate() {
                if (a.compressed_offset, a.uncompressed_offset, a.bits)
                    != (b.compressed_offset, b.uncompressed_offset, b.bits)
                {
                    p.push(format!(
                        "checkpoint {i} is at in={} out={} bits={}, the layer's block boundary is at in={} out={} bits={}",
                        a.compressed_offset, a.uncompressed_offset, a.bits, b.compressed_offset, b.uncompressed_offset, b.bits
                    ));
                } else if a.window != b.window {
                    p.push(format!(
                        "checkpoint {i} (out={}) would resume with a wrong 32 KiB window",
                        a.uncompressed_offset
                    ));
                }
                if p.len() > 8 {
                    break;
                }
            }
        }
        (Ok(Zinfo::Tar(s)), Ok(Zinfo::Tar(f))) => {
            if s != f {
                p.push(format!("tar zinfo {s:?} does not match the layer's {f:?}"));
            }
        }
        (Err(e), _) => p.push(format!("zinfo does not decode: {e}")),
        _ => p.push("zinfo kind does not match the layer's compression".into()),
    }
}

/// The span digests, one by one and in number.
fn compare_span_digests(stored: &Ztoc, fresh: &Ztoc, p: &mut Vec<String>) {
    let (sc, fc) = (&stored.compression_info, &fresh.compression_info);
    let bad_spans: Vec<usize> = sc
        .span_digests
        .iter()
        .zip(&fc.span_digests)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    if !bad_spans.is_empty() {
        p.push(format!(
            "{} span digests do not match the layer (first: span {})",
            bad_spans.len(),
            bad_spans[0]
        ));
    }
    if sc.span_digests.len() != fc.span_digests.len() {
        p.push(format!(
            "{} span digests, the layer has {} spans",
            sc.span_digests.len(),
            fc.span_digests.len()
        ));
    }
}

/// The file table: its length and the first 5 entries that differ.
fn compare_file_tables(stored: &Ztoc, fresh: &Ztoc, p: &mut Vec<String>) {
    let (se, fe) = (&stored.toc.entries, &fresh.toc.entries);
    if se.len() != fe.len() {
        p.push(format!(
            "the file table has {} entries, the layer's tar has {}",
            se.len(),
            fe.len()
        ));
    }
    let mut shown = 0;
    for (a, b) in se.iter().zip(fe) {
        if a != b {
            let what = if a.name != b.name {
                format!("name {:?} vs {:?}", a.name_lossy(), b.name_lossy())
            } else if a.uncompressed_offset != b.uncompressed_offset
                || a.uncompressed_size != b.uncompressed_size
            {
                format!(
                    "offset/size {}+{} vs {}+{}",
                    a.uncompressed_offset,
                    a.uncompressed_size,
                    b.uncompressed_offset,
                    b.uncompressed_size
                )
            } else {
                "metadata (type, mode, owner, time, link or xattrs) differs".to_string()
            };
            p.push(format!("file table entry {:?}: {what}", a.name_lossy()));
            shown += 1;
            if shown >= 5 {
                break;
            }
        }
    }
}

/// (layer digest, zTOC digest) pairs already checked against each other by
/// reading the layer in this run: not read again (e.g. after publishing what
/// was verified before).
pub type KnownGood = std::collections::HashSet<(String, Digest)>;

/// Reads a zTOC of an index found in `store` from the store, else from the
/// image; either way checked against its descriptor.
fn read_ztoc(
    source: &dyn ImageSource,
    store: Option<&Store>,
    zdesc: &Descriptor,
) -> Result<Vec<u8>> {
    match store {
        Some(store) => {
            let bytes = store.get_blob(&zdesc.digest)?;
            crate::check_ztoc_bytes(zdesc, &bytes)?;
            Ok(bytes)
        }
        None => Ok(crate::fetch_ztoc(source, zdesc)?),
    }
}

/// Verifies one zTOC descriptor of an index against the image.
fn verify_ztoc(
    source: &dyn ImageSource,
    ztocs_in: Option<&Store>,
    img: &ImageManifest,
    zdesc: &Descriptor,
    reporter: &dyn Reporter,
    known_good: &KnownGood,
) -> LayerReport {
    let annotated = zdesc
        .annotations
        .get(soci_index::ANNOTATION_IMAGE_LAYER_DIGEST)
        .cloned()
        .unwrap_or_default();
    let mut report = LayerReport {
        layer_digest: annotated.clone(),
        ztoc_digest: zdesc.digest.clone(),
        ok: false,
        problems: Vec::new(),
        files: 0,
        spans: 0,
    };
    let layer_digest = match annotated_digest(soci_index::ANNOTATION_IMAGE_LAYER_DIGEST, &annotated)
    {
        Ok(d) => d,
        Err(e) => {
            report.layer_digest = spec::escape_untrusted(&annotated);
            report.problems.push(chain_text(&e));
            return report;
        }
    };
    let Some(layer) = img
        .manifest
        .layers
        .iter()
        .find(|l| l.digest == layer_digest)
    else {
        report.problems.push(format!(
            "the zTOC names layer {:?}, which is not a layer of image manifest {}",
            layer_digest.as_str(),
            img.descriptor.digest
        ));
        return report;
    };
    let annotated_mt = zdesc
        .annotations
        .get(soci_index::ANNOTATION_IMAGE_LAYER_MEDIA_TYPE);
    if annotated_mt != Some(&layer.media_type) {
        report.problems.push(format!(
            "layer media type annotation {:?} differs from the layer's {:?}",
            annotated_mt, layer.media_type
        ));
    }
    let bytes = match read_ztoc(source, ztocs_in, zdesc) {
        Ok(b) => b,
        Err(e) => {
            report
                .problems
                .push(format!("cannot fetch the zTOC: {}", chain_text(&e)));
            return report;
        }
    };
    let stored = match codec::decode(&bytes) {
        Ok(z) => z,
        Err(e) => {
            report
                .problems
                .push(format!("the zTOC does not decode: {e}"));
            return report;
        }
    };
    report.files = stored.toc.entries.len();
    report.spans = stored.compression_info.span_digests.len();
    let span_size = match stored.zinfo() {
        Ok(Zinfo::Gzip(g)) => g.span_size,
        Ok(Zinfo::Tar(t)) => t.span_size,
        Err(e) => {
            report
                .problems
                .push(format!("the zTOC's zinfo does not decode: {e}"));
            return report;
        }
    };
    if zdesc.annotations.get(soci_index::ANNOTATION_SPAN_SIZE) != Some(&span_size.to_string()) {
        report.problems.push(format!(
            "span size annotation {:?} differs from the zTOC's {span_size}",
            zdesc.annotations.get(soci_index::ANNOTATION_SPAN_SIZE)
        ));
    }
    let compression = match layer_kind(&layer.media_type) {
        Some(LayerKind::Gzip) => LayerCompression::Gzip,
        Some(LayerKind::Uncompressed) => LayerCompression::Uncompressed,
        _ => {
            report.problems.push(format!(
                "layer media type {:?} cannot have a zTOC",
                layer.media_type
            ));
            return report;
        }
    };
    if known_good.contains(&(layer.digest.to_string(), zdesc.digest.clone())) {
        report.ok = report.problems.is_empty();
        return report;
    }
    let mut opts = BuildOptions::new(compression);
    opts.span_size = span_size.max(1) as u64;
    opts.build_tool_identifier = stored.build_tool_identifier.clone();
    opts.expected_digest = Some(layer.digest.clone());
    opts.expected_size = Some(layer.size.max(0) as u64);
    reporter.layer_start(&layer.digest, layer.size.max(0) as u64);
    let fresh = source
        .open_blob(layer)
        .map_err(|e| chain_text(&e))
        .and_then(|r| {
            build_ztoc(
                r,
                &opts,
                &mut LayerProgress {
                    reporter,
                    digest: &layer.digest,
                    tar_bytes: false,
                },
            )
            .map_err(|e| chain_text(&e))
        });
    match fresh {
        Ok(f) => report.problems.extend(compare(&stored, &f.ztoc)),
        Err(e) => report
            .problems
            .push(format!("reading the layer failed: {e}")),
    }
    report.ok = report.problems.is_empty();
    reporter.layer_done(&layer.digest, if report.ok { "ok" } else { "MISMATCH" });
    report
}

/// Verifies the SOCI index of every chosen platform of `source`.
pub fn verify(
    source: &dyn ImageSource,
    store: Option<&Store>,
    platforms: &PlatformChoice,
    jobs: usize,
    reporter: &dyn Reporter,
) -> Result<VerifyReport> {
    verify_with(source, store, platforms, jobs, reporter, &KnownGood::new())
}

/// [`verify`], taking the zTOCs of `known_good` as checked.
pub fn verify_with(
    source: &dyn ImageSource,
    store: Option<&Store>,
    platforms: &PlatformChoice,
    jobs: usize,
    reporter: &dyn Reporter,
    known_good: &KnownGood,
) -> Result<VerifyReport> {
    // One resolution of the tag for the root and the platform manifests.
    let pinned = crate::PinnedSource::new(source)?;
    let source: &dyn ImageSource = &pinned;
    let root = source.resolve_root()?;
    let images = select_manifests(source, platforms)?;
    let mut out = Vec::new();
    for img in &images {
        let found = find_index(source, store, img, &root);
        out.push(verify_platform(
            source, store, img, found, jobs, reporter, known_good,
        ));
    }
    let ok = out
        .iter()
        .all(|p| p.problems.is_empty() && p.layers.iter().all(|l| l.ok));
    Ok(VerifyReport { ok, platforms: out })
}

/// Verifies the indexes `created` just built into `store` (their zTOCs are
/// read from there) against the image they were built from, before anything
/// is published.
pub fn verify_created(
    source: &dyn ImageSource,
    store: &Store,
    created: &crate::Created,
    jobs: usize,
    reporter: &dyn Reporter,
) -> VerifyReport {
    let out: Vec<PlatformReport> = created
        .platforms
        .iter()
        .map(|p| {
            let found = FoundIndex {
                digest: p.index.descriptor.digest.clone(),
                bytes: p.index.bytes.clone(),
                via: format!("built in the local store {}", store.dir().display()),
                from_store: true,
            };
            verify_platform(
                source,
                Some(store),
                &p.image,
                Ok(Some(found)),
                jobs,
                reporter,
                &KnownGood::new(),
            )
        })
        .collect();
    let ok = out
        .iter()
        .all(|p| p.problems.is_empty() && p.layers.iter().all(|l| l.ok));
    VerifyReport { ok, platforms: out }
}

/// The (layer, zTOC) pairs a report found good.
pub fn known_good(report: &VerifyReport) -> KnownGood {
    report
        .platforms
        .iter()
        .flat_map(|p| p.layers.iter())
        .filter(|l| l.ok)
        .map(|l| (l.layer_digest.clone(), l.ztoc_digest.clone()))
        .collect()
}

/// Verifies the index `found` for one platform image.
fn verify_platform(
    source: &dyn ImageSource,
    store: Option<&Store>,
    img: &ImageManifest,
    found: Result<Option<FoundIndex>>,
    jobs: usize,
    reporter: &dyn Reporter,
    known_good: &KnownGood,
) -> PlatformReport {
    let mut pr = PlatformReport {
        platform: img.platform.clone(),
        manifest_digest: img.descriptor.digest.clone(),
        index_digest: None,
        index_version: None,
        found_via: None,
        problems: Vec::new(),
        layers: Vec::new(),
        unindexed_layers: Vec::new(),
    };
    let found = match found {
        Ok(Some(f)) => f,
        Ok(None) => {
            pr.problems
                .push("no SOCI index found for this image manifest".into());
            return pr;
        }
        Err(e) => {
            pr.problems.push(chain_text(&e));
            return pr;
        }
    };
    pr.index_digest = Some(found.digest.clone());
    pr.found_via = Some(found.via.clone());
    if spec::sha256_digest(&found.bytes) != found.digest {
        pr.problems.push(format!(
            "the SOCI index bytes do not have digest {}",
            found.digest
        ));
    }
    let parsed = match parse_index_manifest(&found.bytes) {
        Ok(p) => p,
        Err(e) => {
            pr.problems
                .push(format!("the SOCI index does not decode: {e}"));
            return pr;
        }
    };
    pr.index_version = Some(parsed.version.as_str().to_string());
    if !parsed.go_canonical {
        pr.problems.push("the SOCI index is not Go-canonical JSON: the snapshotter would reject it (digest mismatch after re-marshalling)".into());
    }
    if parsed.version == IndexVersion::V1 {
        match &parsed.manifest.subject {
            Some(s) if s.digest == img.descriptor.digest => {}
            Some(s) => pr.problems.push(format!(
                "v1 index subject {} is not the image manifest {}",
                s.digest, img.descriptor.digest
            )),
            None => pr.problems.push("v1 index has no subject".into()),
        }
    }
    let zdescs: Vec<Descriptor> = parsed.ztocs().cloned().collect();
    let indexed: Vec<&str> = zdescs
        .iter()
        .filter_map(|d| {
            d.annotations
                .get(soci_index::ANNOTATION_IMAGE_LAYER_DIGEST)
                .map(String::as_str)
        })
        .collect();
    pr.unindexed_layers = img
        .manifest
        .layers
        .iter()
        .filter(|l| !indexed.contains(&l.digest.as_str()))
        .map(|l| l.digest.clone())
        .collect();
    let ztocs_in = if found.from_store { store } else { None };
    pr.layers = parallel_map(&zdescs, jobs, |z| {
        verify_ztoc(source, ztocs_in, img, z, reporter, known_good)
    });
    pr
}
