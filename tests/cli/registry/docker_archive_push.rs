//! `soci create docker-archive:FILE --dest REGISTRY_REF`: the archive's plain-tar
//! layers are compressed deterministically, pushed with the image, and the SOCI
//! index matches what landed.
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};
use soci_testkit::{skopeo, skopeo_inspect_raw, Registry};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn soci(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_soci"))
        .args(args)
        .output()
        .unwrap()
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/example-image")
}

/// `docker save`-style archive of the example image, written by skopeo.
fn docker_archive(dir: &Path) -> PathBuf {
    let tar = dir.join("example.tar");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        &format!("oci:{}:latest", example().display()),
        &format!("docker-archive:{}:example:latest", tar.display()),
    ])
    .expect("skopeo copy to docker-archive");
    tar
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn docker_archive_to_registry_is_compressed_indexed_and_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let reg =
        Registry::start().expect("install docker-registry (apt-get install -y docker-registry)");
    let archive = docker_archive(tmp.path());
    let src = format!("docker-archive:{}", archive.display());
    let mut digests = Vec::new();
    for (i, tag) in ["soci-a", "soci-b"].iter().enumerate() {
        let store = tmp.path().join(format!("store{i}"));
        let dst = format!("{}/example:{tag}", reg.addr());
        let o = soci(&[
            "--json",
            "create",
            &src,
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            "--dest",
            &dst,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v = json(&o.stdout);
        digests.push(
            v["pushed"]["image_index"]["digest"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let o = soci(&[
            "verify",
            "--plain-http",
            "--store",
            store.to_str().unwrap(),
            &dst,
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    assert_eq!(
        digests[0], digests[1],
        "two independent runs push the same image index"
    );

    // What landed: an OCI index → image manifest with gzip layers → each layer
    // decompresses to the archive's tar (its diff_id in the config).
    let dst = format!("docker://{}/example:soci-a", reg.addr());
    let index = json(&skopeo_inspect_raw(&dst).unwrap());
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let image = &index["manifests"][0];
    assert!(image["annotations"]["com.amazon.soci.index-digest"].is_string());
    let layout = tmp.path().join("pulled");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &dst,
        &format!("oci:{}:x", layout.display()),
    ])
    .unwrap();
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let oci_index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let manifest = json(&blob(oci_index["manifests"][0]["digest"].as_str().unwrap()));
    let config = json(&blob(manifest["config"]["digest"].as_str().unwrap()));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (l, diff_id) in layers
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
    {
        assert_eq!(
            l["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let mut tar = Vec::new();
        MultiGzDecoder::new(&blob(l["digest"].as_str().unwrap())[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(&tar))),
            diff_id.as_str().unwrap()
        );
    }
}

/// A layer of the archive that does not match its digest (damaged archive):
/// a clear error naming the layer, exit 1, and nothing half-written in the
/// store (no temp files, no compressed blob, no zTOC record).
#[test]
fn damaged_archive_layer_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = docker_archive(tmp.path());
    let mut bytes = std::fs::read(&archive).unwrap();
    // The largest member of the archive is a layer; flip a byte in its middle
    // (its tar header checksum is unaffected, the layer digest is not).
    let (pos, size) = {
        let mut ar = tar::Archive::new(&bytes[..]);
        ar.entries()
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.raw_file_position(), e.size()))
            .max_by_key(|&(_, s)| s)
            .unwrap()
    };
    bytes[(pos + size / 2) as usize] ^= 0x20;
    let damaged = tmp.path().join("damaged.tar");
    std::fs::write(&damaged, &bytes).unwrap();
    let (store, err) = create_failing(tmp.path(), &damaged, &[]);
    assert!(err.contains("does not match its digest"), "{err}");
    // The other layer may have finished (stored whole, with its zTOC); no temp
    // file is left and every blob is named by its digest.
    let names = check_store_clean(&store);
    let o = soci(&["ztoc", "list", "--store", store.to_str().unwrap()]);
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(listed.lines().count() <= 2, "{listed}\n{names:?}");
}

/// `soci create docker-archive:ARCHIVE --dest oci:TMP/out:x` into the store
/// TMP/store, which must fail with exit 1; returns the store and stderr.
fn create_failing(tmp: &Path, archive: &Path, extra: &[&str]) -> (PathBuf, String) {
    let store = tmp.join("store");
    let src = format!("docker-archive:{}", archive.display());
    let dest = format!("oci:{}:x", tmp.join("out").display());
    let mut args = vec!["create", &src, "--min-layer-size", "0"];
    args.extend_from_slice(extra);
    args.extend(["--store", store.to_str().unwrap(), "--dest", &dest]);
    let o = soci(&args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    (store, err)
}

/// No temp file in the store, every blob named by its digest; returns the
/// store's files, relative.
fn check_store_clean(store: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for e in walk(store) {
        let rel = e.strip_prefix(store).unwrap().to_string_lossy().to_string();
        assert!(!rel.contains("tmp"), "temp file left: {rel}");
        if let Some(hex) = rel.strip_prefix("blobs/sha256/") {
            let b = std::fs::read(&e).unwrap();
            assert_eq!(
                hex::encode(Sha256::digest(&b)),
                hex,
                "blob named by its digest"
            );
        }
        names.push(rel);
    }
    names
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A layer whose tar the zTOC builder refuses (a PAX global header, which the
/// reference does not support either), with the right diff_id: the error is
/// the builder's, named by layer, even though the compressor was the one to
/// notice the stopped pipe; nothing half-written is left in the store.
#[test]
fn unindexable_archive_layer_reports_the_builders_error() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&tmp.path().join("img"), "v1");
    let mut img = fx.images[0].clone();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XGlobalHeader);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_data(&mut h, "pax_global_header", &[][..]).unwrap();
    // Enough data after it that the compressor is still running when the
    // builder stops.
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 / 13) as u8).collect();
    let mut h = tar::Header::new_ustar();
    h.set_size(big.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "big", &big[..]).unwrap();
    let bad = b.into_inner().unwrap();
    let bad_diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&bad)));
    img.layer_tars[0] = bad;
    let mut config: serde_json::Value = serde_json::from_slice(&img.config.bytes).unwrap();
    config["rootfs"]["diff_ids"][0] = bad_diff_id.clone().into();
    let bytes = serde_json::to_vec(&config).unwrap();
    img.config = soci_testkit::Blob {
        media_type: img.config.media_type.clone(),
        digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
        bytes,
    };
    let archive = tmp.path().join("bad.tar");
    soci_testkit::make_docker_archive(&archive, &img, "bad:latest", false);
    let (store, err) = create_failing(tmp.path(), &archive, &["--jobs", "1"]);
    assert!(
        err.contains(&format!("cannot build the zTOC of layer {bad_diff_id}"))
            && err.contains("unsupported"),
        "{err}"
    );
    check_store_clean(&store);
    assert!(
        !tmp.path().join("out/index.json").exists(),
        "nothing pushed"
    );
}
