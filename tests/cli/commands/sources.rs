//! Other sources (`docker-archive:`) and the errors a user meets first.
use crate::support::*;
use serde_json::Value;

#[test]
fn docker_archive_to_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1.0", false);
    let img = &fx.images[0];
    let archive = dir.path().join("app.tar");
    let tars = soci_testkit::make_docker_archive(&archive, img, "app:1.0", false);
    let store = dir.path().join("store");
    let layout = dir.path().join("out");
    let dst = format!("oci:{}:soci", layout.display());
    let src = format!("docker-archive:{}", archive.display());
    // Indexed as it is (no destination): every layer of a docker save archive
    // is an uncompressed tar, so the zTOCs are tar zTOCs.
    let out = soci_json(&[
        "create",
        &src,
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--store",
        p(&store),
        "-q",
    ]);
    let layers = out["layers"].as_array().unwrap();
    assert_eq!(layers.len(), tars.len());
    for (l, t) in layers.iter().zip(&tars) {
        assert_eq!(
            l["digest"],
            sha256(t).as_str(),
            "layer digest is the tar's (diff id)"
        );
        assert_eq!(l["status"], "built", "{l}");
    }
    for z in out["platforms"][0]["ztocs"].as_array().unwrap() {
        let info: Value = serde_json::from_str(&soci_ok(&[
            "ztoc",
            "info",
            z["ztoc"].as_str().unwrap(),
            "--store",
            p(&store),
        ]))
        .unwrap();
        assert_eq!(info["compression"], "uncompressed", "{info}");
    }
    // With --dest the layers are gzipped deterministically first (what a
    // registry would get), then indexed: gzip zTOCs, layers that gunzip to the tars.
    let out = soci_json(&[
        "create",
        &src,
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--dest",
        &dst,
        "--store",
        p(&store),
        "-q",
    ]);
    let layers = out["layers"].as_array().unwrap();
    assert_eq!(layers.len(), tars.len());
    for (l, t) in layers.iter().zip(&tars) {
        assert_eq!(
            l["media_type"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{l}"
        );
        let gz = std::fs::read(
            layout
                .join("blobs/sha256")
                .join(l["digest"].as_str().unwrap().trim_start_matches("sha256:")),
        )
        .unwrap();
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
        assert!(
            plain == *t,
            "layer {} does not gunzip to the archive's tar",
            l["digest"]
        );
    }
    // The layout holds a SOCI-enabled image that verifies and skopeo reads.
    let raw = soci_testkit::skopeo(&["inspect", "--raw", &dst]).unwrap();
    let idx: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(idx["mediaType"], OCI_INDEX);
    assert_eq!(idx["manifests"][1]["artifactType"], SOCI_V2);
    let v = soci_ok(&[
        "verify",
        &dst,
        "--store",
        p(&dir.path().join("empty")),
        "-q",
    ]);
    assert!(v.contains("verify: OK"), "{v}");
    assert_eq!(v.matches(": ok (").count(), tars.len(), "{v}");
}

#[test]
fn docker_archive_to_registry() {
    // An archive with a duplicate layer, to a registry (layers gzipped on the way).
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1.0", false);
    let archive = dir.path().join("app.tar");
    soci_testkit::make_docker_archive(&archive, &fx.images[0], "app:1.0", true);
    let dst = format!("{}/fromarchive:1", reg.host());
    let src = format!("docker-archive:{}", archive.display());
    soci_ok(&reg_cmd(
        "create",
        &src,
        p(&dir.path().join("s")),
        &["--dest", &dst],
    ));
    let v = soci_ok(&reg_cmd("verify", &dst, p(&dir.path().join("empty")), &[]));
    assert!(v.contains("verify: OK"), "{v}");
    // skopeo can pull the image out again (its blobs are all there). Not
    // `--preserve-digests`: like Go soci, the converted manifest is OCI while
    // the layers keep their Docker media types, which skopeo rewrites for oci:.
    let copy = dir.path().join("copy");
    soci_testkit::skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &docker(&dst),
        &format!("oci:{}:x", copy.display()),
    ])
    .unwrap();
    let m: Value = serde_json::from_slice(
        &soci_testkit::skopeo(&["inspect", "--raw", &format!("oci:{}:x", copy.display())]).unwrap(),
    )
    .unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 4, "{m}");
}

#[test]
fn errors_name_the_problem() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = p(&store);

    // An image that does not exist.
    let missing = format!("{}/nope:1", reg.host());
    let o = soci(&["create", &missing, "--plain-http", "--store", s, "-q"]);
    assert_error(&o, &missing);
    let o = soci(&reg_cmd("verify", &missing, s, &[]));
    assert_error(&o, &missing);
    let o = soci(&[
        "create",
        &format!("oci:{}:x", dir.path().join("nolayout").display()),
        "--store",
        s,
        "-q",
    ]);
    assert_error(&o, "nolayout");

    // Every layer below --min-layer-size (default 10 MiB).
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let r = push_fixture(&fx, &reg, "small:1");
    let o = soci(&["create", &r, "--plain-http", "--store", s, "-q"]);
    assert_error(
        &o,
        "no ztocs created, all layers either skipped or produced errors",
    );
    // ... and says why, with the flag that changes it.
    let n = fx.images[0].layers.len();
    assert_error(
        &o,
        &format!("{n} of {n} layers are smaller than --min-layer-size 10485760 bytes"),
    );
    assert_error(&o, "--min-layer-size 0 indexes every layer");
    // ... and each layer's reason is on stdout, as after a successful run.
    let stdout = String::from_utf8_lossy(&o.stdout);
    for l in &fx.images[0].layers {
        let line = format!("ztoc skipped - layer {} ({})", l.digest, l.media_type);
        assert!(stdout.contains(&line), "{line} missing from {stdout}");
    }
    // With --json: one object with the error and every layer's status.
    let o = soci(&["--json", "create", &r, "--plain-http", "--store", s, "-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("no ztocs created"));
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), fx.images[0].layers.len(), "{v}");
    for (l, j) in fx.images[0].layers.iter().zip(layers) {
        assert_eq!(j["digest"], l.digest.as_str());
        assert_eq!(j["status"], "skipped");
        assert!(j["reason"].as_str().unwrap().contains("min-layer-size"));
    }
    assert!(
        String::from_utf8_lossy(&o.stdout).is_empty()
            || !String::from_utf8_lossy(&o.stdout).contains("soci index")
    );
    // ... and nothing was pushed.
    let o = soci(&["create", &r, "--push", "--plain-http", "--store", s, "-q"]);
    assert_error(&o, "no ztocs created");
    assert_eq!(inspect_raw(&r), fx.images[0].manifest.bytes);

    // --push needs a registry image.
    let o = soci(&[
        "create",
        &fx.oci_ref(),
        "--push",
        "--min-layer-size",
        "0",
        "--store",
        s,
        "-q",
    ]);
    assert_error(&o, "--push needs a registry image");
    // A v2 destination must be tagged.
    let o = soci(&reg_cmd(
        "create",
        &r,
        s,
        &[
            "--dest",
            &format!("{}/x@{}", reg.host(), fx.images[0].manifest.digest),
        ],
    ));
    assert_error(&o, "tagged ref");
    // With --json the error is JSON on stdout too.
    let o = soci(&[
        "--json",
        "create",
        &missing,
        "--plain-http",
        "--store",
        s,
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains(&missing), "{v}");
}
