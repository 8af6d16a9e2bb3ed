//! soci-image: SOCI for whole images.
//!
//! Joins the other crates into the jobs the CLI offers: [`create`] builds the zTOCs
//! of an image's layers (in parallel, one pass each, reusing zTOCs from the local
//! store) and its SOCI index; [`publish`] puts the result next to the image (a
//! registry or an OCI layout), blobs first and the tag last; [`verify`] proves an
//! index matches its image by reading every layer once.
//!
//! [`job`] is the one entry point a front end needs: a [`job::CreateJob`] (or
//! [`job::PushJob`]) is built from source, destination and options, checked
//! once, run with a [`Reporter`], and returns a report to print.
//!
//! Libraries never draw on the terminal: progress goes through [`Reporter`].
//! Failures are an [`Error`], one variant per failure, naming the layer,
//! digest or image concerned.
pub mod cache;
mod claim;
pub mod create;
mod error;
pub mod gc;
pub mod job;
mod layers;
pub mod lazy;
mod model;
mod pool;
pub mod publish;
pub mod recompress;
pub mod stored;
mod tee;
pub mod verify;

pub use error::{Error, Result};

pub use create::{
    create, CreateOptions, Created, LayerOutcome, PlatformIndexBuilt, DEFAULT_MIN_LAYER_SIZE,
};

/// Forwards one layer's build progress to a [`Reporter`].
pub(crate) struct LayerProgress<'a> {
    pub(crate) reporter: &'a dyn Reporter,
    pub(crate) digest: &'a Digest,
    /// Report uncompressed (tar) bytes as the bytes read: for a layer being
    /// compressed, whose bar counts the tar.
    pub(crate) tar_bytes: bool,
}

impl soci_ztoc::build::BuildReporter for LayerProgress<'_> {
    fn progress(&mut self, p: &BuildProgress) {
        if self.tar_bytes {
            let tar = BuildProgress {
                compressed_read: p.uncompressed,
                ..p.clone()
            };
            self.reporter.layer_progress(self.digest, &tar);
        } else {
            self.reporter.layer_progress(self.digest, p);
        }
    }
}

pub use publish::{publish, PublishResult};
/// A reader that computes the sha256 and the length of what passes through
/// (the one hashing adapter, from soci-digest).
pub use soci_digest::Hashing as HashingReader;
pub use verify::{verify, LayerReport, VerifyReport};

use soci_oci::spec::Digest;
use soci_ztoc::build::BuildProgress;

/// Progress callbacks from the image jobs; called from worker threads.
pub trait Reporter: Sync {
    /// A layer starts being read (`size` compressed bytes).
    fn layer_start(&self, _layer_digest: &Digest, _size: u64) {}
    /// Bytes read so far for a layer.
    fn layer_progress(&self, _layer_digest: &Digest, _p: &BuildProgress) {}
    /// A layer is done.
    fn layer_done(&self, _layer_digest: &Digest, _outcome: &str) {}
    /// A free-form line for the user (what the reference prints).
    fn message(&self, _line: &str) {}
    /// A blob is being copied to the destination: `sent` of `size` bytes so far
    /// (starts again from 0 when an upload is restarted).
    fn copy_progress(&self, _digest: &Digest, _sent: u64, _size: u64) {}
    /// The copy of a blob is over (done or failed).
    fn copy_done(&self, _digest: &Digest) {}
    /// A layer read for its zTOC was also put at the destination in the same
    /// pass (`bytes` sent); it gets no `copy_*` calls.
    fn layer_uploaded(&self, _layer_digest: &Digest, _bytes: u64) {}
    /// This image must wait for another image of the same process to finish
    /// indexing a layer it needs (`soci create A B C`: images on one base);
    /// [`Reporter::layer_wait_over`] follows once it may go on. The waiting
    /// does no work, so a caller running several images may start another
    /// one meanwhile.
    fn layer_wait(&self, _layer_digest: &Digest) {}
    /// The wait announced by [`Reporter::layer_wait`] is over. Called on the
    /// waiting thread, which blocks until this returns.
    fn layer_wait_over(&self, _layer_digest: &Digest) {}
}

/// A reporter that ignores everything.
pub struct Silent;
impl Reporter for Silent {}

/// The largest zTOC read: far beyond a real one (a zTOC holds a 32 KiB window
/// per span and one entry per file; 1 GiB is some 100 TiB of layer at the
/// default span size, or ~8 M files), below the flatbuffer format's 2 GiB.
pub const MAX_ZTOC_SIZE: u64 = 1 << 30;

/// A zTOC or other SOCI blob could not be read whole and intact.
#[derive(Debug, thiserror::Error)]
pub enum ZtocFetchError {
    /// Its descriptor announces more than [`MAX_ZTOC_SIZE`]; nothing was fetched.
    #[error("zTOC {digest} is {size} bytes, more than the {MAX_ZTOC_SIZE}-byte limit")]
    TooLarge {
        /// Digest of the zTOC.
        digest: soci_oci::spec::Digest,
        /// Size its descriptor announces.
        size: i64,
    },
    /// The blob could not be opened at the source.
    #[error("cannot read zTOC {digest}: {source}")]
    Open {
        /// Digest of the zTOC.
        digest: soci_oci::spec::Digest,
        /// The source's error.
        #[source]
        source: soci_oci::Error,
    },
    /// Reading the blob failed part way.
    #[error("cannot read zTOC {digest}: {source}")]
    Read {
        /// Digest of the zTOC.
        digest: soci_oci::spec::Digest,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes read are not the ones the descriptor names.
    #[error("zTOC {digest} does not match its descriptor: read {size} bytes with digest {actual}, expected {expected_size} bytes")]
    Mismatch {
        /// Digest the descriptor names.
        digest: soci_oci::spec::Digest,
        /// Size the descriptor names.
        expected_size: i64,
        /// Bytes read.
        size: u64,
        /// Digest of the bytes read.
        actual: String,
    },
}

/// Reads the zTOC `d` from `source` whole, checked against the descriptor's
/// size and digest. Streamed rather than through `fetch_blob`, whose limit
/// (meant for manifests and configs) is below what big layers' zTOCs reach.
pub fn fetch_ztoc(
    source: &dyn soci_oci::source::ImageSource,
    d: &soci_oci::spec::Descriptor,
) -> Result<Vec<u8>, ZtocFetchError> {
    use std::io::Read as _;
    let digest = d.digest.clone();
    if d.size < 0 || d.size as u64 > MAX_ZTOC_SIZE {
        return Err(ZtocFetchError::TooLarge {
            digest,
            size: d.size,
        });
    }
    let reader = source.open_blob(d).map_err(|source| ZtocFetchError::Open {
        digest: digest.clone(),
        source,
    })?;
    let mut r = reader.take(d.size as u64 + 1);
    let mut bytes = Vec::with_capacity(d.size as usize);
    r.read_to_end(&mut bytes)
        .map_err(|source| ZtocFetchError::Read {
            digest: digest.clone(),
            source,
        })?;
    check_ztoc_bytes(d, &bytes)?;
    Ok(bytes)
}

/// Whether `bytes` are what descriptor `d` names (size and sha256).
pub(crate) fn check_ztoc_bytes(
    d: &soci_oci::spec::Descriptor,
    bytes: &[u8],
) -> Result<(), ZtocFetchError> {
    let actual = soci_oci::spec::sha256_digest(bytes);
    if bytes.len() as i64 != d.size || actual != d.digest {
        return Err(ZtocFetchError::Mismatch {
            digest: d.digest.clone(),
            expected_size: d.size,
            size: bytes.len() as u64,
            actual,
        });
    }
    Ok(())
}

/// An image source whose root is resolved once: a tag moved while a command
/// runs must not give one step image A and the next image B. Every other call
/// goes to the wrapped source (everything else is addressed by digest), once
/// for a manifest or a blob of at most 1 MiB.
pub struct PinnedSource<'a> {
    inner: &'a dyn soci_oci::source::ImageSource,
    root: (soci_oci::spec::Descriptor, Vec<u8>),
    /// Manifests and small blobs (configs) already fetched, by digest: the
    /// steps of one job read them more than once (e.g. the already-indexed
    /// check, then the build), and content addressing makes a copy safe.
    fetched: std::sync::Mutex<std::collections::HashMap<Digest, Vec<u8>>>,
}

/// The largest blob [`PinnedSource`] keeps a copy of.
const PINNED_COPY_LIMIT: i64 = 1 << 20;

impl<'a> PinnedSource<'a> {
    /// Resolves `inner`'s root now.
    pub fn new(inner: &'a dyn soci_oci::source::ImageSource) -> soci_oci::Result<Self> {
        let root = inner.resolve_root()?;
        Ok(PinnedSource {
            inner,
            root,
            fetched: Default::default(),
        })
    }

    /// `fetch` unless a copy of `d` was kept.
    fn once(
        &self,
        d: &soci_oci::spec::Descriptor,
        fetch: impl FnOnce() -> soci_oci::Result<Vec<u8>>,
    ) -> soci_oci::Result<Vec<u8>> {
        let copies = || self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        // A descriptor naming another size is the wrapped source's to refuse.
        if let Some(bytes) = copies()
            .get(&d.digest)
            .filter(|b| d.size <= 0 || b.len() as i64 == d.size)
        {
            return Ok(bytes.clone());
        }
        let bytes = fetch()?;
        if bytes.len() as i64 <= PINNED_COPY_LIMIT {
            copies().insert(d.digest.clone(), bytes.clone());
        }
        Ok(bytes)
    }
}

impl soci_oci::source::ImageSource for PinnedSource<'_> {
    fn reference(&self) -> &soci_oci::ImageRef {
        self.inner.reference()
    }
    fn resolve_root(&self) -> soci_oci::Result<(soci_oci::spec::Descriptor, Vec<u8>)> {
        Ok(self.root.clone())
    }
    fn fetch_blob(&self, d: &soci_oci::spec::Descriptor) -> soci_oci::Result<Vec<u8>> {
        self.once(d, || self.inner.fetch_blob(d))
    }
    fn open_blob(
        &self,
        d: &soci_oci::spec::Descriptor,
    ) -> soci_oci::Result<Box<dyn std::io::Read + Send>> {
        self.inner.open_blob(d)
    }
    fn read_blob_range(
        &self,
        d: &soci_oci::spec::Descriptor,
        range: std::ops::Range<u64>,
    ) -> soci_oci::Result<Vec<u8>> {
        self.inner.read_blob_range(d, range)
    }
    fn fetch_manifest(&self, d: &soci_oci::spec::Descriptor) -> soci_oci::Result<Vec<u8>> {
        self.once(d, || self.inner.fetch_manifest(d))
    }
    fn referrers(
        &self,
        manifest_digest: &Digest,
    ) -> soci_oci::Result<Option<Vec<soci_oci::spec::Descriptor>>> {
        self.inner.referrers(manifest_digest)
    }
}
