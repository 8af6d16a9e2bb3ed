//! The local store driven by the real binary: `soci index rm` racing a
//! `soci create` that reuses the same zTOCs (issue 13 item 14), with real
//! processes: whatever the interleaving, an index that `create` reports (exit
//! 0) is listed with every blob it names present, and every index the store
//! lists is whole. A zTOC corrupted in the store is replaced by
//! `create --force` (item 15).
use crate::support::proxied::soci;
use crate::support::{example_image, soci_bin, text};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn blob(store: &Path, digest: &str) -> Option<Vec<u8>> {
    std::fs::read(
        store
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .ok()
}

/// Every manifest `index.json` lists is present, and so is every blob it names.
fn check_whole(store: &Path) -> Vec<String> {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    let mut listed = Vec::new();
    for m in idx["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        let raw = blob(store, d).unwrap_or_else(|| panic!("index.json names missing {d}"));
        let man: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let names = man["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&man["config"]));
        for l in names {
            let ld = l["digest"].as_str().unwrap();
            assert!(
                blob(store, ld).is_some(),
                "index {d} names missing blob {ld}"
            );
        }
        listed.push(d.to_string());
    }
    listed
}

#[test]
fn index_rm_racing_a_reusing_create_never_loses_a_needed_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let src = example_image();
    for round in 0..12u64 {
        let store = tmp.path().join(format!("s{round}"));
        let s = store.to_str().unwrap();
        let o = soci(&["create", "-q", "--min-layer-size", "0", "--store", s, &src]);
        assert!(o.status.success(), "{}", text(&o));
        let o = soci(&["index", "list", "--digests-only", "--store", s]);
        let first = String::from_utf8(o.stdout).unwrap().trim().to_string();
        assert!(first.starts_with("sha256:"), "{first}");

        // A v1 index of the same image reuses the v2 index's zTOCs ...
        let create = Command::new(soci_bin())
            .args([
                "create",
                "-q",
                "--min-layer-size",
                "0",
                "--index-version",
                "v1",
            ])
            .args(["--store", s, &src])
            .env_remove("SOCI_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // ... while the v2 index (their only user so far) is removed.
        std::thread::sleep(Duration::from_millis(round * 4));
        let rm = soci(&["index", "rm", "--store", s, &first]);
        assert!(rm.status.success(), "{}", text(&rm));
        let out = create.wait_with_output().unwrap();
        let listed = check_whole(&store);
        eprintln!("round {round}: create exit {:?}", out.status.code());
        if out.status.success() {
            let o = soci(&["index", "list", "--digests-only", "--store", s]);
            let now = String::from_utf8(o.stdout).unwrap();
            assert_eq!(now.lines().count(), 1, "round {round}: {now}");
            assert_eq!(listed.len(), 1, "round {round}: {listed:?}");
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("no longer in the local store"),
                "round {round}: {err}"
            );
        }
    }
}

#[test]
fn corrupted_ztoc_in_the_store_is_replaced_by_create_force() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let s = store.to_str().unwrap();
    let src = example_image();
    let o = soci(&["create", "-q", "--min-layer-size", "0", "--store", s, &src]);
    assert!(o.status.success(), "{}", text(&o));
    let o = soci(&["ztoc", "list", "--digests-only", "--store", s]);
    let ztocs: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(!ztocs.is_empty());
    // Same size, one byte flipped: only the digest tells.
    let p = store
        .join("blobs/sha256")
        .join(ztocs[0].trim_start_matches("sha256:"));
    let good = std::fs::read(&p).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x55;
    std::fs::write(&p, &bad).unwrap();
    // Reading it names the corruption and the way out.
    let o = soci(&["ztoc", "info", "--store", s, &ztocs[0]]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("corrupt") && text(&o).contains("--force"),
        "{}",
        text(&o)
    );
    let o = soci(&[
        "create",
        "-q",
        "--force",
        "--min-layer-size",
        "0",
        "--store",
        s,
        &src,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(&p).unwrap(),
        good,
        "the corrupt zTOC was kept"
    );
    let o = soci(&["ztoc", "info", "--store", s, &ztocs[0]]);
    assert!(o.status.success(), "{}", text(&o));
}
