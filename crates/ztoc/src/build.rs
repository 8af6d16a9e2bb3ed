//! The one-pass zTOC builder.
//!
//! A layer blob is read once, in chunks. On the calling thread each chunk is
//! inflated by the checkpoint engine (gzip) and the uncompressed bytes go straight
//! into the tar walk; the chunk itself, together with the checkpoints found while
//! it was consumed, is then handed to a hashing thread that computes the blob's
//! sha256 and the per-span digests. Nothing is buffered beyond a few chunks, the
//! 32 KiB windows of the checkpoints (which are part of the output) and the file
//! table.
//!
//! ```text
//!  reader ──chunk──> GzipCheckpointer ──uncompressed──> TarWalker ──> TocEntry…
//!                         │ checkpoints (in, bits)
//!                         └──chunk + boundaries──> hash thread: sha256(blob), sha256(span i)
//! ```
use crate::model::{CompressionAlgorithm, CompressionInfo, Toc, TocEntry, Ztoc, ZTOC_VERSION};
use crate::tar_walk::{TarError, TarWalker};
use crate::twin_sha::Sha256Stream;
use soci_digest::Digest;
use soci_zinfo::{GzipCheckpointer, TarZinfo, ZinfoError};
use std::io::Read;
use std::sync::mpsc;

/// Default span size of the reference (4 MiB).
pub const DEFAULT_SPAN_SIZE: u64 = 1 << 22;

/// Default build tool identifier, written into every zTOC (and, by soci-image,
/// into the index annotation) unless the caller picks another. It is the Go
/// reference CLI's own string: the identifier is part of the zTOC bytes, and our
/// promise is the reference's zTOC digest for the same layer (docs/format.md §2.4).
pub const DEFAULT_BUILD_TOOL_IDENTIFIER: &str = "AWS SOCI CLI v0.2";

/// Default [`BuildOptions::max_uncompressed_size`]: 64 GiB, three times a
/// 20 GB ML layer's worth of tar.
pub const DEFAULT_MAX_UNCOMPRESSED_SIZE: u64 = 64 << 30;

/// Default [`BuildOptions::max_files`]: 5 million entries (a zTOC of some
/// 600 MB; real layers, even big ML ones, hold well under a million files).
pub const DEFAULT_MAX_FILES: u64 = 5_000_000;

/// Size of the chunks read from the layer.
const CHUNK_SIZE: usize = 256 * 1024;

/// How the layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// A gzip-compressed tar: the zTOC gets deflate checkpoints.
    Gzip,
    /// A plain tar (OCI `…layer.v1.tar`, Docker `…rootfs.diff.tar`).
    Uncompressed,
}

impl LayerCompression {
    /// Guess from the first bytes of a blob: gzip magic `1f 8b`, else a tar.
    pub fn sniff(head: &[u8]) -> LayerCompression {
        if head.starts_with(&[0x1f, 0x8b]) {
            LayerCompression::Gzip
        } else {
            LayerCompression::Uncompressed
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Uncompressed bytes between checkpoints (the unit a lazy pull fetches).
    pub span_size: u64,
    /// How the blob is compressed; decides gzip checkpoints or tar spans.
    pub compression: LayerCompression,
    /// Written into the zTOC's `build_tool_identifier`, so it changes the zTOC digest.
    pub build_tool_identifier: String,
    /// The digest the blob must have (the layer descriptor's).
    pub expected_digest: Option<Digest>,
    /// Size the blob must have (the layer descriptor's size).
    pub expected_size: Option<u64>,
    /// Refuse a layer whose uncompressed stream is longer than this (a gzip
    /// bomb): the zTOC holds a 32 KiB window per span, so it grows with it.
    pub max_uncompressed_size: u64,
    /// Refuse a layer with more tar entries than this: the zTOC holds them all.
    pub max_files: u64,
}

impl BuildOptions {
    /// The defaults the Go CLI uses (span size, build tool, limits), no expected digest or size.
    pub fn new(compression: LayerCompression) -> Self {
        BuildOptions {
            span_size: DEFAULT_SPAN_SIZE,
            compression,
            build_tool_identifier: DEFAULT_BUILD_TOOL_IDENTIFIER.to_string(),
            expected_digest: None,
            expected_size: None,
            max_uncompressed_size: DEFAULT_MAX_UNCOMPRESSED_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// Progress callbacks; called from the building thread after each chunk.
pub trait BuildReporter {
    /// Called with the totals so far; the default ignores them.
    fn progress(&mut self, _p: &BuildProgress) {}
}

/// A reporter that ignores everything.
pub struct NoProgress;
impl BuildReporter for NoProgress {}

/// How far a build has got, as totals since the start of the layer.
#[derive(Debug, Clone, Default)]
pub struct BuildProgress {
    /// Bytes of the blob read so far.
    pub compressed_read: u64,
    /// Bytes of tar produced by inflating them.
    pub uncompressed: u64,
    /// Spans (checkpoints) recorded so far.
    pub spans: u64,
    /// Tar entries walked so far.
    pub files: u64,
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct BuiltZtoc {
    /// The zTOC built from the layer.
    pub ztoc: Ztoc,
    /// The sha256 digest of the whole blob as read.
    pub blob_digest: Digest,
    /// Bytes of the whole blob as read.
    pub blob_size: u64,
}

/// Why a zTOC could not be built from a layer.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Reading the layer blob failed.
    #[error("reading the layer failed: {0}")]
    Io(#[from] std::io::Error),
    /// The gzip stream is corrupt or truncated.
    #[error("{0}")]
    Zinfo(#[from] ZinfoError),
    /// The tar archive inside the layer is malformed.
    #[error("{0}")]
    Tar(#[from] TarError),
    /// `span_size` was 0, which would give a checkpoint per byte.
    #[error("span size must be greater than 0")]
    ZeroSpanSize,
    /// The blob read is not the one the descriptor names.
    #[error("layer digest mismatch: expected {expected}, read {actual}")]
    DigestMismatch {
        /// `sha256:<hex>` from the descriptor.
        expected: String,
        /// `sha256:<hex>` of the bytes read.
        actual: String,
    },
    /// The blob read is not as long as the descriptor says.
    #[error("layer size mismatch: expected {expected} bytes, read {actual}")]
    SizeMismatch {
        /// Size from the descriptor.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// The stream ended without the tar end-of-archive marker.
    #[error("the layer's uncompressed data ended before its tar archive did")]
    TarNotEnded,
    #[error("the layer inflates to more than {limit} bytes (the --max-uncompressed-size limit); stopped after {read} compressed bytes")]
    /// The layer inflates past `max_uncompressed_size` (a gzip bomb guard).
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
        /// Compressed bytes read when the build stopped.
        read: u64,
    },
    #[error("the layer has more than {limit} files (the --max-files limit)")]
    /// The layer has more than `max_files` tar entries.
    TooManyFiles {
        /// The limit that was exceeded.
        limit: u64,
    },
}

/// A boundary between two spans, at compressed offset `at`: the previous span ends
/// at `at`; the next one starts at `at - 1` when `overlap` (the checkpoint's first
/// bits are in byte `at - 1`), else at `at`.
#[derive(Debug, Clone, Copy)]
struct Boundary {
    at: u64,
    overlap: bool,
}

struct HashJob {
    chunk: Vec<u8>,
    boundaries: Vec<Boundary>,
}

struct HashResult {
    blob_digest: String,
    span_digests: Vec<String>,
}

/// Digests the blob and its spans from chunks in stream order. Span `i` is open
/// from its boundary until the next one; bytes before the first boundary (the gzip
/// header) belong to no span; the last span runs to the end of the blob.
fn hash_thread(jobs: mpsc::Receiver<HashJob>, recycle: mpsc::Sender<Vec<u8>>) -> HashResult {
    let mut blob = Sha256Stream::new();
    let mut span: Option<Sha256Stream> = None;
    let mut spans = Vec::new();
    let mut pos = 0u64; // stream offset of the next byte
    let mut last_byte = 0u8;
    // The bytes of a span go to both digests at once (see `twin_sha`).
    let feed = |blob: &mut Sha256Stream, span: &mut Option<Sha256Stream>, bytes: &[u8]| match span {
        Some(h) => Sha256Stream::update_both(blob, h, bytes),
        None => blob.update(bytes),
    };
    for job in jobs {
        let chunk = &job.chunk;
        let start = pos;
        let mut done = 0usize; // bytes of `chunk` already hashed
        for b in &job.boundaries {
            let cut = (b.at - start) as usize; // at >= start: checkpoints never go back
            feed(&mut blob, &mut span, &chunk[done..cut]);
            done = cut;
            if let Some(h) = span.take() {
                spans.push(h.finish());
            }
            let mut h = Sha256Stream::new();
            if b.overlap {
                let byte = if cut > 0 { chunk[cut - 1] } else { last_byte };
                h.update(&[byte]);
            }
            span = Some(h);
        }
        feed(&mut blob, &mut span, &chunk[done..]);
        if let Some(&b) = chunk.last() {
            last_byte = b;
        }
        pos += chunk.len() as u64;
        let _ = recycle.send(job.chunk);
    }
    if let Some(h) = span.take() {
        spans.push(h.finish());
    }
    HashResult {
        blob_digest: blob.finish(),
        span_digests: spans,
    }
}

/// Builds the zTOC of one layer blob, reading it exactly once.
pub fn build_ztoc<R: Read>(
    mut reader: R,
    opts: &BuildOptions,
    reporter: &mut dyn BuildReporter,
) -> Result<BuiltZtoc, BuildError> {
    if opts.span_size == 0 {
        return Err(BuildError::ZeroSpanSize);
    }
    let (job_tx, job_rx) = mpsc::sync_channel::<HashJob>(4);
    let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
    let hasher = std::thread::Builder::new()
        .name("soci-hash".into())
        .spawn(move || hash_thread(job_rx, recycle_tx))?;

    let result = drive(&mut reader, opts, reporter, &job_tx, &recycle_rx);
    // Content that cannot be inflated or walked may simply not be the layer
    // (corrupted on the way, or the wrong blob): read the rest so the digest
    // can tell, and report a mismatch rather than the symptom.
    let drained = match &result {
        Err(BuildError::Zinfo(_) | BuildError::Tar(_) | BuildError::TarNotEnded)
            if opts.expected_digest.is_some() =>
        {
            drain(&mut reader, &job_tx, &recycle_rx)
        }
        _ => false,
    };
    drop(job_tx);
    let hashes = hasher.join().expect("hash thread does not panic");
    if let (true, Some(expected)) = (drained, &opts.expected_digest) {
        if *expected != hashes.blob_digest {
            return Err(BuildError::DigestMismatch {
                expected: expected.to_string(),
                actual: hashes.blob_digest,
            });
        }
    }
    let (toc_entries, uncompressed_size, blob_size, checkpoints_blob, algorithm) = result?;

    if let Some(expected) = opts.expected_size {
        if expected != blob_size {
            return Err(BuildError::SizeMismatch {
                expected,
                actual: blob_size,
            });
        }
    }
    if let Some(expected) = &opts.expected_digest {
        if *expected != hashes.blob_digest {
            return Err(BuildError::DigestMismatch {
                expected: expected.to_string(),
                actual: hashes.blob_digest,
            });
        }
    }
    let span_digests = hashes.span_digests;
    let ztoc = Ztoc {
        version: ZTOC_VERSION.to_string(),
        build_tool_identifier: opts.build_tool_identifier.clone(),
        compressed_archive_size: blob_size as i64,
        uncompressed_archive_size: uncompressed_size as i64,
        toc: Toc {
            entries: toc_entries,
        },
        compression_info: CompressionInfo {
            compression_algorithm: algorithm,
            max_span_id: span_digests.len() as i32 - 1,
            span_digests,
            checkpoints: checkpoints_blob,
        },
    };
    Ok(BuiltZtoc {
        ztoc,
        blob_digest: Digest::try_from(hashes.blob_digest)
            .expect("the hash thread formats sha256:<64 hex>"),
        blob_size,
    })
}

/// After a failed build: hand the rest of the blob to the hash thread (no
/// more span boundaries). False if reading failed before the end.
fn drain<R: Read>(
    reader: &mut R,
    jobs: &mpsc::SyncSender<HashJob>,
    recycled: &mpsc::Receiver<Vec<u8>>,
) -> bool {
    loop {
        let mut chunk = recycled.try_recv().unwrap_or_default();
        chunk.resize(CHUNK_SIZE, 0);
        let Ok(n) = read_full(reader, &mut chunk) else {
            return false;
        };
        if n == 0 {
            return true;
        }
        chunk.truncate(n);
        let job = HashJob {
            chunk,
            boundaries: Vec::new(),
        };
        if jobs.send(job).is_err() {
            return false;
        }
    }
}

type DriveOutput = (Vec<TocEntry>, u64, u64, Vec<u8>, CompressionAlgorithm);

fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn drive<R: Read>(
    reader: &mut R,
    opts: &BuildOptions,
    reporter: &mut dyn BuildReporter,
    jobs: &mpsc::SyncSender<HashJob>,
    recycled: &mpsc::Receiver<Vec<u8>>,
) -> Result<DriveOutput, BuildError> {
    let mut walker = TarWalker::new();
    let mut entries = Vec::new();
    let mut progress = BuildProgress::default();
    let mut total_in = 0u64;
    let span = opts.span_size;
    let mut gz = match opts.compression {
        LayerCompression::Gzip => Some(GzipCheckpointer::new(span)?),
        LayerCompression::Uncompressed => None,
    };
    let mut tar_error: Option<TarError> = None;
    let mut seen_checkpoints = 0usize;
    loop {
        let mut chunk = recycled.try_recv().unwrap_or_default();
        chunk.resize(CHUNK_SIZE, 0);
        let n = read_full(reader, &mut chunk)?;
        chunk.truncate(n);
        if n == 0 {
            break;
        }
        let mut boundaries = Vec::new();
        match gz.as_mut() {
            Some(gz) => {
                let mut out_bytes = 0u64;
                let before = progress.uncompressed;
                let fed = gz.feed(&chunk, &mut |data: &[u8]| {
                    out_bytes += data.len() as u64;
                    // Past a limit the rest of the chunk is inflated (bounded
                    // work: one chunk) but not walked: nothing more is kept.
                    if before + out_bytes > opts.max_uncompressed_size
                        || entries.len() as u64 > opts.max_files
                    {
                        return;
                    }
                    if tar_error.is_none() && !walker.is_done() {
                        if let Err(e) = walker.feed(data) {
                            tar_error = Some(e);
                        }
                        entries.extend(walker.take_entries());
                    }
                });
                if let Err(e) = fed {
                    // The chunk still counts for the blob digest (see `drain`).
                    let _ = jobs.send(HashJob { chunk, boundaries });
                    return Err(e.into());
                }
                progress.uncompressed += out_bytes;
                for cp in &gz.checkpoints()[seen_checkpoints..] {
                    boundaries.push(Boundary {
                        at: cp.compressed_offset,
                        overlap: cp.bits != 0,
                    });
                }
                seen_checkpoints = gz.checkpoints().len();
                progress.spans = seen_checkpoints as u64;
            }
            None => {
                // Fixed spans: a boundary at every multiple of the span size.
                let end = total_in + n as u64;
                let mut next = total_in.div_ceil(span) * span;
                while next < end {
                    boundaries.push(Boundary {
                        at: next,
                        overlap: false,
                    });
                    next += span;
                }
                if tar_error.is_none() && !walker.is_done() {
                    if let Err(e) = walker.feed(&chunk) {
                        tar_error = Some(e);
                    }
                }
                progress.uncompressed += n as u64;
                progress.spans = end.div_ceil(span);
            }
        }
        if let Some(e) = tar_error.take() {
            let _ = jobs.send(HashJob { chunk, boundaries });
            return Err(e.into());
        }
        total_in += n as u64;
        entries.extend(walker.take_entries());
        if progress.uncompressed > opts.max_uncompressed_size {
            return Err(BuildError::TooLarge {
                limit: opts.max_uncompressed_size,
                read: total_in,
            });
        }
        if entries.len() as u64 > opts.max_files {
            return Err(BuildError::TooManyFiles {
                limit: opts.max_files,
            });
        }
        progress.compressed_read = total_in;
        progress.files = entries.len() as u64;
        reporter.progress(&progress);
        if jobs.send(HashJob { chunk, boundaries }).is_err() {
            break;
        }
    }
    let (checkpoints, algorithm) = match gz {
        Some(gz) => (gz.finish()?.to_blob(), CompressionAlgorithm::Gzip),
        None => (
            TarZinfo {
                span_size: span as i64,
                size: total_in as i64,
            }
            .to_blob(),
            CompressionAlgorithm::Uncompressed,
        ),
    };
    let uncompressed_size = walker.finish()?;
    entries.extend(walker.take_entries());
    Ok((entries, uncompressed_size, total_in, checkpoints, algorithm))
}
