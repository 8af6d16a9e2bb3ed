//! The two ways to start a container: full pull, and lazy start through the SOCI index.
use crate::proxy::Traffic;
use crate::trace::{clean, Trace, TraceFile};
use anyhow::{anyhow, bail, Context, Result};
use soci_image::lazy::{BatchOptions, SpanReader};
use soci_image::HashingReader;
use soci_index::manifest::parse_index_manifest;
use soci_index::prefetch::PrefetchArtifact;
use soci_oci::registry::{RegistryOptions, RegistrySource};
use soci_oci::source::ImageSource;
use soci_oci::spec::{Descriptor, Index, Manifest};
use soci_zinfo::Zinfo;
use soci_ztoc::{TocEntry, Ztoc};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn plain_http() -> RegistryOptions {
    RegistryOptions {
        plain_http: true,
        ..Default::default()
    }
}

/// Opens `host/repo:tag` (a SOCI-enabled image index or a plain manifest) and
/// returns the source, the image manifest's descriptor, bytes and parsed form
/// and the SOCI index descriptor the image manifest names (if any).
fn open_image(
    host: &str,
    repo: &str,
    tag: &str,
) -> Result<(RegistrySource, Manifest, Option<Descriptor>)> {
    let r = format!("{host}/{repo}:{tag}")
        .parse()
        .map_err(|e| anyhow!("{e}"))?;
    let src = RegistrySource::new(r, &plain_http())?;
    let (root, raw) = src.resolve_root()?;
    let (mdesc, mraw, soci) =
        if root.media_type.contains("index") || root.media_type.contains("manifest.list") {
            let idx: Index = serde_json::from_slice(&raw)?;
            let soci = idx
                .manifests
                .iter()
                .find(|d| d.artifact_type == soci_index::SOCI_INDEX_ARTIFACT_TYPE_V2)
                .cloned();
            let m = idx
                .manifests
                .iter()
                .find(|d| d.artifact_type.is_empty() && d.media_type.contains("manifest"))
                .cloned()
                .ok_or_else(|| anyhow!("no image manifest in {repo}:{tag}"))?;
            let raw = src.fetch_manifest(&m)?;
            (m, raw, soci)
        } else {
            (root, raw, None)
        };
    let _ = mdesc;
    let manifest: Manifest = serde_json::from_slice(&mraw)?;
    let soci = match soci {
        Some(s) => Some(s),
        None => manifest
            .annotations
            .get(soci_index::IMAGE_ANNOTATION_SOCI_INDEX_DIGEST)
            .map(|d| soci_oci::spec::Digest::parse(d))
            .transpose()?
            .map(|d| Descriptor::new(soci_oci::spec::MEDIA_TYPE_OCI_MANIFEST, d, 0)),
    };
    Ok((src, manifest, soci))
}

/// Download, verify, decompress and unpack one layer into `dir`.
pub fn pull_layer(src: &dyn ImageSource, layer: &Descriptor, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let rd = src.open_blob(layer)?;
    let mut hr = HashingReader::new(std::io::BufReader::with_capacity(1 << 20, rd));
    {
        let gz = flate2::read::MultiGzDecoder::new(&mut hr);
        let mut ar = tar::Archive::new(gz);
        ar.set_preserve_permissions(true);
        ar.set_overwrite(true);
        ar.set_unpack_xattrs(false);
        ar.unpack(dir)
            .with_context(|| format!("unpacking layer {}", layer.digest))?;
        let mut gz = ar.into_inner();
        std::io::copy(&mut gz, &mut std::io::sink())?;
    }
    std::io::copy(&mut hr, &mut std::io::sink())?;
    let got = hr.digest();
    if got != layer.digest || hr.size() != layer.size as u64 {
        bail!(
            "layer {} failed verification: got {got}, {} bytes",
            layer.digest,
            hr.size()
        );
    }
    Ok(())
}

/// A full pull: every layer unpacked under `dest/<layer index>`.
pub struct FullPull {
    /// Wall time from the manifest request to the last layer unpacked.
    pub time: Duration,
    /// The manifest's layer descriptors.
    pub layers: Vec<Descriptor>,
    /// Where each layer was unpacked, in layer order.
    pub dirs: Vec<PathBuf>,
}

/// Manifest, config, then every layer (in parallel: download, verify, decompress,
/// unpack, each into its own directory as a snapshotter does).
pub fn full_pull(host: &str, repo: &str, tag: &str, dest: &Path) -> Result<FullPull> {
    let t0 = Instant::now();
    let (src, manifest, _) = open_image(host, repo, tag)?;
    let _config = src.fetch_blob(&manifest.config)?;
    let dirs: Vec<PathBuf> = (0..manifest.layers.len())
        .map(|i| dest.join(i.to_string()))
        .collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = manifest
            .layers
            .iter()
            .zip(&dirs)
            .map(|(l, d)| s.spawn(|| pull_layer(&src, l, d)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("layer thread panicked"))?)
            .collect::<Result<Vec<()>>>()
    })?;
    Ok(FullPull {
        time: t0.elapsed(),
        layers: manifest.layers.clone(),
        dirs,
    })
}

/// How a lazy start fetches the traced files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LazyMode {
    /// Files materialised in trace order, each when first needed (a FUSE runtime).
    OnDemand,
    /// The prefetch artifacts' spans fetched first (merged, in parallel), then the files.
    Prefetch,
}

/// How to run one lazy start.
#[derive(Debug, Clone, Copy)]
pub struct LazyOptions {
    /// On demand or prefetch first.
    pub mode: LazyMode,
    /// Materialise only the traced byte ranges instead of whole files.
    pub ranges: bool,
    /// How span range requests are merged and parallelised.
    pub batch: BatchOptions,
}

/// Where a traced path lives.
#[derive(Debug, Clone)]
enum Loc {
    Ztoc {
        layer: usize,
        entry: usize,
    },
    /// In a layer pulled in full (no zTOC).
    Pulled {
        layer: usize,
    },
}

/// What a lazy start did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LazyOutcome {
    /// Wall time of the whole lazy start.
    #[serde(serialize_with = "crate::ser_secs")]
    pub time: Duration,
    /// Files materialised (present in the image).
    pub files: usize,
    /// Traced paths found in no layer.
    pub missing: Vec<String>,
    /// Bytes of traced data materialised.
    pub data_bytes: u64,
    /// Layers without a zTOC (pulled in full).
    pub pulled_layers: usize,
    /// Compressed bytes of those layers.
    pub pulled_bytes: u64,
    /// SOCI index manifest + zTOCs (+ prefetch artifacts) fetched.
    pub index_bytes: u64,
    /// Compressed span bytes fetched by the lazy reader (payload).
    pub span_bytes: u64,
    /// Range requests the lazy reader made for them.
    pub span_requests: u64,
    /// The floor: compressed bytes of the whole spans holding the traced data
    /// (union per layer) -- what any span-granular runtime must fetch.
    pub floor_span_bytes: u64,
    /// Wall time spent fetching metadata before the first file read.
    #[serde(serialize_with = "crate::ser_secs")]
    pub setup_time: Duration,
}

struct LazyLayer {
    desc: Descriptor,
    ztoc: Option<(Ztoc, Zinfo)>,
    prefetch: Option<PrefetchArtifact>,
}

/// Lazy start of `host/repo:tag` for `trace`; files written under `dest` (their
/// image path). The full pull's `reference` directories are only read afterwards
/// (by [`verify_lazy`]).
pub fn lazy_start(
    host: &str,
    repo: &str,
    tag: &str,
    trace: &Trace,
    opts: LazyOptions,
    dest: &Path,
) -> Result<LazyOutcome> {
    let t0 = Instant::now();
    let mut out = LazyOutcome::default();
    let (src, manifest, soci) = open_image(host, repo, tag)?;
    let _config = src.fetch_blob(&manifest.config)?;
    let soci = soci.ok_or_else(|| anyhow!("{repo}:{tag} has no SOCI index"))?;
    let artifacts = index_artifacts(&src, &soci, opts.mode, &mut out)?;
    let pulled_root = dest.join(".pulled");
    let layers = fetch_layers(&src, &manifest, &artifacts, &pulled_root, &mut out)?;
    let locs = locate_paths(&layers, &pulled_root)?;
    let mut readers: Vec<Option<SpanReader>> = layers
        .iter()
        .map(|l| {
            l.ztoc
                .as_ref()
                .map(|(z, zi)| SpanReader::new(&src, &l.desc, z, zi, opts.batch))
        })
        .collect();
    out.setup_time = t0.elapsed();

    if opts.mode == LazyMode::Prefetch {
        prefetch(&mut readers, &layers)?;
    }

    // floor: union of the spans holding the traced data
    let mut floor_spans: Vec<std::collections::BTreeSet<u64>> =
        vec![Default::default(); layers.len()];
    let mut files = Materialise {
        layers: &layers,
        readers: &mut readers,
        floor_spans: &mut floor_spans,
        pulled_root: &pulled_root,
        dest,
        ranges: opts.ranges,
        out: &mut out,
    };
    for f in &trace.files {
        match locs.get(&f.path) {
            Some(loc) => files.file(f, loc)?,
            None => files.out.missing.push(f.path.clone()),
        }
    }
    out.time = t0.elapsed();
    for (i, r) in readers.iter().enumerate() {
        if let Some(r) = r {
            out.span_bytes += r.stats.bytes;
            out.span_requests += r.stats.requests;
            let (_, zi) = layers[i].ztoc.as_ref().unwrap();
            out.floor_span_bytes += spans_bytes(zi, layers[i].desc.size as u64, &floor_spans[i]);
        }
    }
    Ok(out)
}

/// The zTOC and prefetch-artifact descriptors of a SOCI index, by layer digest.
struct IndexArtifacts {
    ztocs: HashMap<String, Descriptor>,
    /// Empty unless the lazy start prefetches.
    prefetches: HashMap<String, Descriptor>,
}

/// Fetches the SOCI index manifest (counted in `out.index_bytes`) and maps its
/// zTOCs (and, in prefetch mode, its prefetch artifacts) to their layers.
fn index_artifacts(
    src: &RegistrySource,
    soci: &Descriptor,
    mode: LazyMode,
    out: &mut LazyOutcome,
) -> Result<IndexArtifacts> {
    let soci_raw = src.fetch_manifest(soci)?;
    out.index_bytes += soci_raw.len() as u64;
    let parsed = parse_index_manifest(&soci_raw)?;
    let layer_of = |d: &Descriptor| {
        d.annotations
            .get(soci_index::ANNOTATION_IMAGE_LAYER_DIGEST)
            .cloned()
            .unwrap_or_default()
    };
    let ztocs = parsed.ztocs().map(|d| (layer_of(d), d.clone())).collect();
    let prefetches = if mode == LazyMode::Prefetch {
        parsed
            .prefetches()
            .map(|d| (layer_of(d), d.clone()))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(IndexArtifacts { ztocs, prefetches })
}

/// zTOCs and prefetch artifacts in parallel with the layers pulled in full
/// (those without a zTOC, unpacked under `pulled_root/INDEX`); the bytes of
/// the former and the layers of the latter are counted in `out`.
fn fetch_layers(
    src: &RegistrySource,
    manifest: &Manifest,
    artifacts: &IndexArtifacts,
    pulled_root: &Path,
    out: &mut LazyOutcome,
) -> Result<Vec<LazyLayer>> {
    std::thread::scope(|s| -> Result<Vec<LazyLayer>> {
        let hs: Vec<_> = manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let zd = artifacts.ztocs.get(l.digest.as_str());
                let pd = artifacts.prefetches.get(l.digest.as_str());
                s.spawn(move || match zd {
                    Some(zd) => fetch_ztoc_layer(src, l, zd, pd),
                    None => {
                        pull_layer(src, l, &pulled_root.join(i.to_string()))?;
                        Ok((
                            LazyLayer {
                                desc: l.clone(),
                                ztoc: None,
                                prefetch: None,
                            },
                            0,
                        ))
                    }
                })
            })
            .collect();
        let mut v = Vec::new();
        for h in hs {
            let (l, n) = h.join().map_err(|_| anyhow!("layer thread panicked"))??;
            out.index_bytes += n;
            if l.ztoc.is_none() {
                out.pulled_layers += 1;
                out.pulled_bytes += l.desc.size as u64;
            }
            v.push(l);
        }
        Ok(v)
    })
}

/// A layer with a zTOC: the zTOC (and its prefetch artifact, if asked for)
/// and the bytes fetched for them.
fn fetch_ztoc_layer(
    src: &RegistrySource,
    l: &Descriptor,
    zd: &Descriptor,
    pd: Option<&Descriptor>,
) -> Result<(LazyLayer, u64)> {
    // Streamed and checked against the index's descriptor
    // (the lazy reads trust its span digests).
    let blob = soci_image::fetch_ztoc(src, zd)?;
    let z = soci_ztoc::codec::decode(&blob).map_err(|e| anyhow!("zTOC {}: {e}", zd.digest))?;
    let zi = z.zinfo().map_err(|e| anyhow!("zTOC {}: {e}", zd.digest))?;
    let mut n = blob.len() as u64;
    let prefetch = match pd {
        Some(pd) => {
            let b = src.fetch_blob(pd)?;
            n += b.len() as u64;
            Some(PrefetchArtifact::from_json(&b)?)
        }
        None => None,
    };
    Ok((
        LazyLayer {
            desc: l.clone(),
            ztoc: Some((z, zi)),
            prefetch,
        },
        n,
    ))
}

/// Path -> topmost layer holding it (whiteouts hide lower layers).
fn locate_paths(layers: &[LazyLayer], pulled_root: &Path) -> Result<HashMap<String, Loc>> {
    let mut locs: HashMap<String, Loc> = HashMap::new();
    for (i, l) in layers.iter().enumerate() {
        match &l.ztoc {
            Some((z, _)) => {
                for (k, e) in z.toc.entries.iter().enumerate() {
                    let name = clean(&String::from_utf8_lossy(&e.name));
                    apply_entry(&mut locs, &name, Loc::Ztoc { layer: i, entry: k }, e);
                }
            }
            None => {
                let root = pulled_root.join(i.to_string());
                for name in walk(&root)? {
                    let base = name.rsplit('/').next().unwrap_or("");
                    if let Some(hidden) = base.strip_prefix(".wh.") {
                        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        let p = if dir.is_empty() {
                            hidden.to_string()
                        } else {
                            format!("{dir}/{hidden}")
                        };
                        locs.retain(|k, _| k != &p && !k.starts_with(&format!("{p}/")));
                    } else {
                        locs.insert(name, Loc::Pulled { layer: i });
                    }
                }
            }
        }
    }
    Ok(locs)
}

/// Fetches the spans every layer's prefetch artifact names, layers in parallel.
fn prefetch(readers: &mut [Option<SpanReader>], layers: &[LazyLayer]) -> Result<()> {
    std::thread::scope(|s| -> Result<()> {
        let hs: Vec<_> = readers
            .iter_mut()
            .zip(layers)
            .filter_map(|(r, l)| Some((r.as_mut()?, l.prefetch.as_ref()?)))
            .map(|(r, p)| {
                let spans: Vec<u64> = p
                    .prefetch_spans
                    .iter()
                    .flat_map(|s| s.start_span..=s.end_span)
                    .collect();
                s.spawn(move || r.prefetch_spans(&spans))
            })
            .collect();
        for h in hs {
            h.join()
                .map_err(|_| anyhow!("prefetch thread panicked"))??;
        }
        Ok(())
    })
}

/// Writes traced files under `dest`, each from where it lives, and records
/// the spans holding the traced data (the floor).
struct Materialise<'a, 'r> {
    layers: &'a [LazyLayer],
    readers: &'a mut [Option<SpanReader<'r>>],
    floor_spans: &'a mut [std::collections::BTreeSet<u64>],
    pulled_root: &'a Path,
    dest: &'a Path,
    /// Only the traced byte ranges, not whole files.
    ranges: bool,
    out: &'a mut LazyOutcome,
}

impl Materialise<'_, '_> {
    fn file(&mut self, f: &TraceFile, loc: &Loc) -> Result<()> {
        let target = self.dest.join(&f.path);
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p)?;
        }
        match *loc {
            Loc::Pulled { layer } => {
                let srcp = self.pulled_root.join(layer.to_string()).join(&f.path);
                self.out.data_bytes += std::fs::copy(&srcp, &target)
                    .with_context(|| format!("copy {}", srcp.display()))?;
            }
            Loc::Ztoc { layer, entry } => {
                let (z, _) = self.layers[layer].ztoc.as_ref().unwrap();
                let e = resolve_hardlink(z, entry)?;
                if self.ranges {
                    self.ranges_of(f, layer, e, &target)?;
                } else {
                    let r = self.readers[layer].as_mut().unwrap();
                    self.floor_spans[layer].extend(r.entry_spans(e));
                    let data = r.read_entry(e)?;
                    self.out.data_bytes += data.len() as u64;
                    std::fs::write(&target, &data)?;
                }
            }
        }
        self.out.files += 1;
        Ok(())
    }

    /// Only what the process read or mapped: a sparse file of the entry's size
    /// with the traced ranges written in.
    fn ranges_of(
        &mut self,
        f: &TraceFile,
        layer: usize,
        e: &TocEntry,
        target: &Path,
    ) -> Result<()> {
        let (_, zi) = self.layers[layer].ztoc.as_ref().unwrap();
        let r = self.readers[layer].as_mut().unwrap();
        let size = e.uncompressed_size.max(0) as u64;
        let base = e.uncompressed_offset.max(0) as u64;
        let file = std::fs::File::create(target)?;
        file.set_len(size)?;
        for &(off, len) in &f.ranges {
            let len = len.min(size.saturating_sub(off));
            if len == 0 {
                continue;
            }
            self.floor_spans[layer].extend(soci_image::lazy::spans_of_range(zi, base + off, len));
            let data = r.read_range(base + off, len)?;
            std::os::unix::fs::FileExt::write_all_at(&file, &data, off)?;
            self.out.data_bytes += len;
        }
        Ok(())
    }
}

/// Compressed bytes of the union of `spans`' ranges (consecutive spans may share a byte).
pub fn spans_bytes(zi: &Zinfo, blob_size: u64, spans: &std::collections::BTreeSet<u64>) -> u64 {
    let mut total = 0;
    let mut end_prev = 0u64;
    for &s in spans {
        let r = zi.span_compressed_range(s, blob_size);
        let start = r.start.max(end_prev);
        total += r.end.saturating_sub(start);
        end_prev = end_prev.max(r.end);
    }
    total
}

fn resolve_hardlink(z: &Ztoc, entry: usize) -> Result<&TocEntry> {
    let e = &z.toc.entries[entry];
    if e.entry_type == "hardlink" {
        return z.find_regular(&e.linkname).map_err(|x| anyhow!("{x}"));
    }
    if e.entry_type != "reg" {
        bail!(
            "{} is a {}, not a regular file",
            e.name_lossy(),
            e.entry_type
        );
    }
    Ok(e)
}

fn apply_entry(locs: &mut HashMap<String, Loc>, name: &str, loc: Loc, e: &TocEntry) {
    let base = name.rsplit('/').next().unwrap_or("");
    if base == soci_index::WHITEOUT_OPAQUE_DIR {
        let dir = name
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default();
        locs.retain(|k, _| !k.starts_with(&format!("{dir}/")));
    } else if let Some(hidden) = base.strip_prefix(".wh.") {
        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let p = if dir.is_empty() {
            hidden.to_string()
        } else {
            format!("{dir}/{hidden}")
        };
        locs.retain(|k, _| k != &p && !k.starts_with(&format!("{p}/")));
    } else if e.entry_type == "reg" || e.entry_type == "hardlink" {
        locs.insert(name.to_string(), loc);
    } else {
        locs.remove(name);
    }
}

/// Regular files under `root`, relative, `/`-separated.
fn walk(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() || e.file_name().to_string_lossy().starts_with(".wh.") {
                out.push(e.path().strip_prefix(root)?.to_string_lossy().into_owned());
            }
        }
    }
    Ok(out)
}

/// Checks every materialised file (or traced range) byte for byte against the
/// full pull's unpacked layers (topmost layer holding the path). Returns the number
/// of files compared.
pub fn verify_lazy(trace: &Trace, lazy_dir: &Path, full: &FullPull, ranges: bool) -> Result<usize> {
    let mut n = 0;
    for f in &trace.files {
        let lazy = lazy_dir.join(&f.path);
        if !lazy.exists() {
            continue;
        }
        let reference = full
            .dirs
            .iter()
            .rev()
            .map(|d| d.join(&f.path))
            .find(|p| p.symlink_metadata().map(|m| m.is_file()).unwrap_or(false))
            .ok_or_else(|| anyhow!("{} is in no layer of the full pull", f.path))?;
        let a = std::fs::read(&lazy)?;
        let b = std::fs::read(&reference)?;
        if ranges {
            if a.len() != b.len() {
                bail!("{}: lazy size {} != full {}", f.path, a.len(), b.len());
            }
            for &(off, len) in &f.ranges {
                let (s, e) = (off as usize, ((off + len) as usize).min(b.len()));
                if s < e && a[s..e] != b[s..e] {
                    bail!("{}: bytes {s}..{e} differ from the full pull", f.path);
                }
            }
        } else if a != b {
            bail!(
                "{}: lazy bytes differ from the full pull ({} vs {} bytes)",
                f.path,
                a.len(),
                b.len()
            );
        }
        n += 1;
    }
    Ok(n)
}

/// One strategy's cost, as counted at the proxy.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Measure {
    /// Wall-clock seconds the strategy took.
    pub secs: f64,
    /// Bytes sent down by the proxy.
    pub bytes: u64,
    /// HTTP requests the proxy saw.
    pub requests: u64,
    /// TCP connections the proxy accepted.
    pub connections: u64,
    /// Files checked byte for byte against the full pull.
    pub verified_files: usize,
    /// What the lazy start fetched and how (absent for the full pull).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lazy: Option<LazyOutcome>,
}

impl Measure {
    pub(crate) fn from(secs: f64, t: Traffic) -> Measure {
        Measure {
            secs,
            bytes: t.bytes_down,
            requests: t.requests,
            connections: t.connections,
            ..Default::default()
        }
    }
}
