//! Mounts and scratch directories that undo themselves: every mount `soci
//! run` makes is unmounted when its guard drops (also on an error or a
//! signal), and a scratch directory is removed only once nothing is mounted
//! under it (removing a directory with a mount inside would delete through
//! the mount).
use crate::error::{Error, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// A mounted overlay (the container's writable root).
#[derive(Debug)]
pub struct Overlay {
    target: PathBuf,
    mounted: bool,
}

impl Overlay {
    /// Mounts overlayfs on `target`: `lowers` read-only (the first on top),
    /// writes to `upper` (`work` is overlayfs' scratch, on the same file
    /// system as `upper`).
    pub fn mount(lowers: &[&Path], upper: &Path, work: &Path, target: &Path) -> Result<Overlay> {
        for p in lowers.iter().copied().chain([upper, work]) {
            // overlayfs' option syntax has no escaping for these.
            let s = p.to_string_lossy();
            if s.contains([',', ':', '\\']) {
                return Err(Error::io(
                    "overlayfs cannot use a path with ',', ':' or '\\':",
                    p,
                    std::io::Error::from(std::io::ErrorKind::InvalidInput),
                ));
            }
        }
        let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(|e| {
            Error::sys(
                format!("cannot mount overlayfs on {} ({opts})", target.display()),
                e,
            )
        })?;
        Ok(Overlay {
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts it now (a lazy detach if it is busy).
    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        unmount(&self.target)
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if self.mounted {
            let _ = unmount(&self.target);
        }
    }
}

/// Unmounts `target`; when it is busy, detaches it (it goes once unused).
pub fn unmount(target: &Path) -> Result<()> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::Error::EINVAL | nix::Error::ENOENT) => Ok(()), // not mounted
        Err(_) => umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| Error::sys(format!("cannot unmount {}", target.display()), e)),
    }
}

/// The mount points at or under `dir` in this mount namespace, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A temporary directory for one run (rootfs, upper and work directories,
/// mount points, the bundle), removed on drop after every mount under it is
/// detached; kept, with a warning on stderr, if a mount cannot be removed.
#[derive(Debug)]
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    /// A new `soci-run-*` directory under `parent` (default: the system's
    /// temporary directory, `$TMPDIR`).
    pub fn new(parent: Option<&Path>) -> Result<Scratch> {
        let parent = parent
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        // Absolute: the overlay's options and the bundle's root need it.
        let parent = std::fs::canonicalize(&parent)
            .map_err(|e| Error::io("cannot use the temporary directory", &parent, e))?;
        let dir = tempfile::Builder::new()
            .prefix("soci-run-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io("cannot create a temporary directory in", &parent, e))?;
        Ok(Scratch { dir: Some(dir) })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    /// `name` under the directory, created.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let p = self.path().join(name);
        std::fs::create_dir(&p).map_err(|e| Error::io("cannot create", &p, e))?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        for m in mounts_under(dir.path()) {
            let _ = unmount(&m);
        }
        if !mounts_under(dir.path()).is_empty() {
            let kept = dir.keep();
            eprintln!(
                "soci run: warning: {} still has mounts; left in place",
                kept.display()
            );
        }
    }
}
