//! `soci run`: real containers (runc, and the chroot fallback) on a small
//! image built here from the host's own binaries (sh, coreutils and their
//! libraries), pushed to a real registry. The machine must be root; a test
//! skips (saying so) where it is not, and where runc is missing for a runc test.
mod bench;
mod full;
mod lazy;
mod record;

use crate::support::*;
use serde_json::json;
use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether this test process can run containers; prints why not.
pub(crate) fn can_run(what: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        eprintln!("skipping {what}: soci run needs root");
    }
    root
}

/// Whether the `soci` under test has `soci mount` (the lazy root); prints why
/// a lazy test skips when it has not.
pub(crate) fn has_mount(what: &str) -> bool {
    let ok = std::process::Command::new(soci_bin())
        .args(["mount", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping {what}: this soci has no `soci mount`");
    }
    ok
}

/// The runtimes to try: runc where it is installed, and the chroot fallback.
pub(crate) fn runtimes() -> &'static [&'static str] {
    if has_runc() {
        &["runc", "chroot"]
    } else {
        &["chroot"]
    }
}

/// Nothing mounted under the run's temporary directory and nothing left in it.
pub(crate) fn assert_left_clean(tmp: &Path, what: &str) {
    assert_eq!(
        mounts_under(tmp),
        Vec::<String>::new(),
        "{what}: mounts left"
    );
    assert_eq!(
        std::fs::read_dir(tmp).unwrap().count(),
        0,
        "{what}: files left"
    );
}

pub(crate) fn has_runc() -> bool {
    std::process::Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One layer's tar, entry by entry.
pub(crate) struct Layer {
    b: tar::Builder<Vec<u8>>,
    seen: BTreeSet<String>,
}

impl Layer {
    pub(crate) fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
            seen: BTreeSet::new(),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h
    }

    pub(crate) fn fifo(&mut self, path: &str) -> &mut Self {
        self.seen.insert(path.to_string());
        let mut h = Self::header(tar::EntryType::Fifo, 0o644, 0, 0, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub(crate) fn dir(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        if self.seen.insert(path.to_string()) {
            let mut h = Self::header(tar::EntryType::Directory, mode, uid, gid, 0);
            self.b.append_data(&mut h, path, &[][..]).unwrap();
        }
        self
    }

    pub(crate) fn file(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        self.seen.insert(path.to_string());
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, gid, data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        if self.seen.insert(path.to_string()) {
            let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
            self.b.append_link(&mut h, path, target).unwrap();
        }
        self
    }

    pub(crate) fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    /// A host file at its path, with every symlink on the way (`bin ->
    /// usr/bin`, the loader's chain) as the host has it.
    pub(crate) fn host(&mut self, path: &str) -> &mut Self {
        let mut rest: VecDeque<String> = components(path);
        let mut cur = PathBuf::from("/");
        let mut hops = 0;
        while let Some(c) = rest.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let next = cur.join(&c);
            let rel = next
                .strip_prefix("/")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let meta = std::fs::symlink_metadata(&next)
                .unwrap_or_else(|e| panic!("{}: {e}", next.display()));
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&next).unwrap();
                self.symlink(&rel, target.to_str().unwrap());
                hops += 1;
                assert!(hops < 40, "symlink loop at {}", next.display());
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                for t in components(target.to_str().unwrap()).into_iter().rev() {
                    rest.push_front(t);
                }
                continue;
            }
            if meta.is_dir() {
                self.dir(&rel, 0o755, 0, 0);
            } else if self.seen.insert(rel.clone()) {
                let data = std::fs::read(&next).unwrap();
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o7777;
                let mut h = Self::header(tar::EntryType::Regular, mode, 0, 0, data.len() as u64);
                self.b.append_data(&mut h, &rel, &data[..]).unwrap();
            }
            cur = next;
        }
        self
    }

    /// A host program and the shared libraries `ldd` lists for it.
    pub(crate) fn program(&mut self, path: &str) -> &mut Self {
        self.host(path);
        let out = std::process::Command::new("ldd")
            .arg(path)
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(lib) = line.split_whitespace().find(|w| w.starts_with('/')) {
                self.host(lib);
            }
        }
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

fn components(p: &str) -> VecDeque<String> {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(String::from)
        .collect()
}

fn gzip(data: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let p = dir.join("blobs/sha256").join(&d[7..]);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    d
}

/// An OCI layout at `dir` tagged `tag`: the gzipped `layers` and a config
/// with `config` as its `config` object. Returns `oci:DIR:TAG`.
pub(crate) fn write_image(
    dir: &Path,
    tag: &str,
    layers: Vec<Vec<u8>>,
    config: serde_json::Value,
) -> String {
    write_image_gzip(dir, tag, layers, config, flate2::Compression::fast())
}

/// [`write_image`] with the layers gzipped at `level`. (zlib-rs's fastest
/// level writes very long deflate blocks, and a zTOC can only start a span
/// at a block boundary: a test that needs spans of the size asked uses 6.)
pub(crate) fn write_image_gzip(
    dir: &Path,
    tag: &str,
    layers: Vec<Vec<u8>>,
    config: serde_json::Value,
    level: flate2::Compression,
) -> String {
    let diff_ids: Vec<String> = layers.iter().map(|t| sha256(t)).collect();
    let mut descs = Vec::new();
    for t in &layers {
        let gz = gzip(t, level);
        let d = put_blob(dir, &gz);
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len()}));
    }
    let cfg = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cfg_d = put_blob(dir, &cfg);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": cfg.len()},
        "layers": descs,
    }))
    .unwrap();
    let m_d = put_blob(dir, &manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": m_d, "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    format!("oci:{}:{tag}", dir.display())
}

/// The test image: layer 1 holds sh and a few coreutils with their libraries,
/// /etc/passwd and /etc/group (user `app` 1234:2345, also in group 3000),
/// `/work` and `/data` owned by app, files for the whiteouts to hide, a
/// hardlink pair and a symlink; layer 2 whites out `/etc/hidden`, makes
/// `/opaque` opaque (adding `/opaque/b`) and adds `/etc/layer2`.
/// Config: Env FOO, WorkingDir /work, User app, Cmd `echo default-cmd`.
pub(crate) fn test_image(dir: &Path) -> String {
    let mut l1 = Layer::new();
    for prog in ["sh", "cat", "id", "ls", "sleep", "rm", "stat", "readlink"] {
        l1.program(&format!("/usr/bin/{prog}"));
    }
    l1.host("/bin/sh");
    l1.dir("etc", 0o755, 0, 0)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\n",
            0o644,
            0,
            0,
        )
        .file(
            "etc/group",
            b"root:x:0:\napps:x:2345:\nextra:x:3000:app\n",
            0o644,
            0,
            0,
        )
        .file("etc/hidden", b"lower layer\n", 0o644, 0, 0)
        .dir("work", 0o750, 1234, 2345)
        .file("work/mine", b"owned by app\n", 0o640, 1234, 2345)
        .dir("data", 0o755, 1234, 2345)
        .file("data/old.txt", b"to be deleted\n", 0o644, 1234, 2345)
        .dir("opaque", 0o755, 0, 0)
        .file("opaque/a", b"a\n", 0o644, 0, 0)
        .file("hl1", b"linked\n", 0o644, 0, 0)
        .hardlink("hl2", "hl1")
        .symlink("link", "etc/passwd");
    let mut l2 = Layer::new();
    l2.dir("etc", 0o755, 0, 0)
        .file("etc/.wh.hidden", b"", 0o644, 0, 0)
        .file("etc/layer2", b"from layer 2\n", 0o644, 0, 0)
        .dir("opaque", 0o755, 0, 0)
        .file("opaque/.wh..wh..opq", b"", 0o644, 0, 0)
        .file("opaque/b", b"b\n", 0o644, 0, 0);
    write_image(
        dir,
        "1",
        vec![l1.finish(), l2.finish()],
        json!({
            "Env": ["PATH=/usr/bin:/bin", "FOO=bar baz"],
            "WorkingDir": "/work",
            "User": "app",
            "Cmd": ["/bin/sh", "-c", "echo default-cmd"],
        }),
    )
}

/// The test image pushed to `reg` as `run/NAME:1`; returns `HOST/run/NAME:1`.
pub(crate) fn pushed_test_image(reg: &Registry, dir: &Path, name: &str) -> String {
    let layout = test_image(&dir.join(format!("layout-{name}")));
    let dst = format!("{}/run/{name}:1", reg.host());
    skopeo_copy(&layout, &docker(&dst)).unwrap();
    dst
}

/// Mount points of this mount namespace under `dir`.
pub(crate) fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(d))
        .map(String::from)
        .collect()
}

/// A scratch directory for `soci run --tmp-dir` that, whatever the test's
/// outcome, detaches any mount left under it before it is removed (so a
/// failing test never leaves mounts behind nor deletes through one).
pub(crate) struct RunTmp {
    pub(crate) dir: tempfile::TempDir,
}

impl RunTmp {
    pub(crate) fn new() -> RunTmp {
        RunTmp {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RunTmp {
    fn drop(&mut self) {
        let mut left = mounts_under(self.dir.path());
        left.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in left {
            let _ = std::process::Command::new("umount")
                .args(["-l", &m])
                .status();
        }
    }
}
