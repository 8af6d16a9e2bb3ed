//! A full disk: the local store or an `oci:` destination on a tiny tmpfs. Each
//! run must end with exit 1 and "No space left on device" naming a path, no
//! temp file left behind, every blob there complete (named by its content's
//! digest), and no index or tag recorded for what could not be written.
//!
//! Mounting a tmpfs needs root (CAP_SYS_ADMIN); `.ci/run` runs as root. Without
//! it, each test says it was skipped and returns.
use crate::support::proxied::soci;
use crate::support::{check_store_blobs, example_image, text};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` mounted on a fresh temp dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn assert_disk_full(o: &std::process::Output, under: &Path) {
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("soci: "), "{}", text(o));
    assert!(last.contains("No space left on device"), "{}", text(o));
    assert!(
        last.contains(&under.display().to_string()),
        "the error names no path under {}: {}",
        under.display(),
        text(o)
    );
    assert!(!err.contains("panicked"), "{}", text(o));
}

/// Files under `dir` whose name says they are temporary.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".tmp") || name.starts_with(".tmp") {
                    out.push(p);
                }
            }
        }
    }
    out
}

#[test]
fn store_on_a_full_disk() {
    let Some(fs) = Tmpfs::mount("24k") else {
        return;
    };
    let store = fs.path().join("store");
    let s = store.to_str().unwrap();
    let o = soci(&[
        "create",
        &example_image(),
        "--min-layer-size",
        "0",
        "--store",
        s,
    ]);
    assert_disk_full(&o, &store);
    assert_eq!(temp_files(&store), Vec::<PathBuf>::new());
    check_store_blobs(&store);
    // No index was recorded for the image.
    let o = soci(&["--json", "index", "list", "--store", s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().map(|a| a.len()), Some(0), "{}", text(&o));
}

#[test]
fn oci_destination_on_a_full_disk() {
    let Some(fs) = Tmpfs::mount("200k") else {
        return;
    };
    let roomy = tempfile::tempdir().unwrap();
    let store = roomy.path().join("store");
    let out = fs.path().join("out");
    let convert = |to: &Path| {
        soci(&[
            "convert",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            &example_image(),
            &format!("oci:{}:v1", to.display()),
        ])
    };
    let o = convert(&out);
    assert_disk_full(&o, &out);
    assert_eq!(temp_files(&out), Vec::<PathBuf>::new());
    // Whatever blobs made it are whole; the tag was never set.
    check_store_blobs(&out);
    if let Ok(bytes) = std::fs::read(out.join("index.json")) {
        let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let tagged = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some("v1"));
        assert!(!tagged, "tag v1 set although the copy failed: {index}");
    }
    // The store (not full) still holds a usable index: a retry with room works.
    let out2 = roomy.path().join("out2");
    let o = convert(&out2);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(check_store_blobs(&out2) > 3);
}

#[test]
fn archive_layers_compressed_into_a_full_store() {
    let Some(fs) = Tmpfs::mount("24k") else {
        return;
    };
    let roomy = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout(&roomy.path().join("img"), "1.0");
    let archive = roomy.path().join("image.tar");
    soci_testkit::make_docker_archive(&archive, &fx.images[0], "img:1.0", false);
    let store = fs.path().join("store");
    let out = roomy.path().join("out");
    let o = soci(&[
        "create",
        &format!("docker-archive:{}", archive.display()),
        "--dest",
        &format!("oci:{}:v1", out.display()),
        "--min-layer-size",
        "0",
        "--store",
        store.to_str().unwrap(),
    ]);
    // The store's error, not the zTOC builder's view of a cut-off stream.
    assert_disk_full(&o, &store);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot compress layer sha256:"),
        "{}",
        text(&o)
    );
    assert_eq!(temp_files(&store), Vec::<PathBuf>::new());
    check_store_blobs(&store);
    assert!(!out.join("index.json").exists(), "{}", text(&o));
}
