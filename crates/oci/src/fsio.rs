//! File-system primitives shared by every writer of soci-rs (the local store, the
//! `oci:` layout writer, `-o FILE` outputs), so there is one way to write a file
//! atomically and one way to read a file that might be hostile.
//!
//! - [`TempFile`]: a temporary created with `O_CREAT|O_EXCL|O_NOFOLLOW` (a symlink
//!   or file planted at its name is never written through), locked with `flock`
//!   while its writer lives, made durable with [`TempFile::persist`] (fsync the
//!   file, rename over the destination, fsync the directory).
//! - [`write_atomic`]: the same for bytes already in memory.
//! - [`clean_stale_temps`]: removes temporaries whose writer is gone (its lock is
//!   free and its process is dead, or it is very old); a live writer's temporary,
//!   in this process or another one, is left alone.
//! - [`read_limited`] / [`open_regular`]: open without blocking on a FIFO, refuse
//!   anything but a regular file, and never read more than a limit, whatever
//!   `stat` says (a symlink to `/dev/zero` has length 0).
//! - [`require_real_dir`]: refuse an internal directory that is a symlink.
use rustix::fs::{FlockOperation, OFlags};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temporaries older than this are removed even when their name's process id is
/// alive (ids are reused) and their lock is free.
pub const STALE_TMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// Go `strings.TrimPrefix(path.Clean("/"+p), "/")`: lexical cleaning of a
/// slash-separated name (tar member names, prefetch paths) that cannot climb
/// above its root: `.`, empty parts and a `..` at the top are dropped.
pub fn clean_rooted_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Take an exclusive `flock` on `file`, waiting for it (retrying on `EINTR`).
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        match rustix::fs::flock(file, FlockOperation::LockExclusive) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether process `pid` exists (a process we may not signal exists too).
pub fn pid_alive(pid: i32) -> bool {
    match rustix::process::Pid::from_raw(pid) {
        Some(p) => match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            Err(e) => e == rustix::io::Errno::PERM,
        },
        None => false,
    }
}

/// `O_NOFOLLOW`, for `OpenOptionsExt::custom_flags` (std names no such constant).
pub const O_NOFOLLOW: i32 = OFlags::NOFOLLOW.bits() as i32;

fn nofollow() -> i32 {
    O_NOFOLLOW
}

/// A temporary file that disappears unless [`persist`](TempFile::persist)ed.
#[derive(Debug)]
pub struct TempFile {
    file: Option<File>,
    path: PathBuf,
}

impl TempFile {
    /// Create `DIR/PREFIX<pid>-<n>-<nanos>` exclusively (never following or
    /// reusing what is already there) and lock it for as long as it is open, so
    /// [`clean_stale_temps`] can tell it from a dead writer's leftover.
    pub fn new_in(dir: &Path, prefix: &str) -> io::Result<TempFile> {
        let mut attempts = 0;
        loop {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            let name = format!(
                "{prefix}{}-{}-{nanos}",
                std::process::id(),
                TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = dir.join(name);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(nofollow())
                .mode(0o644)
                .open(&path)
            {
                Ok(file) => {
                    // A file system without flock still gets the pid rule.
                    let _ = lock_exclusive(&file);
                    return Ok(TempFile {
                        file: Some(file),
                        path,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 1000 => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Where the temporary is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file present until persisted")
    }

    /// fsync the content, rename it to `dest` (replacing what is there) and fsync
    /// `dest`'s directory, so after a crash `dest` is either the old file or the
    /// complete new one. On error the temporary is removed.
    pub fn persist(mut self, dest: &Path) -> io::Result<()> {
        let file = self.file.take().expect("file present until persisted");
        let res = file
            .sync_all()
            .and_then(|()| std::fs::rename(&self.path, dest));
        // The lock goes with the descriptor; the renamed file needs none.
        drop(file);
        if let Err(e) = res {
            let _ = std::fs::remove_file(&self.path);
            return Err(e);
        }
        fsync_dir(parent_of(dest))
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn parent_of(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// fsync a directory (makes a rename or unlink in it durable).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Write `bytes` to `dest` atomically through a [`TempFile`] in `tmp_dir` (which
/// must be on `dest`'s file system).
pub fn write_atomic(tmp_dir: &Path, prefix: &str, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = TempFile::new_in(tmp_dir, prefix)?;
    tmp.write_all(bytes)?;
    tmp.persist(dest)
}

/// Remove the temporaries named `PREFIX<pid>-…` in `dir` whose writer is gone:
/// a regular file is removed when nobody holds its lock and process `pid` is
/// dead, or when nobody holds its lock and it is older than `max_age`; a
/// symlink, FIFO or socket at such a name is unlinked itself, never followed.
/// Returns how many entries were removed.
pub fn clean_stale_temps(dir: &Path, prefix: &str, max_age: Duration) -> io::Result<usize> {
    clean(dir, prefix, max_age, false)
}

/// [`clean_stale_temps`] for a directory that holds only temporaries (the
/// store's `soci/tmp`, prefix `""`): entries whose name carries no process id
/// are ours too, and go once nobody holds their lock.
pub fn clean_private_temp_dir(dir: &Path, max_age: Duration) -> io::Result<usize> {
    clean(dir, "", max_age, true)
}

fn clean(dir: &Path, prefix: &str, max_age: Duration, private: bool) -> io::Result<usize> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        // file_type does not follow symlinks.
        let Ok(ft) = ent.file_type() else { continue };
        if ft.is_dir() {
            continue;
        }
        let path = ent.path();
        // Only names this module makes (`PREFIX<pid>-…`) are touched: a user's
        // own `.tmp-notes` in a layout directory is left alone.
        let pid = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<i32>().ok())
            .filter(|p| *p > 0);
        if pid.is_none() && !private {
            continue;
        }
        let stale = if ft.is_file() {
            let old = ent
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > max_age);
            !lock_held(&path) && (old || pid.is_none_or(|p| !pid_alive(p)))
        } else {
            ft.is_symlink() || ft.is_fifo() || ft.is_socket()
        };
        if stale && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether someone holds the `flock` of the temporary at `path` (false when it
/// cannot be opened or the file system has no flock).
fn lock_held(path: &Path) -> bool {
    let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow() | OFlags::NONBLOCK.bits() as i32)
        .open(path)
    else {
        return false;
    };
    match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => false,
        Err(e) => e == rustix::io::Errno::WOULDBLOCK,
    }
}

/// Fail unless `path` is a directory itself (not a symlink to one).
pub fn require_real_dir(path: &Path) -> io::Result<()> {
    let m = std::fs::symlink_metadata(path)?;
    if m.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symlink; refusing to use it (it must be a directory of its own)",
        ));
    }
    if !m.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a directory",
        ));
    }
    Ok(())
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Open `path` for reading (following symlinks) without blocking on a FIFO, and
/// fail unless what is opened is a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is {}, not a regular file", kind_of(ft)),
        ));
    }
    Ok(f)
}

/// Read at most `limit` bytes of a regular file: more is an error, whatever
/// `stat` said before the read.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let f = open_regular(path)?;
    // Refused before reading when `stat` already tells; the bounded read below
    // covers a file that grows meanwhile.
    let len = f.metadata()?.len();
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is {len} bytes, more than the {limit}-byte limit"),
        ));
    }
    let mut buf = Vec::new();
    f.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_big(limit));
    }
    Ok(buf)
}

fn too_big(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("holds more than the {limit}-byte limit"),
    )
}

/// A reader that fails instead of returning byte `limit + 1`: a blob that holds
/// more than its descriptor says is an error, not a longer stream.
pub struct LimitedReader<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> LimitedReader<R> {
    /// Wrap `inner`, allowing `limit` bytes.
    pub fn new(inner: R, limit: u64) -> Self {
        LimitedReader {
            inner,
            left: limit,
            limit,
        }
    }
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // One probe byte tells a clean end from an overlong source.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(too_big(self.limit)),
            };
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_new_refuses_an_existing_symlink_name() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nofollow())
            .open(&link)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn cleaning_keeps_live_temporaries_and_removes_dead_ones() {
        let d = tempfile::tempdir().unwrap();
        let live = TempFile::new_in(d.path(), ".tmp-").unwrap();
        // A dead writer's leftover: a pid that cannot exist, no lock.
        let dead = d.path().join(".tmp-2147483646-0-0");
        std::fs::write(&dead, b"x").unwrap();
        // A planted symlink at a temporary name: unlinked, its target kept.
        let target = d.path().join("target");
        std::fs::write(&target, b"t").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join(".tmp-1-2-3")).unwrap();
        // Not a name this module makes: kept.
        let mine_not = d.path().join(".tmp-notes");
        std::fs::write(&mine_not, b"n").unwrap();
        let removed = clean_stale_temps(d.path(), ".tmp-", STALE_TMP_AGE).unwrap();
        assert_eq!(removed, 2);
        assert!(mine_not.exists());
        assert!(live.path().exists(), "a live temporary was removed");
        assert!(!dead.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"t");
    }

    #[test]
    fn limited_reads_stop_at_the_limit() {
        let e = read_limited(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let mut out = Vec::new();
        let e = LimitedReader::new(io::repeat(0), 100)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(
            e.to_string().contains("more than the 100-byte limit"),
            "{e}"
        );
        let mut out = Vec::new();
        LimitedReader::new(&b"abc"[..], 3)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abc");
    }
}
