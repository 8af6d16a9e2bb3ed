//! Shared by the `hardening_*` tests.
#![allow(dead_code)]
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn soci_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_soci"))
}

/// `soci ARGS` with fast registry timeouts.
pub fn soci(args: &[&str]) -> Output {
    Command::new(soci_bin())
        .args(args)
        .env("SOCI_REGISTRY_STALL_TIMEOUT", "2")
        .env("SOCI_REGISTRY_TIMEOUT", "60")
        .env("SOCI_REGISTRY_RETRIES", "3")
        .env_remove("SOCI_STORE")
        .output()
        .expect("run soci")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `blobs/sha256/` is named by the sha256 of its content;
/// returns how many there are.
pub fn check_store_blobs(store: &Path) -> usize {
    let dir = store.join("blobs").join("sha256");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        use sha2::Digest as _;
        let got = hex::encode(sha2::Sha256::digest(&bytes));
        assert_eq!(
            got,
            e.file_name().to_string_lossy(),
            "store blob {} does not match its name",
            e.path().display()
        );
        n += 1;
    }
    n
}

/// A real registry holding the fixture image as `app/one:v1`, with a fault
/// proxy in front of it.
pub struct ProxiedRegistry {
    pub _tmp: tempfile::TempDir,
    pub reg: soci_testkit::Registry,
    pub fx: soci_testkit::Fixture,
    pub proxy: proxy::FaultProxy,
}

pub fn proxied_registry() -> ProxiedRegistry {
    let reg = soci_testkit::Registry::start().unwrap_or_else(|e| panic!("test registry: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&tmp.path().join("img"), "v1");
    soci_testkit::skopeo_copy(
        &fx.oci_ref(),
        &format!("docker://{}/app/one:v1", reg.host()),
    )
    .unwrap();
    let proxy = proxy::FaultProxy::start(reg.addr());
    ProxiedRegistry {
        _tmp: tmp,
        reg,
        fx,
        proxy,
    }
}

/// `soci convert SRC DST` over plain HTTP, every layer indexed, store `store`.
pub fn convert(store: &Path, src: &str, dst: &str) -> Output {
    soci(&[
        "convert",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        store.to_str().unwrap(),
        src,
        dst,
    ])
}

/// `soci verify IMAGE` over plain HTTP with store `store`.
pub fn verify(store: &Path, image: &str) -> Output {
    soci(&[
        "verify",
        "--plain-http",
        "--store",
        store.to_str().unwrap(),
        image,
    ])
}
