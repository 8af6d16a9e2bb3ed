//! `soci create --push` (index manifest v2) against a real registry: the image is
//! re-tagged as a SOCI-enabled image index, checked with skopeo and plain HTTP.
use crate::support::*;
use serde_json::Value;

/// Checks the SOCI-enabled index tagged at `repo:tag` for a single-platform
/// image; returns (index bytes, new manifest digest, SOCI index digest).
fn check_converted(
    reg: &Registry,
    repo: &str,
    tag: &str,
    original_manifest: &Value,
    layers: &[(&str, &str)],
    span: u64,
) -> (Vec<u8>, String, String) {
    let raw = inspect_raw(&format!("{}/{repo}:{tag}", reg.host()));
    let idx: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(idx["mediaType"], OCI_INDEX, "{idx}");
    // Go-JSON, as the reference writes it.
    let typed: soci_oci::spec::Index = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        String::from_utf8(soci_oci::spec::to_go_json(&typed)).unwrap(),
        String::from_utf8(raw.clone()).unwrap()
    );
    let ms = idx["manifests"].as_array().unwrap();
    assert_eq!(ms.len(), 2, "image manifest + SOCI index: {idx}");
    let (img, soci) = (&ms[0], &ms[1]);
    assert_eq!(img["mediaType"], OCI_MANIFEST);
    assert_eq!(img["platform"]["os"], "linux");
    assert_eq!(img["platform"]["architecture"], "amd64");
    let index_digest = img["annotations"][ANN_INDEX_DIGEST]
        .as_str()
        .expect("index-digest annotation on the image entry")
        .to_string();
    let manifest_digest = img["digest"].as_str().unwrap().to_string();
    // The SOCI index descriptor, after the image.
    assert_eq!(soci["artifactType"], SOCI_V2);
    assert_eq!(soci["mediaType"], OCI_MANIFEST);
    assert_eq!(soci["digest"], index_digest.as_str());
    assert_eq!(
        soci["annotations"][ANN_MANIFEST_DIGEST],
        manifest_digest.as_str()
    );
    assert_eq!(soci["platform"], img["platform"]);
    // The new image manifest: the old one plus the annotation.
    let m_raw = get_manifest(reg, repo, &manifest_digest);
    let typed: soci_oci::spec::Manifest = serde_json::from_slice(&m_raw).unwrap();
    assert_eq!(
        soci_oci::spec::to_go_json(&typed),
        m_raw,
        "the converted manifest is not Go-JSON"
    );
    let m: Value = serde_json::from_slice(&m_raw).unwrap();
    assert_eq!(m["annotations"][ANN_INDEX_DIGEST], index_digest.as_str());
    assert_eq!(m["layers"], original_manifest["layers"], "layers untouched");
    assert_eq!(m["config"]["digest"], original_manifest["config"]["digest"]);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    // The SOCI index itself, and every blob it lists.
    let soci_raw = get_manifest(reg, repo, &index_digest);
    assert_eq!(soci_raw.len() as u64, soci["size"].as_u64().unwrap());
    let ztocs = check_soci_index(&soci_raw, SOCI_V2, layers, span);
    let sv: Value = serde_json::from_slice(&soci_raw).unwrap();
    assert!(sv.get("subject").is_none(), "v2 has no subject");
    get_blob(reg, repo, soci_index::EMPTY_CONFIG_DIGEST);
    for z in &ztocs {
        let bytes = get_blob(reg, repo, z);
        assert!(!bytes.is_empty());
    }
    (raw, manifest_digest, index_digest)
}

#[test]
fn create_push_v2_roundtrip_deterministic_and_reused() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let img = &fx.images[0];
    let r = push_fixture(&fx, &reg, "app:1.0");
    let original: Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
    let store = dir.path().join("store");
    let args = reg_cmd("create", &r, p(&store), &["--push", "--span-size", "64KiB"]);

    let out = soci_ok(&args);
    let zstd = &img.layers[3];
    assert!(
        out.contains(&format!(
            "ztoc skipped - layer {} ({}) {ZSTD_SKIP}",
            zstd.digest, zstd.media_type
        )),
        "{out}"
    );
    for l in &img.layers[..3] {
        assert!(
            out.contains(&format!("layer {} -> ztoc sha256:", l.digest)),
            "{out}"
        );
    }
    assert!(out.contains("pushed SOCI-enabled image"), "{out}");
    let (raw1, manifest1, index1) =
        check_converted(&reg, "app", "1.0", &original, &indexable_layers(img), 65536);

    // The registry's copy verifies, with an empty store (no help from it).
    let empty = dir.path().join("empty-store");
    let v = soci_ok(&reg_cmd("verify", &r, p(&empty), &[]));
    assert!(
        v.contains("image manifest annotation (v2)") && v.contains("verify: OK"),
        "{v}"
    );
    assert_eq!(v.matches(": ok (").count(), 3, "{v}");

    // Again, same store: zTOCs reused, the very same bytes (the source is now
    // the SOCI-enabled index itself; converting it again is idempotent).
    // --no-cache: published again rather than found already indexed.
    let mut again = args.clone();
    again.push("--no-cache");
    let out2 = soci_ok(&again);
    assert_eq!(out2.matches("(already exists)").count(), 3, "{out2}");
    let (raw2, manifest2, index2) =
        check_converted(&reg, "app", "1.0", &original, &indexable_layers(img), 65536);
    assert_eq!(
        (manifest2.as_str(), index2.as_str()),
        (manifest1.as_str(), index1.as_str())
    );
    assert_eq!(raw2, raw1, "re-running create --push changed the tag");

    // A fresh store and a fresh push of the original image: same digests.
    let r2 = push_fixture(&fx, &reg, "app:again");
    let store2 = dir.path().join("store2");
    let out3 = soci_ok(&reg_cmd(
        "create",
        &r2,
        p(&store2),
        &["--push", "--span-size", "64KiB"],
    ));
    assert!(!out3.contains("already exists"), "{out3}");
    let (raw3, _, _) = check_converted(
        &reg,
        "app",
        "again",
        &original,
        &indexable_layers(img),
        65536,
    );
    assert_eq!(raw3, raw1, "same image, same options, different index");
}

#[test]
fn create_push_v2_docker_schema2_image() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1.0", false);
    let r = format!("{}/dock:1", reg.host());
    // skopeo converts to Docker schema2.
    push_fixture_docker(&fx, &r);
    let original = inspect(&r);
    assert_eq!(
        original["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let layers: Vec<(String, String)> = original["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["mediaType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // (gzip, or plain tar when skopeo's blob cache knows the layer uncompressed)
    assert!(
        layers
            .iter()
            .all(|(_, mt)| mt.starts_with("application/vnd.docker.image.rootfs.diff.tar")),
        "{original}"
    );
    let store = dir.path().join("store");
    soci_ok(&reg_cmd("create", &r, p(&store), &["--push"]));
    let want: Vec<(&str, &str)> = layers
        .iter()
        .map(|(d, m)| (d.as_str(), m.as_str()))
        .collect();
    // The converted manifest is OCI (config media type too); the zTOC
    // descriptors keep the Docker layer media types.
    check_converted(&reg, "dock", "1", &original, &want, 4 << 20);
    let v = soci_ok(&reg_cmd("verify", &r, p(&dir.path().join("e")), &[]));
    assert!(v.contains("verify: OK"), "{v}");
}
