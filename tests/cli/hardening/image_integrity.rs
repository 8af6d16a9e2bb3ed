//! Issue 13, items 2, 5, 11, 12, 13 and 17: lazy reads check every span,
//! untrusted digests are validated before use, gzip bombs stop at a limit,
//! `verify` reads zTOCs over 16 MiB and runs before publishing, `create
//! --verify` without a destination uses the store, and a tag is resolved once.

use crate::support::proxy::{Fault, FaultProxy};
use crate::support::*;
use serde_json::json;
use soci_testkit::fixture::{make_tar, pseudo_random};
use std::io::Write;
use std::path::Path;

fn write_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let d = sha256(bytes);
    let p = dir
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    (d, bytes.len())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An OCI layout at `dir` tagged `1`: one linux/amd64 image whose layers are
/// `(media type, blob, tar)`. Returns the layer digests.
fn layout(dir: &Path, layers: &[(&str, Vec<u8>, Vec<u8>)]) -> Vec<String> {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (mt, blob, tar) in layers {
        let (d, s) = write_blob(dir, blob);
        descs.push(json!({"mediaType": mt, "digest": d, "size": s}));
        diff_ids.push(sha256(tar));
    }
    let config = json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (cd, cs) = write_blob(dir, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs,
    });
    let (md, ms) = write_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "1"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    descs
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Nothing on stdout or stderr that a terminal would act on.
fn assert_no_control_chars(o: &std::process::Output) {
    for (what, s) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        assert!(
            !s.iter()
                .any(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f),
            "{what} holds a control character: {}",
            text(o)
        );
    }
}

/// Item 2: a registry altering range answers (one byte flipped in the middle
/// of each) makes `get-file --image` fail with the span check, for a plain
/// tar layer (where the old code wrote the altered bytes with exit 0) and a
/// gzip one; nothing is written. The same reads without the fault succeed.
#[test]
fn get_file_image_refuses_altered_range_answers() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(5, 600 << 10);
    let tar1 = make_tar(&[
        ("t/", b""),
        ("t/head.txt", b"head\n"),
        ("t/data.bin", &data),
    ]);
    let tar2 = make_tar(&[
        ("g/", b""),
        ("g/data.bin", &data),
        ("g/tail.txt", b"tail\n"),
    ]);
    let img = dir.path().join("img");
    let digests = layout(
        &img,
        &[
            (LAYER_TAR, tar1.clone(), tar1.clone()),
            (LAYER_GZIP, gzip(&tar2), tar2.clone()),
        ],
    );
    let r = format!("{}/lazy/alter:1", reg.host());
    skopeo_copy(&format!("oci:{}:1", img.display()), &docker(&r)).unwrap();
    let store = dir.path().join("store");
    let c = soci_json(&reg_cmd(
        "create",
        &r,
        p(&store),
        &["--span-size", "128KiB"],
    ));
    let ztocs: Vec<(String, String)> = c["platforms"][0]["ztocs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| {
            (
                z["layer"].as_str().unwrap().to_string(),
                z["ztoc"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ztocs.len(), 2, "{c}");

    let proxy = FaultProxy::start(reg.addr());
    let via_proxy = format!("{}/lazy/alter:1", proxy.host());
    for (layer, name) in [(&digests[0], "t/data.bin"), (&digests[1], "g/data.bin")] {
        let ztoc = &ztocs.iter().find(|(l, _)| l == layer).unwrap().1;
        let get = |out: &Path| {
            proxied::soci(&[
                "ztoc",
                "get-file",
                ztoc,
                name,
                "--image",
                &via_proxy,
                "--plain-http",
                "--store",
                p(&store),
                "-o",
                p(out),
            ])
        };
        let good = dir.path().join("good.bin");
        let o = get(&good);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
        assert!(std::fs::read(&good).unwrap() == data, "{name}");

        proxy.add(
            "GET",
            &format!("/blobs/{layer}"),
            usize::MAX,
            Fault::Corrupt,
        );
        let bad = dir.path().join("bad.bin");
        let o = get(&bad);
        assert_error(&o, "does not match the zTOC");
        assert_error(&o, layer);
        assert!(!bad.exists(), "{name}: an output file was left behind");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("bad"))
            .collect();
        assert!(left.is_empty(), "temporaries left: {left:?}");
        assert!(
            !proxy.seen("GET", &format!("/blobs/{layer}")).is_empty(),
            "the fault was not hit"
        );
        // Without -o: nothing on stdout either.
        let o = proxied::soci(&[
            "ztoc",
            "get-file",
            ztoc,
            name,
            "--image",
            &via_proxy,
            "--plain-http",
            "--store",
            p(&store),
        ]);
        assert_error(&o, "does not match the zTOC");
        assert!(o.stdout.is_empty(), "{name}: bytes went to stdout");
        proxy.clear();
    }
}

/// Item 2, the batch reader the benchmark (and a mount) use: a layer blob
/// altered after its zTOC was built (same size) fails the span check; the
/// intact layer reads back exactly.
#[test]
fn span_reader_checks_every_span() {
    use soci_oci::source::ImageSource;
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(9, 700 << 10);
    let tar = make_tar(&[("a/", b""), ("a/one.bin", &data), ("a/two.txt", b"two\n")]);
    let img = dir.path().join("img");
    let digests = layout(&img, &[(LAYER_GZIP, gzip(&tar), tar.clone())]);
    let store = dir.path().join("store");
    let src = format!("oci:{}:1", img.display());
    let c = soci_json(&[
        "create",
        &src,
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "--span-size",
        "128KiB",
        "-q",
    ]);
    let zd = c["platforms"][0]["ztocs"][0]["ztoc"].as_str().unwrap();
    let zpath = store
        .join("blobs/sha256")
        .join(zd.trim_start_matches("sha256:"));
    let ztoc = soci_ztoc::codec::decode(&std::fs::read(zpath).unwrap()).unwrap();
    let zinfo = ztoc.zinfo().unwrap();
    assert!(zinfo.num_spans() >= 4);
    let read = || {
        let source = soci_oci::OciLayoutSource::open(src.parse().unwrap()).unwrap();
        let images =
            soci_oci::source::select_manifests(&source, &soci_oci::PlatformChoice::All).unwrap();
        let layer = images[0].manifest.layers[0].clone();
        assert_eq!(layer.digest, digests[0]);
        let entries: Vec<_> = ztoc
            .toc
            .entries
            .iter()
            .filter(|e| e.uncompressed_size > 0)
            .collect();
        soci_image::lazy::read_entries(
            &source as &dyn ImageSource,
            &layer,
            &ztoc,
            &zinfo,
            &entries,
            Default::default(),
        )
    };
    let (files, _) = read().unwrap();
    assert!(files[0] == data);
    assert_eq!(files[1], b"two\n");

    // Flip one byte in the middle of the blob, in place.
    let blob = img
        .join("blobs/sha256")
        .join(digests[0].trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&blob, &bytes).unwrap();
    let e = match read() {
        Ok(_) => panic!("the altered layer was read without an error"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("does not match the zTOC"), "{e}");
}

/// Item 11: a small gzip bomb (64 MiB of zeros in a 64 KiB layer) and a layer
/// of many empty files stop at the limits given on the command line, with an
/// error naming the layer; the defaults are shown in `--help`.
#[test]
fn gzip_bombs_stop_at_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 64 << 20];
    let bomb_tar = make_tar(&[("zeros", &zeros)]);
    let bomb = gzip(&bomb_tar);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let names: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    let many_tar = make_tar(
        &names
            .iter()
            .map(|n| (n.as_str(), &b""[..]))
            .collect::<Vec<_>>(),
    );
    let many = gzip(&many_tar);

    // ztoc build on files.
    let bomb_file = dir.path().join("bomb.tar.gz");
    std::fs::write(&bomb_file, &bomb).unwrap();
    let out = dir.path().join("bomb.ztoc");
    let o = soci(&[
        "ztoc",
        "build",
        p(&bomb_file),
        "-o",
        p(&out),
        "--max-uncompressed-size",
        "16MiB",
    ]);
    assert_error(&o, "bomb.tar.gz");
    assert_error(&o, "more than 16777216 bytes");
    assert_error(&o, "--max-uncompressed-size");
    assert!(!out.exists());
    let many_file = dir.path().join("many.tar.gz");
    std::fs::write(&many_file, &many).unwrap();
    let o = soci(&["ztoc", "build", p(&many_file), "--max-files", "50"]);
    assert_error(&o, "more than 50 files");
    // Under the limits (the defaults) both build.
    soci_ok(&["ztoc", "build", p(&bomb_file), "-o", p(&out), "-q"]);
    soci_ok(&["ztoc", "build", p(&many_file), "--max-files", "200", "-q"]);

    // create (and convert, which shares the flags) on an image.
    let img = dir.path().join("img");
    let digests = layout(
        &img,
        &[
            (LAYER_GZIP, many.clone(), many_tar.clone()),
            (LAYER_GZIP, bomb.clone(), bomb_tar.clone()),
        ],
    );
    let src = format!("oci:{}:1", img.display());
    let store = dir.path().join("store");
    let o = soci(&[
        "create",
        &src,
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "--max-uncompressed-size",
        "8MiB",
        "-q",
    ]);
    assert_error(
        &o,
        &format!("cannot build the zTOC of layer {}", digests[1]),
    );
    assert_error(&o, "--max-uncompressed-size");
    // Another store: the first run stored the zTOC of the many-files layer.
    let store2 = dir.path().join("store2");
    let o = soci(&[
        "create",
        &src,
        "--store",
        p(&store2),
        "--min-layer-size",
        "0",
        "--max-files",
        "100",
        "-q",
    ]);
    assert_error(
        &o,
        &format!("cannot build the zTOC of layer {}", digests[0]),
    );
    assert_error(&o, "more than 100 files");
    let dst = dir.path().join("dst");
    let o = soci(&[
        "convert",
        &src,
        &format!("oci:{}:1", dst.display()),
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "--max-uncompressed-size",
        "8MiB",
        "-q",
    ]);
    assert_error(
        &o,
        &format!("cannot build the zTOC of layer {}", digests[1]),
    );
    // The destination may hold the layers copied before the failure, never a tag.
    let tagged = std::fs::read_to_string(dst.join("index.json")).unwrap_or_default();
    assert!(
        !tagged.contains("org.opencontainers.image.ref.name"),
        "convert published: {tagged}"
    );
    let help = soci_ok(&["create", "--help"]);
    assert!(
        help.contains("--max-uncompressed-size") && help.contains("64GiB"),
        "{help}"
    );
    assert!(
        help.contains("--max-files") && help.contains("5000000"),
        "{help}"
    );
}

/// Item 12: a zTOC over 16 MiB (one 40 MiB layer at a 64 KiB span: 32 KiB
/// windows add up) is verified by `create --verify` and by `verify` on the
/// published image, where the zTOC is read from the destination.
#[test]
fn verify_accepts_ztocs_over_16_mib() {
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(3, 40 << 20);
    let tar = make_tar(&[("big/", b""), ("big/data.bin", &data)]);
    let img = dir.path().join("img");
    layout(&img, &[(LAYER_GZIP, gzip(&tar), tar.clone())]);
    drop(data);
    let src = format!("oci:{}:1", img.display());
    let dst = format!("oci:{}:1", dir.path().join("dst").display());
    let store = dir.path().join("store");
    let v = soci_json(&[
        "create",
        &src,
        "--dest",
        &dst,
        "--verify",
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "-q",
    ]);
    let size = v["platforms"][0]["ztocs"][0]["size"].as_u64().unwrap();
    assert!(size > 16 << 20, "the zTOC is only {size} bytes");
    assert_eq!(v["verify"]["ok"], true, "{}", v["verify"]);
    // A fresh store: the index is found through the image, the zTOC read from it.
    let empty = dir.path().join("empty-store");
    let out = soci_ok(&["verify", &dst, "--store", p(&empty), "-q"]);
    assert!(out.contains("image manifest annotation (v2)"), "{out}");
    assert!(out.trim_end().ends_with("verify: OK"), "{out}");
}

/// Item 12: `--verify` runs before anything is published. A registry whose
/// layers read back altered on the second read (verify's) makes `create
/// --dest --verify` fail with nothing at the destination.
#[test]
fn create_verify_fails_before_publishing() {
    let pr = proxied::proxied_registry();
    let img = &pr.fx.images[0];
    for (digest, _) in indexable_layers(img) {
        let path = format!("/blobs/{digest}");
        pr.proxy
            .add("GET", &path, 1, Fault::Delay(std::time::Duration::ZERO));
        pr.proxy.add("GET", &path, usize::MAX, Fault::Corrupt);
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let src = format!("{}/app/one:v1", pr.proxy.host());
    let dst = format!("{}/app/dst:v1", pr.proxy.host());
    let o = proxied::soci(&[
        "create",
        &src,
        "--dest",
        &dst,
        "--verify",
        "--plain-http",
        "--store",
        p(&store),
        "--min-layer-size",
        "0",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nothing was pushed"), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("verify: FAILED"), "{}", text(&o));
    let (status, _) = http(&pr.reg, "GET", "/v2/app/dst/manifests/v1");
    assert_eq!(status, 404, "the destination tag was written");
    assert!(
        pr.proxy.seen("PUT", "/manifests/").is_empty(),
        "{:?}",
        pr.proxy.log()
    );
}

/// Item 13: the README's example, without a destination, passes `--verify`
/// (the index and its zTOCs are in the local store, not in the image); so does
/// `soci verify` on the same image and store.
#[test]
fn create_verify_without_destination_uses_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/example-image");
    let src = format!("oci:{fixture}:latest");
    let out = soci_ok(&[
        "create",
        &src,
        "--min-layer-size",
        "0",
        "--verify",
        "--store",
        p(&store),
        "-q",
    ]);
    assert!(out.contains("built in the local store"), "{out}");
    assert!(out.contains(": ok ("), "{out}");
    assert!(out.trim_end().ends_with("verify: OK"), "{out}");
    let out = soci_ok(&["verify", &src, "--store", p(&store), "-q"]);
    assert!(out.trim_end().ends_with("verify: OK"), "{out}");
}

/// Item 17: the tag is resolved once. A registry that answers the first GET
/// of the tag with image A and every later one with image B: the store's
/// record and the index are all A's; only one GET of the tag is made.
#[test]
fn a_tag_moved_mid_run_does_not_mix_two_images() {
    let pr = proxied::proxied_registry();
    let dir = tempfile::tempdir().unwrap();
    // Image B (no zstd layer: another manifest) in the same repository.
    let fx_b = soci_testkit::make_oci_layout_opts(&dir.path().join("b"), "b", false);
    skopeo_copy(
        &fx_b.oci_ref(),
        &docker(&format!("{}/app/one:b", pr.reg.host())),
    )
    .unwrap();
    let a = &pr.fx.root.digest;
    let b = &fx_b.root.digest;
    assert_ne!(a, b);
    let tag_path = "/v2/app/one/manifests/v1";
    pr.proxy
        .add("GET", tag_path, 1, Fault::Delay(std::time::Duration::ZERO));
    pr.proxy.add(
        "GET",
        tag_path,
        usize::MAX,
        Fault::Respond(fx_b.root.bytes.clone(), OCI_MANIFEST),
    );
    let store = dir.path().join("store");
    let src = format!("{}/app/one:v1", pr.proxy.host());
    let c = soci_json(&reg_cmd("create", &src, p(&store), &["--verify"]));
    assert_eq!(c["image"], a.as_str(), "{c}");
    assert_eq!(c["platforms"][0]["manifest"], a.as_str(), "{c}");
    assert_eq!(c["verify"]["ok"], true, "{}", c["verify"]);
    assert_eq!(c["verify"]["platforms"][0]["manifest_digest"], a.as_str());
    let layers_a: Vec<&str> = pr.fx.images[0]
        .layers
        .iter()
        .map(|l| l.digest.as_str())
        .collect();
    for z in c["platforms"][0]["ztocs"].as_array().unwrap() {
        assert!(layers_a.contains(&z["layer"].as_str().unwrap()), "{c}");
    }
    let list = soci_json(&["index", "list", "--store", p(&store)]);
    let recs = list.as_array().unwrap();
    assert_eq!(recs.len(), 1, "{list}");
    let rec = recs[0].to_string();
    assert!(
        rec.contains(a.as_str()) && !rec.contains(b.as_str()),
        "{rec}"
    );
    assert_eq!(
        pr.proxy.seen("GET", tag_path).len(),
        1,
        "{:?}",
        pr.proxy.log()
    );

    // `soci verify` too: A's index (in the store) is checked against A.
    pr.proxy.clear();
    pr.proxy
        .add("GET", tag_path, 1, Fault::Delay(std::time::Duration::ZERO));
    pr.proxy.add(
        "GET",
        tag_path,
        usize::MAX,
        Fault::Respond(fx_b.root.bytes.clone(), OCI_MANIFEST),
    );
    let v = soci_json(&reg_cmd("verify", &src, p(&store), &[]));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["platforms"][0]["manifest_digest"], a.as_str(), "{v}");
    assert_eq!(
        pr.proxy.seen("GET", tag_path).len(),
        1,
        "{:?}",
        pr.proxy.log()
    );
}

/// Item 5: digests from an image (a manifest's layer, index.json's entry, a
/// registry's manifest answer) carrying a newline and escape sequences are a
/// clear error; they are never printed raw (no forged line, no escape code).
#[test]
fn forged_digests_are_errors_never_printed_raw() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let forged = format!(
        "sha256:{}\n\u{1b}[1;32msoci index sha256:{} OK\u{1b}[0m",
        "ab".repeat(32),
        "cd".repeat(32)
    );
    // A layout whose manifest names a forged layer digest.
    let img = dir.path().join("img");
    let tar = make_tar(&[("x", b"x")]);
    let (cd, cs) = write_blob(
        &img,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": LAYER_GZIP, "digest": forged, "size": gzip(&tar).len()}],
    }))
    .unwrap();
    let (md, ms) = write_blob(&img, &manifest);
    std::fs::write(img.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = |digest: &str| {
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "1"}}]})).unwrap()
    };
    std::fs::write(img.join("index.json"), index(&md)).unwrap();
    let src = format!("oci:{}:1", img.display());
    for args in [
        vec!["create", src.as_str(), "--min-layer-size", "0"],
        vec!["verify", src.as_str()],
    ] {
        let mut a = args.clone();
        a.extend(["--store", p(&store)]);
        let o = soci(&a);
        assert_error(&o, "invalid digest \"sha256:abab");
        assert_no_control_chars(&o);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("soci index"),
            "{}",
            text(&o)
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).lines().count(),
            1,
            "{}",
            text(&o)
        );
    }
    // index.json naming the manifest by a forged digest.
    std::fs::write(img.join("index.json"), index(&forged)).unwrap();
    let o = soci(&["create", &src, "--store", p(&store)]);
    assert_error(&o, "invalid digest");
    assert_no_control_chars(&o);

    // A registry answering the tag with that manifest.
    let pr = proxied::proxied_registry();
    pr.proxy.add(
        "GET",
        "/v2/app/one/manifests/v1",
        usize::MAX,
        Fault::Respond(manifest.clone(), OCI_MANIFEST),
    );
    let src = format!("{}/app/one:v1", pr.proxy.host());
    let o = proxied::soci(&reg_cmd("create", &src, p(&store), &[]));
    assert_error(&o, "invalid digest \"sha256:abab");
    assert_no_control_chars(&o);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("soci index"),
        "{}",
        text(&o)
    );
}
