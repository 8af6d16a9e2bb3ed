//! `soci bench startup` without SRC, as on a fresh machine: works with the
//! default flags, writes only to its documented data directory, and its demo
//! image is one where the index pays off (in bytes; times are not asserted).
use std::process::Command;

#[test]
fn bench_startup_without_src_runs_the_demo_in_the_cache_dir() {
    let cache = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_soci"))
        .args(["--json", "bench", "startup", "--profile", "1G/2ms"])
        .current_dir(cwd.path())
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("SOCI_BENCH_DATA")
        .env_remove("SOCI_STORE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("generated demo image"), "{err}");
    // Nothing in the directory it ran in.
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
    let data = cache.path().join("soci-rs/bench");
    assert!(data.join("results/startup.json").is_file());
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let img = &r["images"][0];
    // Every layer indexed with the default --min-layer-size.
    assert_eq!(img["lazy_layers"], img["layers"], "{img}");
    let p = &img["results"][0];
    let (lazy, full) = (
        p["lazy"]["bytes"].as_u64().unwrap(),
        p["full"]["bytes"].as_u64().unwrap(),
    );
    // The start-up reads a few percent of the image: lazy fetches well under half.
    assert!(lazy * 2 < full, "lazy {lazy} bytes, full {full}: {p}");
    assert_eq!(p["lazy"]["verified_files"], img["trace_files"], "{p}");
}
