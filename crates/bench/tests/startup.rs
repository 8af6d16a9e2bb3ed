//! Offline tests on a generated image against a local registry.
use soci_bench::proxy::{Profile, Proxy};
use soci_bench::run::{run, RunOptions};
use soci_image::lazy::BatchOptions;
use std::time::{Duration, Instant};

#[test]
fn proxy_counts_bytes_requests_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = soci_bench::fixtures::synthetic(&dir.path().join("img")).unwrap();
    let reg = soci_testkit::Registry::start().unwrap();
    soci_testkit::skopeo::skopeo_copy(&spec.source, &format!("docker://{}/t/synth:1", reg.host()))
        .unwrap();
    // 8 Mbit/s, 50 ms RTT
    let proxy = Proxy::start(
        reg.addr(),
        Profile::new(8_000_000, Duration::from_millis(50)),
    )
    .unwrap();
    let r: soci_oci::reference::ImageRef = format!("{}/t/synth:1", proxy.host()).parse().unwrap();
    let src = soci_oci::registry::RegistrySource::new(
        r,
        &soci_oci::registry::RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    use soci_oci::source::ImageSource;
    let (_, raw) = src.resolve_root().unwrap();
    let m: soci_oci::spec::Manifest = serde_json::from_slice(&raw).unwrap();
    let layer = m.layers.iter().max_by_key(|l| l.size).unwrap();
    let before = proxy.traffic();
    let t0 = Instant::now();
    let data = src.read_blob_range(layer, 1000..201_000).unwrap();
    let took = t0.elapsed();
    let t = proxy.traffic() - before;
    assert_eq!(data.len(), 200_000);
    assert_eq!(t.requests, 1, "{t:?}");
    assert!(t.bytes_down >= 200_000 && t.bytes_down < 202_000, "{t:?}");
    // 200 kB at 1 MB/s = 0.2 s, plus one RTT
    assert!(took >= Duration::from_millis(240), "{took:?}");
    assert!(took < Duration::from_millis(600), "{took:?}");
}

#[test]
fn lazy_start_matches_full_pull_and_floor() {
    let dir = tempfile::tempdir().unwrap();
    let spec = soci_bench::fixtures::synthetic(&dir.path().join("img")).unwrap();
    let opts = RunOptions {
        profiles: vec![Profile::new(1_000_000_000, Duration::from_millis(1))],
        span_size: 64 << 10,
        min_layer_size: 0,
        batch: BatchOptions {
            parallel: 4,
            merge_gap_spans: 0,
        },
        span_sweep: vec![32 << 10, 128 << 10],
        work_dir: dir.path().join("work"),
        verbose: false,
        ..Default::default()
    };
    let report = run(std::slice::from_ref(&spec), &opts, "test").unwrap();
    let img = &report.images[0];
    assert_eq!(img.lazy_layers, 2);
    let p = &img.results[0];
    let lazy = p.lazy.lazy.as_ref().unwrap();
    assert_eq!(lazy.files, spec.trace.files.len());
    assert!(lazy.missing.is_empty());
    assert_eq!(p.lazy.verified_files, spec.trace.files.len());
    assert_eq!(p.prefetch.verified_files, spec.trace.files.len());
    assert_eq!(
        p.ranges.as_ref().unwrap().verified_files,
        spec.trace.files.len()
    );
    // the lazy reader fetched exactly the spans of the floor, nothing twice
    assert_eq!(lazy.span_bytes, lazy.floor_span_bytes);
    assert!(
        p.lazy.bytes >= p.floor_bytes,
        "fetched less than the floor: {} < {}",
        p.lazy.bytes,
        p.floor_bytes
    );
    assert!(p.lazy_over_floor < 1.1, "{}", p.lazy_over_floor);
    assert!(p.lazy.bytes < p.full.bytes);
    // prefetch: one merged request per run, then nothing on demand
    let pf = p.prefetch.lazy.as_ref().unwrap();
    assert!(pf.span_requests <= lazy.span_requests);
    assert_eq!(report.sweeps.len(), 2);
    let txt = soci_bench::report::text(&report);
    assert!(txt.contains("lazy+prefetch"));
    assert!(soci_bench::report::svg(&report).starts_with("<svg"));
}
