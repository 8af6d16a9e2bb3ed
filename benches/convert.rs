//! `cargo bench --bench convert`: what `soci convert` costs on top of copying
//! the image, with skopeo (an independent tool) copying the same image as the
//! baseline, in the same round.
//!
//! The image is the `create` benchmark's (four large gzip layers made from
//! system directories, cached under target/bench-data/), in an OCI layout and
//! in local docker-registries on 127.0.0.1. Each round, each soci run is
//! followed by its baseline:
//! 1. `soci convert oci:LAYOUT REG/new` with an empty store (index + copy)
//!    against `skopeo copy oci:LAYOUT docker://REG/new` (copy); each run gets
//!    a registry of its own, started empty, so every blob is uploaded (skopeo
//!    remembers where it saw a blob and would mount it from an earlier copy);
//! 2. the same with the store already holding the zTOCs (copy + SOCI
//!    artifacts): the copy paths compared;
//! 3. `soci convert REG/src REG/new` (same registry, store warm) against
//!    `skopeo copy docker://REG/src docker://REG/new`: both mount the blobs,
//!    so this shows what the SOCI artifacts add to a copy that moves no data;
//! 4. `soci convert SHAPED/src REG/new` with an empty store, the source behind
//!    the startup bench's shaping proxy (1 Gbit/s, 2 ms RTT: the download is
//!    the bottleneck), into an empty registry, against `skopeo copy` over the
//!    same link; also the bytes each tool downloaded (the proxy counts them).
//!
//! Printed: the ratio soci / skopeo per round and its median.
mod common;
use common::{data_dir, make_layout, multi_layer_image, run_measured};
use std::process::Command;
use std::time::Duration;

const ROUNDS: usize = 3;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let soci = env!("CARGO_BIN_EXE_soci");
    let layers = multi_layer_image();
    let layout = make_layout("convert-image", &layers);
    let total: u64 = layers
        .iter()
        .map(|l| std::fs::metadata(l).unwrap().len())
        .sum();
    let registry = soci_testkit::Registry::start().expect("docker-registry");
    let reg = registry.host();
    let oci_src = format!("oci:{}:bench", layout.display());
    soci_testkit::skopeo_copy(&oci_src, &format!("docker://{reg}/bench/src:1"))
        .expect("skopeo copy");
    let store = data_dir().join("convert-store");
    let shaped_store = data_dir().join("convert-store-shaped");
    let shaped = soci_bench::proxy::Proxy::start(
        registry.addr(),
        soci_bench::proxy::Profile::new(1_000_000_000, Duration::from_millis(2)),
    )
    .expect("shaping proxy");
    // Bytes downloaded through the shaped link, per tool, over all rounds.
    let shaped_bytes = std::cell::Cell::new((0u64, 0u64));
    let empty_registry = || soci_testkit::Registry::start().expect("docker-registry");

    // Peak RSS of the soci runs (wait4's ru_maxrss, KB).
    let peak_rss = std::cell::Cell::new(0u64);
    let soci_convert_with = |store: &std::path::Path, src: &str, dst: &str| -> Duration {
        let (t, rss) = run_measured(Command::new(soci).args([
            "convert",
            "-q",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            src,
            dst,
        ]));
        peak_rss.set(peak_rss.get().max(rss));
        t
    };
    let soci_convert = |src: &str, dst: &str| soci_convert_with(&store, src, dst);
    let skopeo_copy = |src: &str, dst: &str| -> Duration {
        let (t, _) = run_measured(
            Command::new("skopeo")
                .args(["--insecure-policy", "copy", "--quiet"])
                .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
                .args([src, dst]),
        );
        t
    };

    println!(
        "convert benchmark: {} layers, {:.0} MB gzip, {ROUNDS} rounds; ratio = soci / skopeo copy of the same round",
        layers.len(),
        total as f64 / 1e6
    );
    let names = [
        "soci convert oci: -> registry, empty store (index + copy) vs skopeo copy",
        "soci convert oci: -> registry, zTOCs in the store (copy) vs skopeo copy",
        "soci convert registry -> same registry, zTOCs in the store (mount) vs skopeo copy",
        "soci convert registry over 1 Gbit/s -> registry, empty store (index + copy) vs skopeo copy",
    ];
    let mut ratios: [Vec<f64>; 4] = Default::default();
    let mut times: [Vec<(Duration, Duration)>; 4] = Default::default();
    // Case 4: from the shaped source into an empty registry; returns the time
    // and adds the bytes downloaded to `shaped_bytes` (.0 soci, .1 skopeo).
    let from_shaped = |use_soci: bool| -> Duration {
        let r = empty_registry();
        let before = shaped.traffic().bytes_down;
        let t = if use_soci {
            let _ = std::fs::remove_dir_all(&shaped_store);
            soci_convert_with(
                &shaped_store,
                &format!("{}/bench/src:1", shaped.host()),
                &format!("{}/bench/new:1", r.host()),
            )
        } else {
            skopeo_copy(
                &format!("docker://{}/bench/src:1", shaped.host()),
                &format!("docker://{}/bench/new:1", r.host()),
            )
        };
        let down = shaped.traffic().bytes_down - before;
        let (a, b) = shaped_bytes.get();
        shaped_bytes.set(if use_soci {
            (a + down, b)
        } else {
            (a, b + down)
        });
        t
    };
    for round in 1..=ROUNDS {
        let new = |what: &str| format!("{reg}/bench/{what}-{round}:1");
        let _ = std::fs::remove_dir_all(&store);
        // Into a registry of its own, started empty.
        let into_empty = |copy: &dyn Fn(&str) -> Duration| {
            let r = empty_registry();
            copy(&format!("{}/bench/new:1", r.host()))
        };
        let soci_into_empty = || into_empty(&|dst| soci_convert(&oci_src, dst));
        let skopeo_into_empty =
            || into_empty(&|dst| skopeo_copy(&oci_src, &format!("docker://{dst}")));
        let pairs = [
            (soci_into_empty(), skopeo_into_empty()),
            (soci_into_empty(), skopeo_into_empty()),
            (
                soci_convert(&format!("{reg}/bench/src:1"), &new("mount")),
                skopeo_copy(
                    &format!("docker://{reg}/bench/src:1"),
                    &format!("docker://{}", new("mount-skopeo")),
                ),
            ),
            (from_shaped(true), from_shaped(false)),
        ];
        let line: Vec<String> = pairs
            .iter()
            .enumerate()
            .map(|(i, (s, k))| {
                let r = s.as_secs_f64() / k.as_secs_f64();
                ratios[i].push(r);
                times[i].push((*s, *k));
                format!(
                    "{:.2}x ({:.2} s / {:.2} s)",
                    r,
                    s.as_secs_f64(),
                    k.as_secs_f64()
                )
            })
            .collect();
        println!("  round {round}: {}", line.join(", "));
    }
    for (i, name) in names.iter().enumerate() {
        let mut r = ratios[i].clone();
        r.sort_by(|a, b| a.total_cmp(b));
        let best_soci = times[i].iter().map(|t| t.0).min().unwrap();
        let best_skopeo = times[i].iter().map(|t| t.1).min().unwrap();
        println!(
            "  {name}: median {:.2}x (rounds {:.2}..{:.2}); best {:.2} s vs {:.2} s",
            r[r.len() / 2],
            r[0],
            r[r.len() - 1],
            best_soci.as_secs_f64(),
            best_skopeo.as_secs_f64()
        );
    }
    println!(
        "  peak RSS of soci over all runs: {:.0} MB",
        peak_rss.get() as f64 / 1024.0
    );
    let (soci_down, skopeo_down) = shaped_bytes.get();
    println!(
        "  downloaded over the shaped link per run: soci {:.0} MB, skopeo {:.0} MB (image {:.0} MB)",
        soci_down as f64 / ROUNDS as f64 / 1e6,
        skopeo_down as f64 / ROUNDS as f64 / 1e6,
        total as f64 / 1e6
    );
}
