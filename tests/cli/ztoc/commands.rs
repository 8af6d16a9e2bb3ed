//! The `soci ztoc` commands as a user runs them: output, errors, exit codes.
use crate::support::golden;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn soci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_soci"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An error: exit 1, one `soci: ...` line naming `what`, no panic, no output file.
fn assert_clean_error(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("soci: "), "stderr: {err}");
    assert!(err.contains(what), "stderr should mention {what:?}: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}

fn build(dir: &Path, layer: &Path, span: &str) -> PathBuf {
    let out = dir.join("layer.ztoc");
    let o = soci(&[
        "ztoc",
        "build",
        "-q",
        "--span-size",
        span,
        "-o",
        s(&out),
        s(layer),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Extracts `path` from the uncompressed golden tar with GNU tar: the oracle.
fn tar_extract(tar: &Path, path: &str) -> Vec<u8> {
    let o = Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "tar -xOf {path}");
    o.stdout
}

#[test]
fn get_file_matches_tar_for_every_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    for (layer, tar) in [
        ("app.tar.gz", "app.tar"),
        ("edge-pax.tar.gz", "edge-pax.tar"),
        ("app.tar", "app.tar"),
    ] {
        let ztoc = build(dir.path(), &golden(layer), "64KiB");
        let info = soci(&["ztoc", "info", s(&ztoc)]);
        assert!(info.status.success());
        let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        let mut n = 0;
        for f in v["files"].as_array().unwrap() {
            if f["type"] != "reg" {
                continue;
            }
            let name = f["filename"].as_str().unwrap();
            let out = soci(&["ztoc", "get-file", s(&ztoc), s(&golden(layer)), name]);
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.stdout == tar_extract(&golden(tar), name),
                "{layer}: {name} differs from tar's"
            );
            n += 1;
        }
        assert!(n >= 3, "{layer}: only {n} files checked");
    }
}

#[test]
fn info_reports_reference_fields_and_span_stats() {
    let dir = tempfile::tempdir().unwrap();
    let ztoc = build(dir.path(), &golden("app.tar.gz"), "65536");
    let v: serde_json::Value =
        serde_json::from_slice(&soci(&["ztoc", "info", s(&ztoc)]).stdout).unwrap();
    assert_eq!(v["num_spans"], 5);
    assert_eq!(v["num_files"], 10);
    assert_eq!(v["span_size"], 65536);
    assert_eq!(v["compressed_archive_size"], 256546);
    assert!(v["span_compressed_bytes"]["total"].as_u64().unwrap() >= 256546 - 10);
    let files = v["files"].as_array().unwrap();
    assert!(files
        .iter()
        .all(|f| f["start_span"].as_u64() <= f["end_span"].as_u64()));
}

#[test]
fn get_file_to_output_file_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let ztoc = build(dir.path(), &golden("app.tar.gz"), "65536");
    let v: serde_json::Value =
        serde_json::from_slice(&soci(&["ztoc", "info", s(&ztoc)]).stdout).unwrap();
    let name = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "reg")
        .unwrap()["filename"]
        .as_str()
        .unwrap()
        .to_string();
    let out_file = dir.path().join("out.bin");
    let o = soci(&[
        "ztoc",
        "get-file",
        "-o",
        s(&out_file),
        s(&ztoc),
        s(&golden("app.tar.gz")),
        &name,
    ]);
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        tar_extract(&golden("app.tar"), &name)
    );
    let o = soci(&[
        "ztoc",
        "get-file",
        s(&ztoc),
        s(&golden("app.tar.gz")),
        "no/such/file",
    ]);
    assert_clean_error(&o, "no/such/file");
}

#[test]
fn bad_layers_give_clear_errors_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(golden("app.tar.gz")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.tar.gz",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "corrupt.tar.gz",
            {
                let mut b = good.clone();
                for x in &mut b[1000..1100] {
                    *x ^= 0x5a;
                }
                b
            },
            "corrupt.tar.gz",
        ),
        (
            "garbage.tar.gz",
            [good.clone(), b"trailing garbage".to_vec()].concat(),
            "garbage.tar.gz",
        ),
        (
            "zeros.tar.gz",
            [good.clone(), vec![0u8; 512]].concat(),
            "zeros.tar.gz",
        ),
    ];
    for (name, bytes, what) in cases {
        let layer = dir.path().join(name);
        std::fs::write(&layer, bytes).unwrap();
        let out = dir.path().join(format!("{name}.ztoc"));
        let o = soci(&["ztoc", "build", "-q", "-o", s(&out), s(&layer)]);
        assert_clean_error(&o, what);
        assert!(!out.exists(), "{name}: no zTOC must be written");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
    }
    // A tar with an entry type soci refuses (a PAX global header).
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XGlobalHeader);
    h.set_path("pax_global_header").unwrap();
    h.set_size(0);
    h.set_cksum();
    tar.append(&h, &[][..]).unwrap();
    let layer = dir.path().join("global.tar");
    std::fs::write(&layer, tar.into_inner().unwrap()).unwrap();
    let o = soci(&["ztoc", "build", "-q", s(&layer)]);
    assert_clean_error(&o, "unsupported");
}

#[test]
fn corrupted_ztoc_is_refused_by_info_and_get_file() {
    let dir = tempfile::tempdir().unwrap();
    let ztoc = build(dir.path(), &golden("app.tar.gz"), "65536");
    let bytes = std::fs::read(&ztoc).unwrap();
    let variants: Vec<Vec<u8>> = vec![
        bytes[..bytes.len() / 3].to_vec(),
        b"not a ztoc at all".to_vec(),
        Vec::new(),
        {
            let mut b = bytes.clone();
            for x in &mut b[..64] {
                *x = 0xff;
            }
            b
        },
    ];
    for (i, v) in variants.into_iter().enumerate() {
        let bad = dir.path().join(format!("bad{i}.ztoc"));
        std::fs::write(&bad, v).unwrap();
        assert_clean_error(&soci(&["ztoc", "info", s(&bad)]), &format!("bad{i}.ztoc"));
        assert_clean_error(
            &soci(&["ztoc", "get-file", s(&bad), s(&golden("app.tar.gz")), "x"]),
            &format!("bad{i}.ztoc"),
        );
    }
    // The right zTOC with the wrong layer.
    let o = soci(&[
        "ztoc",
        "get-file",
        s(&ztoc),
        s(&golden("edge-pax.tar.gz")),
        "x",
    ]);
    assert_clean_error(&o, "bytes");
}

#[test]
fn help_documents_exit_codes() {
    let o = soci(&["ztoc", "build", "--help"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Exit codes"), "{text}");
    assert!(text.contains("--span-size"));
    let o = soci(&["ztoc", "build"]);
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
}
