//! Digests as users type them (a unique prefix, with or without `sha256:`, as
//! git takes commit ids) and file names as they write them (`/etc/os-release`).
use crate::support::{example_image, soci};

fn ok(args: &[&str]) -> String {
    let o = soci(args);
    assert!(
        o.status.success(),
        "soci {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn error(args: &[&str]) -> String {
    let o = soci(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "soci {}: {err}", args.join(" "));
    assert!(
        err.starts_with("soci: ") && err.lines().count() == 1,
        "{err}"
    );
    err
}

#[test]
fn digests_by_unique_prefix_and_paths_with_a_leading_slash() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let st = store.to_str().unwrap();
    let img = example_image();
    ok(&["create", &img, "--min-layer-size", "0", "--store", st, "-q"]);
    let index = ok(&["index", "list", "--digests-only", "--store", st])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let ztocs: Vec<String> = ok(&["ztoc", "list", "--digests-only", "--store", st])
        .lines()
        .map(String::from)
        .collect();
    let full_info = ok(&["index", "info", &index, "--store", st]);
    let hex = &index["sha256:".len()..];
    // Bare hex, a prefix with and without `sha256:`, upper case.
    for typed in [
        hex.to_string(),
        hex[..12].to_string(),
        format!("sha256:{}", &hex[..12]),
        hex[..12].to_uppercase(),
    ] {
        assert_eq!(
            ok(&["index", "info", &typed, "--store", st]),
            full_info,
            "{typed}"
        );
    }
    let z = &ztocs[0];
    let zhex = &z["sha256:".len()..];
    let full = ok(&["ztoc", "info", z, "--store", st]);
    assert_eq!(ok(&["ztoc", "info", &zhex[..10], "--store", st]), full);
    assert_eq!(
        ok(&[
            "ztoc",
            "info",
            &format!("sha256:{}", &zhex[..10]),
            "--store",
            st
        ]),
        full
    );

    // get-file by prefix; names with a leading slash or `./` find the stored name.
    let v: serde_json::Value = serde_json::from_str(&full).unwrap();
    let name = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "reg")
        .unwrap()["filename"]
        .as_str()
        .unwrap()
        .to_string();
    let bare = name
        .trim_start_matches("./")
        .trim_start_matches('/')
        .to_string();
    let want = ok(&[
        "ztoc", "get-file", z, &name, "--image", &img, "--store", st, "-q",
    ]);
    for typed in [format!("/{bare}"), bare.clone(), format!("./{bare}")] {
        let got = ok(&[
            "ztoc",
            "get-file",
            &zhex[..10],
            &typed,
            "--image",
            &img,
            "--store",
            st,
            "-q",
        ]);
        assert_eq!(got, want, "{typed}");
    }
    let err = error(&[
        "ztoc",
        "get-file",
        z,
        "/no/such/file",
        "--image",
        &img,
        "--store",
        st,
    ]);
    assert!(err.contains("/no/such/file"), "{err}");

    // Unknown and ambiguous prefixes.
    let err = error(&["index", "info", "sha256:ffffffffffff0000", "--store", st]);
    assert!(
        err.contains("no SOCI index sha256:ffffffffffff0000"),
        "{err}"
    );
    // More zTOCs (other span sizes) until two share a first hex digit.
    let mut all = ztocs.clone();
    for span in [
        "65536", "131072", "262144", "524288", "1048576", "2097152", "8388608", "16777216",
    ] {
        ok(&[
            "create",
            &img,
            "--min-layer-size",
            "0",
            "--span-size",
            span,
            "--store",
            st,
            "-q",
        ]);
        all = ok(&["ztoc", "list", "--digests-only", "--store", st])
            .lines()
            .map(String::from)
            .collect();
        all.sort();
        all.dedup();
        if all.windows(2).any(|w| w[0][..8] == w[1][..8]) {
            break;
        }
    }
    let pair = all
        .windows(2)
        .find(|w| w[0][..8] == w[1][..8])
        .expect("18 zTOCs, 16 first digits");
    let prefix = &pair[0][7..8];
    let err = error(&["ztoc", "info", prefix, "--store", st]);
    assert!(
        err.contains("ambiguous") && err.contains(&pair[0]) && err.contains(&pair[1]),
        "{err}"
    );
}
