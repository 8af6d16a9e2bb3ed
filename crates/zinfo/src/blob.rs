//! Gzip checkpoints and their serialized form (the zTOC `checkpoints` bytes).
//!
//! Layout, all integers little-endian, no padding
//! (reference: `zinfo_to_blob` / `blob_to_zinfo` in `gzip_zinfo.c`):
//!
//! ```text
//! i32 N | i64 span_size | N x ( i64 in | i64 out | u8 bits | 32768-byte window )
//! ```
//!
//! That is version 2, the only one written by the reference. Version 1 blobs
//! (still readable, and re-serialised unchanged) have the same header, N
//! included, but omit checkpoint 0, which was assumed to be
//! `{in 10, out 0, bits 0, zero window}` (a plain 10-byte gzip header). There
//! is no version field: the version is inferred from the length alone.

use crate::{ZinfoError, WINDOW_SIZE};

/// Bytes of one serialized checkpoint: `in`, `out`, `bits`, window.
pub const PACKED_CHECKPOINT_SIZE: usize = 8 + 8 + 1 + WINDOW_SIZE;
/// Bytes of the blob header: checkpoint count and span size.
const HEADER_SIZE: usize = 4 + 8;
/// Compressed offset of the synthesised checkpoint 0 of a v1 blob.
const V1_FIRST_IN: u64 = 10;

/// A place where inflation can restart (zran's "access point").
#[derive(Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offset in the compressed blob of the first *full* byte after the
    /// deflate block boundary (zran's `in`).
    pub compressed_offset: u64,
    /// Offset in the uncompressed stream (zran's `out`).
    pub uncompressed_offset: u64,
    /// Number of bits (0-7) of the byte at `compressed_offset - 1` that belong
    /// to the next block. When non-zero, a span starts one byte earlier.
    pub bits: u8,
    /// The 32768 uncompressed bytes before `uncompressed_offset`, oldest first,
    /// zero-filled at the front when fewer exist.
    pub window: Box<[u8]>,
}

impl Checkpoint {
    /// First compressed byte needed to restart here:
    /// `compressed_offset - (bits != 0)`.
    pub fn span_start(&self) -> u64 {
        self.compressed_offset - u64::from(self.bits != 0)
    }
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nonzero = self.window.iter().filter(|&&b| b != 0).count();
        f.debug_struct("Checkpoint")
            .field("in", &self.compressed_offset)
            .field("out", &self.uncompressed_offset)
            .field("bits", &self.bits)
            .field("window_len", &self.window.len())
            .field("window_nonzero_bytes", &nonzero)
            .finish()
    }
}

/// The gzip zinfo of a layer: span size and checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GzipZinfo {
    /// Span size the checkpoints were built with (minimum uncompressed
    /// distance between checkpoints, exclusive).
    pub span_size: i64,
    /// Checkpoints in stream order. Checkpoint 0 is right after the first gzip
    /// header.
    pub checkpoints: Vec<Checkpoint>,
    /// Read from a legacy v1 blob: [`GzipZinfo::to_blob`] writes v1 again
    /// (checkpoint 0 omitted) so that the bytes round-trip.
    pub legacy_v1: bool,
}

impl GzipZinfo {
    /// Serialize (v2, or v1 when `legacy_v1`).
    ///
    /// A v1 zinfo must have at least one checkpoint (checkpoint 0 is not
    /// written); with none, only the 12-byte header is produced.
    pub fn to_blob(&self) -> Vec<u8> {
        let skip = usize::from(self.legacy_v1).min(self.checkpoints.len());
        let written = &self.checkpoints[skip..];
        let mut b = Vec::with_capacity(HEADER_SIZE + written.len() * PACKED_CHECKPOINT_SIZE);
        b.extend_from_slice(&(self.checkpoints.len() as i32).to_le_bytes());
        b.extend_from_slice(&self.span_size.to_le_bytes());
        for cp in written {
            b.extend_from_slice(&cp.compressed_offset.to_le_bytes());
            b.extend_from_slice(&cp.uncompressed_offset.to_le_bytes());
            b.push(cp.bits);
            // Windows are always WINDOW_SIZE long when built by this crate; pad
            // or cut hand-made ones so the layout stays valid.
            let w = &cp.window[..cp.window.len().min(WINDOW_SIZE)];
            b.extend_from_slice(w);
            b.resize(b.len() + (WINDOW_SIZE - w.len()), 0);
        }
        b
    }

    /// Parse a v2 or v1 blob. Never panics; any length other than
    /// `12 + 32785*N` (v2) or `12 + 32785*(N-1)` (v1) is an error.
    ///
    /// Stricter than the reference on values it would misbehave on later:
    /// N = 0, negative offsets and `bits > 7` are rejected.
    pub fn from_blob(b: &[u8]) -> Result<Self, ZinfoError> {
        let len = b.len();
        if len < HEADER_SIZE {
            return Err(ZinfoError::InvalidBlob(format!(
                "length {len} is shorter than the {HEADER_SIZE}-byte header"
            )));
        }
        let n = i32::from_le_bytes(b[0..4].try_into().unwrap());
        let span_size = i64::from_le_bytes(b[4..12].try_into().unwrap());
        let v2_len = HEADER_SIZE as i64 + PACKED_CHECKPOINT_SIZE as i64 * i64::from(n);
        let legacy_v1 = if v2_len == len as i64 {
            false
        } else if v2_len - PACKED_CHECKPOINT_SIZE as i64 == len as i64 {
            true
        } else {
            return Err(ZinfoError::InvalidBlob(format!(
                "length {len} does not match {n} checkpoints (expected {v2_len} for v2 or {} for v1)",
                v2_len - PACKED_CHECKPOINT_SIZE as i64
            )));
        };
        if n <= 0 {
            return Err(ZinfoError::InvalidBlob(format!(
                "length {len} with {n} checkpoints: no checkpoints"
            )));
        }
        let mut checkpoints = Vec::with_capacity(n as usize);
        if legacy_v1 {
            checkpoints.push(Checkpoint {
                compressed_offset: V1_FIRST_IN,
                uncompressed_offset: 0,
                bits: 0,
                window: vec![0u8; WINDOW_SIZE].into_boxed_slice(),
            });
        }
        for (k, rec) in b[HEADER_SIZE..]
            .chunks_exact(PACKED_CHECKPOINT_SIZE)
            .enumerate()
        {
            let i = k + usize::from(legacy_v1);
            let cin = i64::from_le_bytes(rec[0..8].try_into().unwrap());
            let cout = i64::from_le_bytes(rec[8..16].try_into().unwrap());
            let bits = rec[16];
            if cin < 0 || cout < 0 {
                return Err(ZinfoError::InvalidBlob(format!(
                    "length {len}: checkpoint {i} has a negative offset (in {cin}, out {cout})"
                )));
            }
            if bits > 7 {
                return Err(ZinfoError::InvalidBlob(format!(
                    "length {len}: checkpoint {i} has bits {bits} > 7"
                )));
            }
            if bits != 0 && cin == 0 {
                return Err(ZinfoError::InvalidBlob(format!(
                    "length {len}: checkpoint {i} has bits {bits} at compressed offset 0"
                )));
            }
            checkpoints.push(Checkpoint {
                compressed_offset: cin as u64,
                uncompressed_offset: cout as u64,
                bits,
                window: rec[17..].to_vec().into_boxed_slice(),
            });
        }
        Ok(GzipZinfo {
            span_size,
            checkpoints,
            legacy_v1,
        })
    }

    /// Index of the checkpoint to start from for `uncompressed_offset`: the
    /// last one with `out <= offset`, or 0 (reference:
    /// `pt_index_from_ucmp_offset`).
    pub(crate) fn checkpoint_index_for(&self, uncompressed_offset: u64) -> usize {
        self.checkpoints
            .partition_point(|c| c.uncompressed_offset <= uncompressed_offset)
            .saturating_sub(1)
    }
}
