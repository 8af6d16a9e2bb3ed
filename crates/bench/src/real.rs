//! Real runs (`--real-run`): the image started as a container by soci-run and
//! timed until the workload's first stdout line (its ready line) or its exit,
//! through the shaping proxy: the full pull + run, the lazy mount + run (a
//! `soci mount` child), and the lazy mount with the prefetch recorded by a
//! first lazy run (`--record`) built into the index. Needs root, runc (else the
//! chroot fallback) and the `soci` binary (it runs `soci mount` and `soci run-init`).
use crate::proxy::Proxy;
use crate::startup::Measure;
use anyhow::{bail, Context, Result};
use soci_oci::registry::{RegistryOptions, RegistrySource};
use soci_run::{Cancel, RootfsMode, RunOptions as ContainerOptions, RuntimeChoice};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// How the real runs start the container.
#[derive(Debug, Clone)]
pub struct RealRun {
    /// The `soci` binary (for `soci mount` and `soci run-init`).
    pub soci: PathBuf,
    /// The workload; empty: the image's Entrypoint + Cmd.
    pub cmd: Vec<String>,
    /// Rounds of each real strategy per profile (the report keeps the median
    /// and the range): on a shared machine one run is noise.
    pub rounds: usize,
}

impl RealRun {
    /// `soci` next to this executable, else on PATH.
    pub fn find_soci() -> Result<PathBuf> {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("soci")))
            .filter(|p| p.is_file());
        let on_path = || {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join("soci"))
                .find(|p| p.is_file())
        };
        beside
            .or_else(on_path)
            .context("--real-run needs the soci binary next to soci-bench or on PATH")
    }
}

/// One real run: the proxy's count, and the workload's own time.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RealMeasure {
    /// Start to the first stdout line (else the exit), the proxy's bytes.
    #[serde(flatten)]
    pub measure: Measure,
    /// Root filesystem ready (pulled and unpacked, or mounted) to the first
    /// stdout line: the workload's time on that root filesystem.
    pub workload_secs: f64,
    /// The lazy mount's span bytes and requests (its final line).
    pub mount: serde_json::Value,
}

/// The median of rounds of one strategy, with every round's seconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Rounds {
    /// The round with the median `secs` (for an even count, the lower middle).
    #[serde(flatten)]
    pub median: RealMeasure,
    /// Every round's `secs`, in run order.
    pub rounds_secs: Vec<f64>,
    /// Every round's `workload_secs`, in run order.
    pub rounds_workload_secs: Vec<f64>,
}

impl Rounds {
    /// The median round of `v` (not empty).
    pub fn of(v: Vec<RealMeasure>) -> Rounds {
        let rounds_secs = v.iter().map(|m| m.measure.secs).collect();
        let rounds_workload_secs = v.iter().map(|m| m.workload_secs).collect();
        Rounds {
            median: median_by(v, |m| m.measure.secs),
            rounds_secs,
            rounds_workload_secs,
        }
    }

    /// The median of the workload times (rootfs ready to first line).
    pub fn median_workload(&self) -> f64 {
        median(&self.rounds_workload_secs)
    }

    /// (min, max) of `secs`.
    pub fn range(&self) -> (f64, f64) {
        range(&self.rounds_secs)
    }
}

/// The median of `v` (0 when empty; lower middle for an even count).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    median_by(v.to_vec(), |x| *x)
}

/// The element of `v` (not empty) with the median `key` (lower middle for an
/// even count).
pub fn median_by<T>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    v.swap_remove((v.len() - 1) / 2)
}

/// (min, max) of `v`.
pub fn range(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, 0f64), |(lo, hi), x| {
        (lo.min(*x), hi.max(*x))
    })
}

/// The real strategies on one network profile, each the median of its rounds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RealResult {
    /// Full pull + unpack + run. Its `workload_secs` is the run on the
    /// unpacked image (the warm mount's baseline).
    pub full: Rounds,
    /// Lazy mount + run (no prefetch artifacts), empty span cache.
    pub lazy: Rounds,
    /// Lazy mount + run, the index carrying the recorded prefetch.
    pub prefetch: Rounds,
    /// Lazy mount + run with every span the workload reads already in the
    /// on-disk span cache (a second mount of the same cache directory).
    pub warm: Rounds,
    /// `lazy.secs / full.secs` (medians).
    pub lazy_full_time: f64,
    /// `prefetch.secs / full.secs` (medians).
    pub prefetch_full_time: f64,
    /// `lazy.bytes / full.bytes`.
    pub lazy_full_bytes: f64,
    /// The warm mount's workload time over the unpacked image's (medians).
    pub warm_unpacked_workload: f64,
    /// The floor of what the workload read: index manifest + zTOCs + layers
    /// without a zTOC + the compressed bytes of the spans holding the byte
    /// ranges the recorded run read (absent when the model's trace is not the
    /// recorded one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_bytes: Option<u64>,
    /// `soci mount` to the first `ls /` answer (median round).
    pub mount_ls: Option<MountLs>,
    /// The workload on a mount kept up between runs (its second run there):
    /// spans cached and the files in the kernel's page cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<Rounds>,
}

impl RealResult {
    /// Ratios from the measures.
    pub fn new(full: Rounds, lazy: Rounds, prefetch: Rounds, warm: Rounds) -> RealResult {
        let (f, l, p) = (
            &full.median.measure,
            &lazy.median.measure,
            &prefetch.median.measure,
        );
        RealResult {
            lazy_full_time: l.secs / f.secs.max(1e-9),
            prefetch_full_time: p.secs / f.secs.max(1e-9),
            lazy_full_bytes: l.bytes as f64 / f.bytes.max(1) as f64,
            warm_unpacked_workload: warm.median_workload() / full.median_workload().max(1e-9),
            floor_bytes: None,
            mount_ls: None,
            kept: None,
            full,
            lazy,
            prefetch,
            warm,
        }
    }
}

/// How a real run mounts the image lazily.
#[derive(Debug, Clone, Copy, Default)]
pub struct LazyMount<'a> {
    /// `soci mount --record FILE`: what the workload read.
    pub record: Option<&'a Path>,
    /// `soci mount --cache-dir DIR` (default: a fresh temporary one).
    pub cache_dir: Option<&'a Path>,
}

/// One real run of `host/repo:tag` through `proxy`: with `lazy` a `soci
/// mount` child serves the root filesystem, else it is pulled in full. Timed
/// until the first stdout line, else the exit; the bytes are the proxy's count.
pub fn measure(
    real: &RealRun,
    proxy: &Proxy,
    repo: &str,
    tag: &str,
    lazy: Option<LazyMount<'_>>,
    work: &Path,
) -> Result<RealMeasure> {
    let before = proxy.traffic();
    let started = Instant::now();
    let (image, source) = proxied_source(proxy, repo, tag)?;
    // An empty store: the mount must find the index in the registry.
    let store = work.join("real-store");
    let _ = std::fs::remove_dir_all(&store);
    let mode = if let Some(lazy) = lazy {
        let (soci, image, store) = (real.soci.clone(), image.clone(), store.clone());
        let record = lazy.record.map(Path::to_path_buf);
        let cache_dir = lazy.cache_dir.map(Path::to_path_buf);
        RootfsMode::Lazy(Box::new(move |mountpoint: &Path| {
            mount_command(
                &soci,
                &image,
                mountpoint,
                &store,
                cache_dir.as_deref(),
                record.as_deref(),
            )
        }))
    } else {
        RootfsMode::Full
    };
    run_container(real, &source, &image, mode, started, work, proxy, before)
}

/// Runs the workload once with `mode`; timed from `started`, the proxy's
/// count since `before`.
#[allow(clippy::too_many_arguments)]
fn run_container(
    real: &RealRun,
    source: &RegistrySource,
    image: &str,
    mode: RootfsMode,
    started: Instant,
    work: &Path,
    proxy: &Proxy,
    before: crate::proxy::Traffic,
) -> Result<RealMeasure> {
    let opts = ContainerOptions {
        mode,
        platform: soci_oci::source::PlatformChoice::Host,
        runtime: RuntimeChoice::Auto,
        init_command: vec![real.soci.clone().into_os_string(), "run-init".into()],
        entrypoint: None,
        cmd: real.cmd.clone(),
        tmp_dir: Some(work.to_path_buf()),
        upper_dir: None,
        mount_password: None,
        inherit_stdin: false,
        started,
    };
    let report = soci_run::run(source, &opts, &mut std::io::sink(), &Cancel::new())
        .with_context(|| format!("real run of {image}"))?;
    if report.exit_code != 0 {
        bail!(
            "real run of {image}: the workload {:?} exited with {}",
            report.command,
            report.exit_code
        );
    }
    let secs = report.first_line_secs.unwrap_or(report.exit_secs);
    Ok(RealMeasure {
        measure: Measure::from(secs, proxy.traffic() - before),
        workload_secs: secs - report.rootfs_secs,
        mount: report.mount,
    })
}

/// The workload on a mount kept up between runs, as a snapshotter keeps its
/// mounts: `soci mount` of the image with the span cache `cache_dir`, the
/// workload run twice on it (`soci run --rootfs`), the second run measured
/// (its files are then in the kernel's page cache, as after a container
/// restart on the same node).
pub fn measure_kept(
    real: &RealRun,
    proxy: &Proxy,
    repo: &str,
    tag: &str,
    cache_dir: &Path,
    work: &Path,
) -> Result<RealMeasure> {
    let (image, source) = proxied_source(proxy, repo, tag)?;
    let mp = work.join("kept-mount");
    let store = work.join("kept-store");
    let mut mount = MountChild::start(real, &image, &mp, &store, Some(cache_dir))?;
    let measured = match mount.mounted.take().expect("set by start") {
        Ok(()) => {
            let mut last = Err(anyhow::anyhow!("no run"));
            for _ in 0..2 {
                let mode = RootfsMode::Existing(mp.clone());
                let before = proxy.traffic();
                last = run_container(
                    real,
                    &source,
                    &image,
                    mode,
                    Instant::now(),
                    work,
                    proxy,
                    before,
                );
                if last.is_err() {
                    break;
                }
            }
            last
        }
        Err(e) => Err(e),
    };
    mount.stop();
    measured.with_context(|| format!("workload on a kept mount of {image}"))
}

/// `soci mount` of the image through the proxy until the first `ls /`
/// answer: what a mount costs before any file is read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MountLs {
    /// Start of `soci mount` to the listing of `/` (names and types).
    pub secs: f64,
    /// Entries in `/`.
    pub entries: usize,
    /// Proxy count up to then: requests (round trips), bytes down.
    #[serde(flatten)]
    pub measure: Measure,
    /// Of those bytes: SOCI index manifest, zTOCs and prefetch artifacts
    /// (the mount's `index_bytes`).
    pub index_bytes: u64,
}

/// Mounts `host/repo:tag` (an empty store: the index comes from the registry)
/// and lists `/`; the mount is then stopped (SIGTERM) and its final line read.
pub fn measure_mount_ls(
    real: &RealRun,
    proxy: &Proxy,
    repo: &str,
    tag: &str,
    work: &Path,
) -> Result<MountLs> {
    let image = format!("{}/{repo}:{tag}", proxy.host());
    let mp = work.join("mount-ls");
    let store = work.join("mount-ls-store");
    let before = proxy.traffic();
    let started = Instant::now();
    let mut mount = MountChild::start(real, &image, &mp, &store, None)?;
    let listed = match mount.mounted.take().expect("set by start") {
        Ok(()) => std::fs::read_dir(&mp)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok())
                    .count()
            })
            .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    let secs = started.elapsed().as_secs_f64();
    let traffic = proxy.traffic() - before;
    let last = mount.stop();
    let entries = listed.with_context(|| format!("mount of {image}"))?;
    let v: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
    Ok(MountLs {
        secs,
        entries,
        measure: Measure::from(secs, traffic),
        index_bytes: v["index_bytes"].as_u64().unwrap_or(0),
    })
}

/// `soci mount IMAGE MP --json --plain-http --store STORE [--cache-dir DIR]
/// [--record FILE]`.
fn mount_command(
    soci: &Path,
    image: &str,
    mp: &Path,
    store: &Path,
    cache_dir: Option<&Path>,
    record: Option<&Path>,
) -> Command {
    let mut c = Command::new(soci);
    c.arg("mount")
        .arg(image)
        .arg(mp)
        .args(["--json", "--plain-http", "--store"])
        .arg(store);
    if let Some(r) = record {
        c.arg("--record").arg(r);
    }
    if let Some(d) = cache_dir {
        c.arg("--cache-dir").arg(d);
    }
    c
}

/// The registry source of `repo:tag` through `proxy`, and its reference.
fn proxied_source(proxy: &Proxy, repo: &str, tag: &str) -> Result<(String, RegistrySource)> {
    let image = format!("{}/{repo}:{tag}", proxy.host());
    let reference = image.parse().map_err(|e| anyhow::anyhow!("{image}: {e}"))?;
    let source = RegistrySource::new(
        reference,
        &RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )?;
    Ok((image, source))
}

/// A `soci mount` child (an empty store: the index comes from the registry).
struct MountChild {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    /// Whether its first line said `mounted` (taken once).
    mounted: Option<Result<()>>,
}

impl MountChild {
    /// Starts `soci mount IMAGE MP --json --plain-http --store STORE
    /// [--cache-dir DIR]` and reads its first line.
    fn start(
        real: &RealRun,
        image: &str,
        mp: &Path,
        store: &Path,
        cache_dir: Option<&Path>,
    ) -> Result<MountChild> {
        use std::io::BufRead;
        let _ = std::fs::remove_dir_all(store);
        std::fs::create_dir_all(mp)?;
        let mut child = mount_command(&real.soci, image, mp, store, cache_dir, None)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {} mount", real.soci.display()))?;
        let stdout = child.stdout.take().context("mount stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().transpose()?.unwrap_or_default();
        let mounted = if first.contains("\"mounted\"") {
            Ok(())
        } else {
            Err(anyhow::anyhow!("soci mount printed {first:?}"))
        };
        Ok(MountChild {
            child,
            lines,
            mounted: Some(mounted),
        })
    }

    /// SIGTERM, then its last line (the stats) once it has exited.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status();
        let last = self.lines.by_ref().map_while(|l| l.ok()).last();
        let _ = self.child.wait();
        last.unwrap_or_default()
    }
}
