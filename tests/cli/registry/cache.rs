//! The registry as the zTOC cache (`create` reuses zTOCs from the SOCI indexes
//! of the source, the destination and `--cache-from`), and an already indexed
//! destination as a no-op, against a real registry.
use crate::support::proxy::FaultProxy;
use crate::support::*;
use serde_json::{json, Value};
use std::path::Path;

/// An OCI layout at `dir` tagged `t`: the fixture image plus one new gzip
/// layer on top (a "child" of the fixture as base image).
fn child_layout(fx: &soci_testkit::Fixture, dir: &Path) -> String {
    let img = &fx.images[0];
    let tar = soci_testkit::fixture::make_tar(&[
        ("app/", b""),
        (
            "app/main",
            &soci_testkit::fixture::pseudo_random(42, 200_000),
        ),
    ]);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let layer = gz.finish().unwrap();
    let mut config: Value = serde_json::from_slice(&img.config.bytes).unwrap();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(sha256(&tar)));
    let config = serde_json::to_vec(&config).unwrap();
    let mut manifest: Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
    manifest["config"]["digest"] = json!(sha256(&config));
    manifest["config"]["size"] = json!(config.len());
    manifest["layers"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": sha256(&layer),
        "size": layer.len(),
    }));
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut all: Vec<Vec<u8>> = vec![layer, config, manifest.clone()];
    all.extend(img.layers.iter().map(|l| l.bytes.clone()));
    for b in &all {
        std::fs::write(blobs.join(&sha256(b)[7..]), b).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": sha256(&manifest), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    format!("oci:{}:t", dir.display())
}

/// The registry with the fixture at `app/base:1` and its child at
/// `app/child:1`, both plain images; a proxy in front to count requests.
struct Setup {
    dir: tempfile::TempDir,
    reg: Registry,
    proxy: FaultProxy,
    fx: soci_testkit::Fixture,
    /// The child's layer digests, in manifest order.
    child_layers: Vec<String>,
}

impl Setup {
    fn new() -> Setup {
        let reg = Registry::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let fx = soci_testkit::make_oci_layout(&dir.path().join("base"), "1");
        push_fixture(&fx, &reg, "app/base:1");
        let child = child_layout(&fx, &dir.path().join("child"));
        skopeo_copy(&child, &docker(&format!("{}/app/child:1", reg.host()))).unwrap();
        let m = manifest_json(&reg, "app/child", "1");
        let child_layers = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect();
        let proxy = FaultProxy::start(reg.addr());
        Setup {
            dir,
            reg,
            proxy,
            fx,
            child_layers,
        }
    }

    /// `HOST/REPO:TAG` through the proxy.
    fn r(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.proxy.host())
    }

    /// A store directory that does not exist yet.
    fn store(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// Layer blob GETs (not zTOCs) the proxy saw for the child's layers.
    fn layer_gets(&self) -> Vec<String> {
        self.proxy
            .log()
            .into_iter()
            .filter(|s| s.method == "GET" && s.path.contains("/blobs/"))
            .filter(|s| self.child_layers.iter().any(|l| s.path.ends_with(l)))
            .map(|s| s.path)
            .collect()
    }
}

/// `soci --json create IMAGE EXTRA…` with the test flags; the JSON.
fn create_json(image: &str, store: &str, extra: &[&str]) -> Value {
    soci_json(&reg_cmd("create", image, store, extra))
}

/// Per layer: (status, cache_ref) from create's JSON.
fn statuses(out: &Value) -> Vec<(String, Option<String>)> {
    out["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let status = l["status"].as_str().unwrap().to_string();
            let from = match l["from"].as_str() {
                Some("registry") => l["cache_ref"].as_str().map(str::to_string),
                Some(f) => Some(f.to_string()),
                None => None,
            };
            (status, from)
        })
        .collect()
}

/// (SOCI index digests, image index digest) of create's JSON.
fn digests(out: &Value) -> (Vec<String>, Option<String>) {
    let indexes = out["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index"].as_str().unwrap().to_string())
        .collect();
    let image_index = out["pushed"]["image_index"]["digest"]
        .as_str()
        .map(str::to_string);
    (indexes, image_index)
}

/// The child indexed cold: every layer built, nothing read from a cache.
fn cold_child(s: &Setup, extra: &[&str]) -> (Vec<String>, Option<String>) {
    let dest = s.r("app/cold:1");
    let mut args = vec!["--dest", dest.as_str(), "--no-cache"];
    args.extend_from_slice(extra);
    let out = create_json(&s.r("app/child:1"), &s.store("cold-store"), &args);
    assert!(
        statuses(&out)
            .iter()
            .all(|(st, _)| st == "built" || st == "skipped"),
        "{out}"
    );
    digests(&out)
}

#[test]
fn cache_from_reuses_the_base_layers_and_gives_a_cold_builds_digests() {
    let s = Setup::new();
    let base = s.r("app/base:1");
    soci_ok(&reg_cmd("create", &base, &s.store("s1"), &["--push"]));
    let cold = cold_child(&s, &[]);
    // The text output names where each zTOC came from (a store-only run,
    // before the child has an index of its own).
    let text = soci_ok(&reg_cmd(
        "create",
        &s.r("app/child:1"),
        &s.store("s3"),
        &["--cache-from", &base],
    ));
    assert_eq!(
        text.matches(&format!("(reused from {base})")).count(),
        3,
        "{text}"
    );

    s.proxy.clear();
    let out = create_json(
        &s.r("app/child:1"),
        &s.store("s2"),
        &["--push", "--cache-from", &base],
    );
    let st = statuses(&out);
    // Three base layers with zTOCs (the zstd one is skipped), one new layer.
    let from_base: Vec<_> = st
        .iter()
        .filter(|(status, from)| status == "reused" && from.as_deref() == Some(base.as_str()))
        .collect();
    assert_eq!(from_base.len(), 3, "{out}");
    assert_eq!(st.last().unwrap().0, "built", "{out}");
    assert_eq!(digests(&out), cold, "reused zTOCs changed the result");
    // The reused zTOCs are mounted from the base's repository, not uploaded.
    let mounts: Vec<String> = s
        .proxy
        .seen("POST", "mount=")
        .into_iter()
        .map(|r| r.path)
        .collect();
    for l in out["layers"].as_array().unwrap() {
        if l["from"] == "registry" {
            let z = l["ztoc"].as_str().unwrap().replace(':', "%3A");
            assert!(
                mounts.iter().any(|m| m.contains(&format!("mount={z}"))),
                "zTOC {z} not mounted: {mounts:?}"
            );
            let hex = &z[z.len() - 64..];
            assert!(s.proxy.seen("PUT", hex).is_empty(), "zTOC {z} uploaded");
        }
    }
    // The base layers were not downloaded (they are at the destination
    // already, mounted or present): only the new layer was read.
    let gets = s.layer_gets();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert!(
        gets[0].ends_with(s.child_layers.last().unwrap()),
        "{gets:?}"
    );
}

#[test]
fn the_destinations_previous_index_is_reused() {
    let s = Setup::new();
    let svc = s.r("app/svc:latest");
    // Version 1 of the service is the base image, SOCI-enabled at app/svc.
    soci_ok(&reg_cmd(
        "create",
        &s.r("app/base:1"),
        &s.store("s1"),
        &["--dest", &svc],
    ));
    let cold = cold_child(&s, &[]);
    // Version 2 (the child) replaces it, from a fresh store.
    let out = create_json(&s.r("app/child:1"), &s.store("s2"), &["--dest", &svc]);
    let st = statuses(&out);
    assert_eq!(
        st.iter()
            .filter(|(status, from)| status == "reused" && from.as_deref() == Some(svc.as_str()))
            .count(),
        3,
        "{out}"
    );
    assert_eq!(digests(&out), cold);
}

#[test]
fn the_sources_own_index_is_reused_v2_and_v1() {
    let s = Setup::new();
    let base = s.r("app/base:1");
    // v2: the base is SOCI-enabled in place; indexing it again with an empty
    // store takes its zTOCs from its own index.
    let first = create_json(&base, &s.store("s1"), &["--push"]);
    s.proxy.clear();
    let again = create_json(&base, &s.store("s2"), &[]);
    let st = statuses(&again);
    assert_eq!(
        st.iter()
            .filter(|(status, from)| status == "reused" && from.as_deref() == Some(base.as_str()))
            .count(),
        3,
        "{again}"
    );
    assert_eq!(digests(&again).0, digests(&first).0);
    assert!(s.layer_gets().is_empty(), "{:?}", s.layer_gets());

    // v1: found through the referrers fallback tag of the image manifest.
    let v1 = s.r("app/v1:1");
    push_fixture(&s.fx, &s.reg, "app/v1:1");
    let first = create_json(&v1, &s.store("s3"), &["--push", "--index-version", "v1"]);
    s.proxy.clear();
    let again = create_json(&v1, &s.store("s4"), &["--index-version", "v1"]);
    let st = statuses(&again);
    assert_eq!(
        st.iter()
            .filter(|(status, from)| status == "reused" && from.as_deref() == Some(v1.as_str()))
            .count(),
        3,
        "{again}"
    );
    assert_eq!(digests(&again).0, digests(&first).0);
    assert!(s.layer_gets().is_empty(), "{:?}", s.layer_gets());
}

#[test]
fn a_ztoc_of_another_span_size_or_build_tool_is_not_used() {
    let s = Setup::new();
    let base = s.r("app/base:1");
    soci_ok(&reg_cmd(
        "create",
        &base,
        &s.store("s1"),
        &["--push", "--span-size", "64KiB"],
    ));
    // Default span size: the base's zTOCs do not fit, every layer is built.
    let out = create_json(
        &s.r("app/child:1"),
        &s.store("s2"),
        &["--cache-from", &base],
    );
    assert!(
        statuses(&out)
            .iter()
            .all(|(st, _)| st == "built" || st == "skipped"),
        "{out}"
    );
    // Same span size, another build tool: built too.
    let out = create_json(
        &s.r("app/child:1"),
        &s.store("s3"),
        &[
            "--cache-from",
            &base,
            "--span-size",
            "64KiB",
            "--build-tool-identifier",
            "other tool",
        ],
    );
    assert!(
        statuses(&out)
            .iter()
            .all(|(st, _)| st == "built" || st == "skipped"),
        "{out}"
    );
    // Same span size and tool: reused (the setup above is a real cache).
    let out = create_json(
        &s.r("app/child:1"),
        &s.store("s4"),
        &["--cache-from", &base, "--span-size", "64KiB"],
    );
    assert_eq!(
        statuses(&out)
            .iter()
            .filter(|(st, _)| st == "reused")
            .count(),
        3,
        "{out}"
    );
}

/// A SOCI index pushed by hand under `repo:tag` (an image index listing the
/// base image and it), whose zTOC descriptors are `ztocs` (annotations of a
/// real index, digests and sizes replaced).
fn push_crafted_index(s: &Setup, repo: &str, tag: &str, ztocs: Vec<Value>) {
    let client = soci_oci::RegistryClient::new(
        &s.reg.host(),
        &soci_oci::RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": SOCI_V2, "digest": soci_index::EMPTY_CONFIG_DIGEST, "size": 2},
        "layers": ztocs,
        "annotations": {"com.amazon.soci.build-tool-identifier": "AWS SOCI CLI v0.2"},
    });
    let index = serde_json::to_vec(&index).unwrap();
    // The image the image index lists must be in the repository.
    push_fixture(&s.fx, &s.reg, &format!("{repo}:plain"));
    client
        .push_blob(repo, b"{}", &soci_oci::Digest::of(b"{}"))
        .unwrap();
    client
        .push_manifest(repo, &sha256(&index), &index, OCI_MANIFEST)
        .unwrap();
    let img = &s.fx.images[0];
    let root = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": img.manifest.digest, "size": img.manifest.size(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "artifactType": SOCI_V2, "digest": sha256(&index), "size": index.len()},
        ],
    });
    let root = serde_json::to_vec(&root).unwrap();
    client.push_manifest(repo, tag, &root, OCI_INDEX).unwrap();
}

#[test]
fn a_corrupt_or_mismatched_cached_ztoc_is_refused_and_the_layer_built() {
    let s = Setup::new();
    // A genuine index of the base, for real zTOCs and annotations.
    let good = s.r("app/good:1");
    push_fixture(&s.fx, &s.reg, "app/good:1");
    soci_ok(&reg_cmd("create", &good, &s.store("s1"), &["--push"]));
    let root = manifest_json(&s.reg, "app/good", "1");
    let index_digest = root["manifests"][1]["digest"].as_str().unwrap();
    let index = manifest_json(&s.reg, "app/good", index_digest);
    let zs = index["layers"].as_array().unwrap().clone();
    assert_eq!(zs.len(), 3);
    // Layer 1's entry points at garbage; layer 2's at layer 1's (genuine) zTOC.
    let client = soci_oci::RegistryClient::new(
        &s.reg.host(),
        &soci_oci::RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    let garbage = soci_testkit::fixture::pseudo_random(9, 5000);
    client
        .push_blob("app/evil", &garbage, &soci_oci::Digest::of(&garbage))
        .unwrap();
    let z1 = get_blob(&s.reg, "app/good", zs[0]["digest"].as_str().unwrap());
    client
        .push_blob("app/evil", &z1, &soci_oci::Digest::of(&z1))
        .unwrap();
    let mut bad0 = zs[0].clone();
    bad0["digest"] = json!(sha256(&garbage));
    bad0["size"] = json!(garbage.len());
    let mut bad1 = zs[1].clone();
    bad1["digest"] = json!(sha256(&z1));
    bad1["size"] = json!(z1.len());
    push_crafted_index(&s, "app/evil", "1", vec![bad0, bad1]);

    let cold = cold_child(&s, &[]);
    let evil = s.r("app/evil:1");
    let o = soci(&[
        "--json",
        "create",
        &s.r("app/child:1"),
        "--cache-from",
        &evil,
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        &s.store("s2"),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "warning: refusing zTOC {} of layer {} from {evil}: it does not decode",
            sha256(&garbage),
            s.child_layers[0]
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "warning: refusing zTOC {} of layer {} from {evil}: it describes a layer of",
            sha256(&z1),
            s.child_layers[1]
        )),
        "{err}"
    );
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        statuses(&out)
            .iter()
            .all(|(st, _)| st == "built" || st == "skipped"),
        "{out}"
    );
    assert_eq!(out["cache_warnings"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(digests(&out).0, cold.0);

    // A --cache-from image that is not there: a warning, the layers built.
    let missing = s.r("app/nothing:1");
    let o = soci(&reg_cmd(
        "create",
        &s.r("app/child:1"),
        &s.store("s3"),
        &["--cache-from", &missing],
    ));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "warning: {missing}: cannot read its SOCI indexes, not used as a zTOC cache: "
        )),
        "{err}"
    );
}

#[test]
fn no_cache_builds_every_layer() {
    let s = Setup::new();
    let base = s.r("app/base:1");
    soci_ok(&reg_cmd("create", &base, &s.store("s1"), &["--push"]));
    s.proxy.clear();
    // The source is SOCI-enabled and --cache-from names it: still built.
    let out = create_json(
        &base,
        &s.store("s2"),
        &["--no-cache", "--cache-from", &base],
    );
    assert!(
        statuses(&out)
            .iter()
            .all(|(st, _)| st == "built" || st == "skipped"),
        "{out}"
    );
    assert_eq!(s.layer_gets().len(), 3, "{:?}", s.layer_gets());
}

#[test]
fn an_already_indexed_destination_is_a_no_op_without_layer_bytes() {
    let s = Setup::new();
    let base = s.r("app/base:1");
    let first = create_json(&base, &s.store("s1"), &["--push"]);
    let tagged = get_manifest(&s.reg, "app/base", "1");

    // A fresh store (a new CI runner), the same options: nothing to do.
    s.proxy.clear();
    let out = soci_ok(&reg_cmd("create", &base, &s.store("s2"), &["--push"]));
    let log = s.proxy.log();
    let requests: Vec<String> = log
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        out.contains(&format!(
            "already indexed: {base} has SOCI-enabled image {}",
            sha256(&tagged)
        )),
        "{out}"
    );
    assert!(
        requests.len() <= 5,
        "{} requests: {requests:#?}",
        requests.len()
    );
    assert!(
        log.iter().all(|r| !r.path.contains("/blobs/")),
        "no blob read: {requests:#?}"
    );
    assert!(
        log.iter().all(|r| r.method == "GET" || r.method == "HEAD"),
        "nothing written: {requests:#?}"
    );
    assert_eq!(get_manifest(&s.reg, "app/base", "1"), tagged);
    eprintln!(
        "no-op (v2, --push): {} requests: {requests:?}",
        requests.len()
    );

    // --json says the same.
    let j = create_json(&base, &s.store("s3"), &["--push"]);
    assert_eq!(
        j["already_indexed"]["image_index"],
        json!(sha256(&tagged)),
        "{j}"
    );
    assert_eq!(digests(&j).0, digests(&first).0);

    // Other options (span size): not the same index, so it is rebuilt.
    let other = create_json(&base, &s.store("s4"), &["--push", "--span-size", "1MiB"]);
    assert!(other.get("already_indexed").is_none(), "{other}");
    assert!(other["pushed"].is_object(), "{other}");

    // --force rebuilds even when it is already indexed.
    soci_ok(&reg_cmd("create", &base, &s.store("s5"), &["--push"]));
    let forced = create_json(&base, &s.store("s6"), &["--push", "--force"]);
    assert!(forced.get("already_indexed").is_none(), "{forced}");
    assert!(
        statuses(&forced)
            .iter()
            .all(|(st, _)| st == "built" || st == "skipped"),
        "{forced}"
    );

    // A recorded trace's prefetch (files with byte ranges) needs the zTOCs'
    // contents to predict, as --prefetch-file does: never a no-op.
    let trace = s.dir.path().join("trace.json");
    std::fs::write(
        &trace,
        json!({"image": "i", "command": [], "files": [{"path": "bin/small", "size": 11, "ranges": [[0, 5]]}]})
            .to_string(),
    )
    .unwrap();
    let traced = create_json(
        &base,
        &s.store("s7"),
        &["--push", "--prefetch-files-json", trace.to_str().unwrap()],
    );
    assert!(traced.get("already_indexed").is_none(), "{traced}");
    assert_eq!(
        traced["platforms"][0]["prefetches"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{traced}"
    );
}

#[test]
fn an_already_indexed_v1_destination_is_a_no_op() {
    let s = Setup::new();
    let base = s.r("app/base:1");
    soci_ok(&reg_cmd(
        "create",
        &base,
        &s.store("s1"),
        &["--push", "--index-version", "v1"],
    ));
    s.proxy.clear();
    let out = soci_ok(&reg_cmd(
        "create",
        &base,
        &s.store("s2"),
        &["--push", "--index-version", "v1"],
    ));
    let log = s.proxy.log();
    let requests: Vec<String> = log
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        out.contains(&format!(
            "already indexed: {base} has soci index(es) sha256:"
        )),
        "{out}"
    );
    // A single-manifest image's platform is in its config: that blob is
    // read, no layer; the referrers API probe and the fallback tag are one
    // request more than v2.
    assert!(s.layer_gets().is_empty(), "{requests:#?}");
    assert!(log.iter().all(|r| r.method == "GET"), "{requests:#?}");
    assert!(requests.len() <= 6, "{requests:#?}");
    eprintln!(
        "no-op (v1, --push): {} requests: {requests:?}",
        requests.len()
    );
}

/// `convert` takes the same cache flags as `create`: `--cache-from` reuses
/// the base's zTOCs (only the new layer is read) with a cold build's digests;
/// `--no-cache` builds every layer.
#[test]
fn convert_takes_cache_from_and_no_cache() {
    let s = Setup::new();
    let base = s.r("app/base:1");
    soci_ok(&reg_cmd("create", &base, &s.store("s1"), &["--push"]));
    let cold = cold_child(&s, &[]);
    let child = s.r("app/child:1");

    s.proxy.clear();
    let dst = s.r("app/conv:1");
    let out = soci_json(&reg_cmd(
        "convert",
        &child,
        &s.store("c1"),
        &[&dst, "--cache-from", &base],
    ));
    let st = statuses(&out);
    let from_base = st
        .iter()
        .filter(|(status, from)| status == "reused" && from.as_deref() == Some(base.as_str()))
        .count();
    assert_eq!(from_base, 3, "{out}");
    assert_eq!(st.last().unwrap().0, "built", "{out}");
    assert_eq!(s.layer_gets().len(), 1, "{:?}", s.layer_gets());
    assert_eq!(digests(&out).0, cold.0, "reused zTOCs changed the result");

    s.proxy.clear();
    let dst2 = s.r("app/conv2:1");
    let out = soci_json(&reg_cmd(
        "convert",
        &child,
        &s.store("c2"),
        &[&dst2, "--no-cache", "--cache-from", &base],
    ));
    assert!(
        statuses(&out)
            .iter()
            .all(|(st, _)| st == "built" || st == "skipped"),
        "{out}"
    );
    assert!(s.layer_gets().len() > 1, "{:?}", s.layer_gets());
}
