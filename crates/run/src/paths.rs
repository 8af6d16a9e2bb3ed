//! Paths inside a root filesystem, resolved as the container will see them:
//! a symlink in the image (`var/run -> /run`, `etc -> /`) is followed inside
//! the root, never out of it into the host.
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one resolution before giving up (Linux's limit).
const MAX_HOPS: usize = 40;

/// `rel` (a path inside the image, with or without a leading `/`) as a host
/// path under `root`, every symlink on the way resolved inside `root`.
/// `follow_last`: whether a symlink in the last component is followed too.
/// `create`: missing directories on the way are made (mode 0755), as an
/// unpacker does for a layer that lacks a parent entry; without it a missing
/// component ends the walk and the path is returned as it would be.
pub(crate) fn resolve(root: &Path, rel: &Path, follow_last: bool, create: bool) -> Result<PathBuf> {
    let mut rest: VecDeque<OsString> = components(rel).into();
    let mut cur = root.to_path_buf();
    let mut hops = 0;
    while let Some(c) = rest.pop_front() {
        if c == ".." {
            if cur != root {
                cur.pop();
            }
            continue;
        }
        let next = cur.join(&c);
        let last = rest.is_empty();
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if create && !last {
                    std::fs::create_dir(&next).map_err(|e| Error::io("cannot create", &next, e))?;
                }
                cur = next;
                continue;
            }
            Err(e) => return Err(Error::io("cannot read", next, e)),
        };
        if meta.file_type().is_symlink() && (!last || follow_last) {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(Error::io(
                    "too many levels of symbolic links at",
                    next,
                    std::io::Error::from_raw_os_error(nix::libc::ELOOP),
                ));
            }
            let target =
                std::fs::read_link(&next).map_err(|e| Error::io("cannot read link", &next, e))?;
            if target.is_absolute() {
                cur = root.to_path_buf();
            }
            for t in components(&target).into_iter().rev() {
                rest.push_front(t);
            }
            continue;
        }
        cur = next;
    }
    Ok(cur)
}

/// The normal components of `p` and its `..`s, without `/` and `.`.
fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("real/run")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/", root.join("top")).unwrap();
        assert_eq!(
            resolve(root, Path::new("abs/run/x"), false, false).unwrap(),
            root.join("real/run/x")
        );
        assert_eq!(
            resolve(root, Path::new("up/etc/passwd"), true, false).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve(root, Path::new("/top/top/real"), true, false).unwrap(),
            root.join("real")
        );
        // The last component is not followed unless asked.
        assert_eq!(
            resolve(root, Path::new("abs"), false, false).unwrap(),
            root.join("abs")
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(resolve(root, Path::new("loop/x"), true, false).is_err());
        resolve(root, Path::new("new/dir/file"), false, true).unwrap();
        assert!(root.join("new/dir").is_dir());
    }
}
