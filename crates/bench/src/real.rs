//! Real runs (`--real-run`): the image started as a container by soci-run and
//! timed until the workload's first stdout line (its ready line) or its exit,
//! through the shaping proxy: the full pull + run, the lazy mount + run (a
//! `soci mount` child), and the lazy mount with the prefetch recorded by a
//! first lazy run (`--record`) built into the index. Needs root, runc (else the
//! chroot fallback) and the `soci` binary (it runs `soci mount` and `soci run-init`).
use crate::proxy::Proxy;
use crate::run::Measure;
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

/// The three real strategies on one network profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RealResult {
    /// Full pull + unpack + run.
    pub full: Measure,
    /// Lazy mount + run (no prefetch artifacts).
    pub lazy: Measure,
    /// Lazy mount + run, the index carrying the recorded prefetch.
    pub prefetch: Measure,
    /// `lazy.secs / full.secs`.
    pub lazy_full_time: f64,
    /// `prefetch.secs / full.secs`.
    pub prefetch_full_time: f64,
    /// `lazy.bytes / full.bytes`.
    pub lazy_full_bytes: f64,
}

impl RealResult {
    /// Ratios from the three measures.
    pub fn new(full: Measure, lazy: Measure, prefetch: Measure) -> RealResult {
        RealResult {
            lazy_full_time: lazy.secs / full.secs.max(1e-9),
            prefetch_full_time: prefetch.secs / full.secs.max(1e-9),
            lazy_full_bytes: lazy.bytes as f64 / full.bytes.max(1) as f64,
            full,
            lazy,
            prefetch,
        }
    }
}

/// One real run of `host/repo:tag` through `proxy`: `lazy` mounts it (with
/// `record`, the mount writes what was read there). Timed until the first
/// stdout line, else the exit; the bytes are the proxy's count.
pub fn measure(
    real: &RealRun,
    proxy: &Proxy,
    repo: &str,
    tag: &str,
    lazy: bool,
    record: Option<&Path>,
    work: &Path,
) -> Result<Measure> {
    if !soci_run::is_root() {
        bail!("--real-run needs root (it mounts overlayfs and FUSE and starts containers)");
    }
    let image = format!("{}/{repo}:{tag}", proxy.host());
    let reference = image.parse().map_err(|e| anyhow::anyhow!("{image}: {e}"))?;
    let before = proxy.traffic();
    let started = Instant::now();
    let source = RegistrySource::new(
        reference,
        &RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )?;
    // An empty store: the mount must find the index in the registry.
    let store = work.join("real-store");
    let _ = std::fs::remove_dir_all(&store);
    let mode = if lazy {
        let (soci, image, store) = (real.soci.clone(), image.clone(), store.clone());
        let record = record.map(Path::to_path_buf);
        RootfsMode::Lazy(Box::new(move |mountpoint: &Path| {
            let mut c = Command::new(&soci);
            c.arg("mount")
                .arg(&image)
                .arg(mountpoint)
                .args(["--json", "--plain-http", "--store"])
                .arg(&store);
            if let Some(r) = &record {
                c.arg("--record").arg(r);
            }
            c
        }))
    } else {
        RootfsMode::Full
    };
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
    let report = soci_run::run(&source, &opts, &mut std::io::sink(), &Cancel::new())
        .with_context(|| format!("real run of {image}"))?;
    if report.exit_code != 0 {
        bail!(
            "real run of {image}: the workload {:?} exited with {}",
            report.command,
            report.exit_code
        );
    }
    let secs = report.first_line_secs.unwrap_or(report.exit_secs);
    Ok(Measure::from(secs, proxy.traffic() - before))
}
