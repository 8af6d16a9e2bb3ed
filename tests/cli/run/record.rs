//! `soci run --record` traces: `create --prefetch-files-json` takes the trace
//! object as well as a plain array of paths, and `soci bench startup --trace`
//! reads the same file.
use crate::support::*;
use serde_json::{json, Value};
use std::path::Path;

/// The trace form `soci run --record` writes (crates/bench/src/trace.rs).
pub(crate) fn trace_json(paths: &[(&str, u64)]) -> Value {
    json!({
        "image": "recorded",
        "command": [],
        "files": paths.iter().map(|(p, size)| json!({"path": p, "size": size, "ranges": [[0, size]]})).collect::<Vec<_>>(),
    })
}

fn prefetches(image: &str, store: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "create",
        image,
        "--store",
        store.to_str().unwrap(),
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--plain-http",
    ];
    args.extend_from_slice(extra);
    let v = soci_json(&args);
    v["platforms"][0]["prefetches"].clone()
}

/// The same prefetch artifacts from `--prefetch-file`, a JSON array of paths
/// and a recorded trace object.
#[test]
fn prefetch_files_json_takes_a_recorded_trace() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1");
    let image = push_fixture(&fx, &reg, "rec:1");
    let array = dir.path().join("paths.json");
    std::fs::write(&array, br#"["/bin/small", "usr/share/readme"]"#).unwrap();
    let trace = dir.path().join("trace.json");
    std::fs::write(
        &trace,
        trace_json(&[("bin/small", 11), ("usr/share/readme", 22)]).to_string(),
    )
    .unwrap();
    let by_flag = prefetches(
        &image,
        &dir.path().join("s1"),
        &[
            "--prefetch-file",
            "/bin/small",
            "--prefetch-file",
            "/usr/share/readme",
        ],
    );
    let by_array = prefetches(
        &image,
        &dir.path().join("s2"),
        &["--prefetch-files-json", p(&array)],
    );
    let by_trace = prefetches(
        &image,
        &dir.path().join("s3"),
        &["--prefetch-files-json", p(&trace)],
    );
    assert_eq!(by_flag.as_array().map(Vec::len), Some(2), "{by_flag}");
    assert_eq!(by_array, by_flag);
    assert_eq!(by_trace, by_flag);
    // Neither form: one line naming the file and both accepted forms.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, br#"{"files": 3}"#).unwrap();
    let o = soci(&[
        "create",
        &image,
        "--plain-http",
        "--store",
        p(&dir.path().join("s4")),
        "--prefetch-files-json",
        p(&bad),
    ]);
    assert_error(
        &o,
        "bad.json must be a JSON array of paths, or a trace object",
    );
}

/// `soci bench startup --trace` reads the recorded form.
#[test]
fn bench_trace_takes_a_recorded_trace() {
    crate::commands::bench::build_soci_bench();
    let dir = tempfile::tempdir().unwrap();
    // The benchmark's full pull reads gzip layers only: the run test image.
    let image = super::test_image(&dir.path().join("img"));
    let trace = dir.path().join("trace.json");
    std::fs::write(
        &trace,
        trace_json(&[("etc/passwd", 70), ("hl1", 7)]).to_string(),
    )
    .unwrap();
    let v = bench_with_trace(&image, &trace, dir.path());
    assert_eq!(v["images"][0]["trace_files"], 2, "{v}");
}

/// `soci --json bench startup SRC --trace TRACE` at 1G/2ms, every layer indexed.
pub(crate) fn bench_with_trace(src: &str, trace: &Path, dir: &Path) -> Value {
    let o = std::process::Command::new(soci_bin())
        .args([
            "--json",
            "bench",
            "startup",
            src,
            "--trace",
            p(trace),
            "--profile",
            "1G/2ms",
            "--min-layer-size",
            "0",
            "-o",
            p(&dir.join("results")),
        ])
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env_remove("SOCI_STORE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}
