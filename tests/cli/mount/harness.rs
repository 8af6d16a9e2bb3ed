//! Running `soci mount` as a child: wait for its `mounted` line, stop it with
//! a signal, and (in `Drop`, also when a test fails) kill it and remove any
//! mount it left.
use crate::support::*;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Whether FUSE can be used here; prints why not.
pub(super) fn fuse_available(test: &str) -> bool {
    let ok = Path::new("/dev/fuse").exists();
    if !ok {
        eprintln!("skipping {test}: /dev/fuse is missing (FUSE tests need the fuse device)");
    }
    ok
}

/// The fixture image built by fixture.py: an OCI layout (`oci:LAYOUT:1`) and
/// the expected merged tree.
pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    pub layout: PathBuf,
    pub expected: PathBuf,
    /// The merged tree's regular files, unpacked by fixture.py.
    pub unpacked: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/mount/fixture.py")
}

/// Builds the fixture image.
pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let expected = dir.path().join("expected.json");
    let o = Command::new("python3")
        .arg(script())
        .args(["build", p(&layout), "1", p(&expected)])
        .output()
        .expect("run python3");
    assert!(o.status.success(), "fixture.py: {}", text(&o));
    let unpacked = dir.path().join("unpacked");
    Fixture {
        dir,
        layout,
        expected,
        unpacked,
    }
}

/// The flags every index of these tests is built with: 64 KiB spans (many
/// spans per layer), and the 210-byte top layer below the minimum size, so
/// it has no zTOC and is fetched whole.
pub(super) const BUILD: [&str; 4] = ["--min-layer-size", "4096", "--span-size", "64KiB"];

/// `soci CMD ARGS… --span-size 64KiB --min-layer-size 4096 --plain-http
/// --store STORE -q`: builds an index in the test registry.
pub(super) fn build_index(cmd: &str, args: &[&str], store: &Path) {
    let mut a = vec![cmd];
    a.extend_from_slice(args);
    a.extend(BUILD);
    a.extend(["--plain-http", "--store", p(store), "-q"]);
    soci_ok(&a);
}

/// Compares the mounted tree with the expected one (fixture.py check).
pub(super) fn check_tree(mp: &Path, expected: &Path) {
    let o = Command::new("python3")
        .arg(script())
        .args(["check", p(mp), p(expected)])
        .output()
        .expect("run python3");
    assert!(o.status.success(), "mounted tree differs:\n{}", text(&o));
}

/// Whether a FUSE file system is mounted at `mp` (per /proc/self/mountinfo).
pub(crate) fn is_mounted(mp: &Path) -> bool {
    let canon = mp.canonicalize().unwrap_or_else(|_| mp.to_path_buf());
    let want = canon.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&want) && l.contains(" - fuse"))
}

/// A running `soci mount`.
pub(crate) struct Mounted {
    child: Option<Child>,
    pub mp: PathBuf,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

/// Starts `soci mount ARGS… MP` (MP created) with `env`, and waits (60 s at
/// most) for its first stdout line, which must be `mounted MP`.
pub(crate) fn mount(args: &[&str], mp: &Path, env: &[(&str, &str)]) -> Mounted {
    std::fs::create_dir_all(mp).unwrap();
    let stderr = mp.with_extension("stderr");
    let mut cmd = Command::new(soci_bin());
    cmd.arg("mount")
        .args(args)
        .arg(mp)
        .env_remove("SOCI_STORE")
        .env("DOCKER_CONFIG", "/nonexistent-soci-itest")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run soci mount");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let m = Mounted {
        child: Some(child),
        mp: mp.to_path_buf(),
        lines: rx,
        stderr,
    };
    match m.lines.recv_timeout(Duration::from_secs(60)) {
        Ok(l) => assert!(
            l == format!("mounted {}", mp.display()) || l.contains("\"event\":\"mounted\""),
            "first line {l:?}; stderr: {}",
            m.stderr_text()
        ),
        Err(_) => panic!("no mounted line within 60 s; stderr: {}", m.stderr_text()),
    }
    m
}

impl Mounted {
    /// What the mount printed on stderr so far.
    pub(crate) fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The process id of `soci mount`.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` (kill(1) name) and waits up to 60 s for the exit;
    /// returns the exit code (None: killed by a signal) and the stdout lines
    /// after `mounted`.
    pub(crate) fn stop_with(&mut self, signal: &str) -> (Option<i32>, Vec<String>) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-s", signal, &pid]).status();
        let status = self.wait(Duration::from_secs(60));
        let lines: Vec<String> = self.lines.try_iter().collect();
        (status, lines)
    }

    /// Waits for the process to exit (panics after `limit`).
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.child = None;
                // The stdout reader ends with the pipe: give it the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return s.code();
            }
            assert!(
                start.elapsed() < limit,
                "soci mount still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..50 {
            if !is_mounted(&self.mp) {
                return;
            }
            let _ = Command::new("fusermount3")
                .args(["-u", "-z", "-q", "--"])
                .arg(&self.mp)
                .status();
            if is_mounted(&self.mp) {
                let _ = Command::new("umount").arg("-l").arg(&self.mp).status();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Converts the fixture into an OCI layout (`fx.dir/conv`, its zTOCs in the
/// store `fx.dir/store`), with BUILD and `extra`; returns `oci:DIR:1`.
pub(super) fn converted(fx: &Fixture, extra: &[&str]) -> String {
    let conv = fx.dir.path().join("conv");
    let store = fx.dir.path().join("store");
    let src = format!("oci:{}:1", p(&fx.layout));
    let dst = format!("oci:{}:1", p(&conv));
    let mut a = vec!["convert", &src, &dst, "--store", p(&store), "-q"];
    a.extend(BUILD);
    a.extend_from_slice(extra);
    soci_ok(&a);
    dst
}
