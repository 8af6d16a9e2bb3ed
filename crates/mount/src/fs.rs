//! The FUSE file system: the merged tree answered from memory, file data from
//! the span cache (lazy layers) or the local copy (layers fetched whole).
use crate::cache::SpanCache;
use crate::image::LayerData;
use crate::record::ReadLog;
use crate::tree::{Kind, Node, Tree};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, KernelConfig,
    LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

/// The image never changes: the kernel may keep names and attributes as long
/// as it likes.
const TTL: Duration = Duration::from_secs(3600);

/// What the file system threads share with the mount's owner.
pub(crate) struct Shared {
    /// The merged tree.
    pub(crate) tree: Tree,
    /// The span cache.
    pub(crate) cache: Arc<SpanCache>,
    /// Reads seen.
    pub(crate) log: ReadLog,
    /// Reads answered with EIO.
    pub(crate) read_errors: std::sync::atomic::AtomicU64,
    /// Whether any file of the tree has an extended attribute. When none has,
    /// getxattr and listxattr answer ENOSYS: the kernel then stops asking
    /// (and answers "not supported" itself). An overlay over the mount asks
    /// for `trusted.overlay.*` of every file and directory it looks up
    /// (about 1,200 round trips for an interpreter importing numpy and
    /// pandas, each run), and the kernel keeps no xattr answers of FUSE file
    /// systems. The snapshotter does the same for layers marked
    /// `disable-xattrs`.
    pub(crate) xattrs: bool,
}

/// The FUSE file system of one mount.
pub(crate) struct SociFs {
    pub(crate) shared: Arc<Shared>,
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::Reg => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::Char => FileType::CharDevice,
        Kind::Block => FileType::BlockDevice,
        Kind::Fifo => FileType::NamedPipe,
    }
}

fn attr(ino: u64, n: &Node) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: n.size,
        blocks: n.size.div_ceil(512),
        atime: n.mtime,
        mtime: n.mtime,
        ctime: n.mtime,
        crtime: n.mtime,
        kind: file_type(n.kind),
        perm: n.perm,
        nlink: n.nlink.max(1),
        uid: n.uid,
        gid: n.gid,
        rdev: n.rdev,
        flags: 0,
        blksize: 4096,
    }
}

/// The attributes of a negative entry: only node 0 matters to the kernel.
fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: std::time::UNIX_EPOCH,
        mtime: std::time::UNIX_EPOCH,
        ctime: std::time::UNIX_EPOCH,
        crtime: std::time::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

impl SociFs {
    fn node(&self, ino: INodeNo) -> Result<&Node, Errno> {
        self.shared.tree.node(u64::from(ino)).ok_or(Errno::ENOENT)
    }

    /// The entries of directory `ino` from position `offset` on: (position of
    /// the next entry, inode, node, name); `.` and `..` first.
    #[allow(clippy::type_complexity)]
    fn entries(
        &self,
        ino: INodeNo,
        offset: u64,
    ) -> Result<impl Iterator<Item = (u64, u64, &Node, &OsStr)>, Errno> {
        let n = match self.node(ino) {
            Ok(n) if n.kind == Kind::Dir => n,
            Ok(_) => return Err(Errno::ENOTDIR),
            Err(e) => return Err(e),
        };
        let tree = &self.shared.tree;
        let parent = tree.node(n.parent).unwrap_or(n);
        let dots = [
            (u64::from(ino), n, OsStr::new(".")),
            (n.parent, parent, OsStr::new("..")),
        ];
        let kids = n
            .children
            .iter()
            .filter_map(move |(name, d)| Some((d.ino, tree.node(d.ino)?, OsStr::from_bytes(name))));
        Ok(dots
            .into_iter()
            .chain(kids)
            .enumerate()
            .skip(offset as usize)
            .map(|(i, (child, node, name))| ((i + 1) as u64, child, node, name)))
    }

    /// Bytes `[offset, offset+len)` of the layer stream of `node`'s data.
    fn read_data(&self, n: &Node, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        let Some(data) = n.data else {
            return Ok(Vec::new());
        };
        let start = data.offset + offset;
        match &self.shared.cache.layers()[data.layer] {
            LayerData::Local { file, .. } => {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, start)
                    .map_err(|e| format!("local copy of the layer: {e}"))?;
                Ok(buf)
            }
            LayerData::Lazy { ztoc, zinfo, .. } => {
                let total = ztoc.uncompressed_archive_size.max(0) as u64;
                if start + len > total {
                    return Err("the file's data ends past its layer".into());
                }
                let mut out = Vec::with_capacity(len as usize);
                let spans = soci_image::lazy::spans_of_range(zinfo, start, len);
                let last = spans.end.saturating_sub(1);
                for sp in spans {
                    let range = zinfo.span_uncompressed_range(sp, total);
                    let from = start.max(range.start) - range.start;
                    let to = (start + len).min(range.end) - range.start;
                    self.shared
                        .cache
                        .read(data.layer, sp, last, from, to, &mut out)?;
                }
                if out.len() as u64 != len {
                    return Err(format!(
                        "the layer's spans gave {} bytes where {len} were expected",
                        out.len()
                    ));
                }
                Ok(out)
            }
        }
    }
}

impl Filesystem for SociFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Large sequential reads: let the kernel read ahead up to 1 MiB.
        let _ = config.set_max_readahead(1 << 20);
        // The tree never changes: symlink targets may stay in the page cache,
        // and lookups in one directory need not wait for each other (an
        // interpreter starting stats many names in the same few directories);
        // listings carry attributes (readdirplus), so the names listed need
        // no lookup each afterwards.
        let wanted = fuser::InitFlags::FUSE_CACHE_SYMLINKS
            | fuser::InitFlags::FUSE_PARALLEL_DIROPS
            | fuser::InitFlags::FUSE_DO_READDIRPLUS;
        let _ = config.add_capabilities(wanted & config.capabilities());
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.node(parent).and_then(|p| {
            let d = p.children.get(name.as_bytes()).ok_or(Errno::ENOENT)?;
            Ok((d.ino, self.shared.tree.node(d.ino).ok_or(Errno::ENOENT)?))
        });
        match r {
            Ok((ino, n)) => reply.entry(&TTL, &attr(ino, n), Generation(0)),
            // A name missing from an existing directory stays missing: answered
            // as a negative entry (node 0 with a timeout), the kernel keeps it
            // and does not ask again. Interpreters probe many absent names
            // (Python's path finder, the dynamic loader's search path).
            Err(Errno::ENOENT) if self.node(parent).is_ok() => {
                reply.entry(&TTL, &negative_attr(), Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok(n) => reply.attr(&TTL, &attr(u64::from(ino), n)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino) {
            Ok(n) if n.kind == Kind::Symlink => reply.data(&n.target),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc_accmode() != 0 {
            reply.error(Errno::EROFS);
            return;
        }
        match self.node(ino) {
            // No per-open state: ENOSYS tells the kernel (3.x+: "no_open") to
            // stop sending opens at all and to keep the page cache across opens
            // (FOPEN_KEEP_CACHE is its default then: the image is immutable).
            // That saves a round trip per open; an interpreter opens hundreds
            // of files. Opens for writing never get here after that: the mount
            // is read-only, the VFS answers EROFS itself.
            Ok(_) => reply.error(Errno::ENOSYS),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino) {
            // As open: no state, and the kernel then caches the listing
            // (FOPEN_CACHE_DIR is its default without opendir).
            Ok(n) if n.kind == Kind::Dir => reply.error(Errno::ENOSYS),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let n = match self.node(ino) {
            Ok(n) if n.kind == Kind::Reg => n,
            Ok(_) => return reply.error(Errno::EISDIR),
            Err(e) => return reply.error(e),
        };
        if offset >= n.size {
            return reply.data(&[]);
        }
        let len = u64::from(size).min(n.size - offset);
        self.shared
            .log
            .note(u64::from(ino), &n.path, n.size, offset, len);
        match self.read_data(n, offset, len) {
            Ok(d) => reply.data(&d),
            Err(e) => {
                self.shared
                    .read_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                eprintln!("soci mount: read of /{} failed: {e}", n.path);
                reply.error(Errno::EIO)
            }
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.entries(ino, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        for (next, child, n, name) in entries {
            if reply.add(INodeNo(child), next, file_type(n.kind), name) {
                break;
            }
        }
        reply.ok();
    }

    /// Listings with each entry's attributes: the kernel makes the names'
    /// entries from them, so the stats and opens that follow a listing (an
    /// interpreter's module finder lists a directory, then looks up the
    /// candidates in it) need no lookup round trip each.
    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let entries = match self.entries(ino, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        for (next, child, n, name) in entries {
            if reply.add(
                INodeNo(child),
                next,
                name,
                &TTL,
                &attr(child, n),
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self.shared.tree.nodes.len() as u64;
        let bytes: u64 = self.shared.tree.nodes.iter().map(|n| n.size).sum();
        reply.statfs(bytes.div_ceil(4096), 0, 0, files, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if !self.shared.xattrs {
            return reply.error(Errno::ENOSYS);
        }
        let n = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match n
            .xattrs
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
        {
            None => reply.error(Errno::NO_XATTR),
            Some((_, v)) if size == 0 => reply.size(v.len() as u32),
            Some((_, v)) if v.len() <= size as usize => reply.data(v),
            Some(_) => reply.error(Errno::ERANGE),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if !self.shared.xattrs {
            return reply.error(Errno::ENOSYS);
        }
        let n = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let mut list = Vec::new();
        for (k, _) in &n.xattrs {
            list.extend_from_slice(k);
            list.push(0);
        }
        if size == 0 {
            reply.size(list.len() as u32)
        } else if list.len() <= size as usize {
            reply.data(&list)
        } else {
            reply.error(Errno::ERANGE)
        }
    }
}

/// `O_ACCMODE` bits that ask for writing (`O_WRONLY | O_RDWR`).
fn libc_accmode() -> i32 {
    0o1 | 0o2
}
