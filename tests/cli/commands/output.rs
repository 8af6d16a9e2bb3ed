//! What users read: each fact once, one line per error.
use crate::support::{example_image, soci};
use std::path::Path;
use std::process::{Command, Output};

/// Exit 1, exactly one line on stderr, `soci: ` first, no panic; returns it.
fn one_line_error(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("soci: ") && !err.contains("panicked"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err
}

/// Runs `sh -c CMD` under a pseudo-terminal with `script` (util-linux), so
/// that progress is drawn; returns what the terminal got (stdout and stderr).
fn on_a_terminal(cmd: &str) -> Option<String> {
    let o = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .env_remove("SOCI_STORE")
        .output()
        .ok()?;
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    Some(String::from_utf8_lossy(&o.stdout).replace('\r', "\n"))
}

#[test]
fn on_a_terminal_each_layer_line_once_and_no_copy_lines_beside_the_bars() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let cmd = format!(
        "{} create {} --min-layer-size 0 --store {d}/s --dest oci:{d}/out:x",
        env!("CARGO_BIN_EXE_soci"),
        example_image()
    );
    let Some(screen) = on_a_terminal(&cmd) else {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    };
    let layers: Vec<&str> = screen.lines().filter(|l| l.contains(" -> ztoc ")).collect();
    assert_eq!(layers.len(), 2, "two layers, one line each: {screen}");
    assert_ne!(layers[0], layers[1]);
    assert!(!screen.contains("copying blob"), "{screen}");

    // Without a terminal (a CI log), a line per copied blob says what happens.
    let o = soci(&[
        "create",
        &example_image(),
        "--min-layer-size",
        "0",
        "--store",
        &format!("{d}/s2"),
        "--dest",
        &format!("oci:{d}/out2:x"),
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let copies: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("copying blob "))
        .collect();
    assert!(!copies.is_empty(), "{err}");
    let mut distinct = copies.clone();
    distinct.dedup();
    assert_eq!(distinct, copies, "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches(" -> ztoc ").count(), 2, "{out}");
}

#[test]
fn missing_platform_lists_each_available_platform_once() {
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_multiplatform_layout(&dir.path().join("mp"), "1");
    let store = dir.path().join("s");
    let st = store.to_str().unwrap();
    // A SOCI-enabled index: its SOCI index entries carry platforms too.
    let out = format!("oci:{}:x", dir.path().join("out").display());
    let o = soci(&[
        "convert",
        "--all-platforms",
        "--min-layer-size",
        "0",
        "--store",
        st,
        "-q",
        &fx.oci_ref(),
        &out,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = soci(&["create", "--platform", "linux/s390x", "--store", st, &out]);
    let err = one_line_error(&o);
    let list = err.split("available platforms: ").nth(1).unwrap().trim();
    assert_eq!(list, "linux/amd64, linux/arm64/v8", "{err}");
}

#[test]
fn reference_errors_say_it_once_and_suggest_the_right_form() {
    let err = one_line_error(&soci(&["create", "app:1.0"]));
    assert_eq!(err.matches("invalid image reference").count(), 1, "{err}");
    assert!(err.contains("\"docker.io/library/app:1.0\""), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("img.tar");
    std::fs::write(&tar, b"").unwrap();
    let t = tar.to_str().unwrap();
    let err = one_line_error(&soci(&["create", t]));
    assert!(err.contains(&format!("\"docker-archive:{t}\"")), "{err}");
    assert!(!err.contains("docker.io"), "{err}");
    let d = dir.path().to_str().unwrap();
    let err = one_line_error(&soci(&["create", d]));
    assert!(err.contains(&format!("\"oci:{d}\"")), "{err}");
}

#[test]
fn a_corrupt_ztoc_is_one_line() {
    let good =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden/app.tar.gz.span-65536.ztoc");
    let mut bytes = std::fs::read(good).unwrap();
    // Offsets pointing far outside the buffer: flatbuffers' verifier explains
    // that over several lines.
    for i in (8..bytes.len()).step_by(7) {
        bytes[i] ^= 0x5a;
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ztoc");
    std::fs::write(&bad, &bytes).unwrap();
    let err = one_line_error(&soci(&["ztoc", "info", bad.to_str().unwrap()]));
    assert!(err.contains("is not a valid zTOC"), "{err}");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&bad, &bytes).unwrap();
    one_line_error(&soci(&["ztoc", "info", bad.to_str().unwrap()]));
}
