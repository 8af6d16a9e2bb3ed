//! `oci-archive:FILE[:TAG]`: an OCI image layout in one tar file (the format
//! skopeo, podman and the reference `soci` read and write).
//!
//! Reading unpacks the archive into a private temporary directory and reads it
//! with [`OciLayoutSource`], so both transports share one reader. Writing fills a
//! temporary layout with [`OciLayoutWriter`] and packs it into `FILE` at the end,
//! through a temporary file and a rename: `FILE` is either the old archive or the
//! complete new one, never half written.
use crate::error::{Error, Result};
use crate::layout::{OciLayoutSource, OciLayoutWriter};
use crate::reference::ImageRef;
use crate::source::ImageSource;
use crate::spec::Descriptor;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

/// The parent directory of `file`, `.` for a bare name.
fn parent_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Name prefix of the temporaries: `.soci-oci-archive-PID-…` next to a
/// destination archive (the layout being filled, the archive being packed) and
/// `soci-oci-archive-PID-…` in `$TMPDIR` (an unpacked source).
const TMP_PREFIX: &str = "soci-oci-archive-";

fn tmp_prefix(hidden: bool) -> String {
    format!(
        "{}{TMP_PREFIX}{}-",
        if hidden { "." } else { "" },
        std::process::id()
    )
}

/// Removes the temporaries in `dir` left by processes that no longer run (killed
/// with SIGKILL, or by a power cut): `Drop` cleans up after errors and normal
/// exits, not after those. Ours and those of live processes are left alone.
/// Best effort; only where `/proc` tells which processes run.
fn clean_stale(dir: &Path, hidden: bool) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!("{}{TMP_PREFIX}", if hidden { "." } else { "" });
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let p = e.path();
        let _ = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
    }
}

/// Unpacks the OCI archive `file` into `dir`. Only regular files and
/// directories below `dir` are accepted: an entry that would land outside it
/// (`..`, an absolute path) or a link is refused, naming the entry.
pub fn unpack(file: &Path, dir: &Path) -> Result<()> {
    let f = File::open(file).map_err(|e| Error::io(file, e))?;
    let bad = |reason: String| Error::BadImage {
        image: format!("oci-archive:{}", file.display()),
        reason,
    };
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a tar archive: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| bad(format!("bad entry name: {e}")))?
            .into_owned();
        let mut rel = PathBuf::new();
        for c in raw.components() {
            match c {
                Component::Normal(n) => rel.push(n),
                Component::CurDir => {}
                _ => {
                    return Err(bad(format!(
                        "entry {:?} points outside the archive",
                        raw.display()
                    )))
                }
            }
        }
        if rel.as_os_str().is_empty() {
            continue; // "./"
        }
        let dest = dir.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(p) = dest.parent() {
                    std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
                }
                let mut out = File::create(&dest).map_err(|e| Error::io(&dest, e))?;
                std::io::copy(&mut entry, &mut out)
                    .map_err(|e| bad(format!("cannot read entry {}: {e}", rel.display())))?;
            }
            // PAX/GNU metadata entries are consumed by the tar reader; anything
            // else (links, devices) has no place in an OCI layout.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(bad(format!(
                    "entry {} is a {other:?}; an OCI archive holds only files and directories",
                    rel.display()
                )))
            }
        }
    }
    if !dir.join("index.json").is_file() {
        return Err(bad("no index.json: not an OCI image layout archive".into()));
    }
    Ok(())
}

/// Packs the layout in `dir` into a tar at `file`, atomically. Entries are in a
/// fixed order (`oci-layout`, `index.json`, then `blobs/` sorted) with zero
/// owners and times, so the same layout gives the same archive.
pub(crate) fn pack(dir: &Path, file: &Path) -> Result<()> {
    let parent = parent_of(file);
    let tmp = tempfile::Builder::new()
        .prefix(&tmp_prefix(true))
        .suffix(".tmp")
        .tempfile_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let header = |size: u64, mode: u32, kind: tar::EntryType| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(mode);
        h.set_entry_type(kind);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let mut b = tar::Builder::new(BufWriter::new(tmp.as_file()));
    let add_file = |b: &mut tar::Builder<_>, name: &str, path: &Path| -> Result<()> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut h = header(len, 0o644, tar::EntryType::Regular);
        b.append_data(&mut h, name, f)
            .map_err(|e| Error::io(file, e))
    };
    add_file(&mut b, "oci-layout", &dir.join("oci-layout"))?;
    add_file(&mut b, "index.json", &dir.join("index.json"))?;
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = header(0, 0o755, tar::EntryType::Directory);
        b.append_data(&mut h, d, std::io::empty())
            .map_err(|e| Error::io(file, e))?;
    }
    let blobs = dir.join("blobs").join("sha256");
    let mut names: Vec<String> = std::fs::read_dir(&blobs)
        .map_err(|e| Error::io(&blobs, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // The layout writer's own temporaries are not blobs.
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    for n in names {
        add_file(&mut b, &format!("blobs/sha256/{n}"), &blobs.join(&n))?;
    }
    let w = b.into_inner().map_err(|e| Error::io(file, e))?;
    let f = w
        .into_inner()
        .map_err(|e| Error::io(file, e.into_error()))?;
    // The temporary is private (0600); the archive gets the mode of the one it
    // replaces, else 0644 like a file `skopeo` or `tar` would write.
    let mode = std::fs::metadata(file)
        .map(|m| m.permissions())
        .unwrap_or_else(|_| std::os::unix::fs::PermissionsExt::from_mode(0o644));
    f.set_permissions(mode).map_err(|e| Error::io(file, e))?;
    f.sync_all().map_err(|e| Error::io(file, e))?;
    tmp.persist(file).map_err(|e| Error::io(file, e.error))?;
    Ok(())
}

/// An `oci-archive:` image read as an [`ImageSource`].
pub struct OciArchiveSource {
    reference: ImageRef,
    inner: OciLayoutSource,
    inner_name: String,
    _dir: tempfile::TempDir,
}

impl OciArchiveSource {
    /// Opens `oci-archive:FILE[:TAG]`, unpacking it into a temporary directory
    /// (in `$TMPDIR`) that lives as long as the source.
    pub fn open(reference: ImageRef) -> Result<Self> {
        let ImageRef::OciArchive { file, tag } = &reference else {
            return Err(Error::invalid_reference(
                &reference,
                "not an oci-archive: reference",
            ));
        };
        if !file.is_file() {
            return Err(Error::bad_image(
                &reference,
                "no such file (an oci-archive: source is a tar of an OCI image layout)",
            ));
        }
        clean_stale(&std::env::temp_dir(), false);
        let dir = tempfile::Builder::new()
            .prefix(&tmp_prefix(false))
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        unpack(file, dir.path())?;
        let inner_ref = ImageRef::OciLayout {
            dir: dir.path().to_path_buf(),
            tag: tag.clone(),
        };
        let inner_name = inner_ref.to_string();
        let inner = OciLayoutSource::open(inner_ref)?;
        Ok(OciArchiveSource {
            reference,
            inner,
            inner_name,
            _dir: dir,
        })
    }

    /// Errors of the unpacked layout name the archive, not the temporary directory.
    fn rename(&self, e: Error) -> Error {
        let own = self.reference.to_string();
        let fix = |s: String| {
            if s == self.inner_name {
                own.clone()
            } else {
                s.replace(&self.inner_name, &own)
            }
        };
        match e {
            Error::BadImage { image, reason } => Error::BadImage {
                image: fix(image),
                reason,
            },
            Error::BlobNotFound { image, digest } => Error::BlobNotFound {
                image: fix(image),
                digest,
            },
            Error::BlobTooLarge {
                image,
                digest,
                size,
                limit,
            } => Error::BlobTooLarge {
                image: fix(image),
                digest,
                size,
                limit,
            },
            Error::DigestMismatch {
                what,
                expected,
                actual,
            } => Error::DigestMismatch {
                what: fix(what),
                expected,
                actual,
            },
            other => other,
        }
    }
}

impl ImageSource for OciArchiveSource {
    fn reference(&self) -> &ImageRef {
        &self.reference
    }
    fn resolve_root(&self) -> Result<(Descriptor, Vec<u8>)> {
        self.inner.resolve_root().map_err(|e| self.rename(e))
    }
    fn fetch_blob(&self, d: &Descriptor) -> Result<Vec<u8>> {
        self.inner.fetch_blob(d).map_err(|e| self.rename(e))
    }
    fn open_blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send>> {
        self.inner.open_blob(d).map_err(|e| self.rename(e))
    }
    fn read_blob_range(&self, d: &Descriptor, range: Range<u64>) -> Result<Vec<u8>> {
        self.inner
            .read_blob_range(d, range)
            .map_err(|e| self.rename(e))
    }
}

/// Writes an image into `oci-archive:FILE`: blobs and tags go to a temporary
/// layout next to `FILE` (holding the old archive's content when `FILE`
/// exists), [`OciArchiveWriter::finish`] packs it into `FILE`.
pub struct OciArchiveWriter {
    file: PathBuf,
    layout: OciLayoutWriter,
    _dir: tempfile::TempDir,
}

impl OciArchiveWriter {
    /// Start writing `file`: a temporary layout next to it, holding the
    /// archive's current content if `file` exists (which must then be an OCI archive).
    pub fn create(file: impl Into<PathBuf>) -> Result<Self> {
        let file = file.into();
        let parent = parent_of(&file);
        clean_stale(&parent, true);
        let dir = tempfile::Builder::new()
            .prefix(&tmp_prefix(true))
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        if file.exists() {
            // Keep what the archive holds (other tags), as `oci:DIR` does; a
            // file that is not an OCI archive is refused, not overwritten.
            unpack(&file, dir.path())?;
        }
        let layout = OciLayoutWriter::create(dir.path())?;
        Ok(OciArchiveWriter {
            file,
            layout,
            _dir: dir,
        })
    }

    /// The temporary layout being filled.
    pub fn layout(&self) -> &OciLayoutWriter {
        &self.layout
    }

    /// Packs the layout into the archive file (atomically).
    pub fn finish(&self) -> Result<()> {
        pack(self.layout.dir(), &self.file)?;
        // Make the rename durable.
        if let Ok(d) = File::open(parent_of(&self.file)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn refuses_entries_outside_the_archive_and_links() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind) in [
            ("../evil", tar::EntryType::Regular),
            ("link", tar::EntryType::Symlink),
        ] {
            let path = dir.path().join("a.tar");
            let mut b = tar::Builder::new(File::create(&path).unwrap());
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_entry_type(kind);
            if kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
            }
            // Write the raw name: `append_data` itself refuses `..`.
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
            b.into_inner().unwrap().flush().unwrap();
            let out = dir.path().join("out");
            std::fs::create_dir_all(&out).unwrap();
            let e = unpack(&path, &out).unwrap_err().to_string();
            assert!(e.contains(name.trim_start_matches("../")), "{e}");
            assert!(!dir.path().join("evil").exists());
        }
    }
}
