//! OCI image layouts (image-spec `image-layout.md`): reading one as an
//! [`ImageSource`] and writing blobs and tagged manifests into one.
use crate::blob::{check_small, require_sha256, verify_blob, MAX_IN_MEMORY_BLOB};
use crate::error::{Error, Result};
use crate::fsio;
use crate::reference::ImageRef;
use crate::source::ImageSource;
use crate::spec::{self, Descriptor, Index};
use soci_digest::Digest;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::spec::ANNOTATION_REF_NAME;

/// `blobs/sha256/<hex>` under `dir`. A [`Digest`] cannot hold a path
/// separator or `..`, so the path stays inside the layout whatever the digest
/// came from; only sha256 blobs are stored, so another algorithm is refused.
pub fn blob_path(dir: &Path, digest: &Digest) -> Result<PathBuf> {
    let Some(hex) = digest.hex() else {
        return Err(Error::UnsupportedDigest {
            digest: digest.to_string(),
        });
    };
    Ok(dir.join("blobs").join("sha256").join(hex))
}

fn read_index(dir: &Path) -> Result<Index> {
    let p = dir.join("index.json");
    // Bounded by what is actually read: `stat` of a symlink to /dev/zero says 0
    // bytes, and a FIFO would block the open.
    let raw = fsio::read_limited(&p, MAX_IN_MEMORY_BLOB).map_err(|e| Error::io(&p, e))?;
    serde_json::from_slice(&raw).map_err(|e| Error::json(p.display().to_string(), e))
}

/// An OCI image layout directory read as an image source.
pub struct OciLayoutSource {
    reference: ImageRef,
    dir: PathBuf,
    tag: Option<String>,
}

impl OciLayoutSource {
    /// Open `oci:DIR[:TAG]`; fails early if `DIR/index.json` is unreadable.
    pub fn open(reference: ImageRef) -> Result<Self> {
        let ImageRef::OciLayout { dir, tag } = &reference else {
            return Err(Error::invalid_reference(
                &reference,
                "not an oci: reference",
            ));
        };
        let (dir, tag) = (dir.clone(), tag.clone());
        read_index(&dir)?;
        Ok(OciLayoutSource {
            reference,
            dir,
            tag,
        })
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Open a blob: a regular file (not a device or FIFO behind a symlink) no
    /// longer than its descriptor says. Returns the file and its length.
    fn open_file(&self, d: &Descriptor) -> Result<(File, u64)> {
        require_sha256(&d.digest)?;
        let p = blob_path(&self.dir, &d.digest)?;
        let f = fsio::open_regular(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::BlobNotFound {
                    image: self.reference.to_string(),
                    digest: d.digest.to_string(),
                }
            } else {
                Error::io(&p, e)
            }
        })?;
        let len = file_len(&f, &p)?;
        if d.size > 0 && len != d.size as u64 {
            return Err(Error::SizeMismatch {
                what: format!("{}: blob {}", self.reference, d.digest),
                expected: d.size as u64,
                actual: len,
            });
        }
        Ok((f, len))
    }
}

impl ImageSource for OciLayoutSource {
    fn reference(&self) -> &ImageRef {
        &self.reference
    }

    fn resolve_root(&self) -> Result<(Descriptor, Vec<u8>)> {
        let index = read_index(&self.dir)?;
        let tag_of = |d: &Descriptor| d.annotations.get(ANNOTATION_REF_NAME).cloned();
        let root = match &self.tag {
            Some(t) => index
                .manifests
                .iter()
                .find(|d| tag_of(d).as_deref() == Some(t.as_str())),
            None if index.manifests.len() == 1 => index.manifests.first(),
            None => None,
        };
        let Some(root) = root.cloned() else {
            let tags: Vec<String> = index.manifests.iter().filter_map(tag_of).collect();
            let tags = if tags.is_empty() {
                "none".to_string()
            } else {
                tags.join(", ")
            };
            let reason = match &self.tag {
                Some(t) => format!("no manifest tagged {t:?} in index.json; tags: {tags}"),
                None => format!(
                    "index.json has {} manifests: say which one with oci:DIR:TAG; tags: {tags}",
                    index.manifests.len()
                ),
            };
            return Err(Error::bad_image(&self.reference, reason));
        };
        let raw = self.fetch_blob(&root)?;
        let mut root = root;
        if root.media_type.is_empty() {
            root.media_type = spec::sniff_media_type(&raw).unwrap_or_default();
        }
        Ok((root, raw))
    }

    fn fetch_blob(&self, d: &Descriptor) -> Result<Vec<u8>> {
        check_small(&self.reference, d)?;
        let (f, len) = self.open_file(d)?;
        let mut buf = Vec::with_capacity(d.size.max(0) as usize);
        // The file may grow after the size check: read no more than was checked.
        fsio::LimitedReader::new(f, len.min(MAX_IN_MEMORY_BLOB))
            .read_to_end(&mut buf)
            .map_err(|e| {
                let path = blob_path(&self.dir, &d.digest);
                Error::io(path.unwrap_or_default(), e)
            })?;
        verify_blob(&format!("{}: blob", self.reference), d, &buf)?;
        Ok(buf)
    }

    fn open_blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send>> {
        let (f, len) = self.open_file(d)?;
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 16,
            fsio::LimitedReader::new(f, len),
        )))
    }

    fn read_blob_range(&self, d: &Descriptor, range: Range<u64>) -> Result<Vec<u8>> {
        let (mut f, len) = self.open_file(d)?;
        let path = blob_path(&self.dir, &d.digest)?;
        read_range_from(
            &mut f,
            &path,
            0,
            len,
            range,
            &self.reference,
            d.digest.as_str(),
        )
    }
}

pub(crate) fn file_len(f: &File, path: &Path) -> Result<u64> {
    Ok(f.metadata().map_err(|e| Error::io(path, e))?.len())
}

/// Read `range` of a blob stored at `base..base+len` of an open file.
pub(crate) fn read_range_from(
    f: &mut File,
    path: &Path,
    base: u64,
    len: u64,
    range: Range<u64>,
    image: &ImageRef,
    digest: &str,
) -> Result<Vec<u8>> {
    if range.start > range.end || range.end > len {
        return Err(Error::bad_image(
            image,
            format!(
                "range {}..{} is outside blob {digest} of {len} bytes",
                range.start, range.end
            ),
        ));
    }
    f.seek(SeekFrom::Start(base + range.start))
        .map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

/// Writes blobs and tags into an OCI image layout. Every write goes through
/// [`fsio`]'s atomic writer (an exclusive, unfollowed, locked temporary named
/// `.tmp-PID-…` beside the destination, fsynced, renamed, directory fsynced), so
/// readers never see a partial blob or `index.json` and a symlink planted at a
/// temporary name is never written through.
pub struct OciLayoutWriter {
    dir: PathBuf,
}

/// Name prefix of the writer's temporaries (in the layout and in `blobs/sha256`).
pub const TMP_PREFIX: &str = ".tmp-";

fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().expect("layout paths have a parent");
    fsio::write_atomic(dir, TMP_PREFIX, dest, bytes).map_err(|e| Error::io(dest, e))
}

impl OciLayoutWriter {
    /// Open a layout for writing, creating `oci-layout`, `blobs/sha256/` and an
    /// empty `index.json` when absent. `blobs` and `blobs/sha256` must be real
    /// directories (not symlinks). Temporaries left by writers that died (killed
    /// mid-copy) are removed; a live writer's are kept.
    pub fn create(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        for d in [dir.join("blobs"), blobs.clone()] {
            fsio::require_real_dir(&d).map_err(|e| Error::io(&d, e))?;
        }
        for d in [&dir, &blobs] {
            fsio::clean_stale_temps(d, TMP_PREFIX, fsio::STALE_TMP_AGE)
                .map_err(|e| Error::io(d, e))?;
        }
        let layout = dir.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = dir.join("index.json");
        if !index.exists() {
            let empty: Index = Index {
                schema_version: 2,
                media_type: spec::MEDIA_TYPE_OCI_INDEX.into(),
                ..Default::default()
            };
            write_atomic(&index, &spec::to_go_json(&empty))?;
        }
        Ok(OciLayoutWriter { dir })
    }

    /// The layout directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the layout holds the blob `digest` (its file exists).
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(blob_path(&self.dir, digest)?.exists())
    }

    /// Store `bytes` as a blob; returns its digest. Existing blobs are kept.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let dest = blob_path(&self.dir, &digest)?;
        if !dest.exists() {
            write_atomic(&dest, bytes)?;
        }
        Ok(digest)
    }

    /// Stream a blob into the layout, verifying it against `d` before it
    /// becomes visible (a mismatch leaves nothing behind).
    pub fn put_blob_from_reader(&self, d: &Descriptor, mut reader: impl Read) -> Result<()> {
        require_sha256(&d.digest)?;
        let dest = blob_path(&self.dir, &d.digest)?;
        if dest.exists() {
            return Ok(());
        }
        let parent = dest.parent().expect("blob path has a parent");
        let mut tmp =
            fsio::TempFile::new_in(parent, TMP_PREFIX).map_err(|e| Error::io(parent, e))?;
        let tmp_path = tmp.path().to_path_buf();
        let mut w = soci_digest::Hashing::new(&mut tmp);
        std::io::copy(&mut reader, &mut w).map_err(|e| Error::io(&tmp_path, e))?;
        let (digest, n) = (w.digest(), w.size());
        if d.digest != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob written to {}", self.dir.display()),
                expected: d.digest.to_string(),
                actual: digest,
            });
        }
        if d.size > 0 && n != d.size as u64 {
            return Err(Error::SizeMismatch {
                what: format!("blob {}", d.digest),
                expected: d.size as u64,
                actual: n,
            });
        }
        // Dropping `tmp` on an error above removes it.
        tmp.persist(&dest).map_err(|e| Error::io(&dest, e))
    }

    /// The current `index.json`.
    pub fn index(&self) -> Result<Index> {
        read_index(&self.dir)
    }

    /// Replace `index.json` (written Go-canonical, atomically).
    pub fn write_index(&self, index: &Index) -> Result<()> {
        write_atomic(&self.dir.join("index.json"), &spec::to_go_json(index))
    }

    /// Point `tag` at `desc` in `index.json`: entries already carrying that tag
    /// are removed, `desc` is appended with the `ref.name` annotation.
    pub fn tag(&self, tag: &str, desc: &Descriptor) -> Result<()> {
        let mut index = self.index()?;
        index
            .manifests
            .retain(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(tag));
        let mut d = desc.clone();
        d.annotations.insert(ANNOTATION_REF_NAME.into(), tag.into());
        index.manifests.push(d);
        if index.schema_version == 0 {
            index.schema_version = 2;
        }
        self.write_index(&index)
    }

    /// Store a manifest (or index) byte-exact and tag it; returns its descriptor
    /// (without the tag annotation).
    pub fn put_manifest(
        &self,
        tag: Option<&str>,
        raw: &[u8],
        media_type: &str,
    ) -> Result<Descriptor> {
        let digest = self.put_blob(raw)?;
        let desc = Descriptor::new(media_type, digest, raw.len() as i64);
        if let Some(t) = tag {
            self.tag(t, &desc)?;
        }
        Ok(desc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor's digest is a parsed [`Digest`], so a path-like digest
    /// cannot even be put into one; a well-formed digest of another algorithm
    /// is refused by name at the layout's boundary, and nothing is written
    /// outside the layout.
    #[test]
    fn a_descriptor_digest_is_parsed_before_it_becomes_a_path() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("layout");
        let w = OciLayoutWriter::create(&dir).unwrap();
        let hex = "a".repeat(64);
        for bad in [
            format!("sha256:../../{}", &hex[6..]),
            "sha256:../../../escaped".to_string(),
        ] {
            let json = format!(r#"{{"mediaType":"m","digest":{bad:?},"size":1}}"#);
            let e = serde_json::from_str::<Descriptor>(&json).unwrap_err();
            assert!(e.to_string().starts_with("invalid digest"), "{bad}: {e}");
        }
        let sha512 = format!("sha512:{}", "a".repeat(128));
        let d = Descriptor::new("m", Digest::parse(&sha512).unwrap(), 1);
        let e = w.put_blob_from_reader(&d, &b"x"[..]).unwrap_err();
        assert!(e.to_string().starts_with("unsupported digest"), "{e}");
        let src = OciLayoutSource::open(ImageRef::OciLayout {
            dir: dir.clone(),
            tag: None,
        })
        .unwrap();
        let e = src.open_blob(&d).err().expect("opened");
        assert!(e.to_string().starts_with("unsupported digest"), "{e}");
        // Nothing was written beside the layout.
        let beside: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, ["layout"]);

        let d = Digest::of(b"x");
        assert_eq!(
            blob_path(&dir, &d).unwrap(),
            dir.join("blobs/sha256").join(d.hex().unwrap())
        );
        assert!(!w.has_blob(&d).unwrap());
        assert_eq!(w.put_blob(b"x").unwrap(), d.as_str());
        assert!(w.has_blob(&d).unwrap());
    }
}
