//! Edge cases of converting in a registry: converting a converted index with
//! more platforms, sources by digest, Docker 25 archives, a missing zTOC blob.
use crate::support::*;
use serde_json::Value;

#[test]
fn reconvert_with_more_platforms_replaces_soci_entries() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_multiplatform_layout(&dir.path().join("mp"), "1");
    let r = push_fixture(&fx, &reg, "re:1");
    let store = dir.path().join("store");
    let run = |extra: &[&str]| {
        let mut a = reg_cmd("create", &r, p(&store), &["--push"]);
        a.extend_from_slice(extra);
        soci_ok(&a)
    };
    run(&["--platform", "linux/arm64"]);
    run(&["--all-platforms"]);
    let idx = inspect(&r);
    let ms = idx["manifests"].as_array().unwrap();
    let soci: Vec<&Value> = ms.iter().filter(|m| m["artifactType"] == SOCI_V2).collect();
    assert_eq!(
        soci.len(),
        2,
        "one SOCI entry per platform, the old arm64 one replaced: {idx}"
    );
    assert_eq!(ms.len(), 5, "{idx}");
    for img in &ms[..2] {
        let d = img["annotations"][ANN_INDEX_DIGEST]
            .as_str()
            .unwrap_or_else(|| panic!("{img}"));
        assert!(soci.iter().any(|s| s["digest"] == d && s["annotations"][ANN_MANIFEST_DIGEST] == img["digest"]), "{idx}");
    }
    let v = soci_ok(&reg_cmd(
        "verify",
        &r,
        p(&dir.path().join("e")),
        &["--all-platforms"],
    ));
    assert!(v.contains("verify: OK"), "{v}");
    // The host default (linux/amd64 here) on the converted index picks the image, not its SOCI index.
    if cfg!(target_arch = "x86_64") {
        let again = soci_json(&reg_cmd("create", &r, p(&store), &[]));
        assert_eq!(again["platforms"].as_array().unwrap().len(), 1);
        assert_eq!(again["platforms"][0]["manifest"], ms[0]["digest"]);
    }
}

#[test]
fn source_by_digest_to_tagged_dest() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1");
    push_fixture(&fx, &reg, "bydigest:1");
    let src = format!("{}/bydigest@{}", reg.host(), fx.images[0].manifest.digest);
    let dst = format!("{}/bydigest:soci", reg.host());
    soci_ok(&reg_cmd(
        "create",
        &src,
        p(&dir.path().join("s")),
        &["--dest", &dst],
    ));
    let v = soci_ok(&reg_cmd("verify", &dst, p(&dir.path().join("e")), &[]));
    assert!(v.contains("verify: OK"), "{v}");
    // --push on a digest reference has no tag to move.
    let o = soci(&reg_cmd(
        "create",
        &src,
        p(&dir.path().join("s")),
        &["--push"],
    ));
    assert_error(&o, "tagged ref");
}

#[test]
fn docker25_archive_with_gzip_layers() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1", false);
    let archive = dir.path().join("d25.tar");
    soci_testkit::make_docker_archive_oci(&archive, &fx, "app:1");
    let src = format!("docker-archive:{}", archive.display());
    let store = dir.path().join("s");
    let out = soci_json(&[
        "create",
        &src,
        "--min-layer-size",
        "0",
        "--store",
        p(&store),
        "-q",
    ]);
    let from_layout = soci_json(&[
        "create",
        &fx.oci_ref(),
        "--min-layer-size",
        "0",
        "--store",
        p(&dir.path().join("s2")),
        "-q",
    ]);
    assert_eq!(
        out["platforms"][0]["ztocs"], from_layout["platforms"][0]["ztocs"],
        "same layers, same zTOCs"
    );
    let dst = format!("{}/d25:1", reg.host());
    soci_ok(&reg_cmd("create", &src, p(&store), &["--dest", &dst]));
    let v = soci_ok(&reg_cmd("verify", &dst, p(&dir.path().join("e")), &[]));
    assert!(v.contains("verify: OK"), "{v}");
}

#[test]
fn verify_reports_a_missing_ztoc_blob() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1");
    let r = push_fixture(&fx, &reg, "gone:1");
    let c = soci_json(&reg_cmd(
        "create",
        &r,
        p(&dir.path().join("s")),
        &["--push"],
    ));
    let z = c["platforms"][0]["ztocs"][0]["ztoc"].as_str().unwrap();
    let (status, _) = http(&reg, "DELETE", &format!("/v2/gone/blobs/{z}"));
    assert_eq!(status, 202, "registry allows deletes");
    let o = soci(&reg_cmd("verify", &r, p(&dir.path().join("e")), &[]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines().any(|l| l.contains(z) && l.contains("MISMATCH")),
        "{out}"
    );
    assert!(out.contains("cannot fetch the zTOC"), "{out}");
}

#[test]
fn v1_dest_from_layout_and_push_v2_from_store() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1");
    let img = &fx.images[0];
    let store = dir.path().join("s");
    // v1 to another place: the image (by digest) and its referrer; the tag names the image.
    let dst = format!("{}/v1dest:1", reg.host());
    let out = soci_ok(&reg_cmd(
        "create",
        &fx.oci_ref(),
        p(&store),
        &["--index-version", "v1", "--dest", &dst],
    ));
    assert!(out.contains("fallback tag sha256-"), "{out}");
    get_manifest(&reg, "v1dest", &img.manifest.digest);
    assert_eq!(
        inspect_raw(&dst),
        img.manifest.bytes,
        "the destination tag should name the image"
    );
    let v = soci_ok(&reg_cmd("verify", &dst, p(&dir.path().join("e")), &[]));
    assert!(
        v.contains("referrers (v1)") && v.contains("verify: OK"),
        "{v}"
    );
    // v1 --push on a digest reference (no tag needed: nothing is re-tagged).
    let by_digest = format!("{}/v1dest@{}", reg.host(), img.manifest.digest);
    let out = soci_ok(&reg_cmd(
        "create",
        &by_digest,
        p(&store),
        &["--index-version", "v1", "--push", "--no-cache"],
    ));
    assert!(out.contains("fallback tag sha256-"), "{out}");
    let fb = inspect(&format!(
        "{}/v1dest:sha256-{}",
        reg.host(),
        img.manifest.digest.trim_start_matches("sha256:")
    ));
    assert_eq!(fb["manifests"].as_array().unwrap().len(), 1, "{fb}");
    // v1 cannot go to an OCI layout, and says so before writing anything.
    let out_dir = dir.path().join("v1layout");
    let o = soci(&[
        "create",
        "--index-version",
        "v1",
        &fx.oci_ref(),
        "--dest",
        &format!("oci:{}:x", out_dir.display()),
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "-q",
    ]);
    assert_error(&o, "only be pushed to a registry");
    assert!(
        !out_dir.join("index.json").exists(),
        "the layout was written"
    );

    // `soci push` (v2) from the store after `soci create`: no rebuild.
    let r = push_fixture(&fx, &reg, "pushv2:1");
    soci_ok(&reg_cmd("create", &r, p(&store), &[]));
    let out = soci_ok(&reg_cmd("push", &r, p(&store), &[]));
    assert!(out.contains("pushed SOCI-enabled image"), "{out}");
    let idx = inspect(&r);
    assert_eq!(idx["manifests"][1]["artifactType"], SOCI_V2);
    // With an empty store, push refuses to build.
    let r2 = push_fixture(&fx, &reg, "pushv2:2");
    let o = soci(&reg_cmd("push", &r2, p(&dir.path().join("empty")), &[]));
    assert_error(&o, "first");
    assert_error(&o, "no SOCI index for");
}

#[test]
fn oci_dest_keeps_other_tags_and_can_be_the_source_layout() {
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1");
    let mp = soci_testkit::make_multiplatform_layout(&dir.path().join("mp"), "1");
    let store = dir.path().join("s");
    let out = dir.path().join("out");
    let a = format!("oci:{}:a", out.display());
    let b = format!("oci:{}:b", out.display());
    soci_ok(&[
        "create",
        &fx.oci_ref(),
        "--dest",
        &a,
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "-q",
    ]);
    soci_ok(&[
        "create",
        &mp.oci_ref(),
        "--all-platforms",
        "--dest",
        &b,
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "-q",
    ]);
    let empty = dir.path().join("e");
    let e = p(&empty);
    for (r, extra) in [(&a, None), (&b, Some("--all-platforms"))] {
        let mut args = vec!["verify", r.as_str(), "--store", e, "-q"];
        args.extend(extra);
        let v = soci_ok(&args);
        assert!(v.contains("verify: OK"), "{r}: {v}");
    }
    // In place: the SOCI-enabled image next to the original, in the same layout.
    let inplace = format!("oci:{}:soci", fx.dir.display());
    soci_ok(&[
        "create",
        &fx.oci_ref(),
        "--dest",
        &inplace,
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "-q",
    ]);
    assert_eq!(
        soci_testkit::skopeo(&["inspect", "--raw", &fx.oci_ref()]).unwrap(),
        fx.root.bytes,
        "the original tag moved"
    );
    let v = soci_ok(&["verify", &inplace, "--store", e, "-q"]);
    assert!(v.contains("verify: OK"), "{v}");
    assert_eq!(
        soci_testkit::skopeo(&["inspect", "--raw", &inplace]).unwrap(),
        soci_testkit::skopeo(&["inspect", "--raw", &a]).unwrap()
    );
}
