//! `soci verify` on SOCI indexes that are wrong in ways a runtime would only
//! find out late: a zTOC of another layer, a zTOC built with another span size.
use crate::support::*;
use serde_json::Value;
use soci_oci::registry::{RegistryClient, RegistryOptions};
use soci_oci::spec;

struct Pushed {
    client: std::sync::Arc<RegistryClient>,
    index: Value,
    manifest: Value,
    soci: spec::Manifest,
}

/// Pushes a SOCI-enabled image at `repo:tag` whose SOCI index is `soci`
/// (the rest as in `base`); returns the new SOCI index digest.
fn push_variant(
    reg: &Registry,
    base: &Pushed,
    repo: &str,
    tag: &str,
    soci: &spec::Manifest,
) -> String {
    let c = &base.client;
    let soci_raw = spec::to_go_json(soci);
    let sd = sha256(&soci_raw);
    c.push_manifest(repo, &sd, &soci_raw, OCI_MANIFEST).unwrap();
    let mut m = base.manifest.clone();
    m["annotations"][ANN_INDEX_DIGEST] = sd.clone().into();
    let m_raw = serde_json::to_vec(&m).unwrap();
    let md = sha256(&m_raw);
    c.push_manifest(repo, &md, &m_raw, OCI_MANIFEST).unwrap();
    let mut idx = base.index.clone();
    idx["manifests"][0]["digest"] = md.clone().into();
    idx["manifests"][0]["size"] = m_raw.len().into();
    idx["manifests"][0]["annotations"][ANN_INDEX_DIGEST] = sd.clone().into();
    idx["manifests"][1]["digest"] = sd.clone().into();
    idx["manifests"][1]["size"] = soci_raw.len().into();
    idx["manifests"][1]["annotations"][ANN_MANIFEST_DIGEST] = md.into();
    c.push_manifest(repo, tag, &serde_json::to_vec(&idx).unwrap(), OCI_INDEX)
        .unwrap();
    let _ = reg;
    sd
}

#[test]
fn verify_detects_wrong_ztocs() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let img = &fx.images[0];
    let r = push_fixture(&fx, &reg, "bad:good");
    let store = dir.path().join("store");
    let empty = dir.path().join("empty");
    soci_ok(&reg_cmd(
        "create",
        &r,
        p(&store),
        &["--push", "--span-size", "64KiB"],
    ));
    let index = inspect(&r);
    let md = index["manifests"][0]["digest"].as_str().unwrap();
    let sd = index["manifests"][1]["digest"].as_str().unwrap();
    let base = Pushed {
        client: RegistryClient::new(
            &reg.host(),
            &RegistryOptions {
                plain_http: true,
                ..Default::default()
            },
        )
        .unwrap(),
        manifest: manifest_json(&reg, "bad", md),
        soci: serde_json::from_slice(&get_manifest(&reg, "bad", sd)).unwrap(),
        index: index.clone(),
    };
    assert_eq!(base.soci.layers.len(), 3);
    // The untouched image verifies, and a rebuilt variant of it does too
    // (push_variant itself breaks nothing).
    let same = push_variant(&reg, &base, "bad", "same", &base.soci);
    assert_eq!(same, sd);

    // 1. The zTOCs of layers 0 and 1 swapped.
    let mut swapped = base.soci.clone();
    let (a, b) = (swapped.layers[0].clone(), swapped.layers[1].clone());
    (swapped.layers[0].digest, swapped.layers[0].size) = (b.digest, b.size);
    (swapped.layers[1].digest, swapped.layers[1].size) = (a.digest, a.size);
    push_variant(&reg, &base, "bad", "swapped", &swapped);
    let swapped_ref = format!("{}/bad:swapped", reg.host());
    let o = soci(&reg_cmd("verify", &swapped_ref, p(&empty), &[]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for l in &img.layers[..2] {
        assert!(
            out.lines()
                .any(|x| x.contains(&format!("layer {}", l.digest)) && x.contains("MISMATCH")),
            "layer {} not reported: {out}",
            l.digest
        );
    }
    assert!(out.lines().any(|x| x.contains(&format!("layer {}", img.layers[2].digest)) && x.contains(": ok (")), "{out}");
    assert!(out.contains("verify: FAILED"), "{out}");
    // --json: parses, says which layers.
    let o = soci(&[
        "--json",
        "verify",
        &swapped_ref,
        "--plain-http",
        "--store",
        p(&empty),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(v["ok"], false);
    let layers = v["platforms"][0]["layers"].as_array().unwrap();
    let oks: Vec<bool> = layers.iter().map(|l| l["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks, [false, false, true], "{v}");
    assert!(!layers[0]["problems"].as_array().unwrap().is_empty());

    // 2. Layer 1's zTOC built with another span size (the annotation still says 64 KiB).
    let layer1 = dir.path().join("layer1.tar.gz");
    std::fs::write(&layer1, &img.layers[1].bytes).unwrap();
    let z = dir.path().join("l1.ztoc");
    soci_ok(&[
        "ztoc",
        "build",
        p(&layer1),
        "--span-size",
        "32KiB",
        "--build-tool-identifier",
        "AWS SOCI CLI v0.2",
        "-o",
        p(&z),
        "-q",
    ]);
    let zb = std::fs::read(&z).unwrap();
    base.client
        .push_blob("bad", &zb, &crate::support::dg(&sha256(&zb)))
        .unwrap();
    let mut span = base.soci.clone();
    span.layers[1].digest = crate::support::dg(&sha256(&zb));
    span.layers[1].size = zb.len() as i64;
    push_variant(&reg, &base, "bad", "span", &span);
    let o = soci(&reg_cmd(
        "verify",
        &format!("{}/bad:span", reg.host()),
        p(&empty),
        &[],
    ));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let bad: Vec<&str> = out.lines().filter(|x| x.contains("MISMATCH")).collect();
    assert_eq!(bad.len(), 1, "{out}");
    assert!(bad[0].contains(&img.layers[1].digest), "{out}");
    assert!(out.contains("span size"), "{out}");

    // 3. The good one still verifies (exit 0), as does the re-pushed copy.
    for t in ["good", "same"] {
        let v = soci_ok(&reg_cmd(
            "verify",
            &format!("{}/bad:{t}", reg.host()),
            p(&empty),
            &[],
        ));
        assert!(v.contains("verify: OK"), "{t}: {v}");
    }
}
