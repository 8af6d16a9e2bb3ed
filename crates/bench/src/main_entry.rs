//! The entry point shared by `cargo bench --bench startup` and `soci bench startup`.
use crate::fixtures;
use crate::proxy::Profile;
use crate::report;
use crate::run::{run, ImageSpec, Report, RunOptions};
use crate::trace::Trace;
use anyhow::{bail, Result};
use soci_image::lazy::BatchOptions;
use std::path::PathBuf;

/// What to run.
#[derive(Debug, Clone)]
pub struct StartupConfig {
    /// Images given by the user (`SRC`), each with its trace; empty: the fixture images.
    pub sources: Vec<String>,
    /// Trace files: one for all sources, or one per source.
    pub traces: Vec<PathBuf>,
    /// Restrict the fixture images to these names.
    pub only: Vec<String>,
    /// Network profiles to measure on.
    pub profiles: Vec<Profile>,
    /// Span size of the indexes built.
    pub span_size: u64,
    /// Layers smaller than this get no zTOC.
    pub min_layer_size: u64,
    /// Range requests the lazy start keeps in flight.
    pub parallel: usize,
    /// Span sizes for the sweep (empty: no sweep).
    pub span_sweep: Vec<u64>,
    /// Min layer sizes for the sweep (empty: no sweep).
    pub min_layer_sweep: Vec<u64>,
    /// Image the sweeps run on (default: the first).
    pub sweep_image: Option<String>,
    /// Where startup.json / .svg / .md go.
    pub out_dir: PathBuf,
    /// The repository root (fixtures/traces) and the cache (target/bench-data).
    pub repo_root: PathBuf,
    /// Cache of fixture images and scratch space (`SOCI_BENCH_DATA`, else target/bench-data).
    pub data_dir: PathBuf,
    /// Print progress lines on stderr.
    pub verbose: bool,
    /// The command line, recorded in the report.
    pub command: String,
    /// Real runs too (see [`crate::real`]).
    pub real_run: Option<crate::real::RealRun>,
}

impl StartupConfig {
    /// The defaults of `soci bench startup` for a checkout at `repo_root`.
    pub fn new(repo_root: PathBuf) -> StartupConfig {
        let data_dir = std::env::var_os("SOCI_BENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root.join("target/bench-data"));
        StartupConfig {
            sources: Vec::new(),
            traces: Vec::new(),
            only: Vec::new(),
            profiles: Profile::defaults(),
            span_size: soci_ztoc::build::DEFAULT_SPAN_SIZE,
            min_layer_size: soci_image::DEFAULT_MIN_LAYER_SIZE,
            parallel: 8,
            span_sweep: vec![1 << 20, 2 << 20, 4 << 20, 8 << 20],
            min_layer_sweep: vec![0, 10 << 20, 64 << 20],
            sweep_image: Some("python".into()),
            out_dir: data_dir.join("results"),
            repo_root,
            data_dir,
            verbose: true,
            command: String::new(),
            real_run: None,
        }
    }
}

/// Picks the images, runs, prints the tables, writes the files; returns the report.
pub fn startup(cfg: &StartupConfig) -> Result<Report> {
    // Before any image is built: every real run mounts and starts containers.
    if cfg.real_run.is_some() && !soci_run::is_root() {
        bail!("--real-run needs root (it mounts overlayfs and FUSE and starts containers)");
    }
    let work_dir = cfg.data_dir.join("work");
    std::fs::create_dir_all(&work_dir)?;
    let _synthetic_dir;
    let mut sweep_image = cfg.sweep_image.clone();
    let images: Vec<ImageSpec> = if !cfg.sources.is_empty() {
        if cfg.traces.is_empty() && cfg.real_run.is_some() {
            // The real lazy run records the trace the model then replays.
        } else if cfg.traces.is_empty() {
            bail!("give a startup trace with --trace FILE (JSON from scripts/bench-fixtures.py, or one path per line)");
        }
        if cfg.traces.len() > 1 && cfg.traces.len() != cfg.sources.len() {
            bail!(
                "give one --trace for all images or one per image ({} images, {} traces)",
                cfg.sources.len(),
                cfg.traces.len()
            );
        }
        let mut v = Vec::new();
        for (i, s) in cfg.sources.iter().enumerate() {
            let t = match cfg.traces.len() {
                0 => Trace::default(),
                1 => Trace::load(&cfg.traces[0])?,
                _ => Trace::load(&cfg.traces[i])?,
            };
            let name = s
                .rsplit(['/', ':'])
                .find(|x| !x.is_empty() && *x != "latest")
                .unwrap_or("image")
                .to_string();
            v.push(ImageSpec {
                name: format!(
                    "{}{}",
                    name,
                    if cfg.sources.len() > 1 {
                        format!("-{i}")
                    } else {
                        String::new()
                    }
                ),
                source: s.clone(),
                trace: t,
            });
        }
        if sweep_image.as_deref() == Some("python") {
            sweep_image = None;
        }
        v
    } else if let Some(v) = fixtures::realistic(
        &cfg.repo_root,
        &cfg.data_dir,
        &cfg.only,
        cfg.real_run.is_some(),
    )? {
        v
    } else {
        eprintln!(
            "[bench] no cached images under {}: using a generated demo image (2 layers of ~11 MiB; the trace reads 3 libraries and 20 small modules, a few percent of it). For realistic images (Debian, Python data science) run once from a checkout: sudo scripts/bench-fixtures.py --data {}",
            cfg.data_dir.join("images").display(),
            cfg.data_dir.display()
        );
        _synthetic_dir = tempfile::tempdir_in(&work_dir)?;
        sweep_image = None;
        vec![fixtures::demo(_synthetic_dir.path())?]
    };
    if let Some(s) = &sweep_image {
        if !images.iter().any(|i| &i.name == s) {
            sweep_image = None;
        }
    }
    let opts = RunOptions {
        profiles: cfg.profiles.clone(),
        span_size: cfg.span_size,
        min_layer_size: cfg.min_layer_size,
        batch: BatchOptions {
            parallel: cfg.parallel,
            merge_gap_spans: 0,
        },
        span_sweep: cfg.span_sweep.clone(),
        min_layer_sweep: cfg.min_layer_sweep.clone(),
        sweep_image,
        work_dir,
        verbose: cfg.verbose,
        real_run: cfg.real_run.clone(),
    };
    let r = run(&images, &opts, &cfg.command)?;
    report::write_all(&r, &cfg.out_dir)?;
    Ok(r)
}
