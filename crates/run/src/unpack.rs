//! The baseline root filesystem (`soci run --full`): every layer of the image
//! pulled, digest-checked and unpacked in full into one directory, upper layers
//! over lower ones, whiteouts applied as containerd's applier does.
use crate::error::{Error, Result};
use crate::paths::resolve;
use crate::Cancel;
use filetime::FileTime;
use soci_oci::source::ImageSource;
use soci_oci::spec::Descriptor;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The whiteout prefix: `.wh.NAME` deletes NAME of the layers below.
const WHITEOUT_PREFIX: &str = ".wh.";
/// An opaque directory: the directory's content of the layers below is hidden.
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// What a full pull unpacked.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Unpacked {
    /// Compressed layer bytes downloaded (the sum of the layers' sizes).
    pub bytes_fetched: u64,
    /// Layers applied.
    pub layers: usize,
    /// Device nodes, xattrs or owners that could not be set (not permitted
    /// here); the entries themselves were unpacked.
    pub skipped_metadata: u64,
}

/// Pulls every layer of `layers` from `source` (in parallel, each to a
/// temporary file under `tmp`, its digest and size checked), then applies
/// them in order onto `root`, which must exist.
pub fn unpack_image(
    source: &dyn ImageSource,
    layers: &[Descriptor],
    root: &Path,
    tmp: &Path,
    cancel: &Cancel,
) -> Result<Unpacked> {
    // Download in parallel, apply in order: as containerd's pull does.
    let files = std::thread::scope(|s| {
        let handles: Vec<_> = layers
            .iter()
            .map(|l| s.spawn(move || download(source, l, tmp, cancel)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Child {
                        what: "layer download".into(),
                        detail: "thread panicked".into(),
                    })
                })
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut out = Unpacked::default();
    for (layer, file) in layers.iter().zip(files) {
        cancel.check()?;
        let reader = decompressor(BufReader::with_capacity(1 << 20, file), layer)?;
        out.skipped_metadata += apply_layer(reader, root, layer.digest.as_str(), cancel)?;
        out.bytes_fetched += layer.size.max(0) as u64;
        out.layers += 1;
    }
    Ok(out)
}

/// One layer blob into an unnamed temporary file, checked against its descriptor.
fn download(
    source: &dyn ImageSource,
    layer: &Descriptor,
    tmp: &Path,
    cancel: &Cancel,
) -> Result<std::fs::File> {
    let digest = layer.digest.to_string();
    let mut file =
        tempfile::tempfile_in(tmp).map_err(|e| Error::io("cannot create a file in", tmp, e))?;
    let blob = source.open_blob(layer)?;
    let mut hashing = soci_digest::Hashing::new(blob);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        cancel.check()?;
        let n = hashing.read(&mut buf).map_err(|e| Error::Unpack {
            digest: digest.clone(),
            reason: format!("download failed: {e}"),
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(|e| Error::io("cannot write to a temporary file in", tmp, e))?;
    }
    let got = hashing.digest();
    if got != digest || hashing.size() != layer.size.max(0) as u64 {
        return Err(Error::LayerDigest {
            digest,
            got,
            size: hashing.size(),
            expected_size: layer.size,
        });
    }
    file.rewind()
        .map_err(|e| Error::io("cannot read a temporary file in", tmp, e))?;
    Ok(file)
}

/// The layer's tar stream: gzip and zstd recognised by their magic bytes
/// (whatever the media type says), anything else read as a plain tar.
fn decompressor<R: BufRead + Send + 'static>(
    mut r: R,
    layer: &Descriptor,
) -> Result<Box<dyn Read + Send>> {
    let head = r.fill_buf().map_err(|e| Error::Unpack {
        digest: layer.digest.to_string(),
        reason: e.to_string(),
    })?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(r).map_err(|e| Error::Unpack {
                digest: layer.digest.to_string(),
                reason: e.to_string(),
            })?,
        )
    } else {
        Box::new(r)
    })
}

/// Applies one layer's tar onto `root`: whiteouts remove what lower layers
/// put there, an opaque directory drops the lower layers' content of that
/// directory (not what this layer put in it), an entry replaces whatever was
/// at its path unless both are directories. Owners, modes, mtimes, xattrs,
/// symlinks, hardlinks, device nodes and fifos are kept; returns how many
/// metadata items the kernel refused (e.g. a device node without CAP_MKNOD).
pub fn apply_layer(tar: impl Read, root: &Path, digest: &str, cancel: &Cancel) -> Result<u64> {
    let bad = |reason: String| Error::Unpack {
        digest: digest.to_string(),
        reason,
    };
    let mut archive = tar::Archive::new(tar);
    let mut unpacked: HashSet<PathBuf> = HashSet::new();
    let mut dir_times: Vec<(PathBuf, FileTime)> = Vec::new();
    let mut skipped = 0;
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        cancel.check()?;
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let raw_path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let Some(name) = raw_path.file_name().map(|n| n.to_os_string()) else {
            continue; // "./": the root itself
        };
        let parent_rel = raw_path.parent().unwrap_or(Path::new(""));
        let parent = resolve(root, parent_rel, true, true)?;
        if !parent.is_dir() {
            return Err(bad(format!(
                "{}: its parent is not a directory",
                raw_path.display()
            )));
        }
        let base = name.to_string_lossy();
        if base == WHITEOUT_OPAQUE {
            for child in
                std::fs::read_dir(&parent).map_err(|e| Error::io("cannot read", &parent, e))?
            {
                let child = child
                    .map_err(|e| Error::io("cannot read", &parent, e))?
                    .path();
                if !unpacked.contains(&child) {
                    remove_all(&child)?;
                }
            }
            continue;
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
            remove_all(&parent.join(hidden))?;
            continue;
        }
        let target = parent.join(&name);
        let header = entry.header().clone();
        let kind = header.entry_type();
        let existing = std::fs::symlink_metadata(&target).ok();
        match existing {
            Some(m) if m.is_dir() && kind.is_dir() => {}
            Some(_) => remove_all(&target)?,
            None => {}
        }
        let mode = header.mode().map_err(|e| bad(e.to_string()))? & 0o7777;
        match kind {
            tar::EntryType::Directory => {
                if !target.is_dir() {
                    std::fs::create_dir(&target)
                        .map_err(|e| Error::io("cannot create", &target, e))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = std::fs::File::create(&target)
                    .map_err(|e| Error::io("cannot create", &target, e))?;
                std::io::copy(&mut entry, &mut f)
                    .map_err(|e| bad(format!("{}: {e}", raw_path.display())))?;
            }
            tar::EntryType::Symlink => {
                let link = header
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| {
                        bad(format!("{}: symlink without a target", raw_path.display()))
                    })?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| Error::io("cannot create symlink", &target, e))?;
            }
            tar::EntryType::Link => {
                let link = header
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| {
                        bad(format!("{}: hardlink without a target", raw_path.display()))
                    })?;
                let link_parent =
                    resolve(root, link.parent().unwrap_or(Path::new("")), true, false)?;
                let source = link_parent.join(link.file_name().unwrap_or_default());
                std::fs::hard_link(&source, &target)
                    .map_err(|e| Error::io("cannot create hardlink", &target, e))?;
                // The inode's metadata is the target's; nothing more to set.
                unpacked.insert(target);
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                use nix::sys::stat::{makedev, mknod, Mode, SFlag};
                let flag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let dev = makedev(major.into(), minor.into());
                if mknod(&target, flag, Mode::from_bits_truncate(mode), dev).is_err() {
                    // Not permitted here (no CAP_MKNOD, a nodev file system).
                    skipped += 1;
                    continue;
                }
            }
            // PAX and GNU long-name headers are consumed by the tar reader;
            // anything else (XGlobalHeader, unknown types) carries no file.
            _ => continue,
        }
        let uid = header.uid().map_err(|e| bad(e.to_string()))?;
        let gid = header.gid().map_err(|e| bad(e.to_string()))?;
        if std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32)).is_err() {
            skipped += 1;
        }
        if !kind.is_symlink() {
            // After the chown, which clears setuid/setgid bits.
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("cannot set the mode of", &target, e))?;
        }
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                let Ok(key) = ext.key() else { continue };
                if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                    if xattr::set(&target, attr, ext.value_bytes()).is_err() {
                        skipped += 1;
                    }
                }
            }
        }
        let mtime = FileTime::from_unix_time(header.mtime().unwrap_or(0) as i64, 0);
        if kind.is_dir() {
            dir_times.push((target.clone(), mtime));
        } else {
            let _ = filetime::set_symlink_file_times(&target, mtime, mtime);
        }
        unpacked.insert(target);
    }
    // Directories last: writing their entries changed their mtimes.
    for (dir, t) in dir_times.iter().rev() {
        let _ = filetime::set_symlink_file_times(dir, *t, *t);
    }
    Ok(skipped)
}

/// Removes `p` (a file, a symlink itself, or a directory tree); absent is fine.
fn remove_all(p: &Path) -> Result<()> {
    let r = match std::fs::symlink_metadata(p) {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
    };
    r.map_err(|e| Error::io("cannot remove", p, e))
}
