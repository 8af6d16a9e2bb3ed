//! The local store: an OCI image layout that other OCI tools can read, plus a small
//! artifacts database.
//!
//! ```text
//! <dir>/oci-layout               {"imageLayoutVersion":"1.0.0"}
//! <dir>/index.json               OCI index listing the recorded SOCI index manifests (and roots added by callers)
//! <dir>/blobs/sha256/<hex>       content-addressed blobs (ztocs, prefetch artifacts, {} config, index manifests, ...)
//! <dir>/soci/artifacts/*.json    one JSON file per artifact record
//! <dir>/soci/tmp/                temp files (same filesystem, so rename is atomic)
//! <dir>/soci/lock                flock(2) lock for read-modify-write of index.json and removals
//! ```
//!
//! Crash and concurrency safety: every file is written to `soci/tmp`, fsynced and
//! renamed into place (then the directory is fsynced), so a blob, record or
//! `index.json` is either absent or complete. Records are one file each, so
//! concurrent writers (threads or processes) never lose each other's rows; the only
//! shared document, `index.json`, is updated under an exclusive `flock`. Temp files
//! left by a crashed writer are removed by [`Store::open`] (owner process gone, or
//! older than a day).
use crate::error::{digest_hex, Error, Result};
use crate::manifest::{parse_index_manifest, IndexVersion, PrefetchRecord, ZtocRecord};
use crate::*;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use soci_oci::spec::{self, Descriptor, Index, Platform};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Temp files older than this are removed whoever owns them.
const STALE_TMP_AGE: Duration = Duration::from_secs(24 * 3600);
/// OCI annotation naming a tag in an image layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Kind of an artifact record (names as in the reference artifacts.db).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArtifactKind {
    #[serde(rename = "soci_index")]
    Index,
    /// A ztoc.
    #[serde(rename = "soci_layer")]
    Layer,
    #[serde(rename = "soci_prefetch")]
    Prefetch,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Index => "soci_index",
            ArtifactKind::Layer => "soci_layer",
            ArtifactKind::Prefetch => "soci_prefetch",
        }
    }
}

impl std::fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the artifacts database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub digest: String,
    pub size: u64,
    pub kind: ArtifactKind,
    pub media_type: String,
    /// Index: v1/v2 artifact type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
    /// Ztoc, prefetch: the image layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_digest: Option<String>,
    /// Ztoc: the layer's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_media_type: Option<String>,
    /// Ztoc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_size: Option<u64>,
    /// Ztoc: build options that change what is recorded about it (e.g. `"xattr"`
    /// for the disable-xattrs rule); part of the reuse key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
    /// Ztoc: whether the disable-xattrs rule applied (when `options` has `xattr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_xattrs: Option<bool>,
    /// Index: the image reference it was built for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<String>,
    /// Index: the image target digest (index / manifest list / manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// Index: the platform image manifest digest (v1 subject; for v2 the converted manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// Index: build platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Index: v1 or v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_version: Option<IndexVersion>,
    /// RFC 3339 UTC, nanoseconds.
    pub created_at: String,
}

impl ArtifactRecord {
    /// The ztoc as an index entry (for reuse). `None` unless a ztoc record.
    pub fn to_ztoc_record(&self) -> Option<ZtocRecord> {
        if self.kind != ArtifactKind::Layer {
            return None;
        }
        Some(ZtocRecord {
            ztoc_digest: self.digest.clone(),
            ztoc_size: self.size,
            layer_digest: self.layer_digest.clone()?,
            layer_media_type: self.layer_media_type.clone().unwrap_or_default(),
            span_size: self.span_size?,
            disable_xattrs: self.disable_xattrs.unwrap_or(false),
        })
    }

    /// `{mediaType, digest, size[, artifactType]}`.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size as i64,
            artifact_type: self.artifact_type.clone(),
            ..Default::default()
        }
    }

    fn file_name(&self) -> Result<String> {
        let hex = digest_hex(&self.digest)?;
        let key = format!(
            "{}\0{}\0{}\0{}",
            self.layer_digest.as_deref().unwrap_or(""),
            self.span_size.map(|s| s.to_string()).unwrap_or_default(),
            self.options,
            self.kind.as_str()
        );
        let key_hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
        Ok(match self.kind {
            // One row per index digest (re-recording updates it).
            ArtifactKind::Index => format!("{}-{hex}.json", self.kind),
            _ => format!("{}-{hex}-{}.json", self.kind, &key_hash[..16]),
        })
    }
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobRef {
    pub digest: String,
    pub size: u64,
}

/// What to record for a SOCI index (see [`Store::record_index`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub digest: String,
    pub size: u64,
    pub version: IndexVersion,
    pub image_ref: Option<String>,
    pub image_digest: Option<String>,
    pub manifest_digest: String,
    pub platform: Option<Platform>,
}

/// Filter for [`Store::list_indexes`]; `None` = any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFilter {
    pub image_ref: Option<String>,
    pub manifest_digest: Option<String>,
    pub image_digest: Option<String>,
}

/// Filter for [`Store::list_ztocs`]; `None` = any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZtocFilter {
    pub layer_digest: Option<String>,
    pub ztoc_digest: Option<String>,
}

/// A handle on a store directory. Cheap; several handles (threads, processes) may
/// use the same directory at once.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

fn mkdir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io(path, e))
}

fn fsync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence/permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Exclusive flock held until dropped.
struct LockGuard {
    _file: File,
}

impl Store {
    /// Open (creating if needed, mode 0700) a store at `dir`, and remove temp files
    /// left by crashed writers.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let store = Store {
            dir: dir.as_ref().to_path_buf(),
        };
        mkdir(&store.dir)?;
        mkdir(&store.dir.join("blobs").join("sha256"))?;
        mkdir(&store.artifacts_dir())?;
        mkdir(&store.tmp_dir())?;
        store.clean_tmp()?;
        let layout = store.dir.join("oci-layout");
        if !layout.exists() {
            store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !store.index_json_path().exists() {
            let _g = store.lock()?;
            if !store.index_json_path().exists() {
                store.write_index_json(&Index {
                    schema_version: 2,
                    media_type: spec::MEDIA_TYPE_OCI_INDEX.into(),
                    ..Default::default()
                })?;
            }
        }
        Ok(store)
    }

    /// `$XDG_DATA_HOME/soci-rs`, else `$HOME/.local/share/soci-rs`.
    pub fn default_dir() -> Result<PathBuf> {
        if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
            let p = PathBuf::from(x);
            if p.is_absolute() {
                return Ok(p.join("soci-rs"));
            }
        }
        match std::env::var_os("HOME") {
            Some(h) if !h.is_empty() => Ok(PathBuf::from(h).join(".local/share/soci-rs")),
            _ => Err(Error::NoHomeDir),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn artifacts_dir(&self) -> PathBuf {
        self.dir.join("soci").join("artifacts")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("soci").join("tmp")
    }

    fn index_json_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self
            .dir
            .join("blobs")
            .join("sha256")
            .join(digest_hex(digest)?))
    }

    fn lock(&self) -> Result<LockGuard> {
        let path = self.dir.join("soci").join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        loop {
            // SAFETY: flock on a valid fd we own.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(LockGuard { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io(&path, err));
            }
        }
    }

    fn new_tmp(&self) -> Result<(File, PathBuf)> {
        let dir = self.tmp_dir();
        loop {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            let name = format!(
                "{}-{}-{nanos}.tmp",
                std::process::id(),
                TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = dir.join(name);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
            {
                Ok(f) => return Ok((f, path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }

    /// Write `bytes` to `dest` atomically: temp file, fsync, rename, fsync dir.
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let (mut f, tmp) = self.new_tmp()?;
        let res = f.write_all(bytes).and_then(|_| f.sync_all());
        drop(f);
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&tmp, e));
        }
        if let Err(e) = fs::rename(&tmp, dest) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(dest, e));
        }
        fsync_dir(dest.parent().unwrap_or(&self.dir))
    }

    /// Remove temp files whose writer is gone (or that are older than a day).
    /// Returns how many were removed.
    pub fn clean_tmp(&self) -> Result<usize> {
        let dir = self.tmp_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let me = std::process::id() as i32;
        let mut removed = 0;
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let pid: Option<i32> = name
                .split('-')
                .next()
                .and_then(|p| p.parse().ok())
                .filter(|p| *p > 0);
            let old = ent
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > STALE_TMP_AGE);
            let stale = match pid {
                None => true,
                Some(p) if p == me => old,
                Some(p) => old || !pid_alive(p),
            };
            if stale && fs::remove_file(ent.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    // ---- blobs ----

    /// A writer that hashes while writing into a temp file; the blob appears under
    /// `blobs/sha256/` only at [`BlobWriter::commit`].
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let (file, tmp) = self.new_tmp()?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(file),
            tmp,
            hasher: sha2::Sha256::new(),
            size: 0,
        })
    }

    /// Store bytes; returns their digest and size.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef> {
        let digest = spec::sha256_digest(bytes);
        if self.has_blob(&digest) {
            return Ok(BlobRef {
                digest,
                size: bytes.len() as u64,
            });
        }
        let mut w = self.blob_writer()?;
        w.write_all(bytes).map_err(|e| Error::io(&w.tmp, e))?;
        w.commit_expecting(&digest)
    }

    /// Store bytes that must have digest `expected`.
    pub fn put_blob_expecting(&self, bytes: &[u8], expected: &str) -> Result<BlobRef> {
        digest_hex(expected)?;
        let actual = spec::sha256_digest(bytes);
        if actual != expected {
            return Err(Error::DigestMismatch {
                expected: expected.to_string(),
                actual,
            });
        }
        self.put_blob(bytes)
    }

    /// Store the content of a file (copied through a hashing writer; the file is
    /// left as it is).
    pub fn put_blob_from_file(&self, path: impl AsRef<Path>) -> Result<BlobRef> {
        let path = path.as_ref();
        let mut src = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut w = self.blob_writer()?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(path, e)),
            };
            w.write_all(&buf[..n]).map_err(|e| Error::io(path, e))?;
        }
        w.commit()
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Open a blob for reading.
    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let p = self.blob_path(digest)?;
        File::open(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BlobNotFound(digest.to_string()),
            _ => Error::io(&p, e),
        })
    }

    /// Read a whole blob.
    pub fn get_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BlobNotFound(digest.to_string()),
            _ => Error::io(&p, e),
        })
    }

    /// Read and parse a stored SOCI index manifest.
    pub fn get_index_manifest(&self, digest: &str) -> Result<crate::ParsedIndex> {
        parse_index_manifest(&self.get_blob(digest)?)
    }

    fn remove_blob(&self, digest: &str) -> Result<()> {
        let p = self.blob_path(digest)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    // ---- artifact records ----

    /// Write a record as is (`created_at` filled in when empty). Records are keyed
    /// by kind + digest (+ layer, span size, options for ztocs and prefetches):
    /// writing the same key again replaces the row.
    pub fn record(&self, rec: &ArtifactRecord) -> Result<ArtifactRecord> {
        let mut rec = rec.clone();
        if rec.created_at.is_empty() {
            rec.created_at = crate::time::now();
        }
        let path = self.artifacts_dir().join(rec.file_name()?);
        let bytes =
            serde_json::to_vec_pretty(&rec).map_err(|e| Error::json(rec.digest.clone(), e))?;
        self.write_atomic(&path, &bytes)?;
        Ok(rec)
    }

    fn require_blob(&self, digest: &str, size: u64) -> Result<()> {
        let p = self.blob_path(digest)?;
        let meta = fs::metadata(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BlobNotFound(digest.to_string()),
            _ => Error::io(&p, e),
        })?;
        if meta.len() != size {
            return Err(Error::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual: meta.len(),
            });
        }
        Ok(())
    }

    /// Record a ztoc (its blob must be stored). `options` is the reuse key part for
    /// build options (`""` or `"xattr"`).
    pub fn record_ztoc(&self, ztoc: &ZtocRecord, options: &str) -> Result<ArtifactRecord> {
        self.require_blob(&ztoc.ztoc_digest, ztoc.ztoc_size)?;
        self.record(&ArtifactRecord {
            digest: ztoc.ztoc_digest.clone(),
            size: ztoc.ztoc_size,
            kind: ArtifactKind::Layer,
            media_type: SOCI_LAYER_MEDIA_TYPE.into(),
            artifact_type: String::new(),
            layer_digest: Some(ztoc.layer_digest.clone()),
            layer_media_type: Some(ztoc.layer_media_type.clone()),
            span_size: Some(ztoc.span_size),
            options: options.to_string(),
            disable_xattrs: Some(ztoc.disable_xattrs),
            image_ref: None,
            image_digest: None,
            manifest_digest: None,
            platform: None,
            manifest_version: None,
            created_at: String::new(),
        })
    }

    /// Record a prefetch artifact (its blob must be stored).
    pub fn record_prefetch(&self, p: &PrefetchRecord) -> Result<ArtifactRecord> {
        self.require_blob(&p.digest, p.size)?;
        self.record(&ArtifactRecord {
            digest: p.digest.clone(),
            size: p.size,
            kind: ArtifactKind::Prefetch,
            media_type: SOCI_PREFETCH_MEDIA_TYPE.into(),
            artifact_type: String::new(),
            layer_digest: Some(p.layer_digest.clone()),
            layer_media_type: None,
            span_size: None,
            options: String::new(),
            disable_xattrs: None,
            image_ref: None,
            image_digest: None,
            manifest_digest: None,
            platform: None,
            manifest_version: None,
            created_at: String::new(),
        })
    }

    /// Record a SOCI index manifest (its blob must be stored): stores the `{}`
    /// config blob, writes the row (replacing an earlier row for the same digest)
    /// and lists the index in `index.json`.
    pub fn record_index(&self, e: &IndexEntry) -> Result<ArtifactRecord> {
        self.require_blob(&e.digest, e.size)?;
        self.put_blob(EMPTY_CONFIG_CONTENT)?;
        let rec = ArtifactRecord {
            digest: e.digest.clone(),
            size: e.size,
            kind: ArtifactKind::Index,
            media_type: SOCI_INDEX_MEDIA_TYPE.into(),
            artifact_type: e.version.artifact_type().into(),
            layer_digest: None,
            layer_media_type: None,
            span_size: None,
            options: String::new(),
            disable_xattrs: None,
            image_ref: e.image_ref.clone(),
            image_digest: e.image_digest.clone(),
            manifest_digest: Some(e.manifest_digest.clone()),
            platform: e.platform.clone(),
            manifest_version: Some(e.version),
            created_at: String::new(),
        };
        let _g = self.lock()?;
        let rec = self.record(&rec)?;
        let mut idx = self.read_index_json()?;
        let desc = rec.descriptor();
        match idx.manifests.iter().position(|d| d.digest == desc.digest) {
            Some(i) => idx.manifests[i] = desc,
            None => idx.manifests.push(desc),
        }
        self.write_index_json(&idx)?;
        Ok(rec)
    }

    /// All records (unreadable files, e.g. from a newer version, are skipped),
    /// sorted by digest then creation time.
    pub fn artifacts(&self) -> Result<Vec<ArtifactRecord>> {
        let dir = self.artifacts_dir();
        let rd = fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&dir, e))?;
            let name = ent.file_name();
            if !name.to_string_lossy().ends_with(".json") {
                continue;
            }
            let bytes = match fs::read(ent.path()) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // removed meanwhile
                Err(e) => return Err(Error::io(ent.path(), e)),
            };
            if let Ok(rec) = serde_json::from_slice::<ArtifactRecord>(&bytes) {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| (&a.digest, &a.created_at).cmp(&(&b.digest, &b.created_at)));
        Ok(out)
    }

    /// Records of one digest (any kind).
    pub fn get_artifact(&self, digest: &str) -> Result<Vec<ArtifactRecord>> {
        Ok(self
            .artifacts()?
            .into_iter()
            .filter(|r| r.digest == digest)
            .collect())
    }

    /// A reusable ztoc for this layer, span size and options whose blob is present
    /// (newest if several).
    pub fn find_ztoc(
        &self,
        layer_digest: &str,
        span_size: u64,
        options: &str,
    ) -> Result<Option<ArtifactRecord>> {
        let mut found: Vec<ArtifactRecord> = self
            .artifacts()?
            .into_iter()
            .filter(|r| {
                r.kind == ArtifactKind::Layer
                    && r.layer_digest.as_deref() == Some(layer_digest)
                    && r.span_size == Some(span_size)
                    && r.options == options
                    && self.has_blob(&r.digest)
            })
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(found.into_iter().next())
    }

    /// SOCI index records matching `filter`, newest first.
    pub fn list_indexes(&self, filter: &IndexFilter) -> Result<Vec<ArtifactRecord>> {
        let mut v: Vec<ArtifactRecord> = self
            .artifacts()?
            .into_iter()
            .filter(|r| r.kind == ArtifactKind::Index)
            .filter(|r| {
                filter
                    .image_ref
                    .as_ref()
                    .is_none_or(|f| r.image_ref.as_ref() == Some(f))
            })
            .filter(|r| {
                filter
                    .manifest_digest
                    .as_ref()
                    .is_none_or(|f| r.manifest_digest.as_ref() == Some(f))
            })
            .filter(|r| {
                filter
                    .image_digest
                    .as_ref()
                    .is_none_or(|f| r.image_digest.as_ref() == Some(f))
            })
            .collect();
        v.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.digest.cmp(&b.digest))
        });
        Ok(v)
    }

    /// Ztoc records matching `filter`, by digest.
    pub fn list_ztocs(&self, filter: &ZtocFilter) -> Result<Vec<ArtifactRecord>> {
        Ok(self
            .artifacts()?
            .into_iter()
            .filter(|r| r.kind == ArtifactKind::Layer)
            .filter(|r| {
                filter
                    .layer_digest
                    .as_ref()
                    .is_none_or(|f| r.layer_digest.as_ref() == Some(f))
            })
            .filter(|r| filter.ztoc_digest.as_ref().is_none_or(|f| &r.digest == f))
            .collect())
    }

    /// Prefetch artifact records, newest first.
    pub fn list_prefetches(&self) -> Result<Vec<ArtifactRecord>> {
        let mut v: Vec<ArtifactRecord> = self
            .artifacts()?
            .into_iter()
            .filter(|r| r.kind == ArtifactKind::Prefetch)
            .collect();
        v.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.digest.cmp(&b.digest))
        });
        Ok(v)
    }

    fn remove_records(&self, pred: impl Fn(&ArtifactRecord) -> bool) -> Result<()> {
        for rec in self.artifacts()?.into_iter().filter(|r| pred(r)) {
            let p = self.artifacts_dir().join(rec.file_name()?);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        fsync_dir(&self.artifacts_dir())
    }

    /// Remove a SOCI index: its row, its blob, its `index.json` entry, and the
    /// ztoc/prefetch blobs and rows that no remaining index references. Returns the
    /// digests removed (index first).
    pub fn remove_index(&self, digest: &str) -> Result<Vec<String>> {
        let _g = self.lock()?;
        let all = self.artifacts()?;
        let rows: Vec<&ArtifactRecord> = all.iter().filter(|r| r.digest == digest).collect();
        if rows.is_empty() {
            return Err(Error::ArtifactNotFound(digest.to_string()));
        }
        if let Some(r) = rows.iter().find(|r| r.kind != ArtifactKind::Index) {
            return Err(Error::NotAnIndex {
                digest: digest.to_string(),
                kind: r.kind.to_string(),
            });
        }
        let referenced_by = |index_digest: &str| -> Vec<String> {
            self.get_blob(index_digest)
                .ok()
                .and_then(|b| parse_index_manifest(&b).ok())
                .map(|p| p.manifest.layers.into_iter().map(|d| d.digest).collect())
                .unwrap_or_default()
        };
        let mine = referenced_by(digest);
        let mut still_used = std::collections::HashSet::new();
        for r in all
            .iter()
            .filter(|r| r.kind == ArtifactKind::Index && r.digest != digest)
        {
            still_used.extend(referenced_by(&r.digest));
        }
        let mut removed = vec![digest.to_string()];
        self.remove_records(|r| r.digest == digest)?;
        self.remove_blob(digest)?;
        for d in mine {
            if still_used.contains(&d) || removed.contains(&d) || d == EMPTY_CONFIG_DIGEST {
                continue;
            }
            self.remove_records(|r| r.digest == d && r.kind != ArtifactKind::Index)?;
            self.remove_blob(&d)?;
            removed.push(d);
        }
        let mut idx = self.read_index_json()?;
        idx.manifests.retain(|m| m.digest != digest);
        self.write_index_json(&idx)?;
        Ok(removed)
    }

    // ---- index.json ----

    fn read_index_json(&self) -> Result<Index> {
        let p = self.index_json_path();
        match fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| Error::json(p.display().to_string(), e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                media_type: spec::MEDIA_TYPE_OCI_INDEX.into(),
                ..Default::default()
            }),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    fn write_index_json(&self, idx: &Index) -> Result<()> {
        self.write_atomic(&self.index_json_path(), &spec::to_go_json(idx))
    }

    /// The descriptors listed in `index.json`.
    pub fn roots(&self) -> Result<Vec<Descriptor>> {
        Ok(self.read_index_json()?.manifests)
    }

    /// List a descriptor in `index.json` (e.g. a converted image, with an
    /// `org.opencontainers.image.ref.name` annotation to tag it). Replaces an entry
    /// with the same ref name, else one with the same digest and no ref name.
    pub fn add_root(&self, desc: &Descriptor) -> Result<()> {
        self.require_blob(&desc.digest, desc.size.max(0) as u64)?;
        let _g = self.lock()?;
        let mut idx = self.read_index_json()?;
        let name = desc.annotations.get(ANNOTATION_REF_NAME);
        let pos = match name {
            Some(n) => idx
                .manifests
                .iter()
                .position(|d| d.annotations.get(ANNOTATION_REF_NAME) == Some(n)),
            None => idx.manifests.iter().position(|d| {
                d.digest == desc.digest && !d.annotations.contains_key(ANNOTATION_REF_NAME)
            }),
        };
        match pos {
            Some(i) => idx.manifests[i] = desc.clone(),
            None => idx.manifests.push(desc.clone()),
        }
        self.write_index_json(&idx)
    }

    /// Remove every `index.json` entry with this digest (blobs are kept).
    pub fn remove_root(&self, digest: &str) -> Result<()> {
        let _g = self.lock()?;
        let mut idx = self.read_index_json()?;
        idx.manifests.retain(|m| m.digest != digest);
        self.write_index_json(&idx)
    }
}

/// Streaming blob writer; see [`Store::blob_writer`]. Dropping it without
/// committing removes the temp file.
pub struct BlobWriter {
    store: Store,
    file: Option<File>,
    tmp: PathBuf,
    hasher: sha2::Sha256,
    size: u64,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("blob writer already committed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Path of the temp file (not visible as a blob).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// fsync and move into `blobs/sha256/<hex>`.
    pub fn commit(self) -> Result<BlobRef> {
        self.finish(None)
    }

    /// Like [`commit`](Self::commit) but fail (and discard) unless the content has
    /// digest `expected`.
    pub fn commit_expecting(self, expected: &str) -> Result<BlobRef> {
        self.finish(Some(expected))
    }

    fn finish(mut self, expected: Option<&str>) -> Result<BlobRef> {
        let file = self.file.take().expect("file present until finish");
        let digest = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        let result = (|| {
            if let Some(exp) = expected {
                digest_hex(exp)?;
                if exp != digest {
                    return Err(Error::DigestMismatch {
                        expected: exp.to_string(),
                        actual: digest.clone(),
                    });
                }
            }
            file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
            drop(file);
            let dest = self.store.blob_path(&digest)?;
            if dest.is_file() {
                return Ok(());
            }
            fs::rename(&self.tmp, &dest).map_err(|e| Error::io(&dest, e))?;
            fsync_dir(dest.parent().expect("blob has a parent"))
        })();
        let _ = fs::remove_file(&self.tmp); // no-op after a successful rename
        result.map(|()| BlobRef {
            digest,
            size: self.size,
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
