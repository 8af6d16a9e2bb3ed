//! `cargo bench --bench ztoc_build`: zTOC build speed against plain inflate.
//!
//! Builds the zTOC of a large realistic layer (a tar of /usr/share, /usr/bin and
//! /usr/libexec, gzip -6, about 1 GB uncompressed; cached under
//! target/bench-data/) and prints, measured in the same run:
//! - plain inflate throughput of the same blob with the same zlib backend
//!   (flate2 on zlib-rs, single thread, output discarded);
//! - our build throughput (inflate + checkpoints + tar walk + sha256 of the blob and
//!   of every span), and the ratio to plain inflate (target >= 0.90);
//! - `gztool -i` (zran index) on the same blob, when gztool is installed;
//! - peak memory (max RSS) of `soci ztoc build` on the big layer and on a smaller one,
//!   to show it does not grow with the layer.
//!
//! Set SOCI_BENCH_LAYER=/path/to/layer.tar.gz to use another layer, SOCI_BENCH_RUNS
//! to change the number of runs (best of N is reported; default 3).
mod common;
use common::{best_of, data_dir, inflate, make_layer, run_measured};
use soci_ztoc::build::{build_ztoc, BuildOptions, LayerCompression, NoProgress};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probing
    }
    let runs: usize = std::env::var("SOCI_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let big = match std::env::var_os("SOCI_BENCH_LAYER") {
        Some(p) => PathBuf::from(p),
        None => make_layer(
            "usr-share-bin-libexec.tar.gz",
            &["usr/share", "usr/bin", "usr/libexec"],
        )
        .expect("no /usr/share"),
    };
    let small = make_layer("usr-bin.tar.gz", &["usr/bin"]).expect("no /usr/bin");
    let compressed = std::fs::metadata(&big).unwrap().len();
    // Peak memory first, while this process is still small: Linux carries a
    // process's max RSS across exec, so a child forked from a big parent would
    // report the parent's peak.
    let soci = env!("CARGO_BIN_EXE_soci");
    let out = data_dir().join("bench.ztoc");
    let (_, rss_small) = run_measured(
        Command::new(soci)
            .args(["ztoc", "build", "-q", "-o"])
            .arg(&out)
            .arg(&small),
    );
    let (t_cli, rss_big) = run_measured(
        Command::new(soci)
            .args(["ztoc", "build", "-q", "-o"])
            .arg(&out)
            .arg(&big),
    );
    let small_size = std::fs::metadata(&small).unwrap().len();

    // Baseline: plain inflate, same backend (flate2 + zlib-rs), single thread.
    let (t_inflate, uncompressed) = best_of(runs, || inflate(&big).1);

    // Ours: the full one-pass zTOC build, in process.
    let (t_build, built) = best_of(runs, || {
        let f = std::fs::File::open(&big).unwrap();
        let opts = BuildOptions::new(LayerCompression::Gzip);
        build_ztoc(f, &opts, &mut NoProgress).unwrap()
    });
    assert!(built.ztoc.uncompressed_archive_size as u64 <= uncompressed);

    let gztool = which("gztool").map(|g| {
        let idx = data_dir().join("bench.gzi");
        best_of(runs.min(2), || {
            let _ = std::fs::remove_file(&idx);
            run_measured(
                Command::new(&g)
                    .args(["-i", "-s", "4", "-I"])
                    .arg(&idx)
                    .arg(&big),
            )
            .0
        })
        .1
    });

    println!("ztoc_build benchmark ({} runs, best of)", runs);
    println!(
        "layer: {} ({:.0} MB gzip, {:.0} MB tar, {} files, {} spans at 4 MiB)",
        big.display(),
        compressed as f64 / 1e6,
        uncompressed as f64 / 1e6,
        built.ztoc.toc.entries.len(),
        built.ztoc.compression_info.span_digests.len()
    );
    println!("{:<44} {:>8} {:>12}", "", "seconds", "MB/s (tar)");
    println!(
        "{:<44} {:>8.2} {:>12.0}",
        "plain inflate (flate2 + zlib-rs, 1 thread)",
        t_inflate.as_secs_f64(),
        mb_s(uncompressed, t_inflate)
    );
    println!(
        "{:<44} {:>8.2} {:>12.0}",
        "soci-rs zTOC build (library)",
        t_build.as_secs_f64(),
        mb_s(uncompressed, t_build)
    );
    println!(
        "{:<44} {:>8.2} {:>12.0}",
        "soci-rs zTOC build (`soci ztoc build`)",
        t_cli.as_secs_f64(),
        mb_s(uncompressed, t_cli)
    );
    if let Some(g) = gztool {
        println!(
            "{:<44} {:>8.2} {:>12.0}",
            "gztool -i -s 4 (zran index)",
            g.as_secs_f64(),
            mb_s(uncompressed, g)
        );
        println!(
            "ratio gztool / soci-rs build time: {:.2}x",
            g.as_secs_f64() / t_build.as_secs_f64()
        );
    }
    println!(
        "ratio build / plain inflate throughput: {:.3} (target >= 0.90)",
        t_inflate.as_secs_f64() / t_build.as_secs_f64()
    );
    println!("peak RSS of `soci ztoc build`: {:.1} MB on the {:.0} MB layer, {:.1} MB on the {:.0} MB layer",
        rss_big as f64 / 1024.0, compressed as f64 / 1e6, rss_small as f64 / 1024.0, small_size as f64 / 1e6);
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| Path::new(p).is_file())
    })
}
