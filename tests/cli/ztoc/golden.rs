//! `soci ztoc build` reproduces, byte for byte, every zTOC that the reference Go
//! implementation built (fixtures/golden, see its README.md).
use crate::support::golden;
use sha2::{Digest, Sha256};
use std::process::Command;

/// (layer, span size, sha256 of the reference zTOC) — from fixtures/golden/README.md.
const GOLDENS: &[(&str, u64, &str)] = &[
    (
        "app.tar.gz",
        4194304,
        "cb2a3a1891ce2033d4effd693c0743a95a6673cf82e732483876ee8898358f44",
    ),
    (
        "app.tar.gz",
        65536,
        "6888acf26858007b6a950c04e60868495d0a7fb39e30d7540ab68e6ff5c171ac",
    ),
    (
        "app.tar",
        65536,
        "822db61c7d0144f6b36a72158fead5986f87c450d27d4402295b816a0eb8850b",
    ),
    (
        "edge-pax.tar.gz",
        4194304,
        "e057c694206fabe3f1ace11de608c17e7df2c67baf552a64119c9b8316f54a40",
    ),
    (
        "edge-pax.tar.gz",
        65536,
        "ef0e7e6832c65482403c251498e451bb22056a2825e2ea57e08615ed1bd7347c",
    ),
    (
        "edge-pax.tar",
        65536,
        "a3be5c83f4c8794dc62a66bfa55f11b1810736fc26a0bb70142532021d739bb4",
    ),
    (
        "multimember-gnu.tar.gz",
        65536,
        "6acf231efc2a06500f9dcfd08f39343196ff12ef4a924c4d49fd604fdaa1842c",
    ),
    (
        "fname-ustar.tar.gz",
        65536,
        "30dd93c51fdba03ad832514c73399939b808ffc7dc2f5ed4078450a8895c97b4",
    ),
];

#[test]
fn reproduces_every_reference_ztoc_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (layer, span, sha)) in GOLDENS.iter().enumerate() {
        let want = std::fs::read(golden(&format!("{layer}.span-{span}.ztoc"))).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&want)),
            *sha,
            "fixture {layer} span {span} is intact"
        );
        let out = dir.path().join(format!("{i}.ztoc"));
        // Run under a non-UTC zone: file times must still be written in UTC.
        let status = Command::new(env!("CARGO_BIN_EXE_soci"))
            .env("TZ", "Europe/Berlin")
            .args(["ztoc", "build", "--quiet", "--span-size", &span.to_string()])
            .args(["--build-tool-identifier", "AWS SOCI CLI v0.2", "-o"])
            .arg(&out)
            .arg(golden(layer))
            .status()
            .unwrap();
        assert!(status.success(), "build {layer} span {span}");
        let got = std::fs::read(&out).unwrap();
        assert!(got == want, "{layer} at span {span}: our zTOC ({} bytes, sha256 {}) differs from the reference ({} bytes)", got.len(), hex::encode(Sha256::digest(&got)), want.len());
    }
}

/// With no flags at all, `soci ztoc build` writes the reference's zTOC: the
/// default span size and build tool identifier are the reference CLI's.
#[test]
fn defaults_reproduce_the_reference_ztoc() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (layer, _, sha)) in GOLDENS
        .iter()
        .filter(|(_, span, _)| *span == soci_ztoc::build::DEFAULT_SPAN_SIZE)
        .enumerate()
    {
        let out = dir.path().join(format!("{i}.ztoc"));
        let status = Command::new(env!("CARGO_BIN_EXE_soci"))
            .args(["ztoc", "build", "-q", "-o"])
            .arg(&out)
            .arg(golden(layer))
            .status()
            .unwrap();
        assert!(status.success(), "build {layer}");
        let got = std::fs::read(&out).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&got)),
            *sha,
            "{layer}: default `ztoc build` differs from the reference zTOC"
        );
    }
}

/// `soci ztoc build` and `soci create` give the same layer the same zTOC bytes
/// by default (they once wrote different build tool identifiers).
#[test]
fn ztoc_build_and_create_agree_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1.0", false);
    let store = dir.path().join("store");
    let out = Command::new(env!("CARGO_BIN_EXE_soci"))
        .env_remove("SOCI_STORE")
        .args(["--json", "create", &fx.oci_ref(), "--min-layer-size", "0"])
        .arg("--store")
        .arg(&store)
        .arg("-q")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ztocs = v["platforms"][0]["ztocs"].as_array().unwrap();
    assert!(!ztocs.is_empty(), "{v}");
    for z in ztocs {
        let layer_digest = z["layer"].as_str().unwrap();
        let layer = dir.path().join("layer");
        std::fs::write(&layer, fx.blob(layer_digest)).unwrap();
        let built = dir.path().join("layer.ztoc");
        let status = Command::new(env!("CARGO_BIN_EXE_soci"))
            .args(["ztoc", "build", "-q", "-o"])
            .arg(&built)
            .arg(&layer)
            .status()
            .unwrap();
        assert!(status.success(), "ztoc build {layer_digest}");
        let bytes = std::fs::read(&built).unwrap();
        assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            z["ztoc"].as_str().unwrap(),
            "layer {layer_digest}: `ztoc build` and `create` wrote different zTOCs"
        );
    }
}
