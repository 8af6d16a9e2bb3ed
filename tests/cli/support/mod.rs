//! Shared helpers for the integration tests that run the real `soci` binary
//! against a real registry (soci_testkit::Registry) and real tools (skopeo, tar).
//! `proxy` puts a fault-injecting proxy in front of a registry; `proxied` runs
//! `soci` with short registry timeouts against one.
pub(crate) mod proxied;
pub(crate) mod proxy;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub(crate) use soci_testkit::{skopeo_copy, skopeo_copy_all, skopeo_inspect_raw, Registry};

pub(crate) const ZSTD_SKIP: &str =
    "is compressed in an unsupported format. expect: [tar, gzip, unknown] but got \"zstd\"";
pub(crate) const SOCI_V1: &str = "application/vnd.amazon.soci.index.v1+json";
pub(crate) const SOCI_V2: &str = "application/vnd.amazon.soci.index.v2+json";
pub(crate) const ANN_INDEX_DIGEST: &str = "com.amazon.soci.index-digest";
pub(crate) const ANN_MANIFEST_DIGEST: &str = "com.amazon.soci.image-manifest-digest";
pub(crate) const ANN_LAYER_DIGEST: &str = "com.amazon.soci.image-layer-digest";
pub(crate) const ANN_LAYER_MT: &str = "com.amazon.soci.image-layer-mediaType";
pub(crate) const ANN_SPAN_SIZE: &str = "com.amazon.soci.span-size";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The `soci` binary cargo built for these tests.
pub(crate) fn soci_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_soci"))
}

/// `oci:…/fixtures/example-image:latest`: the example image's OCI layout.
pub(crate) fn example_image() -> String {
    format!(
        "oci:{}:latest",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/example-image")
            .display()
    )
}

/// A file of fixtures/golden: layers and the zTOCs the reference Go
/// implementation built from them.
pub(crate) fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/golden")
        .join(name)
}

/// Runs `soci ARGS`.
pub(crate) fn soci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_soci"))
        .args(args)
        .env_remove("SOCI_STORE")
        .env("DOCKER_CONFIG", "/nonexistent-soci-itest")
        .output()
        .expect("run soci")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `soci ARGS`, asserts exit 0, returns stdout.
pub(crate) fn soci_ok(args: &[&str]) -> String {
    let o = soci(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "soci {}: {}",
        args.join(" "),
        text(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs `soci --json ARGS`, asserts exit 0, returns the parsed stdout.
pub(crate) fn soci_json(args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = soci_ok(&a);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("soci {}: not JSON ({e}): {out}", args.join(" ")))
}

/// An error: exit 1, one `soci: ...` line that mentions `what`, no panic.
pub(crate) fn assert_error(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    assert!(err.starts_with("soci: "), "{}", text(o));
    assert!(
        err.contains(what),
        "stderr should mention {what:?}: {}",
        text(o)
    );
    assert!(!err.contains("panicked"), "{}", text(o));
}

/// `CMD IMAGE EXTRA… --plain-http --store STORE -q`, plus `--min-layer-size 0`
/// for the commands that build (create, convert): a soci command against
/// the test registry with the flags these tests always pass.
pub(crate) fn reg_cmd<'a>(
    cmd: &'a str,
    image: &'a str,
    store: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![cmd, image];
    a.extend_from_slice(extra);
    a.extend(["--plain-http", "--store", store, "-q"]);
    if matches!(cmd, "create" | "convert") {
        a.extend(["--min-layer-size", "0"]);
    }
    a
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `docker://HOST/REPO:TAG` for skopeo.
pub(crate) fn docker(r: &str) -> String {
    format!("docker://{r}")
}

/// The manifest/index at `reference` (`HOST/REPO:TAG` or `HOST/REPO@DIGEST`),
/// raw, read by skopeo (an independent client).
pub(crate) fn inspect_raw(reference: &str) -> Vec<u8> {
    skopeo_inspect_raw(&docker(reference))
        .unwrap_or_else(|e| panic!("skopeo inspect {reference}: {e}"))
}

pub(crate) fn inspect(reference: &str) -> Value {
    serde_json::from_slice(&inspect_raw(reference)).unwrap()
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A digest given as text (a fixture's, a constant), parsed.
pub(crate) fn dg(d: &str) -> soci_oci::spec::Digest {
    soci_oci::spec::Digest::parse(d).unwrap()
}

/// A plain HTTP/1.0 GET (or HEAD) against the registry: (status, body).
pub(crate) fn http(reg: &Registry, method: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&reg.addr(), Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {}\r\nAccept: {OCI_INDEX}, {OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json\r\n\r\n",
        reg.host()
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP header end");
    let head = String::from_utf8_lossy(&all[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    (status, all[split + 4..].to_vec())
}

/// A blob of `repo`, which must exist; its digest is checked.
pub(crate) fn get_blob(reg: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let (status, body) = http(reg, "GET", &format!("/v2/{repo}/blobs/{digest}"));
    assert_eq!(status, 200, "GET blob {digest} of {repo}");
    assert_eq!(sha256(&body), digest, "blob {digest} of {repo}");
    body
}

pub(crate) fn blob_exists(reg: &Registry, repo: &str, digest: &str) -> bool {
    http(reg, "HEAD", &format!("/v2/{repo}/blobs/{digest}")).0 == 200
}

/// A manifest of `repo` by digest or tag, raw.
pub(crate) fn get_manifest(reg: &Registry, repo: &str, reference: &str) -> Vec<u8> {
    let (status, body) = http(reg, "GET", &format!("/v2/{repo}/manifests/{reference}"));
    assert_eq!(
        status,
        200,
        "GET manifest {repo}:{reference}: {}",
        String::from_utf8_lossy(&body)
    );
    if reference.starts_with("sha256:") {
        assert_eq!(sha256(&body), reference);
    }
    body
}

pub(crate) fn manifest_json(reg: &Registry, repo: &str, reference: &str) -> Value {
    serde_json::from_slice(&get_manifest(reg, repo, reference)).unwrap()
}

/// Pushes a soci_testkit fixture layout to `HOST/REPO:TAG` with skopeo, byte-exact.
pub(crate) fn push_fixture(fx: &soci_testkit::Fixture, reg: &Registry, repo_tag: &str) -> String {
    let dst = format!("{}/{repo_tag}", reg.host());
    if fx.images.len() > 1 {
        skopeo_copy_all(&fx.oci_ref(), &docker(&dst)).unwrap();
    } else {
        skopeo_copy(&fx.oci_ref(), &docker(&dst)).unwrap();
    }
    dst
}

/// Pushes the single-image fixture to `reference` (HOST/REPO:TAG) converted
/// to Docker schema2 media types by skopeo.
pub(crate) fn push_fixture_docker(fx: &soci_testkit::Fixture, reference: &str) {
    soci_testkit::skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &fx.oci_ref(),
        &docker(reference),
    ])
    .unwrap();
}

/// Checks one SOCI index manifest (raw bytes): Go-canonical, the expected
/// version, zTOC descriptors for `layers` (digest, media type) in this order,
/// each with span size `span`; returns the zTOC digests.
pub(crate) fn check_soci_index(
    raw: &[u8],
    version: &str,
    layers: &[(&str, &str)],
    span: u64,
) -> Vec<String> {
    let parsed = soci_index::parse_index_manifest(raw).expect("SOCI index parses");
    assert!(
        parsed.go_canonical,
        "SOCI index is not Go-canonical: {}",
        String::from_utf8_lossy(raw)
    );
    let v: Value = serde_json::from_slice(raw).unwrap();
    assert_eq!(v["mediaType"], OCI_MANIFEST);
    assert_eq!(v["config"]["mediaType"], version);
    assert_eq!(v["config"]["digest"], soci_index::EMPTY_CONFIG_DIGEST);
    assert!(v.get("artifactType").is_none());
    assert_eq!(
        v["annotations"]["com.amazon.soci.build-tool-identifier"],
        "AWS SOCI CLI v0.2"
    );
    let zs: Vec<&Value> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["mediaType"] == "application/octet-stream")
        .collect();
    let got: Vec<(&str, &str)> = zs
        .iter()
        .map(|d| {
            (
                d["annotations"][ANN_LAYER_DIGEST].as_str().unwrap(),
                d["annotations"][ANN_LAYER_MT].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, layers, "zTOC descriptors of the SOCI index");
    for d in &zs {
        assert_eq!(d["annotations"][ANN_SPAN_SIZE], span.to_string());
    }
    zs.iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The `(digest, mediaType)` of the image layers soci indexes (not zstd).
pub(crate) fn indexable_layers(img: &soci_testkit::FixtureImage) -> Vec<(&str, &str)> {
    img.layers
        .iter()
        .filter(|l| !l.media_type.ends_with("+zstd"))
        .map(|l| (l.digest.as_str(), l.media_type.as_str()))
        .collect()
}

/// Every file under `blobs/sha256/` is named by the sha256 of its content;
/// returns how many there are.
pub(crate) fn check_store_blobs(store: &Path) -> usize {
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
