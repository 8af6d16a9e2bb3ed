//! `soci run --full`: the image pulled and unpacked in full, run with runc and
//! with the chroot fallback; the image's Env, WorkingDir and User; layers,
//! whiteouts and opaque directories as containerd applies them; writes in
//! the upper layer only; exit statuses passed through; nothing mounted or
//! left behind after success, failure and SIGTERM.
use super::*;
use std::io::BufRead;
use std::os::unix::fs::FileTypeExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(super) const SCRIPT: &str = r#"echo first
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
echo "pwd=$(pwd)"
echo "FOO=$FOO"
echo "HOME=$HOME"
echo "pid=$$"
test -e /etc/hidden && echo hidden-visible || echo hidden-gone
echo opaque=$(ls /opaque)
echo "layer2=$(cat /etc/layer2)"
echo inodes=$(stat -c %i /hl1 /hl2)
echo "link=$(readlink /link)"
echo "mine=$(stat -c %u:%g:%a /work/mine)"
echo "workdir=$(stat -c %u:%g:%a /work)"
echo written > /work/new.txt
rm /data/old.txt
test -e /data/old.txt || echo old-gone
exit 7"#;

pub(super) fn soci_run(args: &[&str]) -> std::process::Output {
    Command::new(soci_bin())
        .arg("run")
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent-soci-itest")
        .env_remove("SOCI_STORE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub(super) fn check_workload(o: &std::process::Output) {
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(7), "{}", text(o));
    for want in [
        "first\n",
        "uid=1234 gid=2345 groups=2345 3000\n",
        "pwd=/work\n",
        "FOO=bar baz\n",
        "HOME=/home/app\n",
        "pid=1\n",
        "hidden-gone\n",
        "opaque=b\n",
        "layer2=from layer 2\n",
        "link=etc/passwd\n",
        "mine=1234:2345:640\n",
        "workdir=1234:2345:750\n",
        "old-gone\n",
    ] {
        assert!(out.contains(want), "missing {want:?}: {}", text(o));
    }
    let inodes = out
        .lines()
        .find_map(|l| l.strip_prefix("inodes="))
        .unwrap()
        .split(' ')
        .collect::<Vec<_>>();
    assert!(
        inodes.len() == 2 && inodes[0] == inodes[1],
        "hardlinks: {inodes:?}"
    );
}

/// The writes went to the upper layer: the new file, and a whiteout (char
/// device 0:0) for the deleted image file.
pub(super) fn check_upper(upper: &Path) {
    assert_eq!(
        std::fs::read(upper.join("work/new.txt")).unwrap(),
        b"written\n"
    );
    let wh = std::fs::symlink_metadata(upper.join("data/old.txt")).unwrap();
    assert!(wh.file_type().is_char_device(), "{wh:?}");
    // Nothing else of the image was copied up but the directories written in.
    assert!(!upper.join("etc").exists());
}

fn run_full(runtime: &str) {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = pushed_test_image(&reg, dir.path(), runtime);
    let tmp = RunTmp::new();
    let upper = dir.path().join("upper");
    let o = soci_run(&[
        "--full",
        "--plain-http",
        "--runtime",
        runtime,
        "--tmp-dir",
        p(tmp.path()),
        "--upper",
        p(&upper),
        &image,
        "--",
        "/bin/sh",
        "-c",
        SCRIPT,
    ]);
    check_workload(&o);
    check_upper(&upper);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("runtime {runtime}, root filesystem full")),
        "{}",
        text(&o)
    );
    assert!(err.contains("first output line at"), "{}", text(&o));
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temporary files left"
    );
}

#[test]
fn full_run_with_runc() {
    if !can_run("full_run_with_runc") {
        return;
    }
    assert!(
        has_runc(),
        "runc is not installed: scripts/install-test-deps.sh installs it"
    );
    run_full("runc");
}

/// The host's /etc/resolv.conf and /etc/hosts and an /etc/hostname are seen
/// inside the container (as Docker does on the host's network), with runc
/// and with the chroot runtime; the image has none of them, and their mount
/// points stay out of the writable layer.
#[test]
fn host_name_resolution_files_are_bound_in() {
    if !can_run("host_name_resolution_files_are_bound_in") {
        return;
    }
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = pushed_test_image(&reg, dir.path(), "etc");
    for runtime in runtimes() {
        let tmp = RunTmp::new();
        let upper = dir.path().join(format!("upper-{runtime}"));
        let o = soci_run(&[
            "--full",
            "--plain-http",
            "--runtime",
            runtime,
            "--tmp-dir",
            p(tmp.path()),
            "--upper",
            p(&upper),
            &image,
            "--",
            "/bin/sh",
            "-c",
            "cat /etc/hostname; echo ==; cat /etc/hosts; echo ==; cat /etc/resolv.conf",
        ]);
        assert_eq!(o.status.code(), Some(0), "{runtime}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let parts: Vec<&str> = out.split("==\n").collect();
        assert_eq!(parts.len(), 3, "{runtime}: {out}");
        assert_eq!(parts[0], "soci-run\n", "{runtime}");
        for (i, host) in [(1, "/etc/hosts"), (2, "/etc/resolv.conf")] {
            if let Ok(want) = std::fs::read_to_string(host) {
                assert_eq!(parts[i], want, "{runtime}: {host}");
            }
        }
        assert!(
            !upper.join("etc").exists(),
            "{runtime}: etc in the upper layer"
        );
        assert_left_clean(tmp.path(), runtime);
    }
}

/// An image whose /etc is a symlink (to usr/etc) keeps it: its own files
/// are still seen through /etc, and the host files are bound in through the
/// link.
#[test]
fn an_etc_symlink_in_the_image_is_kept() {
    if !can_run("an_etc_symlink_in_the_image_is_kept") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut l = Layer::new();
    for prog in ["sh", "cat"] {
        l.program(&format!("/usr/bin/{prog}"));
    }
    l.host("/bin/sh");
    l.dir("usr/etc", 0o755, 0, 0)
        .file(
            "usr/etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\n",
            0o644,
            0,
            0,
        )
        .file("usr/etc/group", b"root:x:0:\n", 0o644, 0, 0)
        .file("usr/etc/marker", b"from the image\n", 0o644, 0, 0)
        .symlink("etc", "usr/etc");
    let image = write_image(
        &dir.path().join("layout"),
        "1",
        vec![l.finish()],
        json!({"Env": ["PATH=/usr/bin:/bin"]}),
    );
    for runtime in runtimes() {
        let tmp = RunTmp::new();
        let o = soci_run(&[
            "--full",
            "--runtime",
            runtime,
            "--tmp-dir",
            p(tmp.path()),
            &image,
            "--",
            "/bin/sh",
            "-c",
            "cat /etc/marker /etc/hostname",
        ]);
        assert_eq!(o.status.code(), Some(0), "{runtime}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "from the image\nsoci-run\n",
            "{runtime}"
        );
        assert_left_clean(tmp.path(), runtime);
    }
}

/// An image whose /etc/passwd is a FIFO: read as "no passwd" (a bounded read
/// of regular files only), not a run that blocks on the FIFO for ever.
#[test]
fn a_fifo_for_etc_passwd_does_not_hang_the_run() {
    if !can_run("a_fifo_for_etc_passwd_does_not_hang_the_run") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut l = Layer::new();
    l.program("/usr/bin/sh");
    l.host("/bin/sh");
    l.dir("etc", 0o755, 0, 0).fifo("etc/passwd");
    let image = write_image(
        &dir.path().join("layout"),
        "1",
        vec![l.finish()],
        json!({"Env": ["PATH=/usr/bin:/bin"]}),
    );
    let tmp = RunTmp::new();
    let mut child = Command::new(soci_bin())
        .args(["run", "--full", "--runtime", "chroot", "--tmp-dir"])
        .arg(tmp.path())
        .args([&image, "--", "/bin/sh", "-c", "echo ok"])
        .env("DOCKER_CONFIG", "/nonexistent-soci-itest")
        .env_remove("SOCI_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("soci run still running after 60 s: {}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok\n");
    assert_left_clean(tmp.path(), "fifo passwd");
}

/// The fallback where runc is absent, forced with `--runtime chroot`.
#[test]
fn full_run_with_chroot_fallback() {
    if !can_run("full_run_with_chroot_fallback") {
        return;
    }
    run_full("chroot");
}

/// The image's own Cmd, and `--json`: the report is the last stdout line.
#[test]
fn default_cmd_and_json_report() {
    if !can_run("default_cmd_and_json_report") {
        return;
    }
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = pushed_test_image(&reg, dir.path(), "json");
    let tmp = RunTmp::new();
    let o = soci_run(&[
        "--json",
        "--full",
        "--plain-http",
        "--tmp-dir",
        p(tmp.path()),
        &image,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("default-cmd"), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(v["event"], "exited");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["rootfs"], "full");
    assert_eq!(v["command"], json!(["/bin/sh", "-c", "echo default-cmd"]));
    let layers = inspect(&image)["layers"].as_array().unwrap().clone();
    let sum: u64 = layers.iter().map(|l| l["size"].as_u64().unwrap()).sum();
    assert_eq!(v["bytes_fetched"], sum);
    let (first, exit) = (
        v["first_line_secs"].as_f64().unwrap(),
        v["exit_secs"].as_f64().unwrap(),
    );
    assert!(
        v["rootfs_secs"].as_f64().unwrap() <= first && first <= exit,
        "{v}"
    );
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

/// A command that cannot start, and a bad image: errors, and still nothing
/// mounted or left in the temporary directory.
#[test]
fn failures_leave_nothing_behind() {
    if !can_run("failures_leave_nothing_behind") {
        return;
    }
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = pushed_test_image(&reg, dir.path(), "fail");
    for runtime in ["runc", "chroot"] {
        let tmp = RunTmp::new();
        let o = soci_run(&[
            "--full",
            "--plain-http",
            "--runtime",
            runtime,
            "--tmp-dir",
            p(tmp.path()),
            &image,
            "--",
            "/no/such/program",
        ]);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("panicked"),
            "{}",
            text(&o)
        );
        assert_eq!(mounts_under(tmp.path()), Vec::<String>::new(), "{runtime}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{runtime}: files left"
        );
    }
    let tmp = RunTmp::new();
    let o = soci_run(&[
        "--full",
        "--plain-http",
        "--tmp-dir",
        p(tmp.path()),
        &format!("{}/run/absent:1", reg.host()),
    ]);
    assert_error(&o, "run/absent");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // Lazily (the mount starts beside the config's download): an absent
    // image is named by the image's own error; an image without a SOCI
    // index by the mount's. Nothing mounted or left either way.
    for (src, want) in [
        (
            format!("{}/run/absent:1", reg.host()),
            "run/absent".to_string(),
        ),
        (image.clone(), "SOCI index".to_string()),
    ] {
        let tmp = RunTmp::new();
        let o = soci_run(&["--plain-http", "--tmp-dir", p(tmp.path()), &src]);
        assert_error(&o, &want);
        assert_eq!(mounts_under(tmp.path()), Vec::<String>::new(), "{src}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "{src}");
    }
}

/// SIGTERM while the workload runs (a `sleep` as PID 1, which ignores it):
/// passed on, the container killed after the grace period, everything
/// unmounted and removed, and soci exits.
#[test]
fn sigterm_unmounts_and_cleans_up() {
    if !can_run("sigterm_unmounts_and_cleans_up") {
        return;
    }
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = pushed_test_image(&reg, dir.path(), "term");
    let mut soci_pids = Vec::new();
    for runtime in ["runc", "chroot"] {
        let tmp = RunTmp::new();
        let mut child = Command::new(soci_bin())
            .args([
                "run",
                "--full",
                "--plain-http",
                "--runtime",
                runtime,
                "--tmp-dir",
                p(tmp.path()),
                &image,
            ])
            .args(["--", "/bin/sh", "-c", "echo ready; exec sleep 600"])
            .env("DOCKER_CONFIG", "/nonexistent-soci-itest")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        soci_pids.push(child.id());
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(|l| l.ok());
        if first.as_deref() != Some("ready") {
            let o = child.wait_with_output().unwrap();
            panic!("{runtime}: no ready line: {}", text(&o));
        }
        assert!(
            !mounts_under(tmp.path()).is_empty(),
            "the overlay should be mounted now"
        );
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{runtime}: soci run did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "{runtime}: {status}");
        assert_eq!(mounts_under(tmp.path()), Vec::<String>::new(), "{runtime}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{runtime}: files left"
        );
    }
    // This test's containers only: others run at the same time.
    let list = Command::new("runc").args(["list", "-q"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for pid in &soci_pids {
        assert!(
            !list.contains(&format!("soci-run-{pid}-")),
            "runc state left: {list}"
        );
    }
}

/// Not root: one clear line, before anything is fetched.
#[test]
fn not_root_is_a_clear_error() {
    if !can_run("not_root_is_a_clear_error") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let o = Command::new(soci_bin())
        .args(["run", "--full", "oci:/nonexistent:1"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("soci run needs root"),
        "{}",
        text(&o)
    );
}

/// Relative `--tmp-dir` and `--upper`: made absolute for overlayfs and the bundle.
#[test]
fn relative_directories_work() {
    if !can_run("relative_directories_work") {
        return;
    }
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = pushed_test_image(&reg, dir.path(), "rel");
    let tmp = RunTmp::new();
    let o = Command::new(soci_bin())
        .current_dir(tmp.path())
        .args([
            "run",
            "--full",
            "--plain-http",
            "--tmp-dir",
            ".",
            "--upper",
            "up",
            &image,
        ])
        .args(["--", "/bin/sh", "-c", "echo x > /work/f; cat /work/f"])
        .env("DOCKER_CONFIG", "/nonexistent-soci-itest")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "x\n");
    assert_eq!(std::fs::read(tmp.path().join("up/work/f")).unwrap(), b"x\n");
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}
