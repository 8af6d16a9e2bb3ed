//! Helpers shared by the benchmarks.
#![allow(dead_code)]
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Cached benchmark inputs live here (gitignored).
pub fn data_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A deterministic gzip tar of system directories (those that exist), made once
/// and cached as `name`; `None` when none of the directories exists.
pub fn make_layer(name: &str, dirs: &[&str]) -> Option<PathBuf> {
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
pub fn inflate(p: &Path) -> (Duration, u64) {
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
pub fn run_measured(cmd: &mut Command) -> (Duration, u64) {
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
pub fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
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
