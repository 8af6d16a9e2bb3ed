//! The benchmark run: index build, publish to a local registry, then for each
//! network profile a full pull and the lazy starts, through the shaping proxy.
use crate::proxy::{Profile, Proxy};
pub use crate::startup::Measure;
use crate::startup::{full_pull, lazy_start, verify_lazy, LazyMode, LazyOptions, LazyOutcome};
use crate::trace::Trace;
use anyhow::{anyhow, Context, Result};
use soci_image::lazy::BatchOptions;
use soci_image::{create, publish, CreateOptions, Silent};
use soci_index::manifest::IndexVersion;
use soci_index::prefetch::PrefetchRequest;
use soci_index::store::Store;
use soci_oci::open_source;
use soci_oci::reference::ImageRef;
use soci_oci::registry::RegistryOptions;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One image to measure.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Short name used in the report and in the pushed repository (`bench/<name>`).
    pub name: String,
    /// Any image reference soci reads (`oci:DIR:TAG`, `docker-archive:F`, a registry).
    pub source: String,
    /// The files a container start reads, which decide what a lazy start fetches.
    pub trace: Trace,
}

/// What a benchmark run measures and where it works.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Network profiles (bandwidth, latency) the proxy shapes traffic to; each is measured.
    pub profiles: Vec<Profile>,
    /// Span size of the SOCI indexes built.
    pub span_size: u64,
    /// Layers smaller than this get no zTOC and are pulled in full.
    pub min_layer_size: u64,
    /// How the lazy start batches and parallelises its range requests.
    pub batch: BatchOptions,
    /// Span sizes for the sweep (empty: no sweep).
    pub span_sweep: Vec<u64>,
    /// `--min-layer-size` values for the sweep (only those that change the lazy layers run).
    pub min_layer_sweep: Vec<u64>,
    /// Image the sweeps run on (default: the first).
    pub sweep_image: Option<String>,
    /// Scratch directory for stores, pulls and the registry.
    pub work_dir: PathBuf,
    /// Print progress lines on stderr.
    pub verbose: bool,
    /// Also start the image for real (`--real-run`): full pull + run, lazy
    /// mount + run, lazy + recorded prefetch + run.
    pub real_run: Option<crate::real::RealRun>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            profiles: Profile::defaults(),
            span_size: soci_ztoc::build::DEFAULT_SPAN_SIZE,
            min_layer_size: soci_image::DEFAULT_MIN_LAYER_SIZE,
            batch: BatchOptions::default(),
            span_sweep: Vec::new(),
            min_layer_sweep: Vec::new(),
            sweep_image: None,
            work_dir: std::env::temp_dir().join("soci-bench"),
            verbose: true,
            real_run: None,
        }
    }
}

/// One image on one network profile: every strategy and the ratios between them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProfileResult {
    /// The network profile measured.
    pub profile: Profile,
    /// Pulling every layer in full (the baseline).
    pub full: Measure,
    /// Lazy start fetching spans on demand.
    pub lazy: Measure,
    /// Lazy start with the traced files prefetched.
    pub prefetch: Measure,
    /// Lazy start materialising only the traced byte ranges (when the trace has them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Measure>,
    /// The real runs (`--real-run`), beside the model above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real: Option<crate::real::RealResult>,
    /// Spans holding the traced data + index bytes + layers pulled in full.
    pub floor_bytes: u64,
    /// `lazy.bytes / floor_bytes`: how close on-demand fetching gets to the floor.
    pub lazy_over_floor: f64,
    /// `lazy.secs / full.secs`.
    pub lazy_full_time: f64,
    /// `lazy.bytes / full.bytes`.
    pub lazy_full_bytes: f64,
    /// `prefetch.secs / full.secs`.
    pub prefetch_full_time: f64,
    /// `prefetch.bytes / full.bytes`.
    pub prefetch_full_bytes: f64,
}

/// Everything measured for one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageReport {
    /// The image's short name.
    pub name: String,
    /// The reference it was read from.
    pub source: String,
    /// Layers in the image.
    pub layers: usize,
    /// Layers that got a zTOC (at least `min_layer_size`).
    pub lazy_layers: usize,
    /// Compressed bytes of all layers.
    pub image_bytes: u64,
    /// Seconds `soci create` took for the image.
    pub index_build_secs: f64,
    /// SOCI index manifest + zTOCs.
    pub index_bytes: u64,
    /// `index_bytes / image_bytes`: what the index adds to the image.
    pub index_share: f64,
    /// Files in the trace.
    pub trace_files: usize,
    /// Total size of the traced files.
    pub trace_file_bytes: u64,
    /// Bytes of the traced ranges within those files.
    pub trace_range_bytes: u64,
    /// One result per network profile.
    pub results: Vec<ProfileResult>,
}

/// One point of a span-size or min-layer-size sweep: a lazy start with those settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepRow {
    /// The image's short name.
    pub image: String,
    /// Name of the network profile.
    pub profile: String,
    /// Span size of the index built for this point.
    pub span_size: u64,
    /// Min layer size of the index built for this point.
    pub min_layer_size: u64,
    /// Layers that got a zTOC with these settings.
    pub lazy_layers: usize,
    /// SOCI index manifest + zTOCs.
    pub index_bytes: u64,
    /// The on-demand lazy start.
    pub lazy: Measure,
    /// Spans holding the traced data + index bytes + layers pulled in full.
    pub floor_bytes: u64,
}

/// The whole run, as written to the JSON and Markdown reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The command line that produced it, so a reader can rerun it.
    pub command: String,
    /// The machine it ran on (core count).
    pub machine: String,
    /// Span size of the indexes.
    pub span_size: u64,
    /// Min layer size of the indexes.
    pub min_layer_size: u64,
    /// Parallel range requests of the lazy start.
    pub parallel: usize,
    /// One report per image.
    pub images: Vec<ImageReport>,
    /// The sweep points (empty without a sweep).
    pub sweeps: Vec<SweepRow>,
}

struct Published {
    repo: String,
    tag: String,
    build_secs: f64,
    index_bytes: u64,
    image_bytes: u64,
    layers: usize,
    lazy_layers: usize,
}

fn log(o: &RunOptions, msg: &str) {
    if o.verbose {
        eprintln!("[bench] {msg}");
    }
}

/// Which prefetch artifacts an index gets from its image's trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrefetchFrom {
    /// Every span of each traced file: the model's lazy + prefetch start
    /// replays whole files and counts on nothing being fetched on demand.
    WholeFiles,
    /// Only the spans holding each file's traced byte ranges (the whole file
    /// where the trace has none), as `create --prefetch-files-json` plans a
    /// recorded trace: the real runs read just those bytes.
    Ranges,
}

fn build_and_publish(
    img: &ImageSpec,
    registry: &str,
    span: u64,
    min_layer: u64,
    work: &Path,
    prefetch: PrefetchFrom,
) -> Result<Published> {
    let src_ref: ImageRef = img
        .source
        .parse()
        .map_err(|e| anyhow!("{}: {e}", img.source))?;
    let source = open_source(
        &src_ref,
        &RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )?;
    let store_dir = work.join(format!("store-{}-{span}-{min_layer}", img.name));
    let _ = std::fs::remove_dir_all(&store_dir);
    let store = Store::open(&store_dir)?;
    let opts = CreateOptions {
        span_size: span,
        min_layer_size: min_layer,
        prefetch_requests: img
            .trace
            .files
            .iter()
            .map(|f| {
                let path = format!("/{}", f.path);
                match prefetch {
                    // The record of a real run: paths as the mount names them.
                    PrefetchFrom::Ranges => PrefetchRequest::recorded(
                        path,
                        (!f.ranges.is_empty()).then(|| f.ranges.clone()),
                    ),
                    PrefetchFrom::WholeFiles => PrefetchRequest::whole(path),
                }
            })
            .collect(),
        force: true,
        ..Default::default()
    };
    let t0 = Instant::now();
    let created = create(&*source, &store, &opts, &Silent)
        .with_context(|| format!("soci create {}", img.source))?;
    let build_secs = t0.elapsed().as_secs_f64();
    let repo = format!("bench/{}", img.name);
    let tag = format!("s{}-m{}", span >> 10, min_layer >> 10);
    let dest: ImageRef = format!("{registry}/{repo}:{tag}")
        .parse()
        .map_err(|e| anyhow!("{e}"))?;
    publish(
        &created,
        &*source,
        &store,
        &dest,
        IndexVersion::V2,
        &RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
        &Silent,
    )?;
    let p = created.platforms.first().ok_or_else(|| {
        anyhow!(
            "{}: no layer was indexed (all below --min-layer-size?)",
            img.name
        )
    })?;
    let index_bytes = p.index.bytes.len() as u64 + p.ztocs.iter().map(|z| z.ztoc_size).sum::<u64>();
    let image_bytes = p.image.manifest.layers.iter().map(|l| l.size as u64).sum();
    let _ = std::fs::remove_dir_all(&store_dir);
    Ok(Published {
        repo,
        tag,
        build_secs,
        index_bytes,
        image_bytes,
        layers: p.image.manifest.layers.len(),
        lazy_layers: p.ztocs.len(),
    })
}

fn floor_of(l: &LazyOutcome) -> u64 {
    l.floor_span_bytes + l.index_bytes + l.pulled_bytes
}

fn measure_lazy(
    proxy: &Proxy,
    p: &Published,
    trace: &Trace,
    opts: LazyOptions,
    dir: &Path,
) -> Result<Measure> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let before = proxy.traffic();
    let out = lazy_start(&proxy.host(), &p.repo, &p.tag, trace, opts, dir)?;
    let mut m = Measure::from(out.time.as_secs_f64(), proxy.traffic() - before);
    m.lazy = Some(out);
    Ok(m)
}

/// What every step of a run shares: the options, the registry behind the
/// shaping proxy, and the scratch directory.
struct Bench<'a> {
    o: &'a RunOptions,
    proxy: &'a Proxy,
    /// `host:port` of the registry itself (publishing does not go through the proxy).
    registry: String,
    work: &'a Path,
}

/// Runs everything; prints progress; returns the report.
pub fn run(images: &[ImageSpec], o: &RunOptions, command: &str) -> Result<Report> {
    std::fs::create_dir_all(&o.work_dir)?;
    let work = tempfile::tempdir_in(&o.work_dir)?;
    let registry = soci_testkit::Registry::start()
        .context("starting the local registry (apt-get install -y docker-registry)")?;
    let proxy = Proxy::start(
        registry.addr(),
        o.profiles
            .first()
            .cloned()
            .unwrap_or_else(|| Profile::new(0, Default::default())),
    )?;
    let bench = Bench {
        o,
        proxy: &proxy,
        registry: registry.host(),
        work: work.path(),
    };
    let mut reports = Vec::new();
    for img in images {
        reports.push(bench.image(img)?);
    }
    let sweeps = bench.sweeps(images)?;
    Ok(Report {
        command: command.to_string(),
        machine: format!(
            "{} cores",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        ),
        span_size: o.span_size,
        min_layer_size: o.min_layer_size,
        parallel: o.batch.parallel,
        images: reports,
        sweeps,
    })
}

impl Bench<'_> {
    /// One image: index and publish it, then every network profile.
    fn image(&self, img: &ImageSpec) -> Result<ImageReport> {
        let o = self.o;
        // Without a trace of its own (an image given with --real-run only),
        // the model replays what the real lazy run recorded, so the floor is
        // that of the byte ranges the workload actually read.
        let recorded_trace = img.trace.files.is_empty() && o.real_run.is_some();
        let real = match &o.real_run {
            Some(r) => Some(self.real_images(img, r)?),
            None => None,
        };
        let traced;
        let img = match &real {
            Some((_, _, trace)) if recorded_trace => {
                traced = ImageSpec {
                    trace: trace.clone(),
                    ..img.clone()
                };
                &traced
            }
            _ => img,
        };
        log(
            o,
            &format!("{}: soci create + publish to {}", img.name, self.registry),
        );
        let p = build_and_publish(
            img,
            &self.registry,
            o.span_size,
            o.min_layer_size,
            self.work,
            PrefetchFrom::WholeFiles,
        )?;
        log(
            o,
            &format!(
                "{}: {} layers ({} lazy), {:.1} MB, index built in {:.2}s",
                img.name,
                p.layers,
                p.lazy_layers,
                p.image_bytes as f64 / 1e6,
                p.build_secs
            ),
        );
        let mut results = Vec::new();
        for prof in &o.profiles {
            let mut result = self.profile(img, &p, prof)?;
            if let (Some(r), Some((plain, recorded, _))) = (&o.real_run, &real) {
                let mut rr = self.real_profile(img, r, plain, recorded, prof)?;
                if recorded_trace {
                    rr.floor_bytes = result
                        .ranges
                        .as_ref()
                        .and_then(|m| m.lazy.as_ref())
                        .map(floor_of);
                }
                result.real = Some(rr);
            }
            results.push(result);
        }
        Ok(ImageReport {
            name: img.name.clone(),
            source: img.source.clone(),
            layers: p.layers,
            lazy_layers: p.lazy_layers,
            image_bytes: p.image_bytes,
            index_build_secs: p.build_secs,
            index_bytes: p.index_bytes,
            index_share: p.index_bytes as f64 / p.image_bytes.max(1) as f64,
            trace_files: img.trace.files.len(),
            trace_file_bytes: img.trace.files.iter().map(|f| f.size).sum(),
            trace_range_bytes: img
                .trace
                .files
                .iter()
                .flat_map(|f| f.ranges.iter().map(|r| r.1.min(f.size.saturating_sub(r.0))))
                .sum(),
            results,
        })
    }

    /// One image on one network profile: the full pull, then the lazy starts
    /// (on demand, with prefetch, and traced ranges only when the trace has
    /// them), each checked byte for byte against the full pull.
    fn profile(&self, img: &ImageSpec, p: &Published, prof: &Profile) -> Result<ProfileResult> {
        let o = self.o;
        self.proxy.set_profile(prof.clone());
        let full_dir = self.work.join("full");
        let _ = std::fs::remove_dir_all(&full_dir);
        let before = self.proxy.traffic();
        let full = full_pull(&self.proxy.host(), &p.repo, &p.tag, &full_dir)?;
        let fullm = Measure::from(full.time.as_secs_f64(), self.proxy.traffic() - before);
        log(
            o,
            &format!(
                "{} {}: full pull {:.2}s {:.1} MB",
                img.name,
                prof.name,
                fullm.secs,
                fullm.bytes as f64 / 1e6
            ),
        );
        let lazy_dir = self.work.join("lazy");
        let lazy_checked = |mode, ranges| -> Result<Measure> {
            let opts = LazyOptions {
                mode,
                ranges,
                batch: o.batch,
            };
            let mut m = measure_lazy(self.proxy, p, &img.trace, opts, &lazy_dir)?;
            m.verified_files = verify_lazy(&img.trace, &lazy_dir, &full, ranges)?;
            Ok(m)
        };
        let lazy = lazy_checked(LazyMode::OnDemand, false)?;
        let prefetch = lazy_checked(LazyMode::Prefetch, false)?;
        let ranges = if img.trace.has_ranges() {
            Some(lazy_checked(LazyMode::OnDemand, true)?)
        } else {
            None
        };
        let floor = floor_of(lazy.lazy.as_ref().unwrap());
        log(o, &format!("{} {}: lazy {:.2}s {:.1} MB {} req; prefetch {:.2}s {:.1} MB {} req; floor {:.1} MB",
            img.name, prof.name, lazy.secs, lazy.bytes as f64 / 1e6, lazy.requests, prefetch.secs, prefetch.bytes as f64 / 1e6, prefetch.requests, floor as f64 / 1e6));
        let _ = std::fs::remove_dir_all(&full_dir);
        let _ = std::fs::remove_dir_all(&lazy_dir);
        Ok(ProfileResult {
            profile: prof.clone(),
            lazy_over_floor: lazy.bytes as f64 / floor.max(1) as f64,
            lazy_full_time: lazy.secs / fullm.secs,
            lazy_full_bytes: lazy.bytes as f64 / fullm.bytes.max(1) as f64,
            prefetch_full_time: prefetch.secs / fullm.secs,
            prefetch_full_bytes: prefetch.bytes as f64 / fullm.bytes.max(1) as f64,
            floor_bytes: floor,
            full: fullm,
            lazy,
            prefetch,
            ranges,
            real: None,
        })
    }

    /// The images of the real runs: the index without prefetch artifacts, and
    /// the index with the prefetch recorded by a first (unmeasured) lazy run
    /// of it through the proxy at the first profile.
    fn real_images(
        &self,
        img: &ImageSpec,
        real: &crate::real::RealRun,
    ) -> Result<(Published, Published, Trace)> {
        let o = self.o;
        let plain_spec = ImageSpec {
            name: format!("{}-real", img.name),
            source: img.source.clone(),
            trace: Trace::default(),
        };
        let plain = build_and_publish(
            &plain_spec,
            &self.registry,
            o.span_size,
            o.min_layer_size,
            self.work,
            PrefetchFrom::WholeFiles,
        )?;
        if let Some(prof) = o.profiles.first() {
            self.proxy.set_profile(prof.clone());
        }
        let record = self.work.join(format!("{}-recorded.json", img.name));
        crate::real::measure(
            real,
            self.proxy,
            &plain.repo,
            &plain.tag,
            Some(crate::real::LazyMount {
                record: Some(&record),
                cache_dir: None,
            }),
            self.work,
        )?;
        let trace = Trace::load(&record)?;
        log(
            o,
            &format!(
                "{}: real run recorded {} files",
                img.name,
                trace.files.len()
            ),
        );
        let recorded_spec = ImageSpec {
            name: format!("{}-recorded", img.name),
            source: img.source.clone(),
            trace: trace.clone(),
        };
        let recorded = build_and_publish(
            &recorded_spec,
            &self.registry,
            o.span_size,
            o.min_layer_size,
            self.work,
            PrefetchFrom::Ranges,
        )?;
        Ok((plain, recorded, trace))
    }

    /// The three real runs on one profile.
    fn real_profile(
        &self,
        img: &ImageSpec,
        real: &crate::real::RealRun,
        plain: &Published,
        recorded: &Published,
        prof: &Profile,
    ) -> Result<crate::real::RealResult> {
        self.proxy.set_profile(prof.clone());
        let m = |p: &Published, lazy: bool, cache: Option<&Path>| {
            let mount = lazy.then_some(crate::real::LazyMount {
                record: None,
                cache_dir: cache,
            });
            crate::real::measure(real, self.proxy, &p.repo, &p.tag, mount, self.work)
        };
        let (mut full, mut lazy, mut prefetch, mut warm) = (vec![], vec![], vec![], vec![]);
        let mut kept = vec![];
        let cache = self.work.join("real-span-cache");
        // Rounds interleave the strategies, so a burst of load on the shared
        // machine hits all of them rather than one.
        for round in 0..real.rounds.max(1) {
            full.push(m(plain, false, None)?);
            let _ = std::fs::remove_dir_all(&cache);
            lazy.push(m(plain, true, Some(&cache))?);
            // The same cache directory again: every span the workload reads is
            // on disk, so this is the FUSE path's own cost.
            warm.push(m(plain, true, Some(&cache))?);
            // And on a mount kept up between runs (page cache warm too).
            kept.push(crate::real::measure_kept(
                real,
                self.proxy,
                &plain.repo,
                &plain.tag,
                &cache,
                self.work,
            )?);
            let _ = std::fs::remove_dir_all(&cache);
            prefetch.push(m(recorded, true, None)?);
            let last =
                |v: &Vec<crate::real::RealMeasure>| v.last().map(|x| x.measure.secs).unwrap_or(0.0);
            log(self.o, &format!("{} {} round {}: real full {:.2}s; lazy {:.2}s; lazy+recorded prefetch {:.2}s; workload on unpacked {:.2}s, on warm mount {:.2}s",
                img.name, prof.name, round + 1, last(&full), last(&lazy), last(&prefetch),
                full.last().map(|x| x.workload_secs).unwrap_or(0.0), warm.last().map(|x| x.workload_secs).unwrap_or(0.0)));
        }
        let mut ls = Vec::new();
        for _ in 0..real.rounds.max(1) {
            ls.push(crate::real::measure_mount_ls(
                real,
                self.proxy,
                &plain.repo,
                &plain.tag,
                self.work,
            )?);
        }
        let mount_ls = crate::real::median_by(ls, |l| l.secs);
        log(self.o, &format!("{} {}: soci mount to the first `ls /`: {:.2}s, {} requests, {:.2} MB ({:.2} MB index and zTOCs)",
            img.name, prof.name, mount_ls.secs, mount_ls.measure.requests, mount_ls.measure.bytes as f64 / 1e6, mount_ls.index_bytes as f64 / 1e6));
        let (full, lazy, prefetch, warm) = (
            crate::real::Rounds::of(full),
            crate::real::Rounds::of(lazy),
            crate::real::Rounds::of(prefetch),
            crate::real::Rounds::of(warm),
        );
        let mb = |r: &crate::real::Rounds| r.median.measure.bytes as f64 / 1e6;
        log(self.o, &format!("{} {}: real full {:.2}s {:.1} MB; lazy {:.2}s {:.1} MB; lazy+recorded prefetch {:.2}s {:.1} MB (medians of {})",
            img.name, prof.name, full.median.measure.secs, mb(&full), lazy.median.measure.secs, mb(&lazy), prefetch.median.measure.secs, mb(&prefetch), real.rounds.max(1)));
        let mut r = crate::real::RealResult::new(full, lazy, prefetch, warm);
        r.kept = Some(crate::real::Rounds::of(kept));
        r.mount_ls = Some(mount_ls);
        Ok(r)
    }

    /// The sweeps: on one image, first profile, on-demand lazy start.
    fn sweeps(&self, images: &[ImageSpec]) -> Result<Vec<SweepRow>> {
        let o = self.o;
        let sweep_img = match &o.sweep_image {
            Some(n) => images.iter().find(|i| &i.name == n),
            None => images.first(),
        };
        let (Some(img), Some(prof)) = (sweep_img, o.profiles.first()) else {
            return Ok(Vec::new());
        };
        self.proxy.set_profile(prof.clone());
        let mut seen_layer_sets = std::collections::HashSet::new();
        let mut rows = Vec::new();
        for (span, min_layer) in sweep_points(o) {
            if let Some(row) = self.sweep_point(img, prof, span, min_layer, &mut seen_layer_sets)? {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// One sweep point; `None` when it could not be built or would measure the
    /// same lazy layers as an earlier `--min-layer-size` point.
    fn sweep_point(
        &self,
        img: &ImageSpec,
        prof: &Profile,
        span: u64,
        min_layer: u64,
        seen_layer_sets: &mut std::collections::HashSet<usize>,
    ) -> Result<Option<SweepRow>> {
        let o = self.o;
        let p = match build_and_publish(
            img,
            &self.registry,
            span,
            min_layer,
            self.work,
            PrefetchFrom::WholeFiles,
        ) {
            Ok(p) => p,
            Err(e) => {
                log(o, &format!("sweep span {span} min {min_layer}: {e:#}"));
                return Ok(None);
            }
        };
        if span == o.span_size
            && o.min_layer_sweep.contains(&min_layer)
            && !seen_layer_sets.insert(p.lazy_layers)
        {
            // same lazy layers as an earlier --min-layer-size point: nothing new to measure
            log(o, &format!("sweep --min-layer-size {min_layer}: same {} lazy layers as an earlier point, skipped", p.lazy_layers));
            return Ok(None);
        }
        let lazy = measure_lazy(
            self.proxy,
            &p,
            &img.trace,
            LazyOptions {
                mode: LazyMode::OnDemand,
                ranges: false,
                batch: o.batch,
            },
            &self.work.join("sweep"),
        )?;
        let floor = floor_of(lazy.lazy.as_ref().unwrap());
        log(
            o,
            &format!(
                "sweep {} span {} KiB min-layer {} KiB: {} lazy layers, {:.2}s {:.1} MB {} req",
                img.name,
                span >> 10,
                min_layer >> 10,
                p.lazy_layers,
                lazy.secs,
                lazy.bytes as f64 / 1e6,
                lazy.requests
            ),
        );
        Ok(Some(SweepRow {
            image: img.name.clone(),
            profile: prof.name.clone(),
            span_size: span,
            min_layer_size: min_layer,
            lazy_layers: p.lazy_layers,
            index_bytes: p.index_bytes,
            lazy,
            floor_bytes: floor,
        }))
    }
}

/// (span size, min layer size) points of the sweeps: each span size at the
/// run's min layer size, then each min layer size at the run's span size.
fn sweep_points(o: &RunOptions) -> Vec<(u64, u64)> {
    let mut points: Vec<(u64, u64)> = o
        .span_sweep
        .iter()
        .map(|&s| (s, o.min_layer_size))
        .collect();
    for &m in &o.min_layer_sweep {
        if !points.contains(&(o.span_size, m)) {
            points.push((o.span_size, m));
        }
    }
    points
}
