//! Multi-platform images: `--all-platforms` and `--platform`, pushed as v2;
//! one platform converted into another repository (`--dest`) with every blob
//! the index needs.
use crate::support::*;
use serde_json::Value;

fn entries(v: &Value) -> Vec<Value> {
    v["manifests"].as_array().unwrap().clone()
}

/// The SOCI entry for image entry `img` of the converted index, checked.
fn soci_entry_for<'a>(ms: &'a [Value], img: &Value) -> &'a Value {
    let d = img["annotations"][ANN_INDEX_DIGEST]
        .as_str()
        .unwrap_or_else(|| panic!("no index-digest on {img}"));
    let e = ms
        .iter()
        .find(|m| m["digest"] == d)
        .unwrap_or_else(|| panic!("no entry for SOCI index {d}"));
    assert_eq!(e["artifactType"], SOCI_V2);
    assert_eq!(e["annotations"][ANN_MANIFEST_DIGEST], img["digest"]);
    e
}

#[test]
fn all_platforms_then_one_platform() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_multiplatform_layout(&dir.path().join("mp"), "1");
    let (amd, arm) = (&fx.images[0], &fx.images[1]);
    let store = dir.path().join("store");
    let empty = dir.path().join("empty");

    // --all-platforms: both images indexed, attestation left alone.
    let r = push_fixture(&fx, &reg, "mp:all");
    soci_ok(&reg_cmd(
        "create",
        &r,
        p(&store),
        &["--push", "--all-platforms"],
    ));
    let idx = inspect(&r);
    let ms = entries(&idx);
    assert_eq!(ms.len(), 5, "3 original entries + 2 SOCI indexes: {idx}");
    // Images first, in the original order, then the SOCI indexes.
    assert_eq!(ms[0]["platform"]["architecture"], "amd64");
    assert_eq!(ms[1]["platform"]["architecture"], "arm64");
    assert_eq!(ms[1]["platform"]["variant"], "v8");
    assert_eq!(ms[2]["platform"]["architecture"], "unknown");
    assert!(ms[2]["annotations"].get(ANN_INDEX_DIGEST).is_none());
    assert_eq!(
        ms[2]["digest"],
        fx.extra_manifests[0].digest.as_str(),
        "attestation manifest rewritten"
    );
    assert!(
        ms[3..].iter().all(|m| m["artifactType"] == SOCI_V2),
        "{idx}"
    );
    for (i, img) in [(0, amd), (1, arm)] {
        let e = soci_entry_for(&ms, &ms[i]);
        assert_eq!(
            e["platform"]["architecture"],
            ms[i]["platform"]["architecture"]
        );
        let raw = get_manifest(&reg, "mp", e["digest"].as_str().unwrap());
        for z in check_soci_index(&raw, SOCI_V2, &indexable_layers(img), 4 << 20) {
            get_blob(&reg, "mp", &z);
        }
        let m = manifest_json(&reg, "mp", ms[i]["digest"].as_str().unwrap());
        let orig: Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
        assert_eq!(m["layers"], orig["layers"]);
    }
    let v = soci_ok(&reg_cmd("verify", &r, p(&empty), &["--all-platforms"]));
    assert!(
        v.contains("verify: OK") && v.contains("linux/amd64") && v.contains("linux/arm64/v8"),
        "{v}"
    );
    // Converting the SOCI-enabled index again changes nothing.
    soci_ok(&reg_cmd(
        "create",
        &r,
        p(&store),
        &["--push", "--all-platforms"],
    ));
    assert_eq!(
        inspect(&r),
        idx,
        "re-converting --all-platforms is not idempotent"
    );

    // --platform linux/arm64: only arm64 gets an index; amd64 stays as it was.
    let r = push_fixture(&fx, &reg, "mp:arm");
    let out = soci_ok(&reg_cmd(
        "create",
        &r,
        p(&store),
        &["--push", "--platform", "linux/arm64"],
    ));
    assert!(
        !out.contains(&amd.layers[0].digest),
        "amd64 layers were processed: {out}"
    );
    let idx = inspect(&r);
    let ms = entries(&idx);
    assert_eq!(ms.len(), 4, "{idx}");
    assert_eq!(
        ms[0]["digest"],
        amd.manifest.digest.as_str(),
        "amd64 entry changed"
    );
    assert!(ms[0]["annotations"].get(ANN_INDEX_DIGEST).is_none());
    assert_eq!(ms[0]["platform"]["architecture"], "amd64");
    assert_eq!(ms[2]["digest"], fx.extra_manifests[0].digest.as_str());
    let e = soci_entry_for(&ms, &ms[1]);
    assert_eq!(ms[3], *e);
    // The SOCI entry carries the platform as given (containerd parses
    // `linux/arm64` without a variant); the image entry keeps its own.
    assert_eq!(
        e["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux"})
    );
    assert_eq!(ms[1]["platform"]["variant"], "v8");
    let v = soci_ok(&reg_cmd(
        "verify",
        &r,
        p(&empty),
        &["--platform", "linux/arm64"],
    ));
    assert!(v.contains("verify: OK"), "{v}");
    // amd64 has no index: verify says so with exit code 3.
    let o = soci(&reg_cmd(
        "verify",
        &r,
        p(&empty),
        &["--platform", "linux/amd64"],
    ));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("no SOCI index found"),
        "{}",
        text(&o)
    );
}

#[test]
fn multiplatform_one_platform_to_other_repo_is_complete() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_multiplatform_layout(&dir.path().join("mp"), "1");
    let src = push_fixture(&fx, &reg, "mpsrc:1");
    let dst = format!("{}/mpdst:soci", reg.host());
    let store = dir.path().join("store");
    soci_ok(&reg_cmd(
        "create",
        &src,
        p(&store),
        &["--dest", &dst, "--platform", "linux/arm64"],
    ));
    // Every child of the index (the untouched amd64 image, the attestation)
    // and every blob they use is in the other repository.
    for img in &fx.images {
        assert!(blob_exists(&reg, "mpdst", &img.config.digest));
        for l in &img.layers {
            assert!(
                blob_exists(&reg, "mpdst", &l.digest),
                "{} layer {} missing",
                img.platform,
                l.digest
            );
        }
    }
    get_manifest(&reg, "mpdst", &fx.images[0].manifest.digest);
    get_manifest(&reg, "mpdst", &fx.extra_manifests[0].digest);
    // skopeo copies the whole graph out (every blob is there). Not with
    // --preserve-digests: skopeo 1.9 re-serialises the index with image-spec
    // 1.0 descriptors, which have no `artifactType`, and then refuses.
    skopeo_all_no_preserve(
        &docker(&dst),
        &format!("oci:{}:x", dir.path().join("copy").display()),
    );
    let v = soci_ok(&reg_cmd(
        "verify",
        &dst,
        p(&dir.path().join("e")),
        &["--platform", "linux/arm64"],
    ));
    assert!(v.contains("verify: OK"), "{v}");
    // The same to an OCI layout.
    let oci = format!("oci:{}:soci", dir.path().join("out").display());
    soci_ok(&reg_cmd(
        "create",
        &src,
        p(&store),
        &["--dest", &oci, "--platform", "linux/arm64"],
    ));
    let raw = soci_testkit::skopeo(&["inspect", "--raw", &oci]).unwrap();
    assert_eq!(raw, inspect_raw(&dst));
    skopeo_all_no_preserve(
        &oci,
        &format!("oci:{}:y", dir.path().join("copy2").display()),
    );
}

fn skopeo_all_no_preserve(src: &str, dst: &str) {
    soci_testkit::skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--all",
        "--src-tls-verify=false",
        src,
        dst,
    ])
    .unwrap();
}
