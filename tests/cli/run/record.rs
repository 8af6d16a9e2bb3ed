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

/// The prefetch artifact `soci create` builds for `prefetch_json` (the only
/// one: the image has one layer), as `[start, end]` pairs, and the digest of
/// the layer's zTOC.
fn artifact_spans(src: &str, store: &Path, prefetch_json: &Path) -> (Vec<(u64, u64)>, String) {
    let v = soci_json(&[
        "create",
        src,
        "--store",
        p(store),
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--prefetch-files-json",
        p(prefetch_json),
    ]);
    assert_eq!(v["prefetch_not_found"], json!([]), "{v}");
    let pf = v["platforms"][0]["prefetches"].as_array().unwrap();
    assert_eq!(pf.len(), 1, "{v}");
    let blob = store.join("blobs/sha256").join(
        pf[0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let a: Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
    let spans = a["prefetch_spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let n = |k: &str| s[k].as_u64().unwrap();
            (n("start_span"), n("end_span"))
        })
        .collect();
    let ztoc = v["platforms"][0]["ztocs"][0]["ztoc"].as_str().unwrap();
    (spans, ztoc.to_string())
}

/// A recorded trace with byte ranges prefetches only the spans holding those
/// bytes (docs/format.md §6.2), not every span of the file; the array form of
/// the same paths keeps the whole-file rule; `"ranges": null` is the whole file.
#[test]
fn prefetch_files_json_trace_ranges_select_spans() {
    let dir = tempfile::tempdir().unwrap();
    // A file of ~10 spans of 64 KiB after a small one.
    let big = soci_testkit::fixture::pseudo_random(7, 10 * 65536 + 123);
    let tar = soci_testkit::fixture::make_tar(&[("etc/small", b"hello"), ("usr/lib/big.so", &big)]);
    let fx = soci_testkit::make_layered_layout(&dir.path().join("img"), "1", &[tar]);
    let src = fx.oci_ref();

    let array = dir.path().join("paths.json");
    std::fs::write(&array, br#"["etc/small", "/usr/lib/big.so"]"#).unwrap();
    let store = dir.path().join("s1");
    let (whole, zd) = artifact_spans(&src, &store, &array);

    // The files' spans and the layer's span table, from the zTOC create stored.
    let info: Value =
        serde_json::from_str(&soci_ok(&["ztoc", "info", &zd, "--store", p(&store)])).unwrap();
    let file = |name: &str| {
        let f = info["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["filename"] == name)
            .unwrap_or_else(|| panic!("{name} not in {info}"));
        let n = |k: &str| f[k].as_u64().unwrap();
        (n("offset"), n("start_span"), n("end_span"))
    };
    let (_, small_start, small_end) = file("etc/small");
    let (big_off, big_start, big_end) = file("usr/lib/big.so");
    assert!(big_end >= big_start + 5, "{info}");
    // The array form: every span of both files (they meet in span 0..), merged.
    assert_eq!(whole, vec![(small_start.min(big_start), big_end)]);

    // A late span wholly inside big.so, and 20 bytes in it.
    let ztoc = soci_ztoc::codec::decode(
        &std::fs::read(
            store
                .join("blobs/sha256")
                .join(zd.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let late = big_end - 2;
    let span = ztoc
        .zinfo()
        .unwrap()
        .span_uncompressed_range(late, ztoc.uncompressed_archive_size as u64);
    assert!(
        span.start > big_off && span.end - span.start > 40,
        "{span:?}"
    );
    let range_in_file = span.start - big_off + 10;
    let trace = dir.path().join("trace.json");
    std::fs::write(
        &trace,
        json!({
            "image": "recorded",
            "command": [],
            "files": [
                {"path": "etc/small", "size": 5, "ranges": null},
                {"path": "usr/lib/big.so", "size": big.len(), "ranges": [[range_in_file, 20]]},
            ],
        })
        .to_string(),
    )
    .unwrap();
    let (ranged, _) = artifact_spans(&src, &dir.path().join("s2"), &trace);
    assert!(small_end + 1 < late);
    assert_eq!(ranged, vec![(small_start, small_end), (late, late)]);
}
