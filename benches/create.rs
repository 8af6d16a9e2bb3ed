//! `cargo bench --bench create`: `soci create` on a multi-layer image, against
//! plain inflate of the same layers measured in the same run.
//!
//! The image has four large gzip layers made from system directories
//! (/usr/lib/x86_64-linux-gnu, /usr/lib/jvm, /usr/lib/llvm-14, /usr/bin; missing
//! directories are skipped), cached under target/bench-data/. It is indexed
//! (`--force`, `--min-layer-size 0`) from an OCI layout and from a local
//! docker-registry on 127.0.0.1. Printed: wall time, peak RSS, and the target
//! wall <= 1.15 x max(largest layer inflate, total inflate / cores), where the
//! inflate times are single-thread flate2 + zlib-rs of each layer.
mod common;
use common::{data_dir, inflate, make_layer, run_measured};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// An OCI layout with these gzip layers (blobs hard-linked from the cache).
fn make_layout(layers: &[PathBuf]) -> PathBuf {
    let dir = data_dir().join("create-image");
    let _ = std::fs::remove_dir_all(&dir);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut descs = Vec::new();
    for l in layers {
        let hex = sha256_file(l);
        let dst = blobs.join(&hex);
        if std::fs::hard_link(l, &dst).is_err() {
            std::fs::copy(l, &dst).unwrap();
        }
        let size = std::fs::metadata(l).unwrap().len();
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{hex}"), "size": size}));
    }
    let put = |bytes: Vec<u8>| -> (String, usize) {
        let hex = hex::encode(Sha256::digest(&bytes));
        std::fs::write(blobs.join(&hex), &bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
    let (cd, cs) = put(serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs}, "layers": descs});
    let (md, ms) = put(serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let soci = env!("CARGO_BIN_EXE_soci");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let layers: Vec<PathBuf> = [
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/jvm",
        "usr/lib/llvm-14",
        "usr/bin",
    ]
    .iter()
    .filter_map(|d| make_layer(&format!("{}.tar.gz", d.replace('/', "-")), &[d]))
    .collect();
    let layout = make_layout(&layers);
    let store = data_dir().join("create-store");

    // Peak memory and wall time of `soci create` from the OCI layout (run first, while
    // this process is small: max RSS is inherited across exec).
    let _ = std::fs::remove_dir_all(&store);
    let src = format!("oci:{}:bench", layout.display());
    let args = |src: &str| -> Vec<String> {
        [
            "create",
            "-q",
            "--force",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            src,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (t_layout, rss_layout) = run_measured(Command::new(soci).args(args(&src)));

    // The same from a local registry.
    let registry = soci_testkit::Registry::start().expect("docker-registry");
    let dst = format!("docker://{}/bench/create:1", registry.addr());
    soci_testkit::skopeo_copy(&format!("oci:{}:bench", layout.display()), &dst)
        .expect("skopeo copy");
    let reg_ref = format!("{}/bench/create:1", registry.addr());
    let mut reg_args = args(&reg_ref);
    reg_args.insert(1, "--plain-http".into());
    let (t_registry, rss_registry) = run_measured(Command::new(soci).args(&reg_args));

    // Baseline: plain single-thread inflate of each layer, same run.
    let mut times = Vec::new();
    let mut total_bytes = 0u64;
    let mut total_gz = 0u64;
    for l in &layers {
        let (t, n) = inflate(l);
        total_bytes += n;
        total_gz += std::fs::metadata(l).unwrap().len();
        times.push(t);
    }
    let sum: Duration = times.iter().sum();
    let max = times.iter().max().copied().unwrap_or_default();
    let bound = max.max(sum / cores as u32);
    println!(
        "create benchmark: {} layers, {:.0} MB gzip, {:.0} MB tar, {} cores",
        layers.len(),
        total_gz as f64 / 1e6,
        total_bytes as f64 / 1e6,
        cores
    );
    for (l, t) in layers.iter().zip(&times) {
        println!(
            "  plain inflate {:<45} {:>6.2} s",
            l.file_name().unwrap().to_string_lossy(),
            t.as_secs_f64()
        );
    }
    println!(
        "  sum of inflate times {:.2} s, largest {:.2} s, bound max(largest, sum/cores) {:.2} s",
        sum.as_secs_f64(),
        max.as_secs_f64(),
        bound.as_secs_f64()
    );
    for (what, t, rss) in [
        ("from OCI layout", t_layout, rss_layout),
        ("from local registry", t_registry, rss_registry),
    ] {
        println!(
            "  soci create {:<20} wall {:>6.2} s = {:.2} x bound (target <= 1.15), peak RSS {:.1} MB",
            what,
            t.as_secs_f64(),
            t.as_secs_f64() / bound.as_secs_f64(),
            rss as f64 / 1024.0
        );
    }
}
