//! The image's `User` as numbers, from the image's own /etc/passwd and
//! /etc/group (as runc's and Docker's user lookup do): the host's users mean
//! nothing inside the image.
use crate::error::{Error, Result};
use crate::paths::resolve;
use std::path::Path;

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (the /etc/group entries naming the user).
    pub additional_gids: Vec<u32>,
    /// The home directory from /etc/passwd (`/` when unknown), for `HOME`.
    pub home: String,
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...)
/// against the /etc/passwd and /etc/group under `root`.
pub fn resolve_user(root: &Path, spec: &str) -> Result<User> {
    let err = |reason: String| Error::User {
        user: spec.to_string(),
        reason,
    };
    let passwd = read_in_root(root, "etc/passwd");
    let group = read_in_root(root, "etc/group");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    // name:x:uid:gid:gecos:home:shell
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .find(|f| f[0] == user_part || (user_part.parse::<u32>().is_ok() && f[2] == user_part));
    let (uid, mut gid, name, home) = match (&entry, user_part.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse()
                .map_err(|_| err(format!("bad uid {:?} in /etc/passwd", f[2])))?,
            f[3].parse()
                .map_err(|_| err(format!("bad gid {:?} in /etc/passwd", f[3])))?,
            Some(f[0].to_string()),
            f.get(5).map(|h| h.to_string()).filter(|h| !h.is_empty()),
        ),
        (None, Ok(n)) => (n, 0, None, None),
        (None, Err(_)) => {
            return Err(err(format!(
                "no user {user_part:?} in the image's /etc/passwd"
            )))
        }
    };
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match groups.iter().find(|f| f[0] == g) {
            Some(f) => f[2]
                .parse()
                .map_err(|_| err(format!("bad gid {:?} in /etc/group", f[2])))?,
            None => g
                .parse()
                .map_err(|_| err(format!("no group {g:?} in the image's /etc/group")))?,
        };
    }
    let mut additional_gids = Vec::new();
    if let (Some(name), None) = (&name, group_part) {
        for f in &groups {
            let members = f.get(3).copied().unwrap_or("");
            if members.split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional_gids.contains(&g) {
                        additional_gids.push(g);
                    }
                }
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home: home.unwrap_or_else(|| "/".into()),
    })
}

/// The most of /etc/passwd or /etc/group read.
const MAX_USER_DB: u64 = 16 << 20;

/// A text file of the image (empty when absent or unreadable: an image
/// without /etc/passwd runs numeric users only). Read as a bounded regular
/// file: the image decides what the path is, and a FIFO or a device there
/// must not hang or flood the run.
fn read_in_root(root: &Path, rel: &str) -> String {
    resolve(root, Path::new(rel), true, false)
        .ok()
        .and_then(|p| soci_oci::fsio::read_limited(&p, MAX_USER_DB).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napps:x:2345:\nextra:x:3000:app,other\n",
        )
        .unwrap();
        let u = resolve_user(d.path(), "app").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1234, 2345, vec![3000])
        );
        assert_eq!(u.home, "/home/app");
        let u = resolve_user(d.path(), "app:extra").unwrap();
        assert_eq!((u.uid, u.gid), (1234, 3000));
        let u = resolve_user(d.path(), "").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        let u = resolve_user(d.path(), "77:88").unwrap();
        assert_eq!((u.uid, u.gid), (77, 88));
        assert!(resolve_user(d.path(), "nobody").is_err());
        assert!(resolve_user(d.path(), "app:nogroup").is_err());
    }
}
