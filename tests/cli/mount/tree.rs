//! The mounted tree equals the merged layers, byte for byte and with their
//! metadata, for an OCI layout and for a registry image with a v2 and with a
//! v1 index; listing it fetches no layer data.
use super::harness::*;
use crate::support::*;

/// Stops the mount with SIGTERM: exit 0, the stats line, no mount left.
fn stop_clean(m: &mut Mounted) -> String {
    let (code, lines) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    assert!(!is_mounted(&m.mp), "still mounted after SIGTERM");
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

#[test]
fn oci_layout_mount_matches_the_merged_layers() {
    if !fuse_available("oci_layout_mount_matches_the_merged_layers") {
        return;
    }
    let fx = fixture();
    let src = converted(&fx, &[]);
    let empty = fx.dir.path().join("empty-store");
    let mp = fx.dir.path().join("mnt");
    let mut m = mount(&[&src, "--store", p(&empty), "--json"], &mp, &[]);
    // Listing and stat fetch no span: only the top layer (no zTOC) was fetched.
    let ls = std::process::Command::new("ls")
        .arg("-lR")
        .arg(&mp)
        .output()
        .unwrap();
    assert!(ls.status.success());
    check_tree(&mp, &fx.expected);
    let last = stop_clean(&mut m);
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["event"], "unmounted", "{last}");
    assert_eq!(v["layers_fetched_whole"], 1, "{last}");
    assert!(v["spans_fetched"].as_u64().unwrap() > 10, "{last}");
    assert_eq!(v["read_errors"], 0, "{last}");
}

/// Pushes the fixture to the registry as `app:1`; returns `HOST/app:1`.
fn push(fx: &Fixture, reg: &Registry) -> String {
    let dst = format!("{}/app:1", reg.host());
    skopeo_copy(&format!("oci:{}:1", p(&fx.layout)), &docker(&dst)).unwrap();
    dst
}

/// Mounts `image` with an empty store (the index must come from the
/// registry), checks the tree, stops with SIGTERM; returns the stats line.
fn mount_and_check(fx: &Fixture, image: &str) -> String {
    let empty = fx.dir.path().join("empty-store");
    let mp = fx.dir.path().join("mnt");
    let mut m = mount(&[image, "--plain-http", "--store", p(&empty)], &mp, &[]);
    check_tree(&mp, &fx.expected);
    stop_clean(&mut m)
}

#[test]
fn registry_v2_mount_matches_the_merged_layers() {
    if !fuse_available("registry_v2_mount_matches_the_merged_layers") {
        return;
    }
    let reg = Registry::start().unwrap();
    let fx = fixture();
    let img = push(&fx, &reg);
    let store = fx.dir.path().join("store");
    let soci_img = format!("{}/app:1-soci", reg.host());
    // With the xattr optimisation: layers without xattrs are marked, and the
    // layer with them keeps them (x.txt's are checked).
    build_index(
        "convert",
        &[&img, &soci_img, "--optimizations", "xattr"],
        &store,
    );
    let last = mount_and_check(&fx, &soci_img);
    assert!(last.starts_with("unmounted "), "{last}");
    assert!(last.contains("1 layers whole"), "{last}");
}

#[test]
fn registry_v1_mount_matches_the_merged_layers() {
    if !fuse_available("registry_v1_mount_matches_the_merged_layers") {
        return;
    }
    let reg = Registry::start().unwrap();
    let fx = fixture();
    let img = push(&fx, &reg);
    let store = fx.dir.path().join("store");
    build_index("create", &[&img, "--push", "--index-version", "v1"], &store);
    let last = mount_and_check(&fx, &img);
    assert!(last.contains("0 read errors"), "{last}");
}

#[test]
fn an_image_without_an_index_is_refused_and_nothing_is_mounted() {
    if !fuse_available("an_image_without_an_index_is_refused_and_nothing_is_mounted") {
        return;
    }
    let fx = fixture();
    let mp = fx.dir.path().join("mnt");
    std::fs::create_dir_all(&mp).unwrap();
    let empty = fx.dir.path().join("empty-store");
    let src = format!("oci:{}:1", p(&fx.layout));
    let o = soci(&["mount", &src, p(&mp), "--store", p(&empty)]);
    assert_error(&o, "no SOCI index found");
    assert!(!is_mounted(&mp));
    let nowhere = fx.dir.path().join("nowhere");
    let o = soci(&["mount", &src, p(&nowhere), "--store", p(&empty)]);
    assert_error(&o, "not an existing directory");
}
