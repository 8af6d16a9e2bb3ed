//! More registry round trips: a multi-platform `--dest` to another repository,
//! v1 for every platform and for Docker schema2, prefetch artifacts, `--verify`,
//! and `get-file --image` on uncompressed layers and other sources.
mod common;
use common::*;
use serde_json::Value;

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

#[test]
fn v1_every_platform_and_docker_schema2() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let empty = dir.path().join("empty");
    let fx = soci_testkit::make_multiplatform_layout(&dir.path().join("mp"), "1");
    let r = push_fixture(&fx, &reg, "v1mp:1");
    soci_ok(&reg_cmd(
        "create",
        &r,
        p(&store),
        &["--index-version", "v1", "--push", "--all-platforms"],
    ));
    assert_eq!(inspect_raw(&r), fx.root.bytes, "v1 must not touch the tag");
    for img in &fx.images {
        let ftag = format!(
            "sha256-{}",
            img.manifest.digest.trim_start_matches("sha256:")
        );
        let fb = inspect(&format!("{}/v1mp:{ftag}", reg.host()));
        let ms = fb["manifests"].as_array().unwrap();
        assert_eq!(ms.len(), 1, "{fb}");
        let raw = get_manifest(&reg, "v1mp", ms[0]["digest"].as_str().unwrap());
        check_soci_index(&raw, SOCI_V1, &indexable_layers(img), 4 << 20);
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["subject"]["digest"], img.manifest.digest.as_str());
    }
    let v = soci_ok(&reg_cmd("verify", &r, p(&empty), &["--all-platforms"]));
    assert_eq!(v.matches("referrers (v1)").count(), 2, "{v}");
    assert!(v.contains("verify: OK"), "{v}");

    // Docker schema2: the subject keeps the Docker media type. Its layers are
    // the amd64 layers above under Docker media types: the zTOCs are reused
    // from the store, and the index must name this image's media types.
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("d"), "1", false);
    let r = format!("{}/v1dock:1", reg.host());
    push_fixture_docker(&fx, &r);
    let raw = inspect_raw(&r);
    let md = sha256(&raw);
    let out = soci_ok(&reg_cmd(
        "create",
        &r,
        p(&store),
        &["--index-version", "v1", "--push"],
    ));
    assert!(out.contains("(already exists)"), "{out}");
    let fb = inspect(&format!(
        "{}/v1dock:sha256-{}",
        reg.host(),
        md.trim_start_matches("sha256:")
    ));
    let idx: Value = serde_json::from_slice(&get_manifest(
        &reg,
        "v1dock",
        fb["manifests"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(
        idx["subject"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(idx["subject"]["digest"], md.as_str());
    assert_eq!(idx["subject"]["size"], raw.len());
    let dm: Value = serde_json::from_slice(&raw).unwrap();
    for (z, l) in idx["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(dm["layers"].as_array().unwrap())
    {
        assert_eq!(z["annotations"][ANN_LAYER_DIGEST], l["digest"]);
        assert_eq!(
            z["annotations"][ANN_LAYER_MT], l["mediaType"],
            "a reused zTOC keeps the other image's media type"
        );
    }
    let v = soci_ok(&reg_cmd("verify", &r, p(&empty), &[]));
    assert!(v.contains("verify: OK"), "{v}");
}

#[test]
fn prefetch_and_verify_flag() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1");
    let img = &fx.images[0];
    let r = push_fixture(&fx, &reg, "pf:1");
    let out = soci_ok(&reg_cmd(
        "create",
        &r,
        p(&dir.path().join("s")),
        &[
            "--push",
            "--verify",
            "--prefetch-file",
            "/bin/small",
            "--span-size",
            "64KiB",
        ],
    ));
    assert!(out.contains("verify: OK"), "{out}");
    let idx = inspect(&r);
    let raw = get_manifest(&reg, "pf", idx["manifests"][1]["digest"].as_str().unwrap());
    check_soci_index(&raw, SOCI_V2, &indexable_layers(img), 65536);
    let v: Value = serde_json::from_slice(&raw).unwrap();
    let pf: Vec<&Value> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["mediaType"] == "application/vnd.amazon.soci.prefetch.v1+json")
        .collect();
    assert_eq!(pf.len(), 1, "{v}");
    assert_eq!(
        pf[0]["annotations"][ANN_LAYER_DIGEST],
        img.layers[1].digest.as_str()
    );
    let artifact: Value =
        serde_json::from_slice(&get_blob(&reg, "pf", pf[0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(artifact["version"], "1.0");
    assert!(
        artifact["prefetch_spans"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{artifact}"
    );
}

#[test]
fn get_file_image_uncompressed_layer_and_other_sources() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1", false);
    let img = &fx.images[0];
    let r = push_fixture(&fx, &reg, "gf:1");
    let store = dir.path().join("store");
    let c = soci_json(&reg_cmd("create", &r, p(&store), &["--span-size", "64KiB"]));
    let ztocs = c["platforms"][0]["ztocs"].as_array().unwrap().clone();
    let ztoc_of = |layer: &str| {
        ztocs.iter().find(|z| z["layer"] == layer).unwrap()["ztoc"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let tar_z = ztoc_of(&img.layers[2].digest);
    let gz_z = ztoc_of(&img.layers[1].digest);
    let archive = dir.path().join("a.tar");
    soci_testkit::make_docker_archive(&archive, img, "gf:1", false);
    // An uncompressed layer: one range read of the span holding the file (whole
    // spans, each checked against its digest; here the span is the whole layer).
    let o = soci(&[
        "ztoc",
        "get-file",
        &tar_z,
        "usr/share/readme",
        "--image",
        &r,
        "--plain-http",
        "--store",
        p(&store),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(o.stdout, b"an uncompressed layer\n");
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(&format!("fetched {0} of {0} bytes", img.layers[2].size())),
        "{}",
        text(&o)
    );
    // The gzip layer from the OCI layout, too.
    let data = &img.layer_tars[1];
    let o = soci(&[
        "ztoc",
        "get-file",
        &gz_z,
        "bin/small",
        "--image",
        &fx.oci_ref(),
        "--store",
        p(&store),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(o.stdout, b"small file\n");
    // A zTOC file (no store record): the layer is found by its size.
    let zfile = dir.path().join("z.ztoc");
    let info = soci_ok(&["ztoc", "info", &gz_z, "--store", p(&store)]);
    assert!(info.contains("bin/data"));
    let layer_file = dir.path().join("l.tar.gz");
    std::fs::write(&layer_file, &img.layers[1].bytes).unwrap();
    soci_ok(&[
        "ztoc",
        "build",
        p(&layer_file),
        "--span-size",
        "64KiB",
        "-o",
        p(&zfile),
        "-q",
    ]);
    let o = soci(&[
        "ztoc",
        "get-file",
        p(&zfile),
        "bin/data",
        "--image",
        &r,
        "--plain-http",
        "--store",
        p(&dir.path().join("e")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let want = {
        let t = dir.path().join("l.tar");
        std::fs::write(&t, data).unwrap();
        std::process::Command::new("tar")
            .arg("-xOf")
            .arg(&t)
            .arg("bin/data")
            .output()
            .unwrap()
            .stdout
    };
    assert!(o.stdout == want, "bin/data differs from tar's");
    // The docker archive's uncompressed layer (the zTOC of the tar layer
    // built from the registry applies: same bytes, same digest).
    let o = soci(&[
        "ztoc",
        "get-file",
        &tar_z,
        "usr/share/readme",
        "--image",
        &format!("docker-archive:{}", archive.display()),
        "--store",
        p(&store),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(o.stdout, b"an uncompressed layer\n");
}
