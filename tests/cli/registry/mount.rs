//! Converting an image into another repository of the same registry mounts its
//! blobs (cross-repository blob mount) instead of downloading and uploading
//! them; a registry that refuses the mount gets an upload instead. A proxy
//! (tests/cli/support/proxy.rs) in front of a real registry records the
//! requests.
use crate::support::proxied::{convert, proxied_registry, soci, verify};
use crate::support::proxy::Fault;
use crate::support::text;

#[test]
fn same_registry_blobs_are_mounted_not_copied() {
    let env = proxied_registry();
    let (reg, fx, proxy) = (&env.reg, &env.fx, &env.proxy);
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let img = &fx.images[0];
    let blobs: Vec<&str> = std::iter::once(&img.config)
        .chain(img.layers.iter())
        .map(|b| b.digest.as_str())
        .collect();

    let o = soci(&[
        "--json",
        "convert",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        store.to_str().unwrap(),
        &format!("{}/app/one:v1", proxy.host()),
        &format!("{}/app/two:v1", proxy.host()),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["pushed"]["blobs_mounted"], blobs.len(), "{out}");
    // Uploaded: only the SOCI artifacts (zTOCs and the `{}` config).
    let ztocs = out["platforms"][0]["ztocs"].as_array().unwrap().len();
    assert_eq!(out["pushed"]["blobs_uploaded"], ztocs + 1, "{out}");
    // (Query strings are percent-encoded: "sha256%3A<hex>".)
    let q = |digest: &str| digest.replace(':', "%3A");
    for digest in &blobs {
        let mounts = proxy.seen("POST", &format!("mount={}", q(digest)));
        assert_eq!(mounts.len(), 1, "{digest} not mounted: {:?}", proxy.log());
        assert!(mounts[0].path.contains("/app/two/blobs/uploads/"));
        assert!(mounts[0].path.contains("from=app%2Fone"));
        // ... never uploaded (only the SOCI artifacts are) ...
        assert!(proxy
            .seen("PUT", &format!("digest={}", q(digest)))
            .is_empty());
        // ... and not read for copying (the build reads each layer once).
        assert!(proxy.seen("GET", &format!("/app/one/blobs/{digest}")).len() <= 1);
    }

    // A registry that refuses mounts: the blobs are uploaded instead.
    proxy.clear();
    proxy.add("POST", "mount=", usize::MAX, Fault::Status(500, None));
    let o = convert(
        &store,
        &format!("{}/app/one:v1", proxy.host()),
        &format!("{}/app/three:v1", proxy.host()),
    );
    assert!(o.status.success(), "{}", text(&o));
    for digest in &blobs {
        assert_eq!(
            proxy.seen("PUT", &format!("digest={}", q(digest))).len(),
            1,
            "{digest} not uploaded after the refused mount: {:?}",
            proxy.log()
        );
    }

    // Both copies are whole: verify reads every layer back.
    for repo in ["two", "three"] {
        let o = verify(&store, &format!("{}/app/{repo}:v1", reg.host()));
        assert!(o.status.success(), "app/{repo}: {}", text(&o));
    }
}

/// Blobs going to another registry are streamed several at a time: with a slow
/// upload-session start, the sessions of different blobs overlap.
#[test]
fn blob_copies_run_in_parallel() {
    let env = proxied_registry();
    let (reg, fx, proxy) = (&env.reg, &env.fx, &env.proxy);
    let tmp = tempfile::tempdir().unwrap();
    proxy.add(
        "POST",
        "/app/other/blobs/uploads/",
        usize::MAX,
        Fault::Delay(std::time::Duration::from_millis(300)),
    );
    // Read directly, written through the proxy (another host: no mount).
    let o = convert(
        &tmp.path().join("store"),
        &format!("{}/app/one:v1", reg.host()),
        &format!("{}/app/other:v1", proxy.host()),
    );
    assert!(o.status.success(), "{}", text(&o));
    let sessions = proxy.seen("POST", "/app/other/blobs/uploads/");
    let n_blobs = 1 + fx.images[0].layers.len();
    assert!(sessions.len() >= n_blobs, "{sessions:?}");
    let most = sessions.iter().map(|s| s.in_flight).max().unwrap();
    assert!(most >= 2, "uploads ran one at a time: {sessions:?}");
}

/// To another registry, each layer is read once: the zTOC builder's stream is
/// uploaded as it is read (layers it skips are copied on their own).
#[test]
fn layers_are_read_once_for_build_and_copy() {
    let env = proxied_registry();
    let (reg, fx, proxy) = (&env.reg, &env.fx, &env.proxy);
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    // Read through the proxy, written directly: another host, so no mount.
    let o = convert(
        &store,
        &format!("{}/app/one:v1", proxy.host()),
        &format!("{}/app/copy:v1", reg.host()),
    );
    assert!(o.status.success(), "{}", text(&o));
    for l in &fx.images[0].layers {
        let gets = proxy.seen("GET", &format!("/app/one/blobs/{}", l.digest));
        assert_eq!(
            gets.len(),
            1,
            "layer {} read {} times",
            l.digest,
            gets.len()
        );
    }
    let o = verify(&store, &format!("{}/app/copy:v1", reg.host()));
    assert!(o.status.success(), "{}", text(&o));
}

/// A layer that does not match its digest while it is built and uploaded at
/// once: the build's digest error is reported, the upload is not committed,
/// and the destination gets no tag.
#[test]
fn a_corrupt_layer_is_not_committed_at_the_destination() {
    let env = proxied_registry();
    let (reg, fx, proxy) = (&env.reg, &env.fx, &env.proxy);
    let tmp = tempfile::tempdir().unwrap();
    let big = fx.images[0]
        .layers
        .iter()
        .max_by_key(|l| l.bytes.len())
        .unwrap();
    proxy.add(
        "GET",
        &format!("/app/one/blobs/{}", big.digest),
        usize::MAX,
        Fault::Corrupt,
    );
    let o = convert(
        &tmp.path().join("store"),
        &format!("{}/app/one:v1", proxy.host()),
        &format!("{}/app/copy:v1", reg.host()),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&big.digest) && err.contains("digest"),
        "{}",
        text(&o)
    );
    let client = soci_oci::RegistryClient::new(
        &reg.host(),
        &soci_oci::RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!client
        .blob_exists("app/copy", &crate::support::dg(&big.digest))
        .unwrap());
    assert!(client.get_manifest_raw("app/copy", "v1").unwrap().is_none());
}
