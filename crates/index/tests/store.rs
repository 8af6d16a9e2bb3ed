//! The local store: atomic blobs, records, reuse, removal, index.json, concurrency.
use soci_index::store::IndexEntry;
use soci_index::*;
use soci_oci::spec::{self, Descriptor, Index, Platform};
use soci_ztoc::build::DEFAULT_BUILD_TOOL_IDENTIFIER;
use std::fs;
use std::io::Write;
use std::path::Path;

fn blob_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn tmp_files(dir: &Path) -> usize {
    fs::read_dir(dir.join("soci/tmp")).unwrap().count()
}

fn read_index_json(dir: &Path) -> Index {
    serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap()
}

#[test]
fn open_creates_layout() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let s = Store::open(&dir).unwrap();
    assert_eq!(
        fs::read(dir.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    assert_eq!(
        fs::read_to_string(dir.join("index.json")).unwrap(),
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(blob_files(&dir).is_empty());
    assert_eq!(s.dir(), dir);
    // Reopen is harmless.
    Store::open(&dir).unwrap();
}

#[test]
fn put_blob_is_atomic_and_verified() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let mut w = s.blob_writer().unwrap();
    w.write_all(b"hello ").unwrap();
    w.write_all(b"world").unwrap();
    // Not visible before commit; only the temp file exists (outside blobs/).
    assert!(blob_files(t.path()).is_empty());
    assert_eq!(tmp_files(t.path()), 1);
    assert!(w.temp_path().starts_with(t.path().join("soci/tmp")));
    let r = w.commit().unwrap();
    assert_eq!(r.digest, soci_index::Digest::of(b"hello world"));
    assert_eq!(r.size, 11);
    assert_eq!(blob_files(t.path()), vec![r.digest.encoded().to_string()]);
    assert_eq!(tmp_files(t.path()), 0);
    assert_eq!(s.get_blob(&r.digest).unwrap(), b"hello world");
    assert!(s.has_blob(&r.digest));

    // Wrong expected digest: nothing stored, temp removed, error names both digests.
    let mut w = s.blob_writer().unwrap();
    w.write_all(b"other").unwrap();
    let exp = dg(&format!("sha256:{}", "0".repeat(64)));
    match w.commit_expecting(&exp) {
        Err(Error::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, exp);
            assert_eq!(actual, soci_index::Digest::of(b"other"));
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(blob_files(t.path()).len(), 1);
    assert_eq!(tmp_files(t.path()), 0);
    assert!(matches!(
        s.put_blob_expecting(b"x", &exp),
        Err(Error::DigestMismatch { .. })
    ));

    // Abandoned writer: temp removed on drop.
    let mut w = s.blob_writer().unwrap();
    w.write_all(b"abandoned").unwrap();
    drop(w);
    assert_eq!(tmp_files(t.path()), 0);
    assert_eq!(blob_files(t.path()).len(), 1);

    // put_blob dedups; put_blob_from_file copies.
    assert_eq!(s.put_blob(b"hello world").unwrap(), r);
    let f = t.path().join("src.bin");
    fs::write(&f, vec![7u8; 200_000]).unwrap();
    let r2 = s.put_blob_from_file(&f).unwrap();
    assert_eq!(r2.digest, soci_index::Digest::of(&vec![7u8; 200_000]));
    assert_eq!(r2.size, 200_000);
    assert!(f.exists());
    assert!(matches!(s.get_blob(&exp), Err(Error::BlobNotFound(d)) if d == exp));
    // Text that is not a sha256 digest never reaches the store's paths.
    for bad in [
        "md5:abc",
        "sha256:../../etc/passwd",
        &format!("sha512:{}", "0".repeat(128)),
    ] {
        assert!(matches!(
            soci_index::parse_digest(bad),
            Err(Error::InvalidDigest(d)) if d == bad
        ));
    }
}

#[test]
fn crash_leftover_temp_files_are_ignored_and_cleaned() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    // A crashed writer: a pid that cannot exist, and a garbage name.
    fs::write(t.path().join("soci/tmp/2147483600-0-0.tmp"), b"partial").unwrap();
    fs::write(t.path().join("soci/tmp/garbage"), b"partial").unwrap();
    // A live writer of this process must survive cleaning.
    let mut live = s.blob_writer().unwrap();
    live.write_all(b"in progress").unwrap();
    assert!(blob_files(t.path()).is_empty());
    assert!(s.list_ztocs(&ZtocFilter::default()).unwrap().is_empty());
    Store::open(t.path()).unwrap();
    assert_eq!(tmp_files(t.path()), 1);
    let r = live.commit().unwrap();
    assert!(s.has_blob(&r.digest));
    assert_eq!(tmp_files(t.path()), 0);
}

fn ztoc_in(s: &Store, content: &[u8], layer: &soci_index::Digest, span: u64) -> ZtocRecord {
    let b = s.put_blob(content).unwrap();
    ZtocRecord {
        ztoc_digest: b.digest,
        ztoc_size: b.size,
        layer_digest: layer.clone(),
        layer_media_type: spec::MEDIA_TYPE_OCI_LAYER_GZIP.into(),
        span_size: span,
        disable_xattrs: true,
    }
}

fn layer(c: char) -> soci_index::Digest {
    dg(&format!("sha256:{}", c.to_string().repeat(64)))
}

#[test]
fn ztoc_reuse_lookup() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let z = ztoc_in(&s, b"ztoc-1", &layer('1'), 4194304);
    assert!(s
        .find_ztoc(&layer('1'), 4194304, "xattr")
        .unwrap()
        .is_none());
    let rec = s.record_ztoc(&z, "xattr").unwrap();
    assert_eq!(rec.kind, ArtifactKind::Layer);
    assert!(
        rec.created_at.ends_with('Z') && rec.created_at.len() == 30,
        "{}",
        rec.created_at
    );
    let found = s.find_ztoc(&layer('1'), 4194304, "xattr").unwrap().unwrap();
    assert_eq!(found.to_ztoc_record().unwrap(), z);
    // Other span size, options or layer: no reuse.
    assert!(s
        .find_ztoc(&layer('1'), 1 << 20, "xattr")
        .unwrap()
        .is_none());
    assert!(s.find_ztoc(&layer('1'), 4194304, "").unwrap().is_none());
    assert!(s
        .find_ztoc(&layer('2'), 4194304, "xattr")
        .unwrap()
        .is_none());
    // Same ztoc recorded without options is a separate row.
    s.record_ztoc(&z, "").unwrap();
    assert_eq!(
        s.list_ztocs(&ZtocFilter {
            layer_digest: Some(layer('1').to_string()),
            ..Default::default()
        })
        .unwrap()
        .len(),
        2
    );
    // A record whose blob is gone is not offered for reuse.
    fs::remove_file(s.blob_path(&z.ztoc_digest).unwrap()).unwrap();
    assert!(s
        .find_ztoc(&layer('1'), 4194304, "xattr")
        .unwrap()
        .is_none());
    // Recording a ztoc whose blob is absent fails, naming it.
    assert!(matches!(s.record_ztoc(&z, ""), Err(Error::BlobNotFound(d)) if d == z.ztoc_digest));
}

fn index_for(
    s: &Store,
    ztocs: &[ZtocRecord],
    manifest: char,
    image_ref: &str,
) -> (BuiltIndex, ArtifactRecord) {
    let subject = Descriptor::new(spec::MEDIA_TYPE_OCI_MANIFEST, layer(manifest), 500);
    let built = build_index_manifest(
        IndexVersion::V1,
        ztocs,
        &[],
        Some(subject),
        DEFAULT_BUILD_TOOL_IDENTIFIER,
    )
    .unwrap();
    s.put_blob_expecting(&built.bytes, &built.descriptor.digest)
        .unwrap();
    let rec = s
        .record_index(&IndexEntry {
            digest: built.descriptor.digest.clone(),
            size: built.descriptor.size as u64,
            version: IndexVersion::V1,
            image_ref: Some(image_ref.into()),
            image_digest: Some(layer(manifest)),
            manifest_digest: layer(manifest),
            platform: Some(Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
                ..Default::default()
            }),
        })
        .unwrap();
    (built, rec)
}

#[test]
fn indexes_listing_and_index_json() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let z = ztoc_in(&s, b"z", &layer('1'), 4194304);
    s.record_ztoc(&z, "").unwrap();
    let (b1, r1) = index_for(&s, std::slice::from_ref(&z), 'a', "docker.io/library/a:1");
    let (b2, _r2) = index_for(&s, std::slice::from_ref(&z), 'b', "docker.io/library/b:1");
    assert!(s.has_blob(&dg(EMPTY_CONFIG_DIGEST)));
    assert_eq!(s.get_blob(&dg(EMPTY_CONFIG_DIGEST)).unwrap(), b"{}");
    assert_eq!(r1.artifact_type, SOCI_INDEX_ARTIFACT_TYPE_V1);
    assert_eq!(r1.manifest_version, Some(IndexVersion::V1));

    let all = s.list_indexes(&IndexFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].digest, b2.descriptor.digest, "newest first");
    let only_a = s
        .list_indexes(&IndexFilter {
            image_ref: Some("docker.io/library/a:1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0].digest, b1.descriptor.digest);
    let by_manifest = s
        .list_indexes(&IndexFilter {
            manifest_digest: Some(layer('b').to_string()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_manifest[0].digest, b2.descriptor.digest);

    // index.json lists both index manifests with artifactType, Go-JSON.
    let idx = read_index_json(t.path());
    let digests: Vec<_> = idx.manifests.iter().map(|d| d.digest.clone()).collect();
    assert_eq!(
        digests,
        vec![b1.descriptor.digest.clone(), b2.descriptor.digest.clone()]
    );
    assert_eq!(idx.manifests[0], b1.descriptor);
    assert_eq!(
        fs::read(t.path().join("index.json")).unwrap(),
        spec::to_go_json(&idx)
    );

    // Re-recording updates the row, does not duplicate.
    index_for(&s, std::slice::from_ref(&z), 'a', "docker.io/library/a:2");
    assert_eq!(s.list_indexes(&IndexFilter::default()).unwrap().len(), 2);
    assert_eq!(read_index_json(t.path()).manifests.len(), 2);
    assert_eq!(
        s.list_indexes(&IndexFilter {
            image_ref: Some("docker.io/library/a:2".into()),
            ..Default::default()
        })
        .unwrap()
        .len(),
        1
    );

    // add_root with a ref name; replaced when the tag moves.
    let tagged = |d: &soci_index::Digest| Descriptor {
        annotations: [(
            soci_oci::spec::ANNOTATION_REF_NAME.to_string(),
            "img:soci".to_string(),
        )]
        .into_iter()
        .collect(),
        ..Descriptor::new(
            spec::MEDIA_TYPE_OCI_MANIFEST,
            d.clone(),
            s.get_blob(d).unwrap().len() as i64,
        )
    };
    s.add_root(&tagged(&b1.descriptor.digest)).unwrap();
    s.add_root(&tagged(&b2.descriptor.digest)).unwrap();
    assert_eq!(s.roots().unwrap().len(), 3);
    s.remove_root(&b2.descriptor.digest).unwrap();
    assert_eq!(s.roots().unwrap().len(), 1);
}

#[test]
fn remove_index_keeps_shared_ztocs() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let shared = ztoc_in(&s, b"shared", &layer('1'), 4194304);
    let own = ztoc_in(&s, b"own", &layer('2'), 4194304);
    s.record_ztoc(&shared, "").unwrap();
    s.record_ztoc(&own, "").unwrap();
    let (b1, _) = index_for(&s, &[shared.clone(), own.clone()], 'a', "a");
    let (b2, _) = index_for(&s, std::slice::from_ref(&shared), 'b', "b");

    let removed = s.remove_index(&b1.descriptor.digest).unwrap();
    assert_eq!(
        removed,
        vec![b1.descriptor.digest.clone(), own.ztoc_digest.clone()]
    );
    assert!(!s.has_blob(&b1.descriptor.digest));
    assert!(!s.has_blob(&own.ztoc_digest));
    assert!(s.has_blob(&shared.ztoc_digest));
    assert!(s.has_blob(&b2.descriptor.digest));
    assert!(s.has_blob(&dg(EMPTY_CONFIG_DIGEST)));
    assert!(s
        .list_ztocs(&ZtocFilter {
            ztoc_digest: Some(own.ztoc_digest.to_string()),
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    assert_eq!(s.list_ztocs(&ZtocFilter::default()).unwrap().len(), 1);
    let idx = read_index_json(t.path());
    assert_eq!(idx.manifests.len(), 1);
    assert_eq!(idx.manifests[0].digest, b2.descriptor.digest);

    // Not an index / unknown digest.
    assert!(matches!(
        s.remove_index(&shared.ztoc_digest),
        Err(Error::NotAnIndex { .. })
    ));
    assert!(matches!(
        s.remove_index(&b1.descriptor.digest),
        Err(Error::ArtifactNotFound(_))
    ));

    // Last index gone: the shared ztoc goes too.
    let removed = s.remove_index(&b2.descriptor.digest).unwrap();
    assert_eq!(
        removed,
        vec![b2.descriptor.digest.clone(), shared.ztoc_digest.clone()]
    );
    assert!(s.list_ztocs(&ZtocFilter::default()).unwrap().is_empty());
    assert_eq!(read_index_json(t.path()).manifests.len(), 0);
}

#[test]
fn prefetch_records() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let bytes = PrefetchArtifact::new(vec![PrefetchSpan {
        start_span: 0,
        end_span: 1,
        priority: 0,
    }])
    .to_json()
    .unwrap();
    let b = s.put_blob(&bytes).unwrap();
    // The same blob for two layers: two rows.
    for l in ['1', '2'] {
        s.record_prefetch(&PrefetchRecord {
            digest: b.digest.clone(),
            size: b.size,
            layer_digest: layer(l),
        })
        .unwrap();
    }
    let v = s.list_prefetches().unwrap();
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|r| r.media_type == SOCI_PREFETCH_MEDIA_TYPE));
    assert!(matches!(
        s.record_prefetch(&PrefetchRecord {
            digest: b.digest.clone(),
            size: b.size + 1,
            layer_digest: layer('1')
        }),
        Err(Error::SizeMismatch { .. })
    ));
}

#[test]
fn parallel_handles_do_not_corrupt() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    Store::open(&dir).unwrap();
    let threads: Vec<_> = (0..2)
        .map(|th| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let s = Store::open(&dir).unwrap();
                for i in 0..25 {
                    let z = ztoc_in(
                        &s,
                        format!("ztoc {th} {i}").as_bytes(),
                        &dg(&format!("sha256:{:064x}", th * 1000 + i)),
                        1024,
                    );
                    s.record_ztoc(&z, "").unwrap();
                    let (_b, _r) = index_for(
                        &s,
                        &[z],
                        if th == 0 { 'a' } else { 'b' },
                        &format!("img{th}:{i}"),
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = Store::open(&dir).unwrap();
    assert_eq!(s.list_ztocs(&ZtocFilter::default()).unwrap().len(), 50);
    let indexes = s.list_indexes(&IndexFilter::default()).unwrap();
    assert_eq!(indexes.len(), 50);
    let idx = read_index_json(&dir);
    assert_eq!(idx.manifests.len(), 50);
    for r in &indexes {
        assert!(idx.manifests.iter().any(|d| d.digest == r.digest));
        assert!(
            parse_index_manifest(&s.get_blob(&r.digest).unwrap())
                .unwrap()
                .go_canonical
        );
    }
    assert_eq!(tmp_files(&dir), 0);
}

#[test]
fn default_dir_uses_xdg_or_home() {
    // Only reads the environment; both branches are pure path joins.
    let d = Store::default_dir();
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| Path::new(x).is_absolute()) {
        assert_eq!(d.unwrap(), Path::new(&x).join("soci-rs"));
    } else if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        assert_eq!(d.unwrap(), Path::new(&h).join(".local/share/soci-rs"));
    }
}

// ---- hardening (issue 13 items 3, 14, 15, 16, 18) ----

/// A symlinked `soci/tmp` (or any internal directory) is refused, and the files
/// where it points survive: cleaning never follows it.
#[test]
fn symlinked_internal_dirs_are_refused_and_never_cleaned_through() {
    for internal in ["soci/tmp", "soci", "blobs/sha256", "soci/artifacts"] {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        fs::create_dir(&victim).unwrap();
        // Looks like a dead writer's temporary to the cleaner.
        fs::write(victim.join("2147483646-0-0"), b"precious").unwrap();
        fs::write(victim.join("other"), b"precious").unwrap();
        let dir = t.path().join("store");
        Store::open(&dir).unwrap();
        let p = dir.join(internal);
        fs::remove_dir_all(&p).unwrap();
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        let err = Store::open(&dir).unwrap_err().to_string();
        assert!(
            err.contains(internal) && err.contains("symlink"),
            "{internal}: {err}"
        );
        assert_eq!(
            fs::read(victim.join("2147483646-0-0")).unwrap(),
            b"precious"
        );
        assert_eq!(fs::read(victim.join("other")).unwrap(), b"precious");
    }
}

/// A symlink planted in `soci/tmp` is unlinked by the cleaning, its target kept.
#[test]
fn planted_symlink_in_tmp_is_unlinked_not_followed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    Store::open(&dir).unwrap();
    let victim = t.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("soci/tmp/1-0-0")).unwrap();
    Store::open(&dir).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(tmp_files(&dir), 0);
}

/// Issue 13 item 14: `index rm` deletes a ztoc between a build's reuse lookup and
/// its recording of the new index: the recording fails, naming the blob, and no
/// index naming a missing blob is listed.
#[test]
fn index_naming_a_ztoc_removed_meanwhile_is_not_recorded() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let z = ztoc_in(&s, b"shared-ztoc", &layer('1'), 4194304);
    s.record_ztoc(&z, "").unwrap();
    let (old, _) = index_for(&s, std::slice::from_ref(&z), 'a', "docker.io/library/a:1");
    // The second build reuses the ztoc ...
    let reused = s
        .find_ztoc(&layer('1'), 4194304, "")
        .unwrap()
        .unwrap()
        .to_ztoc_record()
        .unwrap();
    // ... while `index rm` removes the only index that used it.
    let removed = s.remove_index(&old.descriptor.digest).unwrap();
    assert!(removed.contains(&z.ztoc_digest));
    let built = build_index_manifest(
        IndexVersion::V1,
        std::slice::from_ref(&reused),
        &[],
        Some(Descriptor::new(
            spec::MEDIA_TYPE_OCI_MANIFEST,
            layer('b'),
            500,
        )),
        DEFAULT_BUILD_TOOL_IDENTIFIER,
    )
    .unwrap();
    s.put_blob_expecting(&built.bytes, &built.descriptor.digest)
        .unwrap();
    let err = s
        .record_index(&IndexEntry {
            digest: built.descriptor.digest.clone(),
            size: built.descriptor.size as u64,
            version: IndexVersion::V1,
            image_ref: Some("docker.io/library/b:1".into()),
            image_digest: Some(layer('b')),
            manifest_digest: layer('b'),
            platform: None,
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::IndexBlobMissing { blob, .. } if *blob == z.ztoc_digest),
        "{err}"
    );
    for d in read_index_json(t.path()).manifests {
        assert!(
            s.has_blob(&d.digest),
            "index.json names missing {}",
            d.digest
        );
    }
    assert!(s.list_indexes(&IndexFilter::default()).unwrap().is_empty());
}

/// Issue 13 item 15: a corrupted blob is detected when read (before a push) and
/// replaced when the same content is stored again (`create --force`).
#[test]
fn corrupted_blob_is_detected_and_replaced_on_rewrite() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let b = s.put_blob(b"ztoc bytes").unwrap();
    let p = s.blob_path(&b.digest).unwrap();
    // Same size, different content: only the digest tells.
    fs::write(&p, b"ztoc byteX").unwrap();
    let err = s.get_blob(&b.digest).unwrap_err();
    assert!(matches!(err, Error::CorruptBlob { .. }), "{err}");
    s.put_blob(b"ztoc bytes").unwrap();
    assert_eq!(s.get_blob(&b.digest).unwrap(), b"ztoc bytes");
    // Through the streaming writer too (what a build uses).
    fs::write(&p, b"short").unwrap();
    let mut w = s.blob_writer().unwrap();
    w.write_all(b"ztoc bytes").unwrap();
    w.commit().unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"ztoc bytes");
    assert_eq!(tmp_files(t.path()), 0);
}

/// Issue 13 item 15: reuse checks the stored ztoc's size, so a truncated one is
/// rebuilt instead of reused.
#[test]
fn truncated_ztoc_is_not_reused() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let z = ztoc_in(&s, b"ztoc-content", &layer('1'), 4194304);
    s.record_ztoc(&z, "").unwrap();
    assert!(s.find_ztoc(&layer('1'), 4194304, "").unwrap().is_some());
    fs::write(s.blob_path(&z.ztoc_digest).unwrap(), b"ztoc").unwrap();
    assert!(s.find_ztoc(&layer('1'), 4194304, "").unwrap().is_none());
}

/// Issue 13 item 16: `index rm` failing part-way (here: a ztoc blob that cannot
/// be removed) leaves index.json naming only present blobs, and `index rm` can
/// be run again to finish.
#[test]
fn index_rm_interrupted_leaves_a_valid_layout_and_can_be_rerun() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let z = ztoc_in(&s, b"ztoc-to-remove", &layer('1'), 4194304);
    s.record_ztoc(&z, "").unwrap();
    let (built, _) = index_for(&s, std::slice::from_ref(&z), 'a', "docker.io/library/a:1");
    // Inject a failure: the ztoc blob becomes a non-empty directory, which
    // remove_file cannot remove (even as root).
    let zp = s.blob_path(&z.ztoc_digest).unwrap();
    fs::remove_file(&zp).unwrap();
    fs::create_dir(&zp).unwrap();
    fs::write(zp.join("x"), b"x").unwrap();
    assert!(s.remove_index(&built.descriptor.digest).is_err());
    for d in read_index_json(t.path()).manifests {
        assert!(
            s.has_blob(&d.digest),
            "index.json names missing {}",
            d.digest
        );
    }
    // The fault gone, the same command finishes the removal.
    fs::remove_dir_all(&zp).unwrap();
    let removed = s.remove_index(&built.descriptor.digest).unwrap();
    assert_eq!(removed[0], built.descriptor.digest);
    assert!(!s.has_blob(&built.descriptor.digest));
    assert!(s.list_indexes(&IndexFilter::default()).unwrap().is_empty());
}

/// Issue 13 item 18: the reuse lookup reads the by-layer entry only, not every
/// record: with the records directory gone it still answers (a scan would fail).
#[test]
fn ztoc_lookup_does_not_scan_records() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let mut zs = Vec::new();
    for (i, c) in ['1', '2', '3', '4'].into_iter().enumerate() {
        let z = ztoc_in(&s, format!("ztoc-{i}").as_bytes(), &layer(c), 4194304);
        s.record_ztoc(&z, "").unwrap();
        zs.push(z);
    }
    fs::rename(t.path().join("soci/artifacts"), t.path().join("aside")).unwrap();
    for z in &zs {
        let found = s.find_ztoc(&z.layer_digest, 4194304, "").unwrap().unwrap();
        assert_eq!(found.digest, z.ztoc_digest);
    }
    assert!(s.find_ztoc(&layer('9'), 4194304, "").unwrap().is_none());
}

/// A store written before the by-layer entries existed gets them built once.
#[test]
fn by_layer_entries_are_built_for_an_older_store() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let z = ztoc_in(&s, b"old-ztoc", &layer('5'), 4194304);
    s.record_ztoc(&z, "").unwrap();
    fs::remove_dir_all(t.path().join("soci/by-layer")).unwrap();
    let s = Store::open(t.path()).unwrap();
    let found = s.find_ztoc(&layer('5'), 4194304, "").unwrap().unwrap();
    assert_eq!(found.digest, z.ztoc_digest);
}

/// A digest the store's blob functions take, from a string known to be one.
fn dg(s: &str) -> soci_index::Digest {
    s.parse().unwrap()
}

/// Threads recording indexes in one store at once share the lock and the
/// `index.json` rewrite: every good index is listed (none lost to another
/// thread's rewrite) and recorded, and one naming a blob that is gone gets
/// its own error without holding the others back.
#[test]
fn indexes_recorded_at_once_are_all_listed_and_a_bad_one_fails_alone() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let shared = ztoc_in(&s, b"base-ztoc", &layer('0'), 4194304);
    let gone = ztoc_in(&s, b"gone-ztoc", &layer('9'), 4194304);
    fs::remove_file(s.blob_path(&gone.ztoc_digest).unwrap()).unwrap();
    let names: Vec<char> = "12345678abcd".chars().collect();
    let results: Vec<(char, Result<ArtifactRecord, Error>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = names
            .iter()
            .map(|&m| {
                let (s, shared, gone) = (Store::open(t.path()).unwrap(), &shared, &gone);
                sc.spawn(move || {
                    let z = if m == 'a' {
                        gone.clone()
                    } else {
                        shared.clone()
                    };
                    let subject = Descriptor::new(spec::MEDIA_TYPE_OCI_MANIFEST, layer(m), 500);
                    let built = build_index_manifest(
                        IndexVersion::V1,
                        &[z],
                        &[],
                        Some(subject),
                        DEFAULT_BUILD_TOOL_IDENTIFIER,
                    )
                    .unwrap();
                    s.put_blob_expecting(&built.bytes, &built.descriptor.digest)
                        .unwrap();
                    let r = s.record_index(&IndexEntry {
                        digest: built.descriptor.digest.clone(),
                        size: built.descriptor.size as u64,
                        version: IndexVersion::V1,
                        image_ref: Some(format!("docker.io/library/{m}:1")),
                        image_digest: Some(layer(m)),
                        manifest_digest: layer(m),
                        platform: None,
                    });
                    (m, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let listed: Vec<_> = read_index_json(t.path())
        .manifests
        .into_iter()
        .map(|d| d.digest)
        .collect();
    let recorded = s.list_indexes(&IndexFilter::default()).unwrap();
    for (m, r) in &results {
        match (m, r) {
            ('a', Err(Error::IndexBlobMissing { blob, .. })) => assert_eq!(*blob, gone.ztoc_digest),
            ('a', other) => panic!("the index of a missing zTOC: {other:?}"),
            (_, Ok(rec)) => {
                assert!(listed.contains(&rec.digest), "{m} not in index.json");
                assert!(
                    recorded.iter().any(|r| r.digest == rec.digest),
                    "{m} not recorded"
                );
            }
            (_, Err(e)) => panic!("{m}: {e}"),
        }
    }
    assert_eq!(listed.len(), names.len() - 1);
    assert_eq!(recorded.len(), names.len() - 1);
}
