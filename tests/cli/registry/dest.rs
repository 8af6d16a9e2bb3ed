//! `--dest` (another repository, an OCI layout), `soci convert`, and the same
//! image read from a registry or from its OCI layout.
use crate::support::*;
use serde_json::Value;

fn layout_tag_digest(dir: &std::path::Path, tag: &str) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let e = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("tag {tag} in {index}"));
    assert_eq!(e["mediaType"], OCI_INDEX);
    e["digest"].as_str().unwrap().to_string()
}

#[test]
fn dest_other_repo_layout_and_convert_agree() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let img = &fx.images[0];
    let src = push_fixture(&fx, &reg, "src:1");
    let store = dir.path().join("store");
    let common = [
        "--plain-http",
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "-q",
    ];
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend_from_slice(&common);
        soci_ok(&a)
    };

    let dst = format!("{}/dst:soci", reg.host());
    run(&["create", &src, "--dest", &dst]);
    let layout = dir.path().join("out");
    let oci_dst = format!("oci:{}:soci", layout.display());
    run(&["create", &src, "--dest", &oci_dst]);
    let conv = format!("{}/conv:soci", reg.host());
    run(&["convert", &src, &conv]);

    // The source tag is untouched.
    assert_eq!(inspect_raw(&src), img.manifest.bytes);
    // Same SOCI-enabled index everywhere.
    let a = inspect_raw(&dst);
    assert_eq!(inspect_raw(&conv), a, "convert and create --dest differ");
    assert_eq!(
        layout_tag_digest(&layout, "soci"),
        sha256(&a),
        "layout and registry differ"
    );
    let idx: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(idx["manifests"][1]["artifactType"], SOCI_V2);

    // The other repository got the image's blobs and the SOCI artifacts.
    for l in &img.layers {
        assert!(
            blob_exists(&reg, "dst", &l.digest),
            "layer {} missing in dst",
            l.digest
        );
    }
    assert!(blob_exists(&reg, "dst", &img.config.digest));
    let soci_raw = get_manifest(&reg, "dst", idx["manifests"][1]["digest"].as_str().unwrap());
    for z in check_soci_index(&soci_raw, SOCI_V2, &indexable_layers(img), 4 << 20) {
        get_blob(&reg, "dst", &z);
        assert!(layout
            .join("blobs/sha256")
            .join(z.trim_start_matches("sha256:"))
            .is_file());
    }
    // Both destinations verify; a second oci: dest run is idempotent.
    let empty = dir.path().join("empty");
    for d in [&dst, &oci_dst, &conv] {
        let v = soci_ok(&reg_cmd("verify", d, p(&empty), &[]));
        assert!(v.contains("verify: OK"), "{d}: {v}");
    }
    run(&["create", &src, "--dest", &oci_dst]);
    assert_eq!(layout_tag_digest(&layout, "soci"), sha256(&a));
    // The layout is readable by skopeo.
    let from_layout = soci_testkit::skopeo(&["inspect", "--raw", &oci_dst]).unwrap();
    assert_eq!(from_layout, a);
}

#[test]
fn registry_and_layout_give_the_same_index() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let r = push_fixture(&fx, &reg, "same:1");
    let from_reg = soci_json(&reg_cmd("create", &r, p(&dir.path().join("s1")), &[]));
    let from_oci = soci_json(&[
        "create",
        &fx.oci_ref(),
        "--store",
        p(&dir.path().join("s2")),
        "--min-layer-size",
        "0",
        "-q",
    ]);
    let idx = |v: &Value| v["platforms"][0]["index"].as_str().unwrap().to_string();
    assert_eq!(from_reg["platforms"].as_array().unwrap().len(), 1);
    assert_eq!(idx(&from_reg), idx(&from_oci));
    assert_eq!(
        from_reg["platforms"][0]["ztocs"],
        from_oci["platforms"][0]["ztocs"]
    );
    assert_eq!(
        from_reg["platforms"][0]["manifest"],
        fx.images[0].manifest.digest.as_str()
    );
    // Both stores hold it.
    for s in ["s1", "s2"] {
        let l = soci_ok(&[
            "index",
            "list",
            "--store",
            p(&dir.path().join(s)),
            "--digests-only",
        ]);
        assert!(l.contains(&idx(&from_reg)), "{s}: {l}");
    }
}
