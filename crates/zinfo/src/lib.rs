//! zinfo: the random-access information a SOCI zTOC keeps about a layer blob.
//!
//! A zTOC's `CompressionInfo.checkpoints` bytes hold a *zinfo*:
//!
//! - for gzip layers, a list of zran-style **checkpoints** ([`GzipZinfo`]): places
//!   in the compressed stream where inflation can restart, each with the 32 KiB
//!   of uncompressed history deflate may refer back to. The layer is cut into
//!   **spans** at the checkpoints; each span can be fetched and inflated alone.
//!   [`GzipCheckpointer`] finds the checkpoints in one pass while the caller
//!   sees every uncompressed byte (to walk the tar and hash spans at the same
//!   time); [`extract_from_checkpoint`] / [`extract_range`] read data back.
//! - for uncompressed tar layers, just a span size and the blob size
//!   ([`TarZinfo`], a tiny flatbuffer): span `i` is `[i*S, (i+1)*S)`.
//!
//! [`Zinfo`] unifies the span arithmetic of both kinds.
//!
//! Everything here matches the reference implementation
//! (`ztoc/compression/gzip_zinfo.c`, `tar_zinfo.go` of awslabs/soci-snapshotter)
//! byte for byte: same checkpoint positions, same blob layout.
//!
//! ```
//! use soci_zinfo::{GzipCheckpointer, Zinfo};
//! # fn gz() -> Vec<u8> {
//! #   use std::io::Write;
//! #   let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
//! #   e.write_all(&vec![7u8; 100_000]).unwrap(); e.finish().unwrap()
//! # }
//! let blob: Vec<u8> = gz(); // a gzip layer
//! let mut cp = GzipCheckpointer::new(1 << 22).unwrap();
//! let mut tar_bytes = Vec::new();
//! cp.feed(&blob, &mut |chunk| tar_bytes.extend_from_slice(chunk)).unwrap();
//! let zinfo = cp.finish().unwrap();
//! let bytes = zinfo.to_blob(); // goes into the zTOC
//! let z = Zinfo::Gzip(zinfo);
//! assert_eq!(z.num_spans(), 1);
//! assert_eq!(z.span_compressed_range(0, blob.len() as u64), 10..blob.len() as u64);
//! # assert_eq!(bytes.len(), 12 + 32785);
//! ```

#![deny(unsafe_code)]

mod blob;
mod checkpointer;
mod extract;
// The only unsafe code in the workspace (`unsafe_code` is denied in the root
// Cargo.toml): the zlib FFI wrapper, every block with its SAFETY comment.
#[allow(unsafe_code)]
mod ffi;
mod tar;

use std::ops::Range;

pub use blob::{Checkpoint, GzipZinfo, PACKED_CHECKPOINT_SIZE};
pub use checkpointer::GzipCheckpointer;
pub use extract::{extract_from_checkpoint, extract_range};
pub use tar::TarZinfo;

/// Size of the deflate history window stored with every checkpoint.
pub const WINDOW_SIZE: usize = 32768;

/// Errors of this crate. Messages name the compressed offset concerned.
#[derive(thiserror::Error, Debug)]
pub enum ZinfoError {
    /// zlib reported invalid deflate data (or an invalid gzip header/trailer).
    #[error("corrupt deflate data at compressed offset {offset}: {msg}")]
    Corrupt {
        /// Compressed offset of the input zlib was reading when it failed.
        offset: u64,
        /// zlib's own message (`strm.msg`).
        msg: String,
    },
    /// The compressed input ended in the middle of a gzip member.
    #[error("gzip stream truncated at compressed offset {offset}")]
    Truncated {
        /// Compressed offset where the input ended.
        offset: u64,
    },
    /// Bytes after the end of a gzip member that are not another gzip member
    /// (garbage, zero padding, an incomplete header).
    #[error("trailing data after last gzip member at offset {offset}: {msg}")]
    TrailingData {
        /// Compressed offset of the first byte after the last complete member.
        offset: u64,
        /// What was wrong with those bytes.
        msg: String,
    },
    /// No input at all.
    #[error("empty gzip stream: no compressed bytes")]
    Empty,
    /// An unexpected zlib failure (out of memory, inconsistent stream state).
    #[error("zlib {what} ({code}) at compressed offset {offset}")]
    Zlib {
        /// zlib's return code (`Z_MEM_ERROR`, `Z_STREAM_ERROR`, ...).
        code: i32,
        /// The zlib call that failed, e.g. `inflate`.
        what: &'static str,
        /// Compressed offset reached when it failed.
        offset: u64,
    },
    /// A serialized gzip zinfo (the zTOC `checkpoints` bytes) is malformed.
    #[error("invalid zinfo blob: {0}")]
    InvalidBlob(String),
    /// A serialized tar zinfo flatbuffer is malformed.
    #[error("invalid tar zinfo: {0}")]
    InvalidTarZinfo(String),
    /// A caller-supplied argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A previous call on this checkpointer failed; it cannot continue.
    #[error("gzip checkpointer already failed on an earlier error")]
    Poisoned,
    /// Reading the compressed blob failed.
    #[error("I/O error reading the compressed blob: {0}")]
    Io(#[from] std::io::Error),
}

/// The zinfo of one layer: gzip checkpoints or uncompressed-tar span geometry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Zinfo {
    /// A gzip layer: deflate checkpoints with their 32 KiB windows.
    Gzip(GzipZinfo),
    /// An uncompressed tar layer: spans are fixed-size byte ranges, no checkpoints.
    Tar(TarZinfo),
}

impl Zinfo {
    /// Number of spans (= number of checkpoints for gzip,
    /// `ceil(size / span_size)` for tar).
    pub fn num_spans(&self) -> u64 {
        match self {
            Zinfo::Gzip(g) => g.checkpoints.len() as u64,
            Zinfo::Tar(t) => t.num_spans(),
        }
    }

    /// `num_spans() - 1`, the zTOC's `max_span_id` (-1 when there are no spans).
    pub fn max_span_id(&self) -> i32 {
        (self.num_spans() as i64 - 1).clamp(i32::MIN as i64, i32::MAX as i64) as i32
    }

    /// Compressed byte range of `span` given the blob size.
    ///
    /// gzip: `[in_i - (bits_i != 0) , in_{i+1})`, the last span ends at
    /// `blob_size` (it includes the trailer and any later member). Consecutive
    /// spans overlap by one byte when the next checkpoint has bits.
    /// tar: `[i*S, (i+1)*S)`, the last one ends at `blob_size`.
    ///
    /// # Panics
    /// If `span >= num_spans()`.
    pub fn span_compressed_range(&self, span: u64, blob_size: u64) -> Range<u64> {
        let n = self.num_spans();
        assert!(span < n, "span {span} out of range ({n} spans)");
        let last = span + 1 == n;
        match self {
            Zinfo::Gzip(g) => {
                let cp = &g.checkpoints[span as usize];
                let end = if last {
                    blob_size
                } else {
                    g.checkpoints[span as usize + 1].compressed_offset
                };
                cp.span_start()..end
            }
            Zinfo::Tar(t) => {
                let s = t.span();
                let end = if last { blob_size } else { (span + 1) * s };
                span * s..end
            }
        }
    }

    /// Uncompressed byte range of `span`; the last one ends at
    /// `uncompressed_size`.
    ///
    /// # Panics
    /// If `span >= num_spans()`.
    pub fn span_uncompressed_range(&self, span: u64, uncompressed_size: u64) -> Range<u64> {
        let n = self.num_spans();
        assert!(span < n, "span {span} out of range ({n} spans)");
        let last = span + 1 == n;
        match self {
            Zinfo::Gzip(g) => {
                let start = g.checkpoints[span as usize].uncompressed_offset;
                let end = if last {
                    uncompressed_size
                } else {
                    g.checkpoints[span as usize + 1].uncompressed_offset
                };
                start..end
            }
            Zinfo::Tar(t) => {
                let s = t.span();
                let end = if last {
                    uncompressed_size
                } else {
                    (span + 1) * s
                };
                span * s..end
            }
        }
    }

    /// The span holding `uncompressed_offset`: the largest `i` with
    /// `out_i <= offset` (0 if none), like the reference's
    /// `pt_index_from_ucmp_offset`; tar: `offset / S`.
    pub fn span_of(&self, uncompressed_offset: u64) -> u64 {
        match self {
            Zinfo::Gzip(g) => g.checkpoint_index_for(uncompressed_offset) as u64,
            Zinfo::Tar(t) => uncompressed_offset / t.span(),
        }
    }
}
