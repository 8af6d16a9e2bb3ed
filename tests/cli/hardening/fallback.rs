//! The referrers fallback tag (`sha256-<hex>`, for registries without the
//! referrers API, like distribution 2.8) is read, merged and written so that
//! an existing entry — a signature, another SOCI index — is never dropped,
//! also when reading it fails transiently; something that is not an index
//! under the tag is refused, not overwritten.
use crate::support::proxied::soci;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::text;
use soci_oci::spec::{self, Descriptor};
use soci_oci::{Credentials, RegistryClient, RegistryOptions};
use soci_testkit::{skopeo_copy, Registry};

fn opts() -> RegistryOptions {
    RegistryOptions {
        credentials: Credentials::Anonymous,
        plain_http: true,
        tls_ca: None,
        ..Default::default()
    }
}

const EMPTY: &[u8] = b"{}";
const SIG_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

fn fallback(t: &RegistryClient, tag: &str) -> Option<spec::Index> {
    t.get_manifest_raw("ex/img", tag)
        .unwrap()
        .map(|(_, raw)| serde_json::from_slice(&raw).unwrap())
}

#[test]
fn fallback_index_keeps_every_entry() {
    let reg = Registry::start().unwrap_or_else(|e| panic!("test registry: {e}"));
    let host = reg.host();
    let layout = format!(
        "oci:{}/fixtures/example-image:latest",
        env!("CARGO_MANIFEST_DIR")
    );
    skopeo_copy(&layout, &format!("docker://{host}/ex/img:v1")).unwrap();
    let t = RegistryClient::new(&host, &opts()).unwrap();
    let (subject, _) = t.get_manifest_raw("ex/img", "v1").unwrap().unwrap();
    let tag = subject.digest.as_str().replacen(':', "-", 1);

    // A cosign-style signature referring to the image, listed in the fallback index.
    let empty_digest = spec::Digest::of(EMPTY);
    t.push_blob("ex/img", EMPTY, &empty_digest).unwrap();
    let sig = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": spec::MEDIA_TYPE_OCI_MANIFEST,
        "artifactType": SIG_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
    });
    let sig_raw = serde_json::to_vec(&sig).unwrap();
    let sig_d = t
        .push_manifest(
            "ex/img",
            &spec::sha256_digest(&sig_raw),
            &sig_raw,
            spec::MEDIA_TYPE_OCI_MANIFEST,
        )
        .unwrap();
    let sig_entry = Descriptor {
        artifact_type: SIG_TYPE.into(),
        ..sig_d.clone()
    };
    let idx = spec::Index {
        schema_version: 2,
        media_type: spec::MEDIA_TYPE_OCI_INDEX.into(),
        manifests: vec![sig_entry.clone()],
        ..Default::default()
    };
    t.push_manifest(
        "ex/img",
        &tag,
        &spec::to_go_json(&idx),
        spec::MEDIA_TYPE_OCI_INDEX,
    )
    .unwrap();

    // Through a proxy that fails the first reads of the fallback tag: the
    // read is retried, never taken for "absent".
    let proxy = FaultProxy::start(reg.addr());
    proxy.add(
        "GET",
        &format!("/manifests/{tag}"),
        2,
        Fault::Status(503, None),
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let via = format!("{}/ex/img:v1", proxy.host());
    let create = |extra: &[&str]| {
        let mut a = vec![
            "create",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--index-version",
            "v1",
            "--push",
            "--store",
            store.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.push(&via);
        soci(&a)
    };
    let o = create(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("fallback tag"), "{}", text(&o));
    let after = fallback(&t, &tag).unwrap();
    assert_eq!(after.manifests.len(), 2, "{after:?}");
    assert!(after
        .manifests
        .iter()
        .any(|d| d.digest == sig_d.digest && d.artifact_type == SIG_TYPE));
    let first_soci = after
        .manifests
        .iter()
        .find(|d| d.digest != sig_d.digest)
        .unwrap()
        .clone();

    // Same command again: no duplicate. Another span size: a second SOCI index, both kept.
    let o = create(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(fallback(&t, &tag).unwrap().manifests.len(), 2);
    let o = create(&["--span-size", "65536"]);
    assert!(o.status.success(), "{}", text(&o));
    let after = fallback(&t, &tag).unwrap();
    assert_eq!(after.manifests.len(), 3, "{after:?}");
    assert!(after.manifests.iter().any(|d| d.digest == sig_d.digest));
    assert!(after
        .manifests
        .iter()
        .any(|d| d.digest == first_soci.digest));

    // Reading the fallback tag keeps failing: create fails, the index is unchanged.
    proxy.add(
        "GET",
        &format!("/manifests/{tag}"),
        usize::MAX,
        Fault::Status(500, None),
    );
    let o = create(&["--span-size", "131072"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("HTTP 500"), "{}", text(&o));
    assert_eq!(fallback(&t, &tag).unwrap(), after);
    proxy.clear();

    // Something that is not an index under the tag is refused, not overwritten.
    t.push_manifest("ex/img", &tag, &sig_raw, spec::MEDIA_TYPE_OCI_MANIFEST)
        .unwrap();
    let o = create(&["--span-size", "131072"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not an image index"), "{}", text(&o));
    let (d, _) = t.get_manifest_raw("ex/img", &tag).unwrap().unwrap();
    assert_eq!(
        d.digest, sig_d.digest,
        "the tag still points at what was there"
    );
}
