//! soci-mount: an image's root filesystem, read-only, served lazily through
//! FUSE from its SOCI index (`soci mount`).
//!
//! [`image::open_image`] finds the index (as `verify` does), reads the zTOCs and
//! builds the merged tree ([`tree`]) from their file tables without fetching any
//! layer data (a layer without a zTOC is fetched whole and walked). [`serve`]
//! mounts it with `fuser` and answers reads from the span cache ([`cache`]):
//! only the spans that hold the bytes asked for are fetched, each checked
//! against its zTOC digest. See docs/architecture.md, "Mount".
pub mod cache;
mod error;
mod fs;
pub mod image;
pub mod record;
pub mod tree;

pub use error::{Error, Result};

use cache::SpanCache;
use image::{LayerData, MountImage};
use record::ReadLog;
use soci_oci::source::ImageSource;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Spans per range request for the prefetch artifacts' spans: one, so that
/// each span is checked and served as soon as it is in (a request's spans are
/// released together, when its last byte is in), and the program started at
/// the same time finds its first spans early.
const PREFETCH_BATCH: u64 = 1;

/// Spans per range request of `--background-fetch` (throughput, not latency).
const BACKGROUND_BATCH: u64 = 4;

/// Range requests the background fetcher keeps in flight: enough that the
/// link is busy while one request waits its round trip, few enough that each
/// span comes in soon (they share the bandwidth). One at a time, a prefetch
/// of N spans paid N round trips in a row and the workload overtook it.
const PREFETCH_WORKERS: usize = 2;

/// How long a background worker holds back for reads in flight, at most
/// (a stream of reads must not stop the prefetch for good).
const DEMAND_PRIORITY_MAX: Duration = Duration::from_millis(500);

/// How to serve a mount.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to mount (an existing directory).
    pub mountpoint: PathBuf,
    /// FUSE threads answering requests.
    pub threads: usize,
    /// Bytes of inflated spans kept in memory.
    pub memory_limit: u64,
    /// Directory of the on-disk span cache.
    pub cache_dir: PathBuf,
    /// Bytes of spans kept in `cache_dir`.
    pub cache_size: u64,
    /// After the prefetch spans, fetch every other span of each layer.
    pub background_fetch: bool,
    /// Spans fetched in the background after a read waited for a span: the
    /// ones that follow it in its layer (0: none).
    pub read_ahead: u64,
}

/// What a mount fetched and served, printed at unmount.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MountStats {
    /// Compressed bytes fetched: span ranges plus whole layers.
    pub bytes_fetched: u64,
    /// Spans fetched by range.
    pub spans_fetched: u64,
    /// Range requests made.
    pub range_requests: u64,
    /// Layers without a zTOC, fetched whole.
    pub layers_fetched_whole: u64,
    /// Bytes of the SOCI index, zTOCs and prefetch artifacts read at mount
    /// time (not in `bytes_fetched`).
    pub index_bytes: u64,
    /// Span reads answered from memory.
    pub memory_hits: u64,
    /// Span reads answered from the disk cache.
    pub disk_hits: u64,
    /// Reads answered with EIO.
    pub read_errors: u64,
    /// Distinct files read.
    pub files_read: u64,
    /// Peak resident memory of this process (`VmHWM`), bytes; 0 where
    /// /proc/self/status does not say. The memory bound (tree + memory
    /// cache + spans in flight) is checked against it.
    pub peak_rss_bytes: u64,
}

/// `VmHWM` of this process in bytes (0 if unknown).
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A finished mount: its stats and what was read.
pub struct Served {
    /// What it fetched and served.
    pub stats: MountStats,
    /// The reads seen, for `--record` (`image` left empty for the caller).
    pub recording: record::Recording,
}

enum Event {
    Signal,
    Ended,
}

fn mount_error(mountpoint: &Path, why: impl Into<String>) -> Error {
    Error::Mount {
        mountpoint: mountpoint.to_path_buf(),
        why: why.into(),
    }
}

/// Whether `mountpoint` is the mount point of a FUSE file system right now
/// (per /proc/self/mountinfo).
pub fn is_fuse_mounted(mountpoint: &Path) -> bool {
    let Ok(canon) = mountpoint.canonicalize() else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let fstype = l.split(" - ").nth(1).and_then(|r| r.split(' ').next());
        f.get(4) == Some(&want.as_str()) && fstype.is_some_and(|t| t.starts_with("fuse"))
    })
}

/// Mounts `image` and serves it until SIGINT/SIGTERM or an unmount from
/// outside; `on_mounted` is called once the mount answers. Unmounts before
/// returning, error or not.
pub fn serve(
    source: Arc<dyn ImageSource>,
    image: MountImage,
    opts: &ServeOptions,
    on_mounted: &mut dyn FnMut(),
) -> Result<Served> {
    let mp = &opts
        .mountpoint
        .canonicalize()
        .map_err(|e| mount_error(&opts.mountpoint, e.to_string()))?;
    if !Path::new("/dev/fuse").exists() {
        return Err(mount_error(
            mp,
            "/dev/fuse is missing: mounting needs the FUSE device (load the fuse module; in a container, pass --device /dev/fuse)",
        ));
    }
    match std::fs::metadata(mp) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(mount_error(mp, "not a directory")),
        Err(e) => return Err(mount_error(mp, e.to_string())),
    }
    std::fs::create_dir_all(&opts.cache_dir).map_err(|source| Error::CacheDir {
        path: opts.cache_dir.clone(),
        source,
    })?;
    let layers: Arc<Vec<LayerData>> = Arc::new(image.layers);
    let cache = SpanCache::new(
        source,
        layers.clone(),
        opts.memory_limit,
        opts.cache_dir.clone(),
        opts.cache_size,
    )
    .with_read_ahead(opts.read_ahead);
    let shared = Arc::new(fs::Shared {
        xattrs: image.tree.has_xattrs(),
        tree: image.tree,
        cache: Arc::new(cache),
        log: ReadLog::default(),
        read_errors: Default::default(),
    });
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("soci".into()),
        fuser::MountOption::Subtype("soci".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::Dev,
        fuser::MountOption::Suid,
        // fusermount3 stays behind and unmounts once this process is gone,
        // however it ended (SIGKILL included).
        fuser::MountOption::AutoUnmount,
    ];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = true;
    let fs = fs::SociFs {
        shared: shared.clone(),
    };
    let mut session = fuser::Session::new(fs, mp, &config).map_err(|e| {
        let text = e.to_string();
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied
            || text.contains("Permission denied")
            || text.contains("not permitted")
        {
            " (mounting is not permitted here: it needs read-write access to /dev/fuse and the right to mount, e.g. root, or user_allow_other in /etc/fuse.conf)"
        } else if e.kind() == std::io::ErrorKind::NotFound {
            " (is fusermount3 installed? Debian: apt-get install fuse3)"
        } else {
            " (mounting needs /dev/fuse and fusermount3, Debian package fuse3)"
        };
        mount_error(mp, format!("{}{hint}", text.trim_end()))
    })?;
    let mut unmounter = session.unmount_callable();
    let (tx, rx) = mpsc::channel::<Event>();
    let session_tx = tx.clone();
    let runner = std::thread::Builder::new()
        .name("soci-fuse".into())
        .spawn(move || {
            // Ends when the file system is unmounted, by us or from outside.
            let _ = session.run();
            let _ = session_tx.send(Event::Ended);
        })
        .map_err(|e| mount_error(mp, e.to_string()))?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| mount_error(mp, format!("cannot handle signals: {e}")))?;
    let sig_handle = signals.handle();
    let sig_tx = tx.clone();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = sig_tx.send(Event::Signal);
        }
    });
    // The mount answers once a stat of its root comes back from our threads.
    let answered = std::fs::metadata(mp);
    let root_dev = answered.as_ref().map(|m| m.dev()).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let result = match answered {
        Err(e) => Err(mount_error(mp, format!("the mount does not answer: {e}"))),
        Ok(_) => {
            on_mounted();
            start_background(shared.clone(), &layers, opts.background_fetch, stop.clone());
            Ok(())
        }
    };
    let ended = if result.is_ok() { rx.recv().ok() } else { None };
    stop.store(true, Ordering::Relaxed);
    shared.cache.close(Duration::from_secs(2));
    sig_handle.close();
    let mut ended = matches!(ended, Some(Event::Ended));
    if !ended {
        ended = unmount(mp, root_dev, &rx);
    }
    // Closing fusermount3's socket: it finds the mount gone and exits.
    let _ = unmounter.unmount();
    if ended {
        let _ = runner.join();
    }
    result?;
    let c = &shared.cache.counters;
    let stats = MountStats {
        bytes_fetched: c.bytes_fetched.load(Ordering::Relaxed) + image.bytes_fetched,
        spans_fetched: c.spans_fetched.load(Ordering::Relaxed),
        range_requests: c.requests.load(Ordering::Relaxed),
        layers_fetched_whole: image.layers_fetched_whole,
        index_bytes: image.index_bytes,
        memory_hits: c.memory_hits.load(Ordering::Relaxed),
        disk_hits: c.disk_hits.load(Ordering::Relaxed),
        read_errors: shared.read_errors.load(Ordering::Relaxed),
        files_read: 0,
        peak_rss_bytes: peak_rss(),
    };
    let recording = shared.log.recording("");
    let mut stats = stats;
    stats.files_read = recording.files.len() as u64;
    Ok(Served { stats, recording })
}

/// Unmounts `mp` while this process still serves it, and waits for the FUSE
/// loop to end; whether it ended. fusermount3's auto-unmount only acts once
/// the serving process is gone, so this is done here: a plain unmount, else a
/// lazy one (something still has a file open), and if the loop still runs
/// (open files keep a detached mount alive) the connection is aborted through
/// /sys/fs/fuse/connections, which fails whatever still uses it.
fn unmount(mp: &Path, root_dev: u64, rx: &mpsc::Receiver<Event>) -> bool {
    let run = |lazy: bool| {
        let mut c = std::process::Command::new("fusermount3");
        c.arg("-u").arg("-q");
        if lazy {
            c.arg("-z");
        }
        c.arg("--").arg(mp);
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !run(false) && is_fuse_mounted(mp) {
        run(true);
    }
    if rx_wait_ended(rx, Duration::from_secs(5)).is_some() {
        return true;
    }
    if root_dev != 0 {
        // Linux's dev_t: minor in bits 0-7 and 20-31.
        let minor = (root_dev & 0xff) | ((root_dev >> 12) & 0xfff00);
        let _ = std::fs::write(format!("/sys/fs/fuse/connections/{minor}/abort"), "1");
    }
    rx_wait_ended(rx, Duration::from_secs(5)).is_some()
}

/// Waits up to `timeout` for the FUSE loop to end.
fn rx_wait_ended(rx: &mpsc::Receiver<Event>, timeout: Duration) -> Option<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(Event::Ended) => return Some(()),
            Ok(Event::Signal) => continue,
            Err(_) => return None,
        }
    }
}

/// Fetches the prefetch artifacts' spans, then (with `all`) every other span
/// of each layer, on `PREFETCH_WORKERS` threads, stopping when `stop` is set.
fn start_background(
    shared: Arc<fs::Shared>,
    layers: &[LayerData],
    all: bool,
    stop: Arc<AtomicBool>,
) {
    // (layer, first span, last span, spans per request)
    let mut plan: Vec<(usize, u64, u64, u64)> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        if let LayerData::Lazy { prefetch, .. } = l {
            plan.extend(prefetch.iter().map(|&(a, b)| (i, a, b, PREFETCH_BATCH)));
        }
    }
    if all {
        for (i, l) in layers.iter().enumerate() {
            if let LayerData::Lazy { zinfo, .. } = l {
                if zinfo.num_spans() > 0 {
                    plan.push((i, 0, zinfo.num_spans() - 1, BACKGROUND_BATCH));
                }
            }
        }
    }
    // Batches in plan order (prefetch artifacts first), taken by the workers
    // from one queue: the first batches start together.
    let mut batches = std::collections::VecDeque::new();
    for (layer, a, b, batch) in plan {
        let mut sp = a;
        while sp <= b {
            let end = (sp + batch - 1).min(b);
            batches.push_back((layer, sp, end));
            sp = end + 1;
        }
    }
    if batches.is_empty() {
        return;
    }
    let queue = Arc::new(std::sync::Mutex::new(batches));
    for i in 0..PREFETCH_WORKERS {
        let (shared, stop, queue) = (shared.clone(), stop.clone(), queue.clone());
        let _ = std::thread::Builder::new()
            .name(format!("soci-prefetch-{i}"))
            .spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // A read waiting for a span it asked for goes first: no new
                // background request while one is in flight (they would
                // share the bandwidth with it).
                let mut waited = Duration::ZERO;
                while shared.cache.demand_in_flight() && waited < DEMAND_PRIORITY_MAX {
                    std::thread::sleep(Duration::from_millis(2));
                    waited += Duration::from_millis(2);
                }
                let next = queue.lock().map(|mut q| q.pop_front()).ok().flatten();
                let Some((layer, a, b)) = next else {
                    return;
                };
                shared.cache.prefetch(layer, a, b);
            });
    }
}
