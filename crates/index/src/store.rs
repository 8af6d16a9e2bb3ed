//! The local store: an OCI image layout that other OCI tools can read, plus a small
//! artifacts database.
//!
//! ```text
//! <dir>/oci-layout               {"imageLayoutVersion":"1.0.0"}
//! <dir>/index.json               OCI index listing the recorded SOCI index manifests (and roots added by callers)
//! <dir>/blobs/sha256/<hex>       content-addressed blobs (ztocs, prefetch artifacts, {} config, index manifests, ...)
//! <dir>/soci/artifacts/*.json    one JSON file per artifact record
//! <dir>/soci/by-layer/<key>      the newest ztoc record per (layer, span size, options): the reuse lookup reads one file
//! <dir>/soci/tmp/                temp files (same filesystem, so rename is atomic)
//! <dir>/soci/lock                flock(2) lock for read-modify-write of index.json and removals
//! ```
//!
//! Crash and concurrency safety: every file is written with soci-oci's one atomic
//! writer ([`soci_oci::fsio`]: an exclusive, unfollowed temporary in `soci/tmp`,
//! fsynced and renamed into place, then the directory fsynced), so a blob, record
//! or `index.json` is either absent or complete. Records are one file each, so
//! concurrent writers (threads or processes) never lose each other's rows; the only
//! shared document, `index.json`, is updated under an exclusive `flock`, and so is
//! every removal and the final check that an index's blobs are all present
//! (threads of one process recording indexes at once share one lock and one
//! `index.json` rewrite; each returns once its own entry is durably listed). Temp
//! files left by a crashed writer are removed by [`Store::open`] (lock free and
//! owner process gone, or older than a day). The store's internal directories must
//! be real directories: a symlink among them is refused, never followed.
use crate::error::{check_content, Error, Result};
use crate::manifest::{parse_index_manifest, IndexVersion, PrefetchRecord, ZtocRecord};
use crate::*;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use soci_digest::Digest;
use soci_digest::Sha256Hasher;
use soci_oci::fsio::{self, TempFile};
use soci_oci::spec::{self, Descriptor, Index, Platform};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// OCI annotation naming a tag in an image layout's `index.json`.
pub use soci_oci::spec::ANNOTATION_REF_NAME;
/// Largest `index.json` the store reads (about 200k entries).
const MAX_INDEX_JSON: u64 = 64 << 20;
/// Largest artifact record read.
const MAX_RECORD: u64 = 1 << 20;

/// Kind of an artifact record (names as in the reference artifacts.db).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArtifactKind {
    /// A SOCI index manifest.
    #[serde(rename = "soci_index")]
    Index,
    /// A ztoc.
    #[serde(rename = "soci_layer")]
    Layer,
    /// A prefetch artifact.
    #[serde(rename = "soci_prefetch")]
    Prefetch,
}

impl ArtifactKind {
    /// The kind's name as stored in records (`soci_index`, `soci_layer`, `soci_prefetch`).
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
    /// Digest of the artifact's blob.
    pub digest: Digest,
    /// Size in bytes of the blob.
    pub size: u64,
    /// What kind of artifact the blob is.
    pub kind: ArtifactKind,
    /// Media type of the blob.
    pub media_type: String,
    /// Index: v1/v2 artifact type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
    /// Ztoc, prefetch: the image layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_digest: Option<Digest>,
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
    pub image_digest: Option<Digest>,
    /// Index: the platform image manifest digest (v1 subject; for v2 the converted manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<Digest>,
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
            artifact_type: self.artifact_type.clone(),
            ..Descriptor::new(
                self.media_type.clone(),
                self.digest.clone(),
                self.size as i64,
            )
        }
    }

    /// The reuse key: what a ztoc is looked up by (`soci/by-layer/<key>`).
    fn key_hash(&self) -> String {
        reuse_key(
            self.layer_digest.as_ref().map_or("", Digest::as_str),
            self.span_size,
            &self.options,
            self.kind,
        )
    }

    fn file_name(&self) -> Result<String> {
        let hex = self
            .digest
            .hex()
            .ok_or_else(|| Error::InvalidDigest(self.digest.to_string()))?;
        let key_hash = self.key_hash();
        Ok(match self.kind {
            // One row per index digest (re-recording updates it).
            ArtifactKind::Index => format!("{}-{hex}.json", self.kind),
            _ => format!("{}-{hex}-{}.json", self.kind, &key_hash[..16]),
        })
    }
}

fn reuse_key(layer: &str, span_size: Option<u64>, options: &str, kind: ArtifactKind) -> String {
    let key = format!(
        "{layer}\0{}\0{options}\0{}",
        span_size.map(|s| s.to_string()).unwrap_or_default(),
        kind.as_str()
    );
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobRef {
    /// Digest the blob is stored under.
    pub digest: Digest,
    /// Size in bytes of the blob.
    pub size: u64,
}

/// What to record for a SOCI index (see [`Store::record_index`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Digest of the SOCI index manifest.
    pub digest: Digest,
    /// Size in bytes of the SOCI index manifest.
    pub size: u64,
    /// Whether it is a v1 or a v2 index.
    pub version: IndexVersion,
    /// The image reference it was built for, if known.
    pub image_ref: Option<String>,
    /// Digest of the image target (index, manifest list or manifest), if known.
    pub image_digest: Option<Digest>,
    /// Digest of the platform image manifest (v1 subject; for v2 the converted manifest).
    pub manifest_digest: Digest,
    /// The platform it was built for, if known.
    pub platform: Option<Platform>,
}

/// Filter for [`Store::list_indexes`]; `None` = any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFilter {
    /// Only indexes built for this image reference.
    pub image_ref: Option<String>,
    /// Only indexes for this platform image manifest digest.
    pub manifest_digest: Option<String>,
    /// Only indexes for this image target digest.
    pub image_digest: Option<String>,
}

/// Filter for [`Store::list_ztocs`]; `None` = any. Its digests are the text
/// a user gave (a flag), compared with the records' digests: text that is not
/// a digest matches nothing rather than being an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZtocFilter {
    /// Only ztocs of this image layer digest.
    pub layer_digest: Option<String>,
    /// Only the ztoc with this digest.
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

/// Create `path` (its parent being checked already) unless present, then refuse
/// it unless it is a real directory: a symlinked `soci/tmp` would have the
/// cleaning delete files wherever it points.
fn internal_dir(path: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    fsio::require_real_dir(path).map_err(|e| Error::io(path, e))
}

fn fsync_dir(path: &Path) -> Result<()> {
    fsio::fsync_dir(path).map_err(|e| Error::io(path, e))
}

/// An index waiting to be listed in `index.json` (see `Store::record_index`).
struct Listing {
    id: u64,
    entry: IndexEntry,
    desc: Descriptor,
}

/// The listings of one store directory in this process: waiting ones, the
/// results of written ones, and whether a thread is writing a batch now.
#[derive(Default)]
struct ListingGroup {
    queue: Vec<Listing>,
    done: std::collections::HashMap<u64, Result<()>>,
    leading: bool,
    next_id: u64,
}

type SharedGroup = std::sync::Arc<(std::sync::Mutex<ListingGroup>, std::sync::Condvar)>;

/// The listing group of `dir` (one per store directory as named; two names
/// of one directory only batch less, the flock still orders them).
fn listing_group(dir: &Path) -> SharedGroup {
    static GROUPS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, SharedGroup>>,
    > = std::sync::OnceLock::new();
    let mut groups = GROUPS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    groups.entry(dir.to_path_buf()).or_default().clone()
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
        for d in [
            store.dir.join("blobs"),
            store.dir.join("blobs").join("sha256"),
            store.dir.join("soci"),
            store.artifacts_dir(),
            store.tmp_dir(),
        ] {
            internal_dir(&d)?;
        }
        store.clean_tmp()?;
        if fs::symlink_metadata(store.by_layer_dir()).is_err() {
            store.build_by_layer()?;
        }
        internal_dir(&store.by_layer_dir())?;
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

    /// The store directory this handle works on.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn artifacts_dir(&self) -> PathBuf {
        self.dir.join("soci").join("artifacts")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("soci").join("tmp")
    }

    fn by_layer_dir(&self) -> PathBuf {
        self.dir.join("soci").join("by-layer")
    }

    /// Fill `soci/by-layer` from the records (a store written by an older
    /// version): once, under the lock, so later lookups read one file.
    fn build_by_layer(&self) -> Result<()> {
        let _g = self.lock()?;
        let dir = self.by_layer_dir();
        if fs::symlink_metadata(&dir).is_ok() {
            return Ok(());
        }
        // Built aside and renamed in, so a crash leaves no half-filled index.
        let stage = self
            .tmp_dir()
            .join(format!("by-layer-{}", std::process::id()));
        let _ = fs::remove_dir_all(&stage);
        internal_dir(&stage)?;
        let mut newest: std::collections::HashMap<String, ArtifactRecord> = Default::default();
        for r in self.artifacts()? {
            if r.kind != ArtifactKind::Layer {
                continue;
            }
            let k = r.key_hash();
            if newest.get(&k).is_none_or(|o| o.created_at <= r.created_at) {
                newest.insert(k, r);
            }
        }
        for (k, r) in newest {
            let bytes =
                serde_json::to_vec_pretty(&r).map_err(|e| Error::json(r.digest.clone(), e))?;
            self.write_atomic(&stage.join(k), &bytes)?;
        }
        fs::rename(&stage, &dir).map_err(|e| Error::io(&dir, e))?;
        fsync_dir(&self.dir.join("soci"))
    }

    fn index_json_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// Path of a blob (whether or not it exists). A [`Digest`] holds no path
    /// separator or `..`, so the path stays inside the store; only sha256
    /// blobs are stored, so another algorithm is refused.
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        let hex = digest
            .hex()
            .ok_or_else(|| Error::InvalidDigest(digest.to_string()))?;
        Ok(self.dir.join("blobs").join("sha256").join(hex))
    }

    fn lock(&self) -> Result<LockGuard> {
        let path = self.dir.join("soci").join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            // A symlink here would have us create or lock a file elsewhere.
            .custom_flags(fsio::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        fsio::lock_exclusive(&file).map_err(|e| Error::io(&path, e))?;
        Ok(LockGuard { _file: file })
    }

    fn new_tmp(&self) -> Result<TempFile> {
        let dir = self.tmp_dir();
        TempFile::new_in(&dir, "").map_err(|e| Error::io(&dir, e))
    }

    /// Write `bytes` to `dest` atomically: temp file, fsync, rename, fsync dir.
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        fsio::write_atomic(&self.tmp_dir(), "", dest, bytes).map_err(|e| Error::io(dest, e))
    }

    /// Remove temp files whose writer is gone (lock free and process dead, or
    /// older than a day); a live writer's are kept. Symlinks in `soci/tmp` are
    /// unlinked, never followed. Returns how many were removed.
    pub fn clean_tmp(&self) -> Result<usize> {
        let dir = self.tmp_dir();
        fsio::clean_private_temp_dir(&dir, fsio::STALE_TMP_AGE).map_err(|e| Error::io(&dir, e))
    }

    // ---- blobs ----

    /// A writer that hashes while writing into a temp file; the blob appears under
    /// `blobs/sha256/` only at [`BlobWriter::commit`].
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let file = self.new_tmp()?;
        let tmp = file.path().to_path_buf();
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(file),
            tmp,
            hasher: Sha256Hasher::new(),
        })
    }

    /// Store bytes; returns their digest and size.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef> {
        let digest = Digest::of(bytes);
        if self.blob_intact(&digest, bytes.len() as u64) {
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
    pub fn put_blob_expecting(&self, bytes: &[u8], expected: &Digest) -> Result<BlobRef> {
        check_content(expected, bytes)?;
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

    /// Whether the blob `digest` is stored (its file exists).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Whether the stored blob has `size` bytes and hashes to `digest` (a blob
    /// corrupted on disk is then rewritten instead of kept).
    fn blob_intact(&self, digest: &Digest, size: u64) -> bool {
        let Ok(p) = self.blob_path(digest) else {
            return false;
        };
        let Ok(f) = fsio::open_regular(&p) else {
            return false;
        };
        if f.metadata().map(|m| m.len()).ok() != Some(size) {
            return false;
        }
        soci_digest::sha256_digest_of_reader(fsio::LimitedReader::new(f, size))
            .is_ok_and(|(actual, _)| *digest == actual)
    }

    /// Open a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.blob_path(digest)?;
        File::open(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BlobNotFound(digest.to_string()),
            _ => Error::io(&p, e),
        })
    }

    /// Read a whole blob, checked against its digest (a blob corrupted on disk is
    /// an error here, before it is pushed or decoded; `create --force` rewrites it).
    pub fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        let mut bytes = Vec::new();
        fsio::open_regular(&p)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::BlobNotFound(digest.to_string()),
                _ => Error::io(&p, e),
            })?;
        let actual = spec::sha256_digest(&bytes);
        if *digest != actual {
            return Err(Error::CorruptBlob {
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Read and parse a stored SOCI index manifest.
    pub fn get_index_manifest(&self, digest: &Digest) -> Result<crate::ParsedIndex> {
        parse_index_manifest(&self.get_blob(digest)?)
    }

    fn remove_blob(&self, digest: &Digest) -> Result<()> {
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
            serde_json::to_vec_pretty(&rec).map_err(|e| Error::json(rec.digest.to_string(), e))?;
        self.write_atomic(&path, &bytes)?;
        if rec.kind == ArtifactKind::Layer {
            // The lookup entry: the newest record for this reuse key.
            self.write_atomic(&self.by_layer_dir().join(rec.key_hash()), &bytes)?;
        }
        Ok(rec)
    }

    /// `digest` comes from a record or a manifest (`blob_path` refuses any
    /// algorithm but sha256).
    fn require_blob(&self, digest: &Digest, size: u64) -> Result<()> {
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
        // The row first, outside the lock: images indexed at once write theirs
        // in parallel (each is its own file). A row naming an index whose
        // blobs `index rm` deleted meanwhile is removed again below; one
        // written before `index rm` looks keeps those blobs in use.
        let rec = self.record(&rec)?;
        let listed = self.list_in_index_json(e, rec.descriptor());
        if listed.is_err() {
            let _ = fs::remove_file(self.artifacts_dir().join(rec.file_name()?));
        }
        listed.map(|()| rec)
    }

    /// Checks, under the store lock, that the index blob and every blob it
    /// names are present (`index rm` deletes under that lock: a ztoc reused
    /// by this build but deleted meanwhile is caught here), then lists the
    /// index in `index.json`. Threads of this process listing indexes in the
    /// same store at once share one lock and one `index.json` rewrite (one
    /// leader writes for all waiting; each returns once its own entry is
    /// durably listed, or with its own error).
    fn list_in_index_json(&self, e: &IndexEntry, desc: Descriptor) -> Result<()> {
        let group = listing_group(&self.dir);
        let (lock, cv) = &*group;
        let mut g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let id = g.next_id;
        g.next_id += 1;
        g.queue.push(Listing {
            id,
            entry: e.clone(),
            desc,
        });
        loop {
            if let Some(r) = g.done.remove(&id) {
                return r;
            }
            if g.leading {
                g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            g.leading = true;
            let batch = std::mem::take(&mut g.queue);
            drop(g);
            let results = self.list_batch(&batch);
            g = lock.lock().unwrap_or_else(|p| p.into_inner());
            g.leading = false;
            for (l, r) in batch.iter().zip(results) {
                g.done.insert(l.id, r);
            }
            cv.notify_all();
        }
    }

    /// One lock, the checks of each listing, one `index.json` rewrite for
    /// those that passed; one result per listing.
    fn list_batch(&self, batch: &[Listing]) -> Vec<Result<()>> {
        let _g = match self.lock() {
            Ok(g) => g,
            Err(first) => return self.same_error(first, batch.len()),
        };
        let mut results: Vec<Result<()>> =
            batch.iter().map(|l| self.check_listed(&l.entry)).collect();
        if results.iter().all(|r| r.is_err()) {
            return results;
        }
        let written = self.read_index_json().and_then(|mut idx| {
            for (l, _) in batch.iter().zip(&results).filter(|(_, r)| r.is_ok()) {
                match idx.manifests.iter().position(|d| d.digest == l.desc.digest) {
                    Some(i) => idx.manifests[i] = l.desc.clone(),
                    None => idx.manifests.push(l.desc.clone()),
                }
            }
            self.write_index_json(&idx)
        });
        if let Err(first) = written {
            let ok = results.iter().filter(|r| r.is_ok()).count();
            let mut errs = self.same_error(first, ok).into_iter();
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = errs.next().expect("one error per listing");
            }
        }
        results
    }

    /// `n` copies of one error (the first as it is; io errors are not `Clone`).
    fn same_error(&self, first: Error, n: usize) -> Vec<Result<()>> {
        let text = first.to_string();
        let mut out = vec![Err(first)];
        while out.len() < n {
            out.push(Err(Error::io(
                &self.dir,
                std::io::Error::other(text.clone()),
            )));
        }
        out.truncate(n);
        out
    }

    /// The blobs of an index to be listed are all present (under the lock).
    fn check_listed(&self, e: &IndexEntry) -> Result<()> {
        self.require_blob(&e.digest, e.size)?;
        let parsed = self.get_index_manifest(&e.digest)?;
        for d in std::iter::once(&parsed.manifest.config).chain(&parsed.manifest.layers) {
            self.require_blob(&d.digest, d.size.max(0) as u64)
                .map_err(|err| match err {
                    Error::BlobNotFound(b) => Error::IndexBlobMissing {
                        index: e.digest.to_string(),
                        blob: b,
                    },
                    other => other,
                })?;
        }
        Ok(())
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
            let bytes = match fsio::read_limited(&ent.path(), MAX_RECORD) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // removed meanwhile
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => continue, // not a record
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
    pub fn get_artifact(&self, digest: &Digest) -> Result<Vec<ArtifactRecord>> {
        Ok(self
            .artifacts()?
            .into_iter()
            .filter(|r| r.digest == *digest)
            .collect())
    }

    /// A reusable ztoc for this layer, span size and options whose blob is present
    /// (newest if several).
    pub fn find_ztoc(
        &self,
        layer_digest: &Digest,
        span_size: u64,
        options: &str,
    ) -> Result<Option<ArtifactRecord>> {
        // One file read, whatever the store's size (scanning every record made
        // runs slow down with the square of the store's size).
        let key = reuse_key(
            layer_digest.as_str(),
            Some(span_size),
            options,
            ArtifactKind::Layer,
        );
        let path = self.by_layer_dir().join(key);
        let bytes = match fsio::read_limited(&path, MAX_RECORD) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let Ok(r) = serde_json::from_slice::<ArtifactRecord>(&bytes) else {
            return Ok(None);
        };
        let matches = r.kind == ArtifactKind::Layer
            && r.layer_digest.as_ref() == Some(layer_digest)
            && r.span_size == Some(span_size)
            && r.options == options;
        // A cheap size check on reuse; the digest is checked when the blob is read.
        let present = self
            .blob_path(&r.digest)
            .ok()
            .and_then(|p| fs::metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.len() == r.size);
        Ok((matches && present).then_some(r))
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
                    .is_none_or(|f| r.manifest_digest.as_ref().is_some_and(|d| d == f))
            })
            .filter(|r| {
                filter
                    .image_digest
                    .as_ref()
                    .is_none_or(|f| r.image_digest.as_ref().is_some_and(|d| d == f))
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
                    .is_none_or(|f| r.layer_digest.as_ref().is_some_and(|d| d == f))
            })
            .filter(|r| filter.ztoc_digest.as_ref().is_none_or(|f| r.digest == *f))
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
            if rec.kind == ArtifactKind::Layer {
                let entry = self.by_layer_dir().join(rec.key_hash());
                let points_here = fsio::read_limited(&entry, MAX_RECORD)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<ArtifactRecord>(&b).ok())
                    .is_some_and(|e| e.digest == rec.digest);
                if points_here {
                    let _ = fs::remove_file(&entry);
                }
            }
        }
        fsync_dir(&self.artifacts_dir())
    }

    /// Remove a SOCI index: its row, its blob, its `index.json` entry, and the
    /// ztoc/prefetch blobs and rows that no remaining index references. Returns the
    /// digests removed (index first).
    pub fn remove_index(&self, digest: &Digest) -> Result<Vec<Digest>> {
        let _g = self.lock()?;
        let all = self.artifacts()?;
        let rows: Vec<&ArtifactRecord> = all.iter().filter(|r| r.digest == *digest).collect();
        if rows.is_empty() {
            return Err(Error::ArtifactNotFound(digest.to_string()));
        }
        if let Some(r) = rows.iter().find(|r| r.kind != ArtifactKind::Index) {
            return Err(Error::NotAnIndex {
                digest: digest.to_string(),
                kind: r.kind.to_string(),
            });
        }
        let referenced_by = |index_digest: &Digest| -> Vec<Digest> {
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
            .filter(|r| r.kind == ArtifactKind::Index && r.digest != *digest)
        {
            still_used.extend(referenced_by(&r.digest));
        }
        // Order so that a crash at any point leaves a valid layout and a store
        // where `index rm` can be run again: first index.json stops naming the
        // index, then the ztocs and prefetch artifacts go, then the index blob,
        // and its record last (while it exists, `index rm` finds the index again).
        let mut idx = self.read_index_json()?;
        idx.manifests.retain(|m| m.digest != *digest);
        self.write_index_json(&idx)?;
        let mut removed = vec![digest.clone()];
        for d in mine {
            if still_used.contains(&d) || removed.contains(&d) || d == EMPTY_CONFIG_DIGEST {
                continue;
            }
            self.remove_records(|r| r.digest == d && r.kind != ArtifactKind::Index)?;
            self.remove_blob(&d)?;
            removed.push(d);
        }
        self.remove_blob(digest)?;
        self.remove_records(|r| r.digest == *digest)?;
        Ok(removed)
    }

    // ---- index.json ----

    fn read_index_json(&self) -> Result<Index> {
        let p = self.index_json_path();
        match fsio::read_limited(&p, MAX_INDEX_JSON) {
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
    pub fn remove_root(&self, digest: &Digest) -> Result<()> {
        let _g = self.lock()?;
        let mut idx = self.read_index_json()?;
        idx.manifests.retain(|m| m.digest != *digest);
        self.write_index_json(&idx)
    }
}

/// Streaming blob writer; see [`Store::blob_writer`]. Dropping it without
/// committing removes the temp file.
pub struct BlobWriter {
    store: Store,
    file: Option<TempFile>,
    tmp: PathBuf,
    /// Digest and length of what the temp file took.
    hasher: Sha256Hasher,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("blob writer already committed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
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
        self.hasher.size()
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
    pub fn commit_expecting(self, expected: &Digest) -> Result<BlobRef> {
        self.finish(Some(expected))
    }

    fn finish(mut self, expected: Option<&Digest>) -> Result<BlobRef> {
        let file = self.file.take().expect("file present until finish");
        let (digest_value, size) = (self.hasher.digest_value(), self.hasher.size());
        let result = (|| {
            if let Some(exp) = expected {
                if !exp.is_sha256() {
                    return Err(Error::InvalidDigest(exp.to_string()));
                }
                if *exp != digest_value {
                    return Err(Error::DigestMismatch {
                        expected: exp.to_string(),
                        actual: digest_value.to_string(),
                    });
                }
            }
            // A blob already there is kept only if intact: a corrupted one is
            // replaced (rename over it), not trusted forever.
            if self.store.blob_intact(&digest_value, size) {
                return Ok(());
            }
            let dest = self.store.blob_path(&digest_value)?;
            file.persist(&dest).map_err(|e| Error::io(&dest, e))
        })();
        result.map(|()| BlobRef {
            digest: digest_value,
            size,
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Dropping the temporary removes it.
        self.file.take();
    }
}
