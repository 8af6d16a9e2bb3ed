//! The merged directory tree: every layer's file table applied in order, as
//! containerd applies layer tars (whiteouts `.wh.NAME`, opaque directories
//! `.wh..wh..opq`, the upper layer wins), built once at mount time from the
//! zTOCs (or the tar walk of a layer fetched whole). No layer data is read.
use soci_ztoc::{EntryType, TocEntry};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Prefix of a whiteout entry's name.
const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// What kind of file a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    Reg,
    /// A symbolic link.
    Symlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
}

/// Where a regular file's bytes are: in layer `layer`'s uncompressed tar
/// stream, from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRef {
    /// Index of the layer in the image (0: the lowest).
    pub layer: usize,
    /// Offset of the data in the layer's uncompressed tar.
    pub offset: u64,
}

/// A directory entry: the inode it names and the layer that last put it there
/// (an opaque directory hides what lower layers put in it).
#[derive(Debug, Clone, Copy)]
pub struct Dirent {
    /// Inode number of the entry.
    pub ino: u64,
    /// Layer that created or last touched it.
    pub layer: usize,
}

/// One inode of the merged tree.
#[derive(Debug, Clone)]
pub struct Node {
    /// File type.
    pub kind: Kind,
    /// Permission bits (with setuid, setgid, sticky).
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: SystemTime,
    /// Size in bytes (regular files; a symlink's target length).
    pub size: u64,
    /// Device number of a character or block device.
    pub rdev: u32,
    /// Target of a symbolic link.
    pub target: Vec<u8>,
    /// Data of a regular file (None when empty).
    pub data: Option<DataRef>,
    /// Extended attributes.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Children of a directory, by name.
    pub children: BTreeMap<Vec<u8>, Dirent>,
    /// Parent directory (the root is its own parent).
    pub parent: u64,
    /// Links to it in the tree (set by [`Tree::finish`]).
    pub nlink: u32,
    /// Path of the first name it got, without a leading slash (for `--record`).
    pub path: String,
}

/// The merged tree. Inode `n` is `nodes[n - 1]`; the root is inode 1.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Every inode, unreachable ones (whited out) included.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Whether any inode has an extended attribute.
    pub fn has_xattrs(&self) -> bool {
        self.nodes.iter().any(|n| !n.xattrs.is_empty())
    }
}

/// The inode number of the root directory.
pub const ROOT: u64 = 1;

fn dir_node(parent: u64, path: String) -> Node {
    Node {
        kind: Kind::Dir,
        perm: 0o755,
        uid: 0,
        gid: 0,
        mtime: UNIX_EPOCH,
        size: 0,
        rdev: 0,
        target: Vec::new(),
        data: None,
        xattrs: Vec::new(),
        children: BTreeMap::new(),
        parent,
        nlink: 0,
        path,
    }
}

/// The components of a tar entry name: `./`, empty parts and `.` dropped,
/// `..` climbing no higher than the root (as containerd confines names).
fn components(name: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `time.Time.MarshalText` in UTC (`2006-01-02T15:04:05.999999999Z`),
/// as the zTOC stores it; the epoch when it does not parse.
pub fn parse_mod_time(s: &str) -> SystemTime {
    fn parse(s: &str) -> Option<SystemTime> {
        let s = s.strip_suffix('Z')?;
        let (date, time) = s.split_once('T')?;
        let mut d = date.splitn(3, '-');
        let (y, m, day): (i64, i64, i64) = (
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
        );
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, b),
            None => (time, ""),
        };
        let mut t = hms.splitn(3, ':');
        let (hh, mm, ss): (i64, i64, i64) = (
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
        );
        let nanos: u32 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").get(..9)?.parse().ok()?
        };
        // Days from the civil date (Howard Hinnant's algorithm).
        let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let doy = (153 * m2 + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146097 + doe - 719468;
        let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
        if secs >= 0 {
            Some(UNIX_EPOCH + Duration::new(secs as u64, nanos))
        } else {
            Some(
                UNIX_EPOCH - Duration::from_secs((-secs) as u64)
                    + Duration::from_nanos(nanos as u64),
            )
        }
    }
    parse(s).unwrap_or(UNIX_EPOCH)
}

/// Linux's `makedev`.
fn makedev(major: i64, minor: i64) -> u32 {
    let (ma, mi) = (major.max(0) as u32, minor.max(0) as u32);
    ((ma & 0xfff) << 8) | (mi & 0xff) | ((mi & !0xff) << 12)
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only an empty root directory.
    pub fn new() -> Self {
        Tree {
            nodes: vec![dir_node(ROOT, String::new())],
        }
    }

    /// The node of inode `ino`.
    pub fn node(&self, ino: u64) -> Option<&Node> {
        ino.checked_sub(1).and_then(|i| self.nodes.get(i as usize))
    }

    fn node_mut(&mut self, ino: u64) -> &mut Node {
        &mut self.nodes[(ino - 1) as usize]
    }

    fn push(&mut self, node: Node) -> u64 {
        self.nodes.push(node);
        self.nodes.len() as u64
    }

    /// The inode at `path` (components), if any.
    fn resolve(&self, comps: &[&[u8]]) -> Option<u64> {
        let mut ino = ROOT;
        for c in comps {
            ino = self.node(ino)?.children.get(*c)?.ino;
        }
        Some(ino)
    }

    /// The directory at `comps`, created (like tar does) with default metadata
    /// where missing or not a directory; every directory on the way is marked
    /// as touched by `layer`.
    fn ensure_dir(&mut self, comps: &[&[u8]], layer: usize) -> u64 {
        let mut ino = ROOT;
        for c in comps {
            let existing = self.node(ino).and_then(|n| n.children.get(*c)).copied();
            let next = match existing {
                Some(d) if self.node(d.ino).map(|n| n.kind) == Some(Kind::Dir) => d.ino,
                _ => {
                    let path = join_path(&self.node(ino).expect("dir").path, c);
                    self.push(dir_node(ino, path))
                }
            };
            self.node_mut(ino)
                .children
                .insert(c.to_vec(), Dirent { ino: next, layer });
            ino = next;
        }
        ino
    }

    /// Removes from directory `dir` (recursively) everything no later than
    /// `below` layers put there: what an opaque directory of layer `below`
    /// hides.
    fn hide_lower(&mut self, dir: u64, layer: usize) {
        let children: Vec<(Vec<u8>, Dirent)> = self
            .node(dir)
            .map(|n| n.children.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        for (name, d) in children {
            if d.layer < layer {
                self.node_mut(dir).children.remove(&name);
            } else if self.node(d.ino).map(|n| n.kind) == Some(Kind::Dir) && d.ino != dir {
                self.hide_lower(d.ino, layer);
            }
        }
    }

    /// Applies one layer's entries (in tar order) on top of the tree.
    /// `xattrs`: whether to keep the entries' extended attributes.
    pub fn apply_layer(&mut self, layer: usize, entries: &[TocEntry], xattrs: bool) {
        for e in entries {
            let comps = components(&e.name);
            let Some((last, parents)) = comps.split_last() else {
                // The root itself ("./"): its metadata.
                if e.entry_type == EntryType::Dir {
                    let root = self.node_mut(ROOT);
                    set_meta(root, e, xattrs);
                }
                continue;
            };
            let parent = self.ensure_dir(parents, layer);
            if *last == soci_index::WHITEOUT_OPAQUE_DIR.as_bytes() {
                self.hide_lower(parent, layer);
                continue;
            }
            if let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX) {
                let p = self.node_mut(parent);
                if p.children.get(hidden).is_some_and(|d| d.layer < layer) {
                    p.children.remove(hidden);
                }
                continue;
            }
            let path = join_path(&self.node(parent).expect("dir").path, last);
            let kind = match e.entry_type {
                EntryType::Dir => Kind::Dir,
                EntryType::Reg => Kind::Reg,
                EntryType::Symlink => Kind::Symlink,
                EntryType::Char => Kind::Char,
                EntryType::Block => Kind::Block,
                EntryType::Fifo => Kind::Fifo,
                EntryType::Hardlink => {
                    // Another name for an inode already in the tree.
                    if let Some(target) = self.resolve(&components(&e.linkname)) {
                        if self.node(target).map(|n| n.kind) != Some(Kind::Dir) {
                            self.node_mut(parent)
                                .children
                                .insert(last.to_vec(), Dirent { ino: target, layer });
                        }
                    }
                    continue;
                }
                EntryType::Other(_) => continue,
            };
            let existing = self
                .node(parent)
                .and_then(|n| n.children.get(*last))
                .copied();
            if kind == Kind::Dir {
                if let Some(d) = existing {
                    if self.node(d.ino).map(|n| n.kind) == Some(Kind::Dir) {
                        // A directory over a directory: new metadata, same contents.
                        set_meta(self.node_mut(d.ino), e, xattrs);
                        self.node_mut(parent)
                            .children
                            .insert(last.to_vec(), Dirent { ino: d.ino, layer });
                        continue;
                    }
                }
            }
            let mut node = dir_node(parent, path);
            node.kind = kind;
            set_meta(&mut node, e, xattrs);
            match kind {
                Kind::Reg => {
                    node.size = e.uncompressed_size.max(0) as u64;
                    if node.size > 0 {
                        node.data = Some(DataRef {
                            layer,
                            offset: e.uncompressed_offset.max(0) as u64,
                        });
                    }
                }
                Kind::Symlink => {
                    node.target = e.linkname.clone();
                    node.size = node.target.len() as u64;
                }
                Kind::Char | Kind::Block => node.rdev = makedev(e.devmajor, e.devminor),
                _ => {}
            }
            let ino = self.push(node);
            self.node_mut(parent)
                .children
                .insert(last.to_vec(), Dirent { ino, layer });
        }
    }

    /// Counts links once every layer is applied: a directory has 2 plus its
    /// subdirectories, anything else one per name reaching it.
    pub fn finish(&mut self) {
        for n in &mut self.nodes {
            n.nlink = 0;
        }
        let mut stack = vec![ROOT];
        let mut seen = vec![false; self.nodes.len()];
        seen[0] = true;
        while let Some(dir) = stack.pop() {
            let kids: Vec<u64> = self
                .node(dir)
                .expect("dir")
                .children
                .values()
                .map(|d| d.ino)
                .collect();
            let mut subdirs = 0;
            for k in kids {
                let is_dir = self.node(k).map(|n| n.kind) == Some(Kind::Dir);
                if is_dir {
                    subdirs += 1;
                    self.node_mut(k).parent = dir;
                } else {
                    self.node_mut(k).nlink += 1;
                }
                let i = (k - 1) as usize;
                if is_dir && !seen[i] {
                    seen[i] = true;
                    stack.push(k);
                }
            }
            self.node_mut(dir).nlink = 2 + subdirs;
        }
    }
}

fn join_path(parent: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if parent.is_empty() {
        name.into_owned()
    } else {
        format!("{parent}/{name}")
    }
}

fn set_meta(n: &mut Node, e: &TocEntry, xattrs: bool) {
    n.perm = (e.mode & 0o7777) as u16;
    n.uid = e.uid;
    n.gid = e.gid;
    n.mtime = parse_mod_time(&e.mod_time);
    n.xattrs = if xattrs {
        e.xattrs().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    } else {
        Vec::new()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, t: EntryType, size: i64) -> TocEntry {
        TocEntry {
            name: name.as_bytes().to_vec(),
            entry_type: t,
            uncompressed_offset: 512,
            uncompressed_size: size,
            linkname: Vec::new(),
            mode: 0o644,
            uid: 1,
            gid: 2,
            uname: Vec::new(),
            gname: Vec::new(),
            mod_time: "2020-01-02T03:04:05.5Z".into(),
            devmajor: 0,
            devminor: 0,
            pax_records: Vec::new(),
        }
    }

    fn names(t: &Tree, path: &str) -> Vec<String> {
        let comps = components(path.as_bytes());
        let ino = t.resolve(&comps).unwrap();
        t.node(ino)
            .unwrap()
            .children
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
        let mut t = Tree::new();
        t.apply_layer(
            0,
            &[
                entry("a/", EntryType::Dir, 0),
                entry("a/x", EntryType::Reg, 1),
                entry("a/sub/y", EntryType::Reg, 1),
                entry("b/z", EntryType::Reg, 1),
                entry("b/keep", EntryType::Reg, 1),
            ],
            true,
        );
        t.apply_layer(
            1,
            &[
                entry("a/", EntryType::Dir, 0),
                entry("a/new", EntryType::Reg, 1),
                entry("a/sub/n2", EntryType::Reg, 1),
                entry("a/.wh..wh..opq", EntryType::Reg, 0),
                entry("b/.wh.z", EntryType::Reg, 0),
            ],
            true,
        );
        t.finish();
        assert_eq!(names(&t, "a"), vec!["new", "sub"]);
        assert_eq!(names(&t, "a/sub"), vec!["n2"]);
        assert_eq!(names(&t, "b"), vec!["keep"]);
    }

    #[test]
    fn hardlinks_share_an_inode_and_count_links() {
        let mut t = Tree::new();
        let mut l = entry("f2", EntryType::Hardlink, 0);
        l.linkname = b"./d/f".to_vec();
        t.apply_layer(0, &[entry("./d/f", EntryType::Reg, 3), l], true);
        t.finish();
        let a = t.resolve(&components(b"d/f")).unwrap();
        let b = t.resolve(&components(b"f2")).unwrap();
        assert_eq!(a, b);
        assert_eq!(t.node(a).unwrap().nlink, 2);
        assert_eq!(t.node(ROOT).unwrap().nlink, 3);
    }

    #[test]
    fn parses_go_times() {
        assert_eq!(
            parse_mod_time("1970-01-02T00:00:01Z"),
            UNIX_EPOCH + Duration::from_secs(86401)
        );
        assert_eq!(
            parse_mod_time("2020-01-02T03:04:05.5Z"),
            UNIX_EPOCH + Duration::new(1577934245, 500_000_000)
        );
        assert_eq!(parse_mod_time("junk"), UNIX_EPOCH);
    }
}
