//! `soci create --index-version v1 --push`: the SOCI index is a referrer of the
//! image manifest, recorded in the `sha256-<hex>` fallback tag index (the test
//! registry, distribution 2.8, has no referrers API), for every platform of an
//! index and for a Docker schema2 image.
use crate::support::*;
use serde_json::{json, Value};
use soci_oci::registry::{RegistryClient, RegistryOptions};

const SIG_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// Puts a cosign-like signature of `subject` into the fallback tag index, as
/// another tool would; returns the signature manifest's digest.
fn push_foreign_referrer(
    reg: &Registry,
    repo: &str,
    subject: &soci_testkit::Blob,
    tag: &str,
) -> String {
    let client = RegistryClient::new(
        &reg.host(),
        &RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    let payload = br#"{"critical":{"type":"cosign container image signature"}}"#;
    client
        .push_blob(
            repo,
            b"{}",
            &crate::support::dg(soci_index::EMPTY_CONFIG_DIGEST),
        )
        .unwrap();
    client
        .push_blob(repo, payload, &crate::support::dg(&sha256(payload)))
        .unwrap();
    let sig = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIG_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": soci_index::EMPTY_CONFIG_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": sha256(payload), "size": payload.len()}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size()},
    });
    let sig = serde_json::to_vec(&sig).unwrap();
    let sig_digest = sha256(&sig);
    client
        .push_manifest(repo, &sig_digest, &sig, OCI_MANIFEST)
        .unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sig_digest, "size": sig.len(), "artifactType": SIG_TYPE}],
    });
    client
        .push_manifest(repo, tag, &serde_json::to_vec(&index).unwrap(), OCI_INDEX)
        .unwrap();
    sig_digest
}

#[test]
fn create_push_v1_fallback_tag_keeps_foreign_referrers() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let img = &fx.images[0];
    let r = push_fixture(&fx, &reg, "v1:1");
    let ftag = format!(
        "sha256-{}",
        img.manifest.digest.trim_start_matches("sha256:")
    );
    let sig = push_foreign_referrer(&reg, "v1", &img.manifest, &ftag);

    let store = dir.path().join("store");
    let args = reg_cmd(
        "create",
        &r,
        p(&store),
        &["--index-version", "v1", "--push"],
    );
    let out = soci_ok(&args);
    assert!(out.contains(&format!("fallback tag {ftag}")), "{out}");
    // The image tag is untouched (v1 does not convert the image).
    assert_eq!(inspect_raw(&r), img.manifest.bytes);

    let check = || -> String {
        let fb = inspect(&format!("{}/v1:{ftag}", reg.host()));
        assert_eq!(fb["mediaType"], OCI_INDEX);
        let ms = fb["manifests"].as_array().unwrap();
        assert_eq!(ms.len(), 2, "signature + SOCI index: {fb}");
        assert_eq!(
            ms[0]["digest"],
            sig.as_str(),
            "the foreign referrer was dropped or moved: {fb}"
        );
        assert_eq!(ms[0]["artifactType"], SIG_TYPE);
        let e = &ms[1];
        assert_eq!(e["artifactType"], SOCI_V1);
        assert_eq!(e["mediaType"], OCI_MANIFEST);
        assert_eq!(
            e["annotations"]["com.amazon.soci.build-tool-identifier"],
            "AWS SOCI CLI v0.2"
        );
        let d = e["digest"].as_str().unwrap().to_string();
        let raw = get_manifest(&reg, "v1", &d);
        assert_eq!(raw.len() as u64, e["size"].as_u64().unwrap());
        let zs = check_soci_index(&raw, SOCI_V1, &indexable_layers(img), 4 << 20);
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            v["subject"],
            json!({"mediaType": OCI_MANIFEST, "digest": img.manifest.digest, "size": img.manifest.size()})
        );
        for z in zs {
            get_blob(&reg, "v1", &z);
        }
        d
    };
    let d1 = check();
    // Found through referrers, without the local store.
    let v = soci_ok(&reg_cmd("verify", &r, p(&dir.path().join("empty")), &[]));
    assert!(
        v.contains("referrers (v1)") && v.contains(&d1) && v.contains("verify: OK"),
        "{v}"
    );
    // Pushing again (--no-cache: published again rather than found already
    // indexed): no duplicate, the signature still first.
    let mut again = args.clone();
    again.push("--no-cache");
    let out = soci_ok(&again);
    assert_eq!(out.matches("(already exists)").count(), 3, "{out}");
    assert_eq!(check(), d1);
    // `soci push` from the store does the same without rebuilding.
    let out = soci_ok(&reg_cmd("push", &r, p(&store), &["--index-version", "v1"]));
    assert!(out.contains(&d1), "{out}");
    assert_eq!(check(), d1);
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
