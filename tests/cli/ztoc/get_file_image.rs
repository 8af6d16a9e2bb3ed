//! `soci ztoc get-file --image`: one file read lazily from a registry, fetching
//! only the spans that hold it, compared with GNU tar's extraction; also
//! uncompressed layers and the other image sources.
use crate::support::*;
use serde_json::json;
use soci_testkit::fixture::{make_tar, pseudo_random};
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn write_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let d = sha256(bytes);
    let p = dir
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    (d, bytes.len())
}

/// An OCI layout with one gzip layer: small files around an 8 MiB one.
fn big_layer_layout(dir: &Path, tar: &[u8]) {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    e.write_all(tar).unwrap();
    let gz = e.finish().unwrap();
    let (ld, ls) = write_blob(dir, &gz);
    let config = json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]}});
    let (cd, cs) = write_blob(dir, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}],
    });
    let (md, ms) = write_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "1"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn tar_x(tar: &Path, name: &str) -> Vec<u8> {
    let o = Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tar -xOf {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// `fetched A of B bytes ...` from get-file's stderr: (A, B).
fn fetched(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("fetched "))
        .unwrap_or_else(|| panic!("no fetched line: {stderr}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    (w[1].parse().unwrap(), w[3].parse().unwrap())
}

#[test]
fn get_file_from_registry_fetches_a_fraction() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let big = pseudo_random(42, 8 << 20);
    let tar = make_tar(&[
        ("app/", b""),
        ("app/first.txt", b"the first small file\n"),
        ("app/big.bin", &big),
        ("app/config/", b""),
        ("app/config/small.json", b"{\"small\": true}\n"),
        ("app/last.txt", &pseudo_random(7, 5000)),
    ]);
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, &tar).unwrap();
    let layout = dir.path().join("img");
    big_layer_layout(&layout, &tar);
    let r = format!("{}/big:1", reg.host());
    skopeo_copy(&format!("oci:{}:1", layout.display()), &docker(&r)).unwrap();

    let store = dir.path().join("store");
    let c = soci_json(&reg_cmd("create", &r, p(&store), &["--span-size", "1MiB"]));
    let ztoc = c["platforms"][0]["ztocs"][0]["ztoc"]
        .as_str()
        .unwrap()
        .to_string();
    let info: serde_json::Value =
        serde_json::from_str(&soci_ok(&["ztoc", "info", &ztoc, "--store", p(&store)])).unwrap();
    assert!(
        info["num_spans"].as_u64().unwrap() >= 8,
        "{}",
        info["num_spans"]
    );

    let mut fractions = Vec::new();
    for name in [
        "app/first.txt",
        "app/config/small.json",
        "app/last.txt",
        "app/big.bin",
    ] {
        let o = soci(&[
            "ztoc",
            "get-file",
            &ztoc,
            name,
            "--image",
            &r,
            "--plain-http",
            "--store",
            p(&store),
        ]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
        assert!(
            o.stdout == tar_x(&tar_path, name),
            "{name}: bytes differ from tar's"
        );
        let (got, total) = fetched(&String::from_utf8_lossy(&o.stderr));
        fractions.push((name, got, total));
    }
    for (name, got, total) in &fractions[..3] {
        // A small file costs one or two spans of ~9 here.
        assert!(*got * 4 < *total, "{name}: fetched {got} of {total} bytes");
        assert!(*got > 0);
    }
    let (_, got, total) = fractions[3];
    assert!(
        got * 10 > total * 9,
        "the big file needs nearly the whole layer: {got} of {total}"
    );

    // -o writes the file; --json reports what was fetched.
    let out = dir.path().join("small.json");
    let v = soci_json(&[
        "ztoc",
        "get-file",
        &ztoc,
        "app/config/small.json",
        "--image",
        &r,
        "--plain-http",
        "--store",
        p(&store),
        "-o",
        p(&out),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), b"{\"small\": true}\n");
    assert_eq!(v["fetched"]["requests"], 1);
    assert!(
        v["fetched"]["bytes"].as_u64().unwrap() < v["fetched"]["layer_size"].as_u64().unwrap() / 4,
        "{v}"
    );

    // A name that is not in the layer: a clear error.
    let o = soci(&[
        "ztoc",
        "get-file",
        &ztoc,
        "app/missing",
        "--image",
        &r,
        "--plain-http",
        "--store",
        p(&store),
    ]);
    assert_error(&o, "app/missing");
}

#[test]
fn get_file_from_a_multiplatform_image_any_platform() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_multiplatform_layout(&dir.path().join("mp"), "1");
    let r = push_fixture(&fx, &reg, "gfmp:1");
    let store = dir.path().join("store");
    let c = soci_json(&reg_cmd("create", &r, p(&store), &["--all-platforms"]));
    for (i, img) in fx.images.iter().enumerate() {
        let ztoc = c["platforms"][i]["ztocs"][0]["ztoc"].as_str().unwrap();
        assert_eq!(
            c["platforms"][i]["ztocs"][0]["layer"],
            img.layers[0].digest.as_str()
        );
        let want = format!("hello from layer 1, seed {}\n", i + 1);
        // The zTOC's layer is found whatever the host platform.
        let o = soci(&[
            "ztoc",
            "get-file",
            ztoc,
            "etc/hello.txt",
            "--image",
            &r,
            "--plain-http",
            "--store",
            p(&store),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}: {}", img.platform, text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), want);
        let o = soci(&[
            "ztoc",
            "get-file",
            ztoc,
            "etc/hello.txt",
            "--image",
            &r,
            "--platform",
            &img.platform,
            "--plain-http",
            "--store",
            p(&store),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}: {}", img.platform, text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), want);
    }
}

#[test]
fn get_file_image_uncompressed_layer_and_other_sources() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1", false);
    let img = &fx.images[0];
    let r = push_fixture(&fx, &reg, "gf:1");
    let store = dir.path().join("store");
    let c = soci_json(&reg_cmd("create", &r, p(&store), &["--span-size", "64KiB"]));
    let ztocs = c["platforms"][0]["ztocs"].as_array().unwrap().clone();
    let ztoc_of = |layer: &str| {
        ztocs.iter().find(|z| z["layer"] == layer).unwrap()["ztoc"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let tar_z = ztoc_of(&img.layers[2].digest);
    let gz_z = ztoc_of(&img.layers[1].digest);
    let archive = dir.path().join("a.tar");
    soci_testkit::make_docker_archive(&archive, img, "gf:1", false);
    // An uncompressed layer: one range read of the span holding the file (whole
    // spans, each checked against its digest; here the span is the whole layer).
    let o = soci(&[
        "ztoc",
        "get-file",
        &tar_z,
        "usr/share/readme",
        "--image",
        &r,
        "--plain-http",
        "--store",
        p(&store),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(o.stdout, b"an uncompressed layer\n");
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(&format!("fetched {0} of {0} bytes", img.layers[2].size())),
        "{}",
        text(&o)
    );
    // The gzip layer from the OCI layout, too.
    let data = &img.layer_tars[1];
    let o = soci(&[
        "ztoc",
        "get-file",
        &gz_z,
        "bin/small",
        "--image",
        &fx.oci_ref(),
        "--store",
        p(&store),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(o.stdout, b"small file\n");
    // A zTOC file (no store record): the layer is found by its size.
    let zfile = dir.path().join("z.ztoc");
    let info = soci_ok(&["ztoc", "info", &gz_z, "--store", p(&store)]);
    assert!(info.contains("bin/data"));
    let layer_file = dir.path().join("l.tar.gz");
    std::fs::write(&layer_file, &img.layers[1].bytes).unwrap();
    soci_ok(&[
        "ztoc",
        "build",
        p(&layer_file),
        "--span-size",
        "64KiB",
        "-o",
        p(&zfile),
        "-q",
    ]);
    let o = soci(&[
        "ztoc",
        "get-file",
        p(&zfile),
        "bin/data",
        "--image",
        &r,
        "--plain-http",
        "--store",
        p(&dir.path().join("e")),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let want = {
        let t = dir.path().join("l.tar");
        std::fs::write(&t, data).unwrap();
        std::process::Command::new("tar")
            .arg("-xOf")
            .arg(&t)
            .arg("bin/data")
            .output()
            .unwrap()
            .stdout
    };
    assert!(o.stdout == want, "bin/data differs from tar's");
    // The docker archive's uncompressed layer (the zTOC of the tar layer
    // built from the registry applies: same bytes, same digest).
    let o = soci(&[
        "ztoc",
        "get-file",
        &tar_z,
        "usr/share/readme",
        "--image",
        &format!("docker-archive:{}", archive.display()),
        "--store",
        p(&store),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(o.stdout, b"an uncompressed layer\n");
}
