//! `soci ztoc build` reproduces, byte for byte, every zTOC that the reference Go
//! implementation built (fixtures/golden, see its README.md).
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Command;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/golden")
        .join(name)
}

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

#[test]
fn default_identifier_names_soci_rs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.ztoc");
    let st = Command::new(env!("CARGO_BIN_EXE_soci"))
        .args(["ztoc", "build", "-q", "-o"])
        .arg(&out)
        .arg(golden("app.tar.gz"))
        .status()
        .unwrap();
    assert!(st.success());
    let info = Command::new(env!("CARGO_BIN_EXE_soci"))
        .args(["ztoc", "info"])
        .arg(&out)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(
        v["build_tool"],
        format!("soci-rs v{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(v["version"], "0.9");
}
