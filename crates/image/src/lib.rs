//! soci-image: SOCI for whole images.
//!
//! Joins the other crates into the jobs the CLI offers: [`create`] builds the zTOCs
//! of an image's layers (in parallel, one pass each, reusing zTOCs from the local
//! store) and its SOCI index; [`publish`] puts the result next to the image (a
//! registry or an OCI layout), blobs first and the tag last; [`verify`] proves an
//! index matches its image by reading every layer once.
//!
//! Libraries never draw on the terminal: progress goes through [`Reporter`].
pub mod create;
pub mod layers;
pub mod lazy;
pub mod publish;
pub mod recompress;
pub mod stored;
pub mod verify;

pub use create::{create, CreateOptions, Created, LayerOutcome, PlatformIndexBuilt};

/// Forwards one layer's build progress to a [`Reporter`].
pub(crate) struct LayerProgress<'a> {
    pub(crate) reporter: &'a dyn Reporter,
    pub(crate) digest: &'a str,
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

/// A reader that computes the sha256 and the length of what passes through.
pub struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    size: u64,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            size: 0,
        }
    }
    /// `sha256:<hex>` of the bytes read so far.
    pub fn digest(&self) -> String {
        let h = sha2::Digest::finalize(self.hasher.clone());
        format!("sha256:{}", hex::encode(h))
    }
    /// Bytes read so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}
pub use publish::{publish, PublishResult};
pub use verify::{verify, LayerReport, VerifyReport};

use soci_ztoc::build::BuildProgress;

/// Progress callbacks from the image jobs; called from worker threads.
pub trait Reporter: Sync {
    /// A layer starts being read (`size` compressed bytes).
    fn layer_start(&self, _layer_digest: &str, _size: u64) {}
    /// Bytes read so far for a layer.
    fn layer_progress(&self, _layer_digest: &str, _p: &BuildProgress) {}
    /// A layer is done.
    fn layer_done(&self, _layer_digest: &str, _outcome: &str) {}
    /// A free-form line for the user (what the reference prints).
    fn message(&self, _line: &str) {}
    /// A blob is being copied to the destination: `sent` of `size` bytes so far
    /// (starts again from 0 when an upload is restarted).
    fn copy_progress(&self, _digest: &str, _sent: u64, _size: u64) {}
    /// The copy of a blob is over (done or failed).
    fn copy_done(&self, _digest: &str) {}
}

/// A reporter that ignores everything.
pub struct Silent;
impl Reporter for Silent {}

/// The receiving end of a bounded queue of byte chunks, as a reader: EOF once
/// every sender is dropped (the producer finished, or gave up).
pub(crate) struct QueueReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl QueueReader {
    pub(crate) fn new(rx: std::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        QueueReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl std::io::Read for QueueReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(v) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
