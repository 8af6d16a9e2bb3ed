//! `apply_layer`: layers applied as containerd does (whiteouts, opaque
//! directories hiding only the lower layers' content, upper layers win), with
//! owners, modes, xattrs, hardlinks, symlinks and device nodes kept, and no
//! entry written outside the root through a symlink. Needs root for owners
//! and device nodes (skips with a message otherwise).
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn is_root() -> bool {
    soci_run::is_root()
}

struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }
    fn entry(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        data: &[u8],
        link: Option<&str>,
    ) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        match link {
            Some(l) => self.0.append_link(&mut h, path, l).unwrap(),
            None => self.0.append_data(&mut h, path, data).unwrap(),
        }
        self
    }
    fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.entry(path, tar::EntryType::Regular, 0o644, data, None)
    }
    fn dir(&mut self, path: &str) -> &mut Self {
        self.entry(path, tar::EntryType::Directory, 0o755, b"", None)
    }
    fn xattr_file(&mut self, path: &str, name: &str, value: &str) -> &mut Self {
        let key = format!("SCHILY.xattr.{name}");
        self.0
            .append_pax_extensions([(key.as_str(), value.as_bytes())])
            .unwrap();
        self.file(path, b"with xattr")
    }
    fn device(&mut self, path: &str) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_mode(0o666);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }
    fn bytes(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

fn apply(root: &Path, tar: Vec<u8>) {
    soci_run::unpack::apply_layer(&tar[..], root, "sha256:test", &soci_run::Cancel::new()).unwrap();
}

#[test]
fn three_layers_merge_as_containerd_does() {
    if !is_root() {
        eprintln!("skipping: owners and device nodes need root");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    apply(
        root,
        Tar::new()
            .dir("etc")
            .file("etc/gone", b"lower")
            .dir("opq")
            .file("opq/lower", b"lower")
            .dir("opq/sub")
            .file("opq/sub/deep", b"lower")
            .file("replaced", b"lower file")
            .xattr_file("x", "user.soci", "v1")
            .entry(
                "link",
                tar::EntryType::Symlink,
                0o777,
                b"",
                Some("etc/gone"),
            )
            .file("hl-a", b"shared")
            .entry("hl-b", tar::EntryType::Link, 0o644, b"", Some("hl-a"))
            .device("dev-null")
            .entry("bin-setuid", tar::EntryType::Regular, 0o4755, b"#!", None)
            .bytes(),
    );
    apply(
        root,
        Tar::new()
            .file("etc/.wh.gone", b"")
            // The opaque marker after an entry of the same layer: that entry stays.
            .file("opq/upper", b"upper")
            .file("opq/.wh..wh..opq", b"")
            .dir("replaced")
            .file("replaced/now-a-dir", b"upper")
            .bytes(),
    );
    apply(root, Tar::new().file("opq/third", b"third").bytes());

    assert!(!root.join("etc/gone").exists());
    assert!(root.join("etc").is_dir());
    let mut opq: Vec<_> = std::fs::read_dir(root.join("opq"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    opq.sort();
    assert_eq!(opq, ["third", "upper"]);
    assert!(root.join("replaced/now-a-dir").is_file());
    assert_eq!(
        xattr::get(root.join("x"), "user.soci").unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        std::fs::read_link(root.join("link")).unwrap(),
        Path::new("etc/gone")
    );
    let (a, b) = (
        std::fs::metadata(root.join("hl-a")).unwrap(),
        std::fs::metadata(root.join("hl-b")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    assert_eq!((a.uid(), a.gid()), (1000, 1001));
    assert_eq!(a.mtime(), 1_600_000_000);
    let dev = std::fs::symlink_metadata(root.join("dev-null")).unwrap();
    assert!(dev.file_type().is_char_device());
    assert_eq!(dev.rdev(), nix::sys::stat::makedev(1, 3));
    // setuid survives the chown (set after it).
    assert_eq!(
        std::fs::metadata(root.join("bin-setuid")).unwrap().mode() & 0o7777,
        0o4755
    );
}

/// A symlink to `/` or up and out of the root: later entries through it land
/// inside the root, as the container would see them.
#[test]
fn entries_through_symlinks_stay_inside_the_root() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let outside = d.path().join("outside");
    apply(
        &root,
        Tar::new()
            .entry("escape", tar::EntryType::Symlink, 0o777, b"", Some("/"))
            .entry("up", tar::EntryType::Symlink, 0o777, b"", Some("../../.."))
            .bytes(),
    );
    apply(
        &root,
        Tar::new()
            .file("escape/outside", b"x")
            .file("up/outside2", b"y")
            .bytes(),
    );
    assert!(!outside.exists());
    assert_eq!(std::fs::read(root.join("outside")).unwrap(), b"x");
    assert_eq!(std::fs::read(root.join("outside2")).unwrap(), b"y");
}
