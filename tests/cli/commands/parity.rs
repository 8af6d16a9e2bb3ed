//! The reference CLI's forms: `oci-archive:` as source and destination,
//! `prefetch list|info`, the list filters (`--platform`, `--ref`, `--image-ref`,
//! `--ztoc-digest`) and `-q` on list commands.
use crate::support::*;
use serde_json::Value;
use soci_testkit::{skopeo, skopeo_copy, Registry};
use std::path::Path;

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

/// Files in `dir` whose name starts with '.', i.e. temporaries left behind.
fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn oci_archive_source_and_destination_are_read_by_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let store = dir.path().join("store");
    // The source archive is written by skopeo, an independent implementation.
    let src_tar = dir.path().join("src.tar");
    skopeo_copy(
        &fx.oci_ref(),
        &format!("oci-archive:{}:1.0", src_tar.display()),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let dst_tar = out_dir.join("soci.tar");
    let dst = format!("oci-archive:{}:soci", dst_tar.display());
    let src = format!("oci-archive:{}:1.0", src_tar.display());
    let from_archive = soci_json(&[
        "convert",
        &src,
        &dst,
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--store",
        p(&store),
        "-q",
    ]);
    // The same image converted from the plain layout gives the same bytes.
    let layout = dir.path().join("layout-out");
    let from_layout = soci_json(&[
        "convert",
        &fx.oci_ref(),
        &format!("oci:{}:soci", layout.display()),
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--store",
        p(&store),
        "-q",
    ]);
    let digest = from_archive["pushed"]["image_index"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        digest, from_layout["pushed"]["image_index"]["digest"],
        "oci-archive and oci give the same SOCI-enabled image"
    );
    // Readable like any file tar or skopeo would write (not the temporary's 0600).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dst_tar).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "{mode:o}");
    // skopeo reads the archive: the tag names our image index, byte-exact.
    let raw = skopeo(&["--insecure-policy", "inspect", "--raw", &dst]).unwrap();
    assert_eq!(sha256(&raw), digest);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert!(
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["artifactType"] == SOCI_V2),
        "{index}"
    );
    // ... and the image's blobs (skopeo checks each digest while copying; `--all`
    // would stop at the SOCI index entry, an artifact skopeo does not copy).
    let copy = dir.path().join("copy");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        &dst,
        &format!("oci:{}:x", copy.display()),
    ])
    .unwrap();
    // soci reads its own archive back, and the index verifies.
    let v = soci_json(&["verify", &dst, "--store", p(&store), "-q"]);
    assert_eq!(v["ok"], true, "{v}");
    // A second tag into the same archive keeps the first one.
    soci_ok(&[
        "convert",
        &src,
        &format!("oci-archive:{}:again", dst_tar.display()),
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--store",
        p(&store),
        "-q",
    ]);
    for tag in ["soci", "again"] {
        let r = format!("oci-archive:{}:{tag}", dst_tar.display());
        let raw = skopeo(&["--insecure-policy", "inspect", "--raw", &r]).unwrap();
        assert_eq!(sha256(&raw), digest, "{tag}");
    }
    assert!(
        hidden_files(&out_dir).is_empty(),
        "temporaries left: {:?}",
        hidden_files(&out_dir)
    );
}

#[test]
fn oci_archive_bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let store = dir.path().join("store");
    let store = p(&store);
    // Not a tar.
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![0x42u8; 5000]).unwrap();
    let o = soci(&[
        "create",
        &format!("oci-archive:{}", junk.display()),
        "--store",
        store,
    ]);
    assert_error(&o, "junk.tar");
    // Missing file.
    let o = soci(&["create", "oci-archive:/nonexistent/x.tar", "--store", store]);
    assert_error(&o, "/nonexistent/x.tar");
    // A tag the archive does not have: the error names the archive, not a temporary dir.
    let src_tar = dir.path().join("src.tar");
    skopeo_copy(
        &fx.oci_ref(),
        &format!("oci-archive:{}:1.0", src_tar.display()),
    )
    .unwrap();
    let o = soci(&[
        "create",
        &format!("oci-archive:{}:nope", src_tar.display()),
        "--store",
        store,
    ]);
    assert_error(&o, &format!("oci-archive:{}:nope", src_tar.display()));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("oci:/"),
        "{}",
        text(&o)
    );
    // A destination file that is not an OCI archive is refused, and left as it was.
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let precious = out_dir.join("notes.tar");
    std::fs::write(&precious, b"not an archive").unwrap();
    let o = soci(&[
        "convert",
        &fx.oci_ref(),
        &format!("oci-archive:{}:soci", precious.display()),
        "--min-layer-size",
        "0",
        "--store",
        store,
        "-q",
    ]);
    assert_error(&o, "notes.tar");
    assert_eq!(std::fs::read(&precious).unwrap(), b"not an archive");
    assert!(
        hidden_files(&out_dir).is_empty(),
        "{:?}",
        hidden_files(&out_dir)
    );
}

#[test]
fn oci_archive_with_an_entry_outside_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&evil).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_entry_type(tar::EntryType::Regular);
    let name = b"../escaped";
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    b.append(&h, &b"abc"[..]).unwrap();
    b.finish().unwrap();
    let o = soci(&[
        "create",
        &format!("oci-archive:{}", evil.display()),
        "--store",
        p(&dir.path().join("store")),
    ]);
    assert_error(&o, "outside the archive");
    assert!(!std::env::temp_dir().join("escaped").exists());
}

/// `create` with a prefetch file to an `oci:` destination, then every list
/// filter and `prefetch list|info` on what it stored.
#[test]
fn list_filters_and_prefetch_commands() {
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let store = dir.path().join("store");
    let store = p(&store);
    let dst = format!("oci:{}:soci", dir.path().join("out").display());
    let out = soci_json(&[
        "create",
        &fx.oci_ref(),
        "--dest",
        &dst,
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--prefetch-file",
        "bin/data",
        "--store",
        store,
        "-q",
    ]);
    let plat = &out["platforms"][0];
    let index = plat["index"].as_str().unwrap().to_string();
    let mut ztocs: Vec<String> = plat["ztocs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["ztoc"].as_str().unwrap().to_string())
        .collect();
    ztocs.sort();
    let prefetch = plat["prefetches"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let prefetch_layer = plat["prefetches"][0]["layer"].as_str().unwrap().to_string();
    // A second image, so that the filters have something to leave out.
    let other = soci_testkit::make_multiplatform_layout(&dir.path().join("multi"), "2.0");
    let out2 = soci_json(&[
        "create",
        &other.oci_ref(),
        "--platform",
        "linux/arm64",
        "--min-layer-size",
        "0",
        "--store",
        store,
        "-q",
    ]);
    let arm_index = out2["platforms"][0]["index"].as_str().unwrap().to_string();

    // index list: -q (the global flag) is digests only; --ref matches the source
    // and the destination; --platform filters.
    let all = lines(&soci_ok(&["index", "list", "-q", "--store", store]));
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        lines(&soci_ok(&["-q", "index", "list", "--store", store])),
        all,
        "-q before or after the subcommand"
    );
    for r in [fx.oci_ref(), dst.clone()] {
        assert_eq!(
            lines(&soci_ok(&[
                "index", "list", "--ref", &r, "-q", "--store", store
            ])),
            vec![index.clone()],
            "--ref {r}"
        );
    }
    let none = soci_ok(&[
        "index",
        "list",
        "--ref",
        "oci:/elsewhere:x",
        "-q",
        "--store",
        store,
    ]);
    assert_eq!(none, "");
    assert_eq!(
        lines(&soci_ok(&[
            "index",
            "list",
            "--platform",
            "linux/arm64/v8",
            "-q",
            "--store",
            store
        ])),
        vec![arm_index.clone()]
    );
    assert_eq!(
        lines(&soci_ok(&[
            "index",
            "list",
            "--platform",
            "linux/amd64",
            "-q",
            "--store",
            store
        ])),
        vec![index.clone()]
    );
    let o = soci(&["index", "list", "--platform", "linux/", "--store", store]);
    assert_error(&o, "--platform");
    // Without -q: the table, headed.
    assert!(soci_ok(&["index", "list", "--store", store]).starts_with("DIGEST"));

    // ztoc list: --image-ref (source or destination) and --ztoc-digest.
    for r in [fx.oci_ref(), dst.clone()] {
        let mut got = lines(&soci_ok(&[
            "ztoc",
            "list",
            "--image-ref",
            &r,
            "-q",
            "--store",
            store,
        ]));
        got.sort();
        got.dedup();
        assert_eq!(got, ztocs, "--image-ref {r}");
    }
    assert_eq!(
        lines(&soci_ok(&[
            "ztoc",
            "list",
            "--ztoc-digest",
            &ztocs[0],
            "-q",
            "--store",
            store
        ])),
        vec![ztocs[0].clone()]
    );
    let o = soci(&[
        "ztoc",
        "list",
        "--image-ref",
        &other.oci_ref(),
        "--ztoc-digest",
        &ztocs[0],
        "--store",
        store,
    ]);
    assert_error(&o, &ztocs[0]);

    // prefetch list / info.
    assert_eq!(
        lines(&soci_ok(&["prefetch", "list", "-q", "--store", store])),
        vec![prefetch.clone()]
    );
    assert_eq!(
        lines(&soci_ok(&[
            "prefetch", "list", "--index", &index, "-q", "--store", store
        ])),
        vec![prefetch.clone()]
    );
    assert_eq!(
        soci_ok(&["prefetch", "list", "--index", &arm_index, "-q", "--store", store]),
        ""
    );
    let table = soci_ok(&["prefetch", "list", "--store", store]);
    assert!(table.starts_with("DIGEST"), "{table}");
    assert!(table.contains(&prefetch_layer), "{table}");
    let info = soci_ok(&["prefetch", "info", &prefetch, "--store", store]);
    assert!(
        info.contains(&format!("Layer Digest:  {prefetch_layer}")),
        "{info}"
    );
    assert!(info.contains("StartSpan: "), "{info}");
    let j = soci_json(&["prefetch", "info", &prefetch, "--store", store]);
    assert_eq!(j["layer_digest"], prefetch_layer.as_str());
    assert_eq!(j["artifact"]["version"], "1.0");
    let spans = j["artifact"]["prefetch_spans"].as_array().unwrap();
    assert!(!spans.is_empty());
    // bin/data is 300 kB of random bytes: more than one 64 KiB span.
    assert!(j["total_spans"].as_u64().unwrap() > 1, "{j}");
    let o = soci(&["prefetch", "info", &ztocs[0], "--store", store]);
    assert_error(&o, "not a prefetch artifact");
    let o = soci(&[
        "prefetch",
        "info",
        &format!("sha256:{}", "0".repeat(64)),
        "--store",
        store,
    ]);
    assert_error(&o, "no prefetch artifact");

    // index rm --ref: by the destination.
    let rm = soci_ok(&["index", "rm", "--ref", &dst, "--store", store]);
    assert!(rm.contains(&index), "{rm}");
    assert_eq!(
        lines(&soci_ok(&["index", "list", "-q", "--store", store])),
        [arm_index]
    );
    let o = soci(&["index", "rm", "--ref", &dst, "--store", store]);
    assert_error(&o, "no SOCI index");
}

/// `--ref` finds an index by the registry reference it was pushed to, in any
/// of the forms the reference can be written in.
#[test]
fn index_list_ref_matches_a_registry_destination() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    let src = push_fixture(&fx, &reg, "app:1.0");
    let store = dir.path().join("store");
    let store = p(&store);
    let dst = format!("{}/app:1.0-soci", reg.host());
    let out = soci_json(&reg_cmd("convert", &src, store, &[&dst]));
    let index = out["platforms"][0]["index"].as_str().unwrap();
    for r in [dst.clone(), format!("docker://{dst}"), src.clone()] {
        assert_eq!(
            lines(&soci_ok(&[
                "index", "list", "--ref", &r, "-q", "--store", store
            ])),
            [index.to_string()],
            "--ref {r}"
        );
    }
    let other = format!("{}/app:other", reg.host());
    assert_eq!(
        soci_ok(&["index", "list", "--ref", &other, "-q", "--store", store]),
        ""
    );
}

/// `--json` carries per layer the bytes read from the source and sent to the
/// destination and the build time, and totals under `transfer`.
#[test]
fn json_results_carry_bytes_moved_and_timings() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&dir.path().join("img"), "1.0");
    // From a layout (a registry source on the same registry would be mounted, not sent).
    let src = fx.oci_ref();
    let store = dir.path().join("store");
    let store = p(&store);
    let dst = format!("{}/copy:soci", reg.host());
    let out = soci_json(&reg_cmd("convert", &src, store, &[&dst]));
    let layers = out["layers"].as_array().unwrap();
    let mut sizes = 0;
    for l in layers {
        let size = l["size"].as_u64().unwrap();
        sizes += size;
        // A new repository: every layer is sent once, whole.
        assert_eq!(l["uploaded_bytes"], size, "{l}");
        assert_eq!(l["downloaded_bytes"], size, "{l}");
        if l["status"] == "built" {
            assert!(l["build_seconds"].as_f64().unwrap() >= 0.0, "{l}");
            assert!(l["copy_seconds"].is_null(), "sent in the build's pass: {l}");
        } else {
            assert!(l["build_seconds"].is_null(), "{l}");
            assert!(l["copy_seconds"].as_f64().unwrap() >= 0.0, "{l}");
        }
    }
    assert!(layers.iter().any(|l| l["status"] == "built"));
    assert!(layers.iter().any(|l| l["status"] == "skipped"));
    let t = &out["transfer"];
    // Layers plus the config and the SOCI artifacts.
    assert!(t["uploaded_bytes"].as_u64().unwrap() > sizes, "{t}");
    assert!(t["seconds"].as_f64().unwrap() >= t["build_seconds"].as_f64().unwrap() / 64.0);
    // Again: the zTOCs are reused and the destination has every blob.
    let again = soci_json(&reg_cmd("convert", &src, store, &[&dst]));
    for l in again["layers"].as_array().unwrap() {
        assert_eq!(l["uploaded_bytes"], 0, "{l}");
        assert_eq!(l["downloaded_bytes"], 0, "{l}");
    }
    assert_eq!(
        again["transfer"]["uploaded_bytes"], 0,
        "{}",
        again["transfer"]
    );
}

/// `convert … oci-archive:FILE` killed (SIGKILL: no destructor runs) at several
/// moments: FILE is never half written (absent, or an archive skopeo reads), and
/// the next run removes the temporaries of dead processes and finishes.
#[test]
fn oci_archive_destination_killed_then_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let dst_tar = out_dir.join("app.tar");
    let dst = format!("oci-archive:{}:soci", dst_tar.display());
    let src = format!(
        "oci:{}/fixtures/example-image:latest",
        env!("CARGO_MANIFEST_DIR")
    );
    let store = dir.path().join("store");
    let args = [
        "convert",
        src.as_str(),
        dst.as_str(),
        "--min-layer-size",
        "0",
        "--store",
        p(&store),
        "-q",
    ];
    let readable =
        || !dst_tar.exists() || skopeo(&["--insecure-policy", "inspect", "--raw", &dst]).is_ok();
    for delay_ms in [0u64, 5, 15, 30, 60, 120, 250] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_soci"))
            .args(args)
            .env_remove("SOCI_STORE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // Test-only unsafe: SIGKILL to our own child in the middle of its write.
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        assert!(
            readable(),
            "half-written archive after a kill at {delay_ms} ms"
        );
    }
    // Temporaries of a process that is gone (no pid is this large) go; those
    // of a running one (this test) stay.
    let dead = out_dir.join(".soci-oci-archive-4294967290-x");
    std::fs::create_dir_all(dead.join("blobs")).unwrap();
    let live = out_dir.join(format!(".soci-oci-archive-{}-x", std::process::id()));
    std::fs::write(&live, b"in use").unwrap();
    soci_ok(&args);
    assert!(readable());
    assert!(dst_tar.exists());
    assert!(live.exists(), "a running process's temporary was removed");
    std::fs::remove_file(&live).unwrap();
    assert!(
        hidden_files(&out_dir).is_empty(),
        "left behind: {:?}",
        hidden_files(&out_dir)
    );
}
