//! The referrers-API path of v1 indexes, end to end: a real registry behind a
//! small in-test front that implements only `GET /v2/<name>/referrers/<digest>`
//! (no packaged registry has that API). `create --push` must then rely on the
//! API (no fallback tag written) and `verify` must find the index through it.
use crate::support::proxied::soci;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::text;
use soci_oci::{Credentials, RegistryClient, RegistryOptions};
use soci_testkit::{skopeo_copy, Registry};

#[test]
fn v1_index_found_and_pushed_through_the_referrers_api() {
    let reg = Registry::start().unwrap_or_else(|e| panic!("test registry: {e}"));
    let layout = format!(
        "oci:{}/fixtures/example-image:latest",
        env!("CARGO_MANIFEST_DIR")
    );
    skopeo_copy(&layout, &format!("docker://{}/ex/img:v1", reg.host())).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();

    // The v1 index is deterministic: build it from the layout to learn its digest.
    let o = soci(&[
        "--json",
        "create",
        "--index-version",
        "v1",
        "--min-layer-size",
        "0",
        "--store",
        &store("a"),
        &layout,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let index_digest = v["platforms"][0]["index"].as_str().unwrap().to_string();
    let index_size = v["platforms"][0]["index_size"].as_u64().unwrap();
    let manifest_digest = v["platforms"][0]["manifest"].as_str().unwrap().to_string();

    // The front answers the referrers API with that index; the rest goes to the registry.
    let proxy = FaultProxy::start(reg.addr());
    let referrers = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": index_digest,
            "size": index_size,
            "artifactType": "application/vnd.amazon.soci.index.v1+json"
        }]
    });
    proxy.add(
        "GET",
        "/referrers/",
        usize::MAX,
        Fault::Respond(
            serde_json::to_vec(&referrers).unwrap(),
            "application/vnd.oci.image.index.v1+json",
        ),
    );
    let image = format!("{}/ex/img:v1", proxy.host());

    let o = soci(&[
        "--json",
        "create",
        "--index-version",
        "v1",
        "--push",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        &store("b"),
        &image,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pushed"]["referrers"], "referrers API", "{v}");
    assert_eq!(v["platforms"][0]["index"], index_digest.as_str());
    assert!(
        !proxy.seen("GET", "/referrers/").is_empty(),
        "the referrers API was asked"
    );

    // What landed, read straight from the registry: the index, and no fallback tag.
    let opts = RegistryOptions {
        credentials: Credentials::Anonymous,
        plain_http: true,
        tls_ca: None,
        ..Default::default()
    };
    let t = RegistryClient::new(&reg.host(), &opts).unwrap();
    let (desc, _) = t
        .get_manifest_raw("ex/img", &index_digest)
        .unwrap()
        .expect("index pushed");
    assert_eq!(desc.digest, index_digest);
    let fallback = format!("sha256-{}", manifest_digest.trim_start_matches("sha256:"));
    assert!(
        t.get_manifest_raw("ex/img", &fallback).unwrap().is_none(),
        "no fallback tag when the API exists"
    );

    // verify finds it through the API, with an empty local store.
    let o = soci(&[
        "--json",
        "verify",
        "--plain-http",
        "--store",
        &store("c"),
        &image,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["platforms"][0]["found_via"], "referrers (v1)", "{v}");
    assert_eq!(v["platforms"][0]["index_digest"], index_digest.as_str());
}
