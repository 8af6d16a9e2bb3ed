//! A closed stdout (`soci … | head -n 1`, a reader that quits) ends the output
//! quietly: exit 0, no panic, for every command that prints.
use crate::support::example_image;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn soci() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_soci"));
    c.env_remove("SOCI_STORE")
        .env("DOCKER_CONFIG", "/nonexistent-soci-itest");
    c
}

/// Runs `soci ARGS` with a stdout pipe whose reading end is closed at once,
/// before the command prints: its first write meets EPIPE. It must exit as it
/// does with its output read (0 unless the command itself fails), no panic.
fn run_closed(args: &[&str]) {
    let normal = soci().args(args).output().unwrap().status.code();
    assert_ne!(normal, Some(101), "soci {}", args.join(" "));
    let mut child = soci()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "soci {}: {err}", args.join(" "));
    assert_eq!(out.status.code(), normal, "soci {}: {err}", args.join(" "));
}

fn first_line(args: &[&str]) -> String {
    let out = soci().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

fn store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let st = store.to_str().unwrap();
    let out = soci()
        .args([
            "create",
            &example_image(),
            "--min-layer-size",
            "0",
            "--store",
            st,
            "-q",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, store)
}

#[test]
fn listing_commands_end_quietly_on_a_closed_pipe() {
    let (_dir, store) = store();
    let st = store.to_str().unwrap();
    let index = first_line(&["index", "list", "--digests-only", "--store", st]);
    let ztoc = first_line(&["ztoc", "list", "--digests-only", "--store", st]);
    for args in [
        vec!["index", "list", "--store", st],
        vec!["index", "list", "--digests-only", "--store", st],
        vec!["--json", "index", "list", "--store", st],
        vec!["index", "info", &index, "--store", st],
        vec!["ztoc", "list", "--store", st],
        vec!["ztoc", "list", "--digests-only", "--store", st],
        vec!["ztoc", "info", &ztoc, "--store", st],
        vec!["--help"],
    ] {
        run_closed(&args);
    }
}

#[test]
fn image_commands_end_quietly_on_a_closed_pipe() {
    let (_dir, store) = store();
    let st = store.to_str().unwrap();
    let img = example_image();
    run_closed(&["create", &img, "--min-layer-size", "0", "--store", st, "-q"]);
    run_closed(&[
        "--json",
        "create",
        &img,
        "--min-layer-size",
        "0",
        "--store",
        st,
    ]);
    run_closed(&["verify", &img, "--store", st, "-q"]);
    // get-file to stdout.
    let ztoc = first_line(&["ztoc", "list", "--digests-only", "--store", st]);
    let info = soci()
        .args(["ztoc", "info", &ztoc, "--store", st])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let file = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "reg")
        .unwrap()["filename"]
        .as_str()
        .unwrap()
        .to_string();
    run_closed(&[
        "ztoc", "get-file", &ztoc, &file, "--image", &img, "--store", st, "-q",
    ]);
}
