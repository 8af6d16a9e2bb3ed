//! Prefetch artifacts: `create --push --verify --prefetch-file` publishes one
//! prefetch artifact for the layer holding the file, named in the SOCI index.
use crate::support::*;
use serde_json::Value;

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
