//! `soci bench startup --real-run`: the three real strategies (full pull +
//! run, lazy mount + run, lazy + recorded prefetch + run) beside the replay
//! model, on the run test image.
use super::*;

#[test]
fn bench_real_run_measures_the_three_real_strategies() {
    if !can_run("bench_real_run") || !has_mount("bench_real_run") {
        return;
    }
    crate::commands::bench::build_soci_bench();
    let dir = tempfile::tempdir().unwrap();
    let image = test_image(&dir.path().join("img"));
    let trace = dir.path().join("trace.json");
    std::fs::write(
        &trace,
        super::record::trace_json(&[("etc/passwd", 70)]).to_string(),
    )
    .unwrap();
    let o = std::process::Command::new(soci_bin())
        .args([
            "--json",
            "bench",
            "startup",
            &image,
            "--trace",
            p(&trace),
            "--profile",
            "1G/2ms",
        ])
        .args([
            "--min-layer-size",
            "0",
            "--span-size",
            "64KiB",
            "--real-run",
            "-o",
        ])
        .arg(dir.path().join("results"))
        .args([
            "--",
            "/bin/sh",
            "-c",
            "cat /etc/passwd > /dev/null; echo ready",
        ])
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env("TMPDIR", dir.path())
        .env_remove("SOCI_STORE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let img = &v["images"][0];
    let real = &img["results"][0]["real"];
    for k in ["full", "lazy", "prefetch"] {
        assert!(real[k]["secs"].as_f64().unwrap() > 0.0, "{k}: {real}");
        assert!(real[k]["bytes"].as_u64().unwrap() > 0, "{k}: {real}");
    }
    // The full pull fetched every layer. (On an image this small the lazy
    // runs fetch about as much: the zTOCs' checkpoints weigh as much as the
    // layer, so no ratio is asserted here; docs/benchmarks.md has real figures.)
    assert!(
        real["full"]["bytes"].as_u64().unwrap() >= img["image_bytes"].as_u64().unwrap(),
        "{v}"
    );
    let md = std::fs::read_to_string(dir.path().join("results/startup.md")).unwrap();
    assert!(md.contains("real: lazy + recorded prefetch + run"), "{md}");
    assert_eq!(mounts_under(dir.path()), Vec::<String>::new());
}
