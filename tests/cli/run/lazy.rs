//! `soci run` on the lazy root (a `soci mount` child): the same workload as
//! `full`, with runc and with the chroot fallback; `--record` writes a trace
//! that `create --prefetch-files-json` and `bench startup --trace` take; the
//! mount is gone after success and after SIGTERM.
use super::full::{check_upper, check_workload, soci_run, SCRIPT};
use super::*;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The test image pushed and indexed (v2, every layer, 64 KiB spans).
fn indexed_test_image(reg: &Registry, dir: &Path, name: &str) -> (String, PathBuf) {
    let image = pushed_test_image(reg, dir, name);
    let store = dir.join("store");
    soci_ok(&[
        "create",
        &image,
        "--push",
        "--plain-http",
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "-q",
    ]);
    (image, store)
}

#[test]
fn lazy_run_records_what_the_workload_read() {
    if !can_run("lazy_run_records_what_the_workload_read")
        || !has_mount("lazy_run_records_what_the_workload_read")
    {
        return;
    }
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (image, store) = indexed_test_image(&reg, dir.path(), "lazy");
    let mut recorded = Vec::new();
    for runtime in ["runc", "chroot"] {
        let tmp = RunTmp::new();
        let upper = dir.path().join(format!("upper-{runtime}"));
        let record = dir.path().join(format!("record-{runtime}.json"));
        let o = soci_run(&[
            "--plain-http",
            "--store",
            p(&store),
            "--runtime",
            runtime,
            "--tmp-dir",
            p(tmp.path()),
            "--upper",
            p(&upper),
            "--record",
            p(&record),
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
            err.contains(&format!("runtime {runtime}, root filesystem lazy")),
            "{}",
            text(&o)
        );
        assert_eq!(mounts_under(tmp.path()), Vec::<String>::new(), "{runtime}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{runtime}: files left"
        );
        let trace: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        let paths: Vec<String> = trace["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect();
        // The shell, the loader and libc were read; each file once; nothing
        // the workload never opened (the lower layer's /etc/hidden).
        for want in ["etc/passwd", "usr/lib/x86_64-linux-gnu/libc.so.6"] {
            assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
        }
        assert!(!paths.iter().any(|p| p.contains("hidden")), "{paths:?}");
        let unique: BTreeSet<&String> = paths.iter().collect();
        assert_eq!(unique.len(), paths.len(), "{paths:?}");
        recorded.push((record, paths.len()));
    }
    // The record drives a prefetch: create takes it, and the artifacts exist.
    let (record, files) = &recorded[0];
    let v = soci_json(&[
        "create",
        &image,
        "--plain-http",
        "--store",
        p(&dir.path().join("store2")),
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--prefetch-files-json",
        p(record),
    ]);
    let prefetches = v["platforms"][0]["prefetches"].as_array().unwrap();
    assert!(!prefetches.is_empty(), "{v}");
    assert!(
        v["prefetch_not_found"].as_array().unwrap().is_empty(),
        "{v}"
    );
    // ... and the benchmark replays it.
    crate::commands::bench::build_soci_bench();
    let layout = test_image(&dir.path().join("layout-bench"));
    let b = super::record::bench_with_trace(&layout, record, dir.path());
    assert_eq!(b["images"][0]["trace_files"], *files as u64, "{b}");
}

/// `--json`: the bytes the mount fetched, from its final line.
#[test]
fn lazy_run_reports_the_mounts_bytes() {
    if !can_run("lazy_run_reports_the_mounts_bytes")
        || !has_mount("lazy_run_reports_the_mounts_bytes")
    {
        return;
    }
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (image, store) = indexed_test_image(&reg, dir.path(), "bytes");
    let tmp = RunTmp::new();
    let o = soci_run(&[
        "--json",
        "--plain-http",
        "--store",
        p(&store),
        "--tmp-dir",
        p(tmp.path()),
        &image,
        "--",
        "/bin/sh",
        "-c",
        "echo hi",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["rootfs"], "lazy", "{v}");
    assert_eq!(v["mount"]["event"], "unmounted", "{v}");
    assert!(v["bytes_fetched"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["bytes_fetched"], v["mount"]["bytes_fetched"], "{v}");
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
}

/// SIGTERM with the lazy root: container killed, overlay and FUSE mount gone.
#[test]
fn lazy_run_sigterm_unmounts_everything() {
    if !can_run("lazy_run_sigterm_unmounts_everything")
        || !has_mount("lazy_run_sigterm_unmounts_everything")
    {
        return;
    }
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (image, store) = indexed_test_image(&reg, dir.path(), "term");
    let tmp = RunTmp::new();
    let mut child = Command::new(soci_bin())
        .args([
            "run",
            "--plain-http",
            "--store",
            p(&store),
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
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    if lines.next().and_then(|l| l.ok()).as_deref() != Some("ready") {
        let o = child.wait_with_output().unwrap();
        panic!("no ready line: {}", text(&o));
    }
    assert!(
        mounts_under(tmp.path()).len() >= 2,
        "FUSE and overlay: {:?}",
        mounts_under(tmp.path())
    );
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "soci run did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "files left"
    );
}

/// `--rootfs`: a `soci mount` kept up between runs is the root filesystem of
/// two runs in a row; each run's overlay goes, the mount stays (and serves
/// the second run from what the first fetched); a missing directory is a
/// clear error.
#[test]
fn runs_on_a_kept_mount_leave_it_mounted() {
    if !can_run("runs_on_a_kept_mount_leave_it_mounted")
        || !has_mount("runs_on_a_kept_mount_leave_it_mounted")
    {
        return;
    }
    use crate::mount::harness::{is_mounted, mount};
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (image, store) = indexed_test_image(&reg, dir.path(), "kept");
    let mp = dir.path().join("mnt");
    let mut m = mount(
        &[&image, "--plain-http", "--store", p(&store), "--json"],
        &mp,
        &[],
    );
    for round in 0..2 {
        let tmp = RunTmp::new();
        let upper = dir.path().join(format!("upper-{round}"));
        let o = soci_run(&[
            "--plain-http",
            "--store",
            p(&store),
            "--tmp-dir",
            p(tmp.path()),
            "--upper",
            p(&upper),
            "--rootfs",
            p(&mp),
            &image,
            "--",
            "/bin/sh",
            "-c",
            SCRIPT,
        ]);
        check_workload(&o);
        check_upper(&upper);
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("root filesystem existing"),
            "{}",
            text(&o)
        );
        assert_eq!(
            mounts_under(tmp.path()),
            Vec::<String>::new(),
            "round {round}"
        );
        assert!(is_mounted(&mp), "round {round}: the kept mount is gone");
    }
    // The image has no extended attributes: the mount answers xattr calls
    // with ENOSYS once and the kernel says "not supported" from then on
    // (an overlay asks for trusted.overlay.* of every file it looks up).
    for _ in 0..2 {
        let err = xattr::get(mp.join("etc/passwd"), "trusted.overlay.metacopy")
            .expect_err("an xattr call answered");
        assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP), "{err}");
    }
    let missing = dir.path().join("no-such-dir");
    let o = soci_run(&[
        "--plain-http",
        "--rootfs",
        p(&missing),
        &image,
        "--",
        "/bin/true",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no-such-dir"),
        "{}",
        text(&o)
    );
    let (code, lines) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    let v: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    // The second run read what the first had fetched: no span twice.
    assert_eq!(v["read_errors"], 0, "{v}");
    assert!(v["memory_hits"].as_u64().unwrap() > 0, "{v}");
}
