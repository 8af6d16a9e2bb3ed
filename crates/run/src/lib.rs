//! soci-run: run an OCI image as a container, without a daemon.
//!
//! The root filesystem comes from one of two providers: the image pulled and
//! unpacked in full ([`unpack`], the baseline) or served lazily by a
//! `soci mount` child process through its SOCI index ([`lazy`]). Over it
//! goes a writable layer (kernel overlayfs, upper and work directories in a
//! temporary directory), and the image's process runs on that root as a
//! container: an OCI runtime bundle started with runc, or chroot plus new
//! namespaces where runc is absent ([`chroot`]). Every mount and temporary
//! directory is a guard undone on drop, on errors and on SIGINT/SIGTERM
//! ([`signals`]) alike. See docs/architecture.md, "Run".
pub mod bundle;
pub mod chroot;
mod error;
pub mod image;
pub mod lazy;
pub mod mounts;
mod paths;
pub mod runtime;
pub mod signals;
pub mod unpack;
pub mod user;

pub use error::{Error, Result};
pub use runtime::{Runtime, RuntimeChoice};
pub use signals::{Cancel, SignalWatcher};

use soci_oci::source::{ImageSource, PlatformChoice};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the root filesystem comes from.
pub enum RootfsMode {
    /// Pull every layer and unpack it in full (the baseline).
    Full,
    /// A `soci mount` child: the function makes its command for a mount point.
    Lazy(Box<dyn Fn(&Path) -> Command + Send + Sync>),
    /// A directory that already holds the image's root filesystem (a `soci
    /// mount` kept up between runs, as a snapshotter keeps its mounts): the
    /// overlay's lower layer, used as it is and left in place.
    Existing(PathBuf),
}

impl std::fmt::Debug for RootfsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RootfsMode::Full => "Full",
            RootfsMode::Lazy(_) => "Lazy",
            RootfsMode::Existing(_) => "Existing",
        })
    }
}

/// How to run one container.
#[derive(Debug)]
pub struct RunOptions {
    /// The root filesystem provider.
    pub mode: RootfsMode,
    /// The platform's image manifest to run.
    pub platform: PlatformChoice,
    /// runc, chroot, or whichever is there.
    pub runtime: RuntimeChoice,
    /// The command that runs [`chroot::stage1`] given the bundle's config.json
    /// as its last argument (the binary's hidden `run-init`).
    pub init_command: Vec<OsString>,
    /// Replaces the image's Entrypoint (empty: none).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's Cmd when not empty.
    pub cmd: Vec<String>,
    /// Where the run's temporary directory goes (default `$TMPDIR`).
    pub tmp_dir: Option<PathBuf>,
    /// Keep the writable layer here instead of in the temporary directory.
    pub upper_dir: Option<PathBuf>,
    /// The password for the mount child's `--password-stdin`.
    pub mount_password: Option<String>,
    /// Give the workload this process's stdin (else /dev/null).
    pub inherit_stdin: bool,
    /// When the run started (timings are measured from here).
    pub started: Instant,
}

/// What a run did and how long it took.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    /// `runc` or `chroot`.
    pub runtime: String,
    /// `full` or `lazy`.
    pub rootfs: String,
    /// The image manifest run.
    pub manifest: String,
    /// The process started.
    pub command: Vec<String>,
    /// The workload's exit code (128 + N when killed by signal N).
    pub exit_code: i32,
    /// The signal (SIGINT/SIGTERM) that interrupted the run, if one did.
    pub interrupted_by: Option<i32>,
    /// Seconds from the start until the root filesystem was ready.
    pub rootfs_secs: f64,
    /// Seconds from the start until the workload's first complete stdout line.
    pub first_line_secs: Option<f64>,
    /// Seconds from the start until the workload exited.
    pub exit_secs: f64,
    /// Image bytes fetched: the layers of a full pull, the mount's
    /// `bytes_fetched` for a lazy one.
    pub bytes_fetched: u64,
    /// Metadata (device nodes, owners, xattrs) a full pull could not apply here.
    pub skipped_metadata: u64,
    /// The mount child's final line (lazy only).
    pub mount: serde_json::Value,
}

/// Whether this process runs as root (effective uid 0), which `run` needs.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The exit code a shell would report for `status`.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Runs the image of `source` as `opts` says; the workload's stdout is copied
/// to `out` as it comes (its first line timed), its stderr is this process's.
/// `cancel` is what a [`SignalWatcher`] feeds.
pub fn run(
    source: &dyn ImageSource,
    opts: &RunOptions,
    out: &mut (dyn Write + Send),
    cancel: &Arc<Cancel>,
) -> Result<RunReport> {
    if !is_root() {
        return Err(Error::NotRoot);
    }
    let t0 = opts.started;
    let runtime = Runtime::find(opts.runtime)?;
    let scratch = mounts::Scratch::new(opts.tmp_dir.as_deref())?;
    // Guards, dropped in reverse order on every path out: container state,
    // overlay, mount child, then the scratch directory.
    let mut lazy_mount = None;
    let image = match &opts.mode {
        // The lazy mount starts at once, while this process reads the image's
        // config: both resolve the image, and the mount's index and zTOC
        // downloads need not wait for the config's round trips.
        RootfsMode::Lazy(make) => {
            let dir = scratch.subdir("lower")?;
            let (image, mount) = std::thread::scope(|s| {
                let image = s.spawn(|| image::load_image(source, &opts.platform));
                let mount = lazy::LazyMount::start(
                    make(&dir),
                    &dir,
                    opts.mount_password.as_deref(),
                    cancel,
                );
                (image.join(), mount)
            });
            let image = image.unwrap_or_else(|p| std::panic::resume_unwind(p));
            // The image's own error first: a mount of an image that cannot
            // be read fails too, less precisely (a started mount is stopped
            // by its guard).
            let image = image?;
            lazy_mount = Some(mount?);
            image
        }
        _ => image::load_image(source, &opts.platform)?,
    };
    let args = image::process_args(&image.config, opts.entrypoint.as_deref(), &opts.cmd)?;
    let mut report = RunReport {
        runtime: runtime.name().into(),
        manifest: image.manifest_digest.clone(),
        command: args.clone(),
        ..Default::default()
    };
    let lower = match &opts.mode {
        RootfsMode::Full => {
            report.rootfs = "full".into();
            let dir = scratch.subdir("rootfs")?;
            let u =
                unpack::unpack_image(source, &image.manifest.layers, &dir, scratch.path(), cancel)?;
            report.bytes_fetched = u.bytes_fetched;
            report.skipped_metadata = u.skipped_metadata;
            dir
        }
        RootfsMode::Lazy(_) => {
            report.rootfs = "lazy".into();
            scratch.path().join("lower")
        }
        RootfsMode::Existing(dir) => {
            report.rootfs = "existing".into();
            // overlayfs wants an absolute lower directory.
            let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("cannot use", dir, e))?;
            if !dir.is_dir() {
                return Err(Error::io(
                    "cannot use",
                    &dir,
                    std::io::Error::other("not a directory"),
                ));
            }
            dir
        }
    };
    cancel.check()?;
    let (upper, work, _work_guard) = match &opts.upper_dir {
        Some(u) => {
            std::fs::create_dir_all(u).map_err(|e| Error::io("cannot create", u, e))?;
            // overlayfs' options and runc want absolute paths.
            let u = &std::fs::canonicalize(u).map_err(|e| Error::io("cannot resolve", u, e))?;
            // overlayfs wants the work directory on the upper's file system.
            let parent = u.parent().unwrap_or(Path::new("/"));
            let w = tempfile::Builder::new()
                .prefix(".soci-run-work-")
                .tempdir_in(parent)
                .map_err(|e| Error::io("cannot create a directory in", parent, e))?;
            (u.clone(), w.path().to_path_buf(), Some(w))
        }
        None => (scratch.subdir("upper")?, scratch.subdir("work")?, None),
    };
    let merged = scratch.subdir("merged")?;
    // Docker's "init layer": the mount points of the host files bound over
    // the image's (bundle::host_files) live in a layer of their own between
    // the image and the container's writable layer, so they never show up in
    // the upper directory.
    // An image whose /etc is a symlink keeps it: a directory in the init
    // layer would hide it (the runtime then makes the mount points through
    // the link, in the writable layer).
    let init = scratch.subdir("init")?;
    let etc_is_link = std::fs::symlink_metadata(lower.join("etc"))
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    if !etc_is_link {
        let etc = init.join("etc");
        std::fs::create_dir(&etc).map_err(|e| Error::io("cannot create", &etc, e))?;
        for name in bundle::HOST_FILES {
            let f = etc.join(name);
            std::fs::write(&f, b"").map_err(|e| Error::io("cannot create", &f, e))?;
        }
    }
    let overlay = mounts::Overlay::mount(&[&init, &lower], &upper, &work, &merged)?;
    let user = user::resolve_user(&merged, image.config.user.as_deref().unwrap_or(""))?;
    let cwd = image
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    // Docker makes a missing working directory; runc and chroot would fail.
    let cwd_host = paths::resolve(&merged, Path::new(&cwd), true, true)?;
    std::fs::create_dir_all(&cwd_host).map_err(|e| Error::io("cannot create", &cwd_host, e))?;
    let env = bundle::environment(image.config.env.as_deref().unwrap_or(&[]), &user);
    let bundle_dir = scratch.subdir("bundle")?;
    let config_path = bundle_dir.join("config.json");
    let etc = scratch.subdir("etc")?;
    let binds = bundle::host_files(&etc).map_err(|e| Error::io("cannot write in", &etc, e))?;
    let spec = bundle::runtime_config(&merged, &args, &env, &cwd, &user, &binds);
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(&spec).unwrap_or_default(),
    )
    .map_err(|e| Error::io("cannot write", &config_path, e))?;
    report.rootfs_secs = t0.elapsed().as_secs_f64();
    cancel.check()?;

    let (mut cmd, runc_guard) = match &runtime {
        Runtime::Runc(runc) => {
            let c = runtime::RuncContainer {
                runc: runc.clone(),
                id: format!(
                    "soci-run-{}-{}",
                    std::process::id(),
                    scratch
                        .path()
                        .file_name()
                        .map(|n| n
                            .to_string_lossy()
                            .trim_start_matches("soci-run-")
                            .to_string())
                        .unwrap_or_default()
                ),
            };
            (c.command(&bundle_dir), Some(c))
        }
        Runtime::Chroot => {
            let (prog, rest) = opts
                .init_command
                .split_first()
                .ok_or_else(|| Error::Child {
                    what: "chroot runtime".into(),
                    detail: "no init command given".into(),
                })?;
            let mut c = Command::new(prog);
            c.args(rest).arg(&config_path);
            (c, None)
        }
    };
    cmd.stdout(Stdio::piped()).stdin(if opts.inherit_stdin {
        Stdio::inherit()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io("cannot start", runtime.name(), e))?;
    cancel.set_target(Some(match &runc_guard {
        Some(c) => signals::Target::Runc {
            pid: child.id() as i32,
            runc: c.runc.clone(),
            id: c.id.clone(),
        },
        None => signals::Target::Pid(child.id() as i32),
    }));
    let stdout = child.stdout.take();
    let (status, first_line) = std::thread::scope(|s| {
        let relay = s.spawn(move || relay(stdout, out, t0));
        let status = child.wait();
        cancel.set_target(None);
        (status, relay.join().ok().flatten())
    });
    let status = status.map_err(|e| Error::io("cannot wait for", runtime.name(), e))?;
    report.exit_secs = t0.elapsed().as_secs_f64();
    report.first_line_secs = first_line.map(|d| d.as_secs_f64());
    report.exit_code = exit_code(status);
    report.interrupted_by = cancel.signalled();
    drop(runc_guard);
    overlay.unmount()?;
    if let Some(m) = lazy_mount.take() {
        let stats = m.stop()?;
        report.bytes_fetched = stats.bytes_fetched;
        report.mount = stats.last;
    }
    drop(scratch);
    Ok(report)
}

/// Copies the workload's stdout to `out` as it comes; returns when the first
/// complete line was seen.
fn relay(
    stdout: Option<std::process::ChildStdout>,
    out: &mut (dyn Write + Send),
    t0: Instant,
) -> Option<Duration> {
    let mut stdout = stdout?;
    let mut first = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut writable = true;
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if first.is_none() && buf[..n].contains(&b'\n') {
            first = Some(t0.elapsed());
        }
        // A closed stdout (`soci run … | head -1`) must not stop the
        // workload: keep draining its pipe.
        if writable && (out.write_all(&buf[..n]).is_err() || out.flush().is_err()) {
            writable = false;
        }
    }
    first
}
