//! `soci gc REPO`: v1 SOCI indexes (and their fallback-tag entries) of images
//! deleted from the repository are listed, kept in a dry run, and removed
//! with `--delete`; whatever still has its image is not touched.
use crate::support::*;
use serde_json::{json, Value};
use soci_oci::registry::{RegistryClient, RegistryOptions};

const SIG_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// Pushes image `name` (a layer of its own) to `HOST/gc:NAME` and its v1
/// SOCI index with `create --push`; returns (image manifest digest, SOCI
/// index digest, fallback tag).
fn image_with_v1_index(
    reg: &Registry,
    dir: &std::path::Path,
    name: &str,
) -> (String, String, String) {
    let tar = soci_testkit::fixture::make_tar(&[("app/", b""), ("app/name", name.as_bytes())]);
    let fx = soci_testkit::make_layered_layout(&dir.join(name), "1", &[tar]);
    let r = push_fixture(&fx, reg, &format!("gc:{name}"));
    let store = dir.join("store");
    let v = soci_json(&reg_cmd(
        "create",
        &r,
        p(&store),
        &["--push", "--index-version", "v1"],
    ));
    let subject = fx.images[0].manifest.digest.clone();
    let index = v["platforms"][0]["index"].as_str().unwrap().to_string();
    let ftag = format!("sha256-{}", subject.trim_start_matches("sha256:"));
    (subject, index, ftag)
}

/// Adds a signature-like referrer of `subject` to its fallback tag, as
/// another tool would; returns the signature manifest's digest.
fn add_foreign_referrer(reg: &Registry, subject: &str, ftag: &str) -> String {
    let client = RegistryClient::new(
        &reg.host(),
        &RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    client
        .push_blob("gc", b"{}", &dg(soci_index::EMPTY_CONFIG_DIGEST))
        .unwrap();
    let sig = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIG_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": soci_index::EMPTY_CONFIG_DIGEST, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
    }))
    .unwrap();
    let sig_digest = sha256(&sig);
    client
        .push_manifest("gc", &sig_digest, &sig, OCI_MANIFEST)
        .unwrap();
    let mut index = manifest_json(reg, "gc", ftag);
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_MANIFEST, "digest": sig_digest, "size": sig.len(), "artifactType": SIG_TYPE,
    }));
    client
        .push_manifest("gc", ftag, &serde_json::to_vec(&index).unwrap(), OCI_INDEX)
        .unwrap();
    sig_digest
}

fn status(reg: &Registry, reference: &str) -> u16 {
    http(reg, "GET", &format!("/v2/gc/manifests/{reference}")).0
}

#[test]
fn gc_lists_then_deletes_indexes_of_deleted_images_only() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // a: deleted, only our index in its fallback tag; c: deleted, with a
    // signature next to our index; b: still there.
    let (a_img, a_idx, a_tag) = image_with_v1_index(&reg, dir.path(), "a");
    let (b_img, b_idx, b_tag) = image_with_v1_index(&reg, dir.path(), "b");
    let (c_img, c_idx, c_tag) = image_with_v1_index(&reg, dir.path(), "c");
    let sig = add_foreign_referrer(&reg, &c_img, &c_tag);
    for img in [&a_img, &c_img] {
        let (s, _) = http(&reg, "DELETE", &format!("/v2/gc/manifests/{img}"));
        assert_eq!(s, 202);
    }
    let before: Vec<Vec<u8>> = [&a_tag, &b_tag, &c_tag, &a_idx, &b_idx, &c_idx, &b_img]
        .iter()
        .map(|r| get_manifest(&reg, "gc", r))
        .collect();
    let repo = format!("{}/gc", reg.host());

    // Dry run: both dead indexes and both fallback tags listed, nothing changed.
    let v = soci_json(&["gc", &repo, "--plain-http"]);
    let dead: Vec<(&str, &str)> = v["dead_indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["digest"].as_str().unwrap(),
                d["subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(dead.len(), 2, "{v}");
    assert!(dead.contains(&(a_idx.as_str(), a_img.as_str())), "{v}");
    assert!(dead.contains(&(c_idx.as_str(), c_img.as_str())), "{v}");
    assert!(v["dead_indexes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["deleted"] == false));
    assert_eq!(v["live_indexes"], 1, "{v}");
    let change = |tag: &str| -> Value {
        v["fallback_changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["tag"] == tag)
            .cloned()
            .unwrap_or_else(|| panic!("no change for {tag}: {v}"))
    };
    assert_eq!(change(&a_tag)["action"], "delete");
    assert_eq!(change(&c_tag)["action"], "rewrite");
    assert_eq!(change(&c_tag)["kept"], 1);
    assert_eq!(v["fallback_changes"].as_array().unwrap().len(), 2);
    let after: Vec<Vec<u8>> = [&a_tag, &b_tag, &c_tag, &a_idx, &b_idx, &c_idx, &b_img]
        .iter()
        .map(|r| get_manifest(&reg, "gc", r))
        .collect();
    assert_eq!(before, after, "a dry run changed the registry");
    let text_out = soci_ok(&["gc", &repo, "--plain-http"]);
    assert!(
        text_out.contains(&format!("would delete soci index {a_idx}")),
        "{text_out}"
    );
    assert!(
        text_out.contains("dry run: --delete removes them"),
        "{text_out}"
    );

    // --delete: the dead indexes and a's fallback tag are gone, c's tag keeps
    // only the signature; b, its index and its tag are byte for byte as before.
    let v = soci_json(&["gc", &repo, "--plain-http", "--delete"]);
    assert!(v["dead_indexes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["deleted"] == true));
    assert_eq!(status(&reg, &a_idx), 404);
    assert_eq!(status(&reg, &c_idx), 404);
    assert_eq!(status(&reg, &a_tag), 404);
    let c_fallback = manifest_json(&reg, "gc", &c_tag);
    let left: Vec<&str> = c_fallback["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert_eq!(left, [sig.as_str()]);
    assert_eq!(status(&reg, &sig), 200);
    assert_eq!(get_manifest(&reg, "gc", &b_tag), before[1]);
    assert_eq!(get_manifest(&reg, "gc", &b_idx), before[4]);
    assert_eq!(get_manifest(&reg, "gc", &b_img), before[6]);
    assert_eq!(get_manifest(&reg, "gc", "b"), before[6]);

    // Nothing left to collect.
    let v = soci_json(&["gc", &repo, "--plain-http"]);
    assert_eq!(v["dead_indexes"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["live_indexes"], 1);
}

/// A repository that is not there has nothing to collect; a reference that is
/// not a registry's is a one-line error.
#[test]
fn gc_of_an_empty_repository_and_of_a_non_registry() {
    let reg = Registry::start().unwrap();
    let v = soci_json(&["gc", &format!("{}/none", reg.host()), "--plain-http"]);
    assert_eq!(v["tags"], 0);
    assert_eq!(v["dead_indexes"].as_array().unwrap().len(), 0);
    assert_error(&soci(&["gc", "oci:/tmp/x"]), "is not a registry repository");
}

/// A registry that refuses deletes: the dry run lists what is dead; `--delete`
/// fails with a line saying deletes are not allowed, and changes nothing.
#[test]
fn gc_delete_on_a_registry_without_deletes_says_so() {
    let reg = Registry::start_without_deletes().unwrap();
    let client = RegistryClient::new(
        &reg.host(),
        &RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    // A v1 index whose subject was never in the repository (as if deleted).
    let gone = sha256(b"an image that is gone");
    client
        .push_blob("gc", b"{}", &dg(soci_index::EMPTY_CONFIG_DIGEST))
        .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": SOCI_V1, "digest": soci_index::EMPTY_CONFIG_DIGEST, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": gone, "size": 1},
    }))
    .unwrap();
    let index_digest = sha256(&index);
    client
        .push_manifest("gc", &index_digest, &index, OCI_MANIFEST)
        .unwrap();
    let ftag = format!("sha256-{}", gone.trim_start_matches("sha256:"));
    let fallback = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": index_digest, "size": index.len(), "artifactType": SOCI_V1}],
    }))
    .unwrap();
    client
        .push_manifest("gc", &ftag, &fallback, OCI_INDEX)
        .unwrap();
    let repo = format!("{}/gc", reg.host());
    let v = soci_json(&["gc", &repo, "--plain-http"]);
    assert_eq!(v["dead_indexes"][0]["digest"], index_digest, "{v}");
    let o = soci(&["gc", &repo, "--plain-http", "--delete"]);
    assert_error(&o, "does not allow deletes");
    assert_eq!(get_manifest(&reg, "gc", &ftag), fallback);
    assert_eq!(get_manifest(&reg, "gc", &index_digest), index);
}
