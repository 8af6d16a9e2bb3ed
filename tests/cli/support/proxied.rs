//! A real registry behind the fault proxy ([`super::proxy`]), and `soci`
//! with short registry timeouts and few retries, so that an injected fault
//! ends a run in seconds.
use super::{proxy, soci_bin};

use std::path::Path;
use std::process::{Command, Output};

/// `soci ARGS` with fast registry timeouts.
pub(crate) fn soci(args: &[&str]) -> Output {
    Command::new(soci_bin())
        .args(args)
        .env("SOCI_REGISTRY_STALL_TIMEOUT", "2")
        .env("SOCI_REGISTRY_TIMEOUT", "60")
        .env("SOCI_REGISTRY_RETRIES", "3")
        .env_remove("SOCI_STORE")
        .output()
        .expect("run soci")
}

/// A real registry holding the fixture image as `app/one:v1`, with a fault
/// proxy in front of it.
pub(crate) struct ProxiedRegistry {
    pub _tmp: tempfile::TempDir,
    pub reg: soci_testkit::Registry,
    pub fx: soci_testkit::Fixture,
    pub proxy: proxy::FaultProxy,
}

pub(crate) fn proxied_registry() -> ProxiedRegistry {
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
pub(crate) fn convert(store: &Path, src: &str, dst: &str) -> Output {
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
pub(crate) fn verify(store: &Path, image: &str) -> Output {
    soci(&[
        "verify",
        "--plain-http",
        "--store",
        store.to_str().unwrap(),
        image,
    ])
}
