//! Against a real registry (Debian's docker-registry) and skopeo. These tests
//! fail, not skip, when either is missing.
use soci_oci::spec::Digest;
use soci_oci::spec::{self, Descriptor, Manifest};
use soci_oci::{
    select_manifests, Credentials, ImageRef, ImageSource, PlatformChoice, RegistryClient,
    RegistryOptions, RegistrySource,
};
use soci_testkit::{
    make_multiplatform_layout, make_oci_layout, skopeo_copy, skopeo_copy_all, skopeo_inspect_raw,
    Registry,
};
use std::io::Read;

fn opts() -> RegistryOptions {
    RegistryOptions {
        credentials: Credentials::Anonymous,
        plain_http: true,
        tls_ca: None,
        ..Default::default()
    }
}

fn start() -> Registry {
    Registry::start().unwrap_or_else(|e| panic!("test registry: {e}"))
}

#[test]
fn pull_from_registry() {
    let reg = start();
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_oci_layout(&tmp.path().join("img"), "v1");
    skopeo_copy(
        &fx.oci_ref(),
        &format!("docker://{}/app/one:v1", reg.host()),
    )
    .unwrap();

    let r: ImageRef = format!("docker://{}/app/one:v1", reg.host())
        .parse()
        .unwrap();
    let src = RegistrySource::new(r, &opts()).unwrap();
    let (root, raw) = src.resolve_root().unwrap();
    assert_eq!(
        root.digest, fx.root.digest,
        "skopeo keeps the OCI manifest byte-exact"
    );
    assert_eq!(raw, fx.root.bytes);
    let ms = select_manifests(&src, &PlatformChoice::Host).unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].platform.to_string(), "linux/amd64");
    for (d, want) in ms[0].manifest.layers.iter().zip(&fx.images[0].layers) {
        let mut r = src.open_blob(d).unwrap();
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).unwrap();
        assert_eq!(Digest::of(&bytes), d.digest);
        assert_eq!(bytes, want.bytes);
        let (a, b) = (d.size as u64 / 3, d.size as u64 / 3 * 2);
        assert_eq!(
            src.read_blob_range(d, a..b).unwrap(),
            &want.bytes[a as usize..b as usize]
        );
    }
    // Byte range of the big layer, across chunk boundaries.
    let big = &ms[0].manifest.layers[1];
    let want = fx.blob(big.digest.as_str());
    assert_eq!(
        src.read_blob_range(big, 1..want.len() as u64).unwrap(),
        &want[1..]
    );
    assert_eq!(
        src.fetch_blob(&ms[0].manifest.config).unwrap(),
        fx.images[0].config.bytes
    );

    // Digest reference, and an unknown tag.
    let by_digest: ImageRef = format!("{}/app/one@{}", reg.host(), fx.root.digest)
        .parse()
        .unwrap();
    assert_eq!(
        RegistrySource::new(by_digest, &opts())
            .unwrap()
            .resolve_root()
            .unwrap()
            .1,
        fx.root.bytes
    );
    let missing: ImageRef = format!("{}/app/one:nope", reg.host()).parse().unwrap();
    let e = RegistrySource::new(missing, &opts())
        .unwrap()
        .resolve_root()
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("not found"), "{e}");
    let absent_blob = Descriptor::new(
        String::new(),
        Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
        5,
    );
    assert!(src.open_blob(&absent_blob).is_err());

    // Dropping a reader half-way does not hang or leak the download.
    let mut r = src.open_blob(big).unwrap();
    let mut first = [0u8; 100];
    r.read_exact(&mut first).unwrap();
    drop(r);
    assert_eq!(&first[..], &want[..100]);
}

#[test]
fn pull_multiplatform_from_registry() {
    let reg = start();
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_multiplatform_layout(tmp.path(), "multi");
    skopeo_copy_all(
        &fx.oci_ref(),
        &format!("docker://{}/multi:latest", reg.host()),
    )
    .unwrap();
    let src =
        RegistrySource::new(format!("{}/multi", reg.host()).parse().unwrap(), &opts()).unwrap();
    assert_eq!(src.resolve_root().unwrap().0.digest, fx.root.digest);
    let all = select_manifests(&src, &PlatformChoice::All).unwrap();
    assert_eq!(
        all.iter()
            .map(|m| m.platform.to_string())
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64/v8"]
    );
    for (m, img) in all.iter().zip(&fx.images) {
        assert_eq!(m.raw, img.manifest.bytes);
        for d in &m.manifest.layers {
            let mut bytes = Vec::new();
            src.open_blob(d).unwrap().read_to_end(&mut bytes).unwrap();
            assert_eq!(Digest::of(&bytes), d.digest);
        }
    }
}

#[test]
fn push_artifact_with_subject() {
    let reg = start();
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_oci_layout(&tmp.path().join("img"), "v1");
    skopeo_copy(&fx.oci_ref(), &format!("docker://{}/app:v1", reg.host())).unwrap();

    let target = RegistryClient::new(&reg.host(), &opts()).unwrap();
    let blob = b"a ztoc, say".to_vec();
    let blob_digest = Digest::of(&blob);
    assert!(
        target.push_blob("app", &blob, &blob_digest).unwrap(),
        "first push uploads"
    );
    assert!(
        !target.push_blob("app", &blob, &blob_digest).unwrap(),
        "second push skips (HEAD)"
    );
    assert!(target
        .push_blob(
            "app",
            &blob,
            &Digest::parse(&format!("sha256:{}", "2".repeat(64))).unwrap()
        )
        .is_err());
    let config = b"{}".to_vec();
    let config_digest = Digest::of(&config);
    target
        .mount_or_push("app", "elsewhere", &config, &config_digest)
        .unwrap();
    // Cross-repository mount into a new repository.
    target
        .mount_or_push("other", "app", &blob, &blob_digest)
        .unwrap();
    assert!(target.blob_exists("other", &blob_digest).unwrap());

    let manifest = Manifest {
        schema_version: 2,
        media_type: spec::MEDIA_TYPE_OCI_MANIFEST.into(),
        artifact_type: "application/vnd.amazon.soci.index.v1+json".into(),
        config: Descriptor::new(
            "application/vnd.amazon.soci.index.v1+json",
            config_digest,
            2,
        ),
        layers: vec![Descriptor {
            annotations: [(
                "com.amazon.soci.image-layer-digest".to_string(),
                fx.images[0].layers[0].digest.clone(),
            )]
            .into(),
            ..Descriptor::new(
                "application/octet-stream",
                blob_digest.clone(),
                blob.len() as i64,
            )
        }],
        subject: Some(Descriptor::new(
            spec::MEDIA_TYPE_OCI_MANIFEST,
            Digest::parse(&fx.root.digest).unwrap(),
            fx.root.size() as i64,
        )),
        annotations: [(
            "com.amazon.soci.build-tool-identifier".to_string(),
            "soci-rs <test> & co".to_string(),
        )]
        .into(),
    };
    let raw = spec::to_go_json(&manifest);
    let d = target
        .push_manifest(
            "app",
            Digest::of(&raw).as_str(),
            &raw,
            spec::MEDIA_TYPE_OCI_MANIFEST,
        )
        .unwrap();
    assert_eq!(d.digest, Digest::of(&raw));
    let got = skopeo_inspect_raw(&format!("docker://{}/app@{}", reg.host(), d.digest)).unwrap();
    assert_eq!(got, raw, "stored byte-exact");
    let (gd, graw) = target
        .get_manifest_raw("app", d.digest.as_str())
        .unwrap()
        .unwrap();
    assert_eq!(
        (gd.digest.as_str(), gd.media_type.as_str(), graw),
        (
            d.digest.as_str(),
            spec::MEDIA_TYPE_OCI_MANIFEST,
            raw.clone()
        )
    );

    // By tag as well; and a missing tag is None.
    target
        .push_manifest("app", "soci-index", &raw, spec::MEDIA_TYPE_OCI_MANIFEST)
        .unwrap();
    assert_eq!(
        skopeo_inspect_raw(&format!("docker://{}/app:soci-index", reg.host())).unwrap(),
        raw
    );
    assert!(target.get_manifest_raw("app", "absent").unwrap().is_none());
    // Pushing with a digest that is not the content's is refused before any request.
    assert!(target
        .push_manifest("app", &fx.root.digest, &raw, spec::MEDIA_TYPE_OCI_MANIFEST)
        .is_err());

    // docker-registry 2.8 has no referrers API: referrers come from the fallback tag.
    assert!(!target
        .referrers_api_supported("app", &Digest::parse(&fx.root.digest).unwrap())
        .unwrap());
    assert!(target
        .referrers("app", &Digest::parse(&fx.root.digest).unwrap())
        .unwrap()
        .is_empty());
    let entry = Descriptor {
        artifact_type: manifest.artifact_type.clone(),
        ..d.clone()
    };
    let fallback = spec::Index {
        schema_version: 2,
        media_type: spec::MEDIA_TYPE_OCI_INDEX.into(),
        manifests: vec![entry.clone()],
        ..Default::default()
    };
    let ftag = fx.root.digest.replacen(':', "-", 1);
    target
        .push_manifest(
            "app",
            &ftag,
            &spec::to_go_json(&fallback),
            spec::MEDIA_TYPE_OCI_INDEX,
        )
        .unwrap();
    assert_eq!(
        target
            .referrers("app", &Digest::parse(&fx.root.digest).unwrap())
            .unwrap(),
        vec![entry.clone()]
    );
    let src =
        RegistrySource::new(format!("{}/app:v1", reg.host()).parse().unwrap(), &opts()).unwrap();
    assert_eq!(
        src.referrers(&Digest::parse(&fx.root.digest).unwrap())
            .unwrap(),
        Some(vec![entry])
    );
    let probe = Descriptor::new(spec::MEDIA_TYPE_OCI_MANIFEST, d.digest.clone(), 0);
    assert_eq!(src.fetch_manifest(&probe).unwrap(), raw);
}

#[test]
fn registry_errors_are_clear() {
    // Nothing listens on this port (the registry was stopped).
    let host = {
        let reg = start();
        reg.host()
    };
    let src = RegistrySource::new(format!("{host}/x:y").parse().unwrap(), &opts()).unwrap();
    let e = src.resolve_root().unwrap_err().to_string();
    assert!(e.contains(&host), "{e}");
    // A CA file that does not exist is reported, not silently ignored.
    let bad = RegistryOptions {
        tls_ca: Some("/nonexistent/ca.pem".into()),
        ..opts()
    };
    assert!(RegistrySource::new(format!("{host}/x:y").parse().unwrap(), &bad).is_err());
}

#[test]
fn referrers_api_detected() {
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec();
    let server = soci_testkit::ReferrersServer::start(index).unwrap();
    let target = RegistryClient::new(&server.host(), &opts()).unwrap();
    let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
    assert!(target
        .referrers_api_supported("some/repo", &digest)
        .unwrap());
    assert!(target.referrers("some/repo", &digest).unwrap().is_empty());
    // A 200 that is not an index does not count.
    let server = soci_testkit::ReferrersServer::start(b"not json".to_vec()).unwrap();
    let target = RegistryClient::new(&server.host(), &opts()).unwrap();
    assert!(!target
        .referrers_api_supported("some/repo", &digest)
        .unwrap());
    assert!(target
        .referrers_api_supported(
            "some/repo",
            &Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap()
        )
        .is_err());
}

#[test]
fn push_blob_streaming() {
    let reg = start();
    let target = RegistryClient::new(&reg.host(), &opts()).unwrap();
    // Bigger than any buffer on the way: streamed in one PUT, not held whole.
    let data = soci_testkit::fixture::pseudo_random(42, 9 << 20);
    let d = Descriptor::new(
        spec::MEDIA_TYPE_OCI_LAYER_TAR,
        Digest::of(&data),
        data.len() as i64,
    );
    assert!(target.push_blob_stream("streamed", &d, &data[..]).unwrap());
    assert!(
        !target.push_blob_stream("streamed", &d, &data[..]).unwrap(),
        "already there"
    );
    let src = RegistrySource::new(
        format!("{}/streamed:x", reg.host()).parse().unwrap(),
        &opts(),
    )
    .unwrap();
    let mut back = Vec::new();
    src.open_blob(&d).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == data, "round trip");

    // A reader whose content does not match the descriptor leaves nothing behind.
    let mut other = data.clone();
    other[5_000_000] ^= 1;
    let lying = Descriptor {
        digest: Digest::of(&data[..1000]),
        size: data.len() as i64,
        ..d.clone()
    };
    let e = target
        .push_blob_stream("streamed2", &lying, &other[..])
        .unwrap_err()
        .to_string();
    assert!(e.contains("digest mismatch"), "{e}");
    assert!(!target.blob_exists("streamed2", &lying.digest).unwrap());
    assert!(!target
        .blob_exists("streamed2", &Digest::of(&other))
        .unwrap());
    // Empty blob.
    let empty = Descriptor::new(String::new(), Digest::of(b""), 0);
    target
        .push_blob_stream("streamed", &empty, &b""[..])
        .unwrap();
    assert!(target.blob_exists("streamed", &empty.digest).unwrap());
}
