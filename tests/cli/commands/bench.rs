//! `soci bench startup` without SRC, as on a fresh machine: works with the
//! default flags, writes only to its documented data directory, and its demo
//! image is one where the index pays off (in bytes; times are not asserted).
//! `soci bench` runs the separate `soci-bench` binary; `soci` itself links
//! neither the benchmark nor the test kit.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

/// Builds `soci-bench` next to the `soci` under test, where `soci bench` looks
/// for it: cargo builds only this package's binaries for its tests, and the
/// bench binary belongs to crates/bench. A no-op when it is up to date.
pub(crate) fn build_soci_bench() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let soci = Path::new(env!("CARGO_BIN_EXE_soci"));
        let out_dir = soci.parent().unwrap();
        let profile = match out_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev",
            other => other,
        };
        let status = Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "--quiet",
                "-p",
                "soci-bench",
                "--bin",
                "soci-bench",
            ])
            .args(["--profile", profile, "--target-dir"])
            .arg(out_dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p soci-bench failed");
        let exe = out_dir.join(format!("soci-bench{}", std::env::consts::EXE_SUFFIX));
        assert!(exe.is_file(), "{} was not built", exe.display());
    });
}

#[test]
fn bench_startup_without_src_runs_the_demo_in_the_cache_dir() {
    build_soci_bench();
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

/// The shipped binary carries no code of the benchmark, the test kit or what
/// only they need (bcrypt for htpasswd): their symbol names would be in it.
/// (`cargo tree -p soci-rs -e normal` says the same at the manifest level.)
#[test]
fn soci_links_neither_the_bench_nor_the_testkit() {
    let bin = std::fs::read(env!("CARGO_BIN_EXE_soci")).unwrap();
    for name in ["soci_bench", "soci_testkit", "bcrypt"] {
        let found = bin.windows(name.len()).any(|w| w == name.as_bytes());
        assert!(!found, "the soci binary links {name}");
    }
}

/// Without `soci-bench` beside `soci` or on PATH: one line saying what is
/// missing and how to get it, exit 1, no panic.
#[test]
fn bench_without_the_bench_binary_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    // A copy, not a link: `soci` looks beside its own resolved path.
    let soci: PathBuf = dir.path().join("soci");
    std::fs::copy(env!("CARGO_BIN_EXE_soci"), &soci).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let o = Command::new(&soci)
        .args(["bench", "startup"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("soci-bench"), "{err}");
    assert!(err.contains("cargo install --path crates/bench"), "{err}");
}

/// `soci bench startup --help` is soci-bench's: the flags live there now.
#[test]
fn bench_help_is_forwarded_to_soci_bench() {
    build_soci_bench();
    let o = Command::new(env!("CARGO_BIN_EXE_soci"))
        .args(["bench", "startup", "--help"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for flag in ["--trace", "--profile", "--sweep-span-sizes", "--out"] {
        assert!(out.contains(flag), "{out}");
    }
}
