//! Helpers shared by the benchmarks.
#![allow(dead_code)]
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Cached benchmark inputs live here (gitignored).
pub(crate) fn data_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A deterministic gzip tar of system directories (those that exist), made once
/// and cached as `name`; `None` when none of the directories exists.
pub(crate) fn make_layer(name: &str, dirs: &[&str]) -> Option<PathBuf> {
    let dirs: Vec<&str> = dirs
        .iter()
        .copied()
        .filter(|d| Path::new("/").join(d).is_dir())
        .collect();
    if dirs.is_empty() {
        return None;
    }
    let path = data_dir().join(name);
    if path.exists() {
        return Some(path);
    }
    eprintln!(
        "generating {} from /{} ...",
        path.display(),
        dirs.join(" /")
    );
    let tmp = path.with_extension("tmp");
    let script = format!(
        "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --warning=no-file-changed \
         --ignore-failed-read -C / -cf - {} | gzip -6 -n > '{}'",
        dirs.join(" "),
        tmp.display()
    );
    let st = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .status()
        .unwrap();
    assert!(st.success(), "could not generate the benchmark layer");
    std::fs::rename(&tmp, &path).unwrap();
    Some(path)
}

/// Plain single-thread inflate of a gzip file with flate2 + zlib-rs, output
/// discarded: (time, uncompressed bytes).
pub(crate) fn inflate(p: &Path) -> (Duration, u64) {
    let t = Instant::now();
    let f = std::fs::File::open(p).unwrap();
    let mut d = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = d.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    (t.elapsed(), n)
}

/// Runs a command and returns (wall time, max RSS in KiB) using wait4. Linux
/// carries a process's max RSS across exec, so call this while the benchmark
/// process itself is still small.
#[allow(clippy::zombie_processes)] // reaped by wait4 below
#[allow(unsafe_code)] // bench-only: std has no wait4, the only source of a child's max RSS
pub(crate) fn run_measured(cmd: &mut Command) -> (Duration, u64) {
    let t = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own child, pointers are to live locals.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(
        r > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    (t.elapsed(), usage.ru_maxrss as u64)
}

/// Runs `f` `runs` times; the best (shortest) time and the last result.
pub(crate) fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        last = Some(v);
    }
    (best, last.expect("at least one run"))
}

pub(crate) fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// An OCI layout `name` with these gzip layers (blobs hard-linked from the cache).
pub(crate) fn make_layout(name: &str, layers: &[PathBuf]) -> PathBuf {
    let dir = data_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut descs = Vec::new();
    for l in layers {
        let hex = sha256_file(l);
        let dst = blobs.join(&hex);
        if std::fs::hard_link(l, &dst).is_err() {
            std::fs::copy(l, &dst).unwrap();
        }
        let size = std::fs::metadata(l).unwrap().len();
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{hex}"), "size": size}));
    }
    let put = |bytes: Vec<u8>| -> (String, usize) {
        let hex = hex::encode(Sha256::digest(&bytes));
        std::fs::write(blobs.join(&hex), &bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
    let (cd, cs) = put(serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs}, "layers": descs});
    let (md, ms) = put(serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir
}

/// The layers of the `create` and `convert` benchmarks' image: four large gzip
/// layers made from system directories (those that exist), cached.
pub(crate) fn multi_layer_image() -> Vec<PathBuf> {
    [
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/jvm",
        "usr/lib/llvm-14",
        "usr/bin",
    ]
    .iter()
    .filter_map(|d| make_layer(&format!("{}.tar.gz", d.replace('/', "-")), &[d]))
    .collect()
}
