//! The registry as the zTOC cache (issue 11, targets 1 and 2), a section of
//! `cargo bench --bench create` (alone: `cargo bench --bench create -- cache`).
//!
//! An image of big base layers (the main section's four, those that exist)
//! plus one small new layer (/etc), whose base was
//! indexed before in the registry (`create --push` of the base image). Fresh
//! store each time, through a counting proxy on 127.0.0.1, unshaped
//! (loopback) and shaped to 1 Gbit/s with 2 ms RTT (a CI runner near its
//! registry; the startup bench's faster profile):
//! - `create --push --cache-from BASE` of the image against a cold
//!   `create --push --no-cache` of the same image, in the same round: time,
//!   bytes downloaded (against the ideal: the base's zTOCs plus the new
//!   layer), and the same tag bytes at the end (byte-identical result);
//! - `create --push` of the image once it is indexed: registry requests and
//!   bytes (no layer).
use crate::common::{data_dir, make_layer, make_layout, multi_layer_image, run_measured};
use soci_bench::{Profile, Proxy, Traffic};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Rounds (each: one cold run, one cached run, one no-op run).
const ROUNDS: usize = 3;

/// The raw manifest or index at `repo:reference` (read directly, not counted).
fn manifest(client: &soci_oci::RegistryClient, repo: &str, reference: &str) -> Vec<u8> {
    client
        .get_manifest_raw(repo, reference)
        .expect("GET manifest")
        .unwrap_or_else(|| panic!("{repo}:{reference} not found"))
        .1
}

/// Bytes of the zTOCs in the SOCI index(es) tagged at `repo:tag`.
fn ztoc_bytes(client: &soci_oci::RegistryClient, repo: &str, tag: &str) -> u64 {
    let root: serde_json::Value = serde_json::from_slice(&manifest(client, repo, tag)).unwrap();
    let mut total = 0;
    for m in root["manifests"].as_array().unwrap() {
        if m["artifactType"] == "application/vnd.amazon.soci.index.v2+json" {
            let index: serde_json::Value =
                serde_json::from_slice(&manifest(client, repo, m["digest"].as_str().unwrap()))
                    .unwrap();
            total += index["layers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["mediaType"] == "application/octet-stream")
                .map(|l| l["size"].as_u64().unwrap())
                .sum::<u64>();
        }
    }
    total
}

/// `soci create -q --min-layer-size 0 --plain-http --store STORE IMAGE EXTRA…`
/// from an empty store: (wall, traffic through the proxy).
fn run_create(soci: &str, proxy: &Proxy, image: &str, extra: &[&str]) -> (Duration, Traffic) {
    let store = data_dir().join("cache-store");
    let _ = std::fs::remove_dir_all(&store);
    let before = proxy.traffic();
    let (t, _) = run_measured(
        Command::new(soci)
            .args(["create", "-q", "--min-layer-size", "0", "--plain-http"])
            .args(["--store", store.to_str().unwrap(), image])
            .args(extra),
    );
    (t, proxy.traffic() - before)
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

pub(crate) fn run(soci: &str) {
    let base: Vec<PathBuf> = multi_layer_image();
    let new = make_layer("cache-new-etc.tar.gz", &["etc"]).expect("/etc");
    let mut child = base.clone();
    child.push(new.clone());
    let base_layout = make_layout("cache-base", &base);
    let child_layout = make_layout("cache-child", &child);
    let registry = soci_testkit::Registry::start().expect("docker-registry");
    let proxy = Proxy::start(registry.addr(), Profile::new(0, Duration::ZERO)).expect("proxy");
    let (direct, via) = (registry.host(), proxy.host());
    let client = soci_oci::RegistryClient::new(
        &direct,
        &soci_oci::RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .expect("registry client");
    soci_testkit::skopeo_copy(
        &format!("oci:{}:bench", base_layout.display()),
        &format!("docker://{direct}/bench/base:1"),
    )
    .expect("skopeo copy base");
    // The base was indexed before (by an earlier CI run, say).
    let base_ref = format!("{via}/bench/base:1");
    run_create(soci, &proxy, &base_ref, &["--push"]);
    let ztocs = ztoc_bytes(&client, "bench/base", "1");
    let size = |p: &PathBuf| std::fs::metadata(p).unwrap().len();
    let (base_gz, new_gz) = (base.iter().map(size).sum::<u64>(), size(&new));
    let ideal = ztocs + new_gz;
    println!(
        "registry cache (issue 11 targets 1, 2): base {} layers, {:.0} MB gzip, their zTOCs {:.1} MB; new layer {:.1} MB; {ROUNDS} rounds",
        base.len(),
        mb(base_gz),
        mb(ztocs),
        mb(new_gz)
    );
    for profile in [
        Profile::new(0, Duration::ZERO),
        Profile::new(1_000_000_000, Duration::from_millis(2)),
    ] {
        let name = if profile.bandwidth_bps == 0 {
            "loopback".to_string()
        } else {
            profile.name.clone()
        };
        proxy.set_profile(profile);
        measure(
            soci,
            &proxy,
            &client,
            &child_layout,
            &base_ref,
            ideal,
            &name,
        );
    }
}

/// The rounds of one network profile: per round, a cached run, a cold run
/// (in that order: the cached run of round 1 finds no zTOC in the image's
/// repository and mounts them from the base's; later rounds find them
/// there), then the no-op.
fn measure(
    soci: &str,
    proxy: &Proxy,
    client: &soci_oci::RegistryClient,
    child_layout: &std::path::Path,
    base_ref: &str,
    ideal: u64,
    name: &str,
) {
    let (direct, via) = (client.registry().to_string(), proxy.host());
    println!("  {name}:");
    let mut rows = Vec::new();
    for round in 1..=ROUNDS {
        // Each run gets the plain image under its own tag (the blobs are
        // there already: only manifests are written).
        let tag = |what: &str| {
            let t = format!("{what}-{}-{round}", name.replace('/', "-"));
            soci_testkit::skopeo_copy(
                &format!("oci:{}:bench", child_layout.display()),
                &format!("docker://{direct}/bench/app:{t}"),
            )
            .expect("skopeo copy image");
            t
        };
        let (cold_tag, cached_tag) = (tag("cold"), tag("cached"));
        let cached = run_create(
            soci,
            proxy,
            &format!("{via}/bench/app:{cached_tag}"),
            &["--push", "--cache-from", base_ref],
        );
        let cold = run_create(
            soci,
            proxy,
            &format!("{via}/bench/app:{cold_tag}"),
            &["--push", "--no-cache"],
        );
        let identical =
            manifest(client, "bench/app", &cold_tag) == manifest(client, "bench/app", &cached_tag);
        assert!(
            identical,
            "round {round}: the cached run tagged other bytes than the cold run"
        );
        let noop = run_create(
            soci,
            proxy,
            &format!("{via}/bench/app:{cached_tag}"),
            &["--push"],
        );
        println!(
            "    round {round}: cold {:.2} s, {:.1} MB down; cached {:.2} s ({:.3}x), {:.1} MB down ({:.3}x ideal); same tag bytes: {identical}; already indexed: {} requests, {} B down, {:.2} s",
            cold.0.as_secs_f64(),
            mb(cold.1.bytes_down),
            cached.0.as_secs_f64(),
            cached.0.as_secs_f64() / cold.0.as_secs_f64(),
            mb(cached.1.bytes_down),
            cached.1.bytes_down as f64 / ideal as f64,
            noop.1.requests,
            noop.1.bytes_down,
            noop.0.as_secs_f64()
        );
        rows.push((cold, cached, noop));
    }
    let mut ratios: Vec<f64> = rows
        .iter()
        .map(|(c, k, _)| k.0.as_secs_f64() / c.0.as_secs_f64())
        .collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    let down = rows.iter().map(|(_, k, _)| k.1.bytes_down).max().unwrap();
    let requests = rows.iter().map(|(_, _, n)| n.1.requests).max().unwrap();
    let noop_down = rows.iter().map(|(_, _, n)| n.1.bytes_down).max().unwrap();
    println!(
        "    create --push, base indexed before: time cached / cold median {:.3}x (target <= 0.1; rounds {:.3}..{:.3}); bytes down {:.3}x of zTOCs + new layer (target <= 1.05), {:.3}x of the cold run's; byte-identical tags",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        down as f64 / ideal as f64,
        down as f64 / rows[0].0 .1.bytes_down as f64
    );
    println!(
        "    create --push, already indexed: {requests} requests (target <= 5), {noop_down} B down (manifests only, no layer)"
    );
}
