//! Limits and safety: oversized inputs are refused before they are read,
//! corrupt zTOCs end in an error (never a panic), `get-file -o` writes only the
//! path it was given, hostile names in a layer are reported as they are, and
//! credentials never appear in output, errors or `--json`.
use crate::support::proxied::soci;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::{golden, p, text};
use soci_testkit::{skopeo, Registry, RegistryConfig};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Exit code 1 with one `soci: ` line (101 would be a panic).
fn assert_clean_error(o: &std::process::Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("soci: "), "{}", text(o));
    assert!(!err.contains("panicked"), "{}", text(o));
    assert!(err.contains(needle), "expected {needle:?}: {}", text(o));
}

#[test]
fn oversized_inputs_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    // A 2 GiB (sparse) "zTOC".
    let big = tmp.path().join("big.ztoc");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let t = Instant::now();
    let o = soci(&["ztoc", "info", p(&big)]);
    assert_clean_error(&o, "larger than any zTOC");
    let o = soci(&["ztoc", "get-file", p(&big), p(&golden("app.tar")), "x"]);
    assert_clean_error(&o, "larger than any zTOC");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "read instead of refused: {:?}",
        t.elapsed()
    );

    // An OCI layout whose index.json is 64 MiB (sparse).
    let lay = tmp.path().join("layout");
    std::fs::create_dir_all(&lay).unwrap();
    std::fs::write(lay.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let f = std::fs::File::create(lay.join("index.json")).unwrap();
    f.set_len(64 << 20).unwrap();
    let o = soci(&[
        "create",
        "--store",
        p(&tmp.path().join("s")),
        &format!("oci:{}", p(&lay)),
    ]);
    assert_clean_error(&o, "limit");

    // A manifest descriptor claiming 1 GiB: refused from the descriptor.
    let idx = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":1073741824,"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#,
        "ab".repeat(32)
    );
    std::fs::write(lay.join("index.json"), idx).unwrap();
    let o = soci(&[
        "create",
        "--store",
        p(&tmp.path().join("s")),
        &format!("oci:{}:latest", p(&lay)),
    ]);
    assert_clean_error(&o, "limit");
}

#[test]
fn corrupt_ztocs_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(golden("app.tar.span-65536.ztoc")).unwrap();
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut errors = 0;
    for i in 0..40 {
        let mut b = good.clone();
        match i % 3 {
            0 => b.truncate((next() % b.len() as u64) as usize),
            1 => {
                for _ in 0..4 {
                    let k = (next() % b.len() as u64) as usize;
                    b[k] = next() as u8;
                }
            }
            _ => {
                let k = (next() % (b.len() as u64 - 8)) as usize;
                b[k..k + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            }
        }
        let z = tmp.path().join(format!("z{i}"));
        std::fs::write(&z, &b).unwrap();
        for args in [
            vec!["ztoc", "info", p(&z)],
            vec![
                "ztoc",
                "get-file",
                p(&z),
                p(&golden("app.tar")),
                "app/bin/tool",
            ],
        ] {
            let o = soci(&args);
            assert!(
                matches!(o.status.code(), Some(0) | Some(1)),
                "{args:?}: {}",
                text(&o)
            );
            if o.status.code() == Some(1) {
                assert!(
                    String::from_utf8_lossy(&o.stderr).starts_with("soci: "),
                    "{}",
                    text(&o)
                );
                errors += 1;
            }
        }
    }
    assert!(errors > 0);

    // A zTOC whose entry claims 1 TiB: refused before allocating it.
    let mut z = soci_ztoc::codec::decode(&good).unwrap();
    let e = z
        .toc
        .entries
        .iter_mut()
        .find(|e| e.entry_type == "reg")
        .unwrap();
    let name = e.name_lossy().into_owned();
    e.uncompressed_size = 1 << 40;
    z.uncompressed_archive_size = 1 << 41;
    let zp = tmp.path().join("huge-entry.ztoc");
    std::fs::write(&zp, soci_ztoc::codec::encode(&z)).unwrap();
    let o = soci(&["ztoc", "get-file", p(&zp), p(&golden("app.tar")), &name]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// A tar whose entries are named `../evil`, `/abs/evil` and `a/../../evil2`
/// (written by hand: tar writers refuse such names).
fn hostile_tar() -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in [
        ("../evil", &b"EVIL1"[..]),
        ("/abs/evil", b"EVIL2"),
        ("a/../../evil2", b"EVIL3"),
        ("ok.txt", b"fine"),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        let raw = h.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            }
            v.push(e.path().strip_prefix(dir).unwrap().display().to_string());
        }
    }
    v.sort();
    v
}

#[test]
fn hostile_names_and_get_file_output_path() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let out = work.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let layer = work.join("layer.tar");
    std::fs::write(&layer, hostile_tar()).unwrap();
    let z = work.join("layer.ztoc");
    let o = soci(&["ztoc", "build", p(&layer), "-o", p(&z)]);
    assert!(o.status.success(), "{}", text(&o));

    // Names are reported as they are.
    let o = soci(&["ztoc", "info", p(&z)]);
    assert!(o.status.success(), "{}", text(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["../evil", "/abs/evil", "a/../../evil2", "ok.txt"]);

    // get-file -o writes exactly the given path, whatever the entry's name.
    let before = files_under(tmp.path());
    for (name, want, dest) in [
        ("../evil", "EVIL1", "one"),
        ("/abs/evil", "EVIL2", "two"),
        ("a/../../evil2", "EVIL3", "three"),
    ] {
        let o = soci(&[
            "ztoc",
            "get-file",
            p(&z),
            p(&layer),
            name,
            "-o",
            p(&out.join(dest)),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(std::fs::read(out.join(dest)).unwrap(), want.as_bytes());
    }
    let mut expected = before.clone();
    expected.extend(["work/out/one", "work/out/two", "work/out/three"].map(String::from));
    expected.sort();
    assert_eq!(
        files_under(tmp.path()),
        expected,
        "nothing but the -o files was written"
    );
    assert!(!Path::new("/abs/evil").exists());
    // To stdout: the bytes, nothing written.
    let o = soci(&["ztoc", "get-file", p(&z), p(&layer), "../evil"]);
    assert_eq!(o.stdout, b"EVIL1");
    assert_eq!(files_under(tmp.path()), expected);

    // -o naming a symlink replaces the link; its target is untouched.
    let victim = work.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let link = out.join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let o = soci(&[
        "ztoc",
        "get-file",
        p(&z),
        p(&layer),
        "ok.txt",
        "-o",
        p(&link),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(&link).unwrap(), b"fine");
    assert!(!std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // A name that is not in the layer, and a directory as -o: clear errors, nothing written.
    let o = soci(&[
        "ztoc",
        "get-file",
        p(&z),
        p(&layer),
        "evil",
        "-o",
        p(&out.join("four")),
    ]);
    assert_clean_error(&o, "no file named");
    assert!(!out.join("four").exists());
}

#[test]
fn credentials_never_appear_in_output() {
    const USER: &str = "alice";
    const PASS: &str = "s3cr3t-P4ssw0rd-xyz";
    let reg = Registry::start_with(&RegistryConfig {
        basic_auth: Some((USER.into(), PASS.into())),
        tls: false,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("test registry: {e}"));
    let host = reg.host();
    let layout = format!(
        "oci:{}/fixtures/example-image:latest",
        env!("CARGO_MANIFEST_DIR")
    );
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("{USER}:{PASS}"),
        &layout,
        &format!("docker://{host}/ex/img:v1"),
    ])
    .unwrap();
    let proxy = FaultProxy::start(reg.addr());
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let b64 = {
        // base64 of "alice:password", as in the Authorization header.
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let s = format!("{USER}:{PASS}");
        let b = s.as_bytes();
        let mut o = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for k in 0..4 {
                if k <= c.len() {
                    o.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
                } else {
                    o.push('=');
                }
            }
        }
        o
    };
    let run = |password: &str, image: &str, extra: &[&str]| {
        let mut args = vec![
            "create",
            "--plain-http",
            "--min-layer-size",
            "0",
            "-u",
            USER,
            "--password-stdin",
            "--store",
            p(&store),
        ];
        args.extend_from_slice(extra);
        args.push(image);
        let mut c = Command::new(env!("CARGO_BIN_EXE_soci"))
            .args(&args)
            .env("SOCI_REGISTRY_RETRIES", "1")
            .env("SOCI_REGISTRY_STALL_TIMEOUT", "1")
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let o = c.wait_with_output().unwrap();
        let all = text(&o);
        assert!(!all.contains(PASS), "password in output: {all}");
        assert!(!all.contains(&b64), "Authorization header in output: {all}");
        o
    };
    let ok = run(PASS, &format!("{host}/ex/img:v1"), &["--json", "--push"]);
    assert!(ok.status.success(), "{}", text(&ok));
    let o = run("wrong-password", &format!("{host}/ex/img:v1"), &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = run(PASS, &format!("{host}/ex/nothing:v1"), &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // Faults and stalls: the error messages carry URLs, never credentials.
    proxy.add(
        "GET",
        "/blobs/",
        usize::MAX,
        Fault::Stall(10, Duration::from_secs(10)),
    );
    let o = run(
        PASS,
        &format!("{}/ex/img:v1", proxy.host()),
        &["--json", "--force"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("stalled"), "{}", text(&o));
    proxy.clear();
    proxy.add("GET", "/manifests/", usize::MAX, Fault::Status(500, None));
    let o = run(PASS, &format!("{}/ex/img:v1", proxy.host()), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// A `convert` into an OCI layout that fails part-way (a layer over
/// `--max-files`, after the layout was opened for the layers copied in the
/// same pass): a layout directory the run created is removed again, parents
/// included; an existing layout keeps its index.json byte for byte. The same
/// convert without the limit then succeeds and tags the image.
#[test]
fn a_failed_convert_leaves_no_new_layout_and_an_old_one_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let src = crate::run::test_image(&tmp.path().join("src"));
    let store = tmp.path().join("store");
    let new_dir = tmp.path().join("new").join("layout");
    let convert = |dst: &str, extra: &[&str]| {
        let mut a = vec![
            "convert",
            &src,
            dst,
            "--store",
            p(&store),
            "--min-layer-size",
            "0",
            "-q",
        ];
        a.extend_from_slice(extra);
        soci(&a)
    };
    let o = convert(&format!("oci:{}:1", p(&new_dir)), &["--max-files", "1"]);
    assert_clean_error(&o, "--max-files");
    assert!(
        !tmp.path().join("new").exists(),
        "a half-written layout is left: {:?}",
        files_under(&tmp.path().join("new"))
    );

    let old = tmp.path().join("old");
    let o = convert(&format!("oci:{}:1", p(&old)), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let index = std::fs::read(old.join("index.json")).unwrap();
    assert!(String::from_utf8_lossy(&index).contains("\"1\""));
    // --force: built again (the store holds the zTOCs now), and refused.
    let o = convert(
        &format!("oci:{}:2", p(&old)),
        &["--max-files", "1", "--force"],
    );
    assert_clean_error(&o, "--max-files");
    assert_eq!(std::fs::read(old.join("index.json")).unwrap(), index);
}
