//! OCI layout and docker-archive sources against fixtures built by soci-testkit.
use soci_oci::spec::Digest;
use soci_oci::spec::{self, Descriptor};
use soci_oci::{
    open_source, select_manifests, DockerArchiveSource, ImageRef, ImageSource, OciLayoutSource,
    OciLayoutWriter, Platform, PlatformChoice, RegistryOptions,
};
use soci_testkit::{make_docker_archive, make_multiplatform_layout, make_oci_layout};
use std::io::Read;

fn stream_sha256(src: &dyn ImageSource, d: &Descriptor) -> (Digest, Vec<u8>) {
    let mut r = src.open_blob(d).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 7000];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    (Digest::of(&all), all)
}

/// A fixture's digest (text) as a [`Digest`].
fn dg(d: &str) -> Digest {
    Digest::parse(d).unwrap()
}

fn p(s: &str) -> Platform {
    s.parse().unwrap()
}

#[test]
fn oci_layout_resolves_and_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_oci_layout(&tmp.path().join("img"), "v1");
    let r: ImageRef = fx.oci_ref().parse().unwrap();
    let src = OciLayoutSource::open(r.clone()).unwrap();
    let (root, raw) = src.resolve_root().unwrap();
    assert_eq!(root.digest, fx.root.digest);
    assert_eq!(root.media_type, spec::MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(raw, fx.root.bytes);

    // Single-manifest image: used whatever the platform choice, platform from the config.
    for choice in [
        PlatformChoice::Host,
        PlatformChoice::All,
        PlatformChoice::List(vec![p("linux/s390x")]),
    ] {
        let ms = select_manifests(&src, &choice).unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].platform, p("linux/amd64"));
        assert_eq!(ms[0].descriptor.platform.as_ref(), Some(&p("linux/amd64")));
        assert_eq!(ms[0].descriptor.digest, fx.root.digest);
        assert_eq!(ms[0].raw, fx.root.bytes);
    }
    let m = &select_manifests(&src, &PlatformChoice::Host).unwrap()[0];
    let img = &fx.images[0];
    assert_eq!(m.manifest.layers.len(), 4);
    for (d, want) in m.manifest.layers.iter().zip(&img.layers) {
        assert_eq!(d.media_type, want.media_type);
        let (digest, bytes) = stream_sha256(&src, d);
        assert_eq!(digest, d.digest);
        assert_eq!(bytes.len() as i64, d.size);
        let range = src.read_blob_range(d, 10..(d.size as u64 - 3)).unwrap();
        assert_eq!(range, &want.bytes[10..want.bytes.len() - 3]);
    }
    assert_eq!(
        src.fetch_blob(&m.manifest.config).unwrap(),
        img.config.bytes
    );
    // Out-of-range reads and digest mismatches are errors.
    let l0 = &m.manifest.layers[0];
    assert!(src.read_blob_range(l0, 0..(l0.size as u64 + 1)).is_err());
    let mut lying = m.manifest.config.clone();
    lying.digest = l0.digest.clone();
    assert!(src
        .fetch_blob(&lying)
        .unwrap_err()
        .to_string()
        .contains("size mismatch"));
    let cfg_path = fx
        .dir
        .join("blobs/sha256")
        .join(m.manifest.config.digest.encoded());
    let mut corrupted = img.config.bytes.clone();
    corrupted[0] ^= 1;
    std::fs::write(&cfg_path, &corrupted).unwrap();
    let e = src.fetch_blob(&m.manifest.config).unwrap_err().to_string();
    assert!(
        e.contains("digest mismatch") && e.contains(m.manifest.config.digest.as_str()),
        "{e}"
    );
    let missing = Descriptor::new(
        String::new(),
        Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
        1,
    );
    assert!(src.open_blob(&missing).is_err());

    // Untagged reference: the single manifest of index.json; wrong tag: error naming the tags.
    let untagged = OciLayoutSource::open(ImageRef::OciLayout {
        dir: fx.dir.clone(),
        tag: None,
    })
    .unwrap();
    assert_eq!(untagged.resolve_root().unwrap().0.digest, fx.root.digest);
    let wrong = OciLayoutSource::open(ImageRef::OciLayout {
        dir: fx.dir.clone(),
        tag: Some("nope".into()),
    })
    .unwrap();
    let e = wrong.resolve_root().unwrap_err().to_string();
    assert!(e.contains("\"nope\"") && e.contains("v1"), "{e}");
    assert!(OciLayoutSource::open(ImageRef::OciLayout {
        dir: tmp.path().join("absent"),
        tag: None
    })
    .is_err());
}

#[test]
fn multiplatform_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_multiplatform_layout(tmp.path(), "multi");
    let src = open_source(&fx.oci_ref().parse().unwrap(), &RegistryOptions::default()).unwrap();
    let (root, _) = src.resolve_root().unwrap();
    assert_eq!(root.media_type, spec::MEDIA_TYPE_OCI_INDEX);

    let all = select_manifests(&*src, &PlatformChoice::All).unwrap();
    let plats: Vec<String> = all.iter().map(|m| m.platform.to_string()).collect();
    assert_eq!(
        plats,
        ["linux/amd64", "linux/arm64/v8"],
        "attestation skipped"
    );
    assert_eq!(all[0].descriptor.digest, fx.images[0].manifest.digest);
    assert_eq!(all[1].descriptor.digest, fx.images[1].manifest.digest);
    assert_eq!(all[1].raw, fx.images[1].manifest.bytes);
    assert_eq!(all[1].platform, p("linux/arm64/v8"));

    let arm = select_manifests(
        &*src,
        &PlatformChoice::List(vec![p("linux/arm64"), p("linux/aarch64/v8")]),
    )
    .unwrap();
    assert_eq!(arm.len(), 1, "duplicates dropped");
    assert_eq!(arm[0].platform, p("linux/arm64"), "build platform as given");
    assert_eq!(
        arm[0].descriptor.platform,
        Some(p("linux/arm64/v8")),
        "index entry's platform"
    );
    assert_eq!(arm[0].descriptor.digest, fx.images[1].manifest.digest);
    assert_eq!(arm[0].manifest.layers.len(), 4);

    let both = select_manifests(
        &*src,
        &PlatformChoice::List(vec![p("linux/arm64"), p("linux/amd64")]),
    )
    .unwrap();
    assert_eq!(
        both[0].descriptor.digest, fx.images[1].manifest.digest,
        "requested order"
    );

    let host = select_manifests(&*src, &PlatformChoice::Host);
    if Platform::host().matches_strict(&p("linux/amd64")) {
        assert_eq!(
            host.unwrap()[0].descriptor.digest,
            fx.images[0].manifest.digest
        );
    }

    let e = select_manifests(&*src, &PlatformChoice::List(vec![p("linux/arm/v7")]))
        .unwrap_err()
        .to_string();
    assert!(
        // Attestation entries (unknown/unknown) are not images to choose.
        e.contains("linux/arm") && e.ends_with("available platforms: linux/amd64, linux/arm64/v8"),
        "{e}"
    );
}

#[test]
fn docker_archive_resolves_and_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_oci_layout(&tmp.path().join("img"), "v1");
    let file = tmp.path().join("saved.tar");
    let tars = make_docker_archive(&file, &fx.images[0], "example.com/app:1.0", true);

    let r: ImageRef = format!("docker-archive:{}", file.display())
        .parse()
        .unwrap();
    let src = DockerArchiveSource::open(r).unwrap();
    let (root, raw) = src.resolve_root().unwrap();
    assert_eq!(root.media_type, spec::MEDIA_TYPE_DOCKER_MANIFEST);
    assert_eq!(root.digest, Digest::of(&raw));
    let ms = select_manifests(&src, &PlatformChoice::Host).unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].platform, p("linux/amd64"));
    let m = &ms[0].manifest;
    assert_eq!(m.config.media_type, spec::MEDIA_TYPE_DOCKER_CONFIG);
    assert_eq!(m.config.digest, fx.images[0].config.digest);
    assert_eq!(
        src.fetch_blob(&m.config).unwrap(),
        fx.images[0].config.bytes
    );
    assert_eq!(m.layers.len(), tars.len());
    for (d, tar) in m.layers.iter().zip(&tars) {
        assert_eq!(d.media_type, spec::MEDIA_TYPE_DOCKER_LAYER_TAR);
        assert_eq!(d.digest, Digest::of(tar));
        let (digest, bytes) = stream_sha256(&src, d);
        assert_eq!(digest, d.digest);
        assert_eq!(&bytes, tar);
        assert_eq!(src.read_blob_range(d, 512..1536).unwrap(), &tar[512..1536]);
    }
    // The symlinked duplicate layer is the first layer.
    assert_eq!(m.layers[0].digest, m.layers[4].digest);
    // Also through open_source, selecting the image by its RepoTag.
    let named = open_source(
        &format!("docker-archive:{}:example.com/app:1.0", file.display())
            .parse()
            .unwrap(),
        &RegistryOptions::default(),
    )
    .unwrap();
    assert_eq!(named.resolve_root().unwrap().0.digest, root.digest);
    let e = open_source(
        &format!("docker-archive:{}:other:2", file.display())
            .parse()
            .unwrap(),
        &RegistryOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("example.com/app:1.0"), "{e}");
    // Not an archive.
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, soci_testkit::fixture::make_tar(&[("x", b"y")])).unwrap();
    let e = DockerArchiveSource::open(ImageRef::DockerArchive {
        file: junk,
        image: None,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("manifest.json"), "{e}");
}

#[test]
fn layout_writer_is_atomic_and_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_oci_layout(&tmp.path().join("src"), "v1");
    let out = tmp.path().join("out");
    let w = OciLayoutWriter::create(&out).unwrap();
    let src = OciLayoutSource::open(fx.oci_ref().parse().unwrap()).unwrap();
    let m = &select_manifests(&src, &PlatformChoice::All).unwrap()[0];
    for l in &m.manifest.layers {
        w.put_blob_from_reader(l, src.open_blob(l).unwrap())
            .unwrap();
    }
    // A lying descriptor leaves nothing behind.
    let mut lying = m.manifest.layers[0].clone();
    lying.digest = Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap();
    assert!(w
        .put_blob_from_reader(&lying, src.open_blob(&m.manifest.layers[0]).unwrap())
        .is_err());
    assert!(!w.has_blob(&lying.digest).unwrap());
    let leftovers: Vec<_> = std::fs::read_dir(out.join("blobs/sha256"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());

    let cfg = w.put_blob(&fx.images[0].config.bytes).unwrap();
    assert_eq!(cfg, fx.images[0].config.digest);
    let d1 = w
        .put_manifest(Some("a"), &m.raw, &m.descriptor.media_type)
        .unwrap();
    w.put_manifest(Some("b"), &m.raw, &m.descriptor.media_type)
        .unwrap();
    w.put_manifest(Some("a"), &m.raw, &m.descriptor.media_type)
        .unwrap();
    let idx = w.index().unwrap();
    assert_eq!(idx.manifests.len(), 2, "re-tagging replaces");
    let read_back =
        OciLayoutSource::open(format!("oci:{}:a", out.display()).parse().unwrap()).unwrap();
    let (root, raw) = read_back.resolve_root().unwrap();
    assert_eq!((root.digest, raw), (d1.digest, m.raw.clone()));
    let again = select_manifests(&read_back, &PlatformChoice::Host).unwrap();
    assert_eq!(again[0].manifest, m.manifest);
    // No tag and two manifests: an error listing the tags.
    let e = OciLayoutSource::open(ImageRef::OciLayout {
        dir: out.clone(),
        tag: None,
    })
    .unwrap()
    .resolve_root()
    .unwrap_err()
    .to_string();
    assert!(e.contains("a, b") || e.contains("b, a"), "{e}");
}

#[test]
fn docker_archive_written_by_skopeo() {
    // An independent writer of the docker-archive format.
    let tmp = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&tmp.path().join("img"), "v1", false);
    let file = tmp.path().join("skopeo.tar");
    // (Not digest-preserving: skopeo converts the manifest to Docker schema2.)
    let dst = format!("docker-archive:{}:example.com/app:v1", file.display());
    soci_testkit::skopeo(&["--insecure-policy", "copy", "--quiet", &fx.oci_ref(), &dst]).unwrap();
    let src = open_source(
        &format!("docker-archive:{}", file.display())
            .parse()
            .unwrap(),
        &RegistryOptions::default(),
    )
    .unwrap();
    let ms = select_manifests(&*src, &PlatformChoice::Host).unwrap();
    assert_eq!(ms[0].platform, p("linux/amd64"));
    assert_eq!(ms[0].manifest.config.digest, fx.images[0].config.digest);
    assert_eq!(ms[0].manifest.layers.len(), 3);
    for (d, tar) in ms[0].manifest.layers.iter().zip(&fx.images[0].layer_tars) {
        let (digest, bytes) = stream_sha256(&*src, d);
        assert_eq!(digest, d.digest);
        // skopeo stores layers uncompressed, as docker save does.
        assert_eq!(
            d.media_type,
            spec::MEDIA_TYPE_DOCKER_LAYER_TAR,
            "{}",
            String::from_utf8_lossy(&bytes[..8.min(bytes.len())])
        );
        assert_eq!(&bytes, tar);
    }
}

#[test]
fn docker_archive_docker25_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_oci_layout(&tmp.path().join("img"), "v1");
    let file = tmp.path().join("d25.tar");
    soci_testkit::make_docker_archive_oci(&file, &fx, "app:v1");
    let src = open_source(
        &format!("docker-archive:{}:app:v1", file.display())
            .parse()
            .unwrap(),
        &RegistryOptions::default(),
    )
    .unwrap();
    let m = &select_manifests(&*src, &PlatformChoice::All).unwrap()[0];
    assert_eq!(m.manifest.config.digest, fx.images[0].config.digest);
    let types: Vec<&str> = m
        .manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            spec::MEDIA_TYPE_DOCKER_LAYER_GZIP,
            spec::MEDIA_TYPE_DOCKER_LAYER_GZIP,
            spec::MEDIA_TYPE_DOCKER_LAYER_TAR,
            spec::MEDIA_TYPE_OCI_LAYER_ZSTD
        ],
        "compression sniffed from the bytes"
    );
    for (d, want) in m.manifest.layers.iter().zip(&fx.images[0].layers) {
        assert_eq!(d.digest, want.digest, "named by digest");
        let (digest, bytes) = stream_sha256(&*src, d);
        assert_eq!((digest, bytes), (dg(&want.digest), want.bytes.clone()));
    }
}

#[test]
fn size_limit_and_index_without_platforms() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_multiplatform_layout(tmp.path(), "multi");
    let src = OciLayoutSource::open(fx.oci_ref().parse().unwrap()).unwrap();
    let huge = Descriptor::new(String::new(), dg(&fx.images[0].layers[1].digest), 17 << 20);
    let e = src.fetch_blob(&huge).unwrap_err();
    assert!(matches!(e, soci_oci::Error::BlobTooLarge { .. }), "{e}");
    assert!(e.to_string().contains(huge.digest.as_str()));

    // An index whose entries carry no platform: read from each config.
    let w = OciLayoutWriter::create(&fx.dir).unwrap();
    let entries: Vec<Descriptor> = fx
        .images
        .iter()
        .map(|i| {
            Descriptor::new(
                spec::MEDIA_TYPE_OCI_MANIFEST,
                dg(&i.manifest.digest),
                i.manifest.size() as i64,
            )
        })
        .collect();
    let index = spec::Index {
        schema_version: 2,
        media_type: spec::MEDIA_TYPE_OCI_INDEX.into(),
        manifests: entries,
        ..Default::default()
    };
    w.put_manifest(
        Some("bare"),
        &spec::to_go_json(&index),
        spec::MEDIA_TYPE_OCI_INDEX,
    )
    .unwrap();
    let src =
        OciLayoutSource::open(format!("oci:{}:bare", fx.dir.display()).parse().unwrap()).unwrap();
    let arm = select_manifests(&src, &PlatformChoice::List(vec![p("linux/arm64")])).unwrap();
    assert_eq!(arm[0].descriptor.digest, fx.images[1].manifest.digest);
    assert_eq!(arm[0].platform.to_string(), "linux/arm64", "as requested");
    assert_eq!(
        arm[0].descriptor.platform.as_ref().unwrap().to_string(),
        "linux/arm64/v8",
        "from the config"
    );
}

// ---- hostile layouts (issue 13 items 4 and 9) ----

/// Runs `f` on a thread; fails if it does not finish within 60 s (a bound only
/// to prove "no hang", not a timing assertion).
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("read of a hostile layout did not finish")
}

fn blob_file(dir: &std::path::Path, digest: &str) -> std::path::PathBuf {
    soci_oci::layout::blob_path(dir, &digest.parse().unwrap()).unwrap()
}

fn replace_with(path: &std::path::Path, what: &str) {
    std::fs::remove_file(path).unwrap();
    match what {
        "zero" => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
        "fifo" => {
            let st = std::process::Command::new("mkfifo")
                .arg(path)
                .status()
                .unwrap();
            assert!(st.success());
        }
        _ => unreachable!(),
    }
}

#[test]
fn index_json_that_is_dev_zero_or_a_fifo_is_refused() {
    for what in ["zero", "fifo"] {
        let tmp = tempfile::tempdir().unwrap();
        let fx = make_oci_layout(&tmp.path().join("img"), "v1");
        replace_with(&fx.dir.join("index.json"), what);
        let r: ImageRef = fx.oci_ref().parse().unwrap();
        let e = within_a_minute(move || OciLayoutSource::open(r).err().map(|e| e.to_string()))
            .expect("a hostile index.json was accepted");
        assert!(
            e.contains("index.json") && e.contains("not a regular file"),
            "{e}"
        );
    }
}

#[test]
fn manifest_and_layer_blobs_that_are_devices_fifos_or_too_long_are_refused() {
    for what in ["zero", "fifo"] {
        let tmp = tempfile::tempdir().unwrap();
        let fx = make_oci_layout(&tmp.path().join("img"), "v1");
        let img = fx.images[0].clone();
        // The manifest: resolving the root must fail, not read forever.
        replace_with(&blob_file(&fx.dir, &fx.root.digest), what);
        let r: ImageRef = fx.oci_ref().parse().unwrap();
        let e = within_a_minute(move || {
            OciLayoutSource::open(r)
                .unwrap()
                .resolve_root()
                .err()
                .map(|e| e.to_string())
        })
        .expect("a hostile manifest was accepted");
        assert!(e.contains("not a regular file"), "{what}: {e}");

        // A layer: opening its stream fails at once.
        let l = &img.layers[0];
        replace_with(&blob_file(&fx.dir, &l.digest), what);
        let d = Descriptor::new(l.media_type.clone(), dg(&l.digest), l.bytes.len() as i64);
        let r: ImageRef = fx.oci_ref().parse().unwrap();
        let e = within_a_minute(move || {
            let src = OciLayoutSource::open(r).unwrap();
            let mut out = Vec::new();
            match src.open_blob(&d) {
                Err(e) => Some(e.to_string()),
                Ok(mut s) => s.read_to_end(&mut out).err().map(|e| e.to_string()),
            }
        })
        .expect("a hostile layer was read");
        assert!(e.contains("not a regular file"), "{what}: {e}");
    }

    // A layer blob longer than its descriptor: refused, not streamed on.
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_oci_layout(&tmp.path().join("img"), "v1");
    let l = fx.images[0].layers[0].clone();
    let p = blob_file(&fx.dir, &l.digest);
    let mut longer = l.bytes.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&p, &longer).unwrap();
    let src = OciLayoutSource::open(fx.oci_ref().parse().unwrap()).unwrap();
    let d = Descriptor::new(l.media_type.clone(), dg(&l.digest), l.bytes.len() as i64);
    let e = src
        .open_blob(&d)
        .err()
        .expect("longer blob opened")
        .to_string();
    assert!(e.contains("size mismatch") || e.contains("expected"), "{e}");
}

/// Issue 13 item 4: symlinks planted at `.tmp-*` names in an `oci:` destination
/// are never written through (unlinked on open; temporaries are created with
/// O_EXCL|O_NOFOLLOW), and what they point at is untouched.
#[test]
fn layout_writer_never_writes_through_planted_temp_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::create_dir_all(dest.join("blobs/sha256")).unwrap();
    let pid = std::process::id();
    for dir in [dest.clone(), dest.join("blobs/sha256")] {
        for n in 0..64 {
            std::os::unix::fs::symlink(&victim, dir.join(format!(".tmp-{pid}-{n}"))).unwrap();
        }
    }
    let w = OciLayoutWriter::create(&dest).unwrap();
    let digest = w.put_blob(b"blob content").unwrap();
    w.put_manifest(Some("v1"), b"{}", spec::MEDIA_TYPE_OCI_MANIFEST)
        .unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(
        std::fs::read(blob_file(&dest, digest.as_str())).unwrap(),
        b"blob content"
    );
    let left: Vec<_> = std::fs::read_dir(dest.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A symlinked blobs directory is refused.
    let other = tmp.path().join("dest2");
    std::fs::create_dir_all(&other).unwrap();
    std::os::unix::fs::symlink(tmp.path(), other.join("blobs")).unwrap();
    let e = OciLayoutWriter::create(&other).err().unwrap().to_string();
    assert!(e.contains("symlink"), "{e}");
}
