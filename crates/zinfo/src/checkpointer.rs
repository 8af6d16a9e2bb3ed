//! One-pass checkpoint building, the zran algorithm (zlib `examples/zran.c`,
//! as adapted by the reference's `generate_zinfo_from_fp`).
//!
//! # How it works
//!
//! Deflate data is a sequence of blocks. Every block may copy strings from up
//! to 32 KiB back in the uncompressed output, so the only places where
//! inflation can restart are block boundaries, and only if the 32 KiB of
//! output before the boundary (the *window*) is at hand. A boundary need not
//! fall on a byte boundary: the last byte of a block may also hold 1-7 bits of
//! the next one.
//!
//! We inflate with `inflate(Z_BLOCK)`, which returns at every block boundary
//! (and right after a gzip header). After every call, `data_type` tells us:
//!
//! - bit 7 (128): we stopped at a block boundary (or after a header);
//! - bit 6 (64): the block just finished was the member's last one; a
//!   checkpoint there would be useless (only the trailer follows);
//! - bits 0-2: how many bits of the last consumed byte belong to the next
//!   block.
//!
//! A checkpoint is recorded when bit 7 is set, bit 6 is not, and either
//! nothing has been output yet (the point right after the first header, so
//! there is always a checkpoint 0) or more than `span` bytes were output
//! since the previous checkpoint (strictly more). Because blocks are never
//! split, spans are a little larger than `span` and vary in size. An empty
//! first block yields a second checkpoint at out = 0; the reference does the
//! same, so we keep it.
//!
//! Stopping at every block (a few dozen KiB of output) costs zlib a return
//! and a 32 KiB window update each time. Since no boundary before
//! `last + span` can qualify, we inflate with `Z_NO_FLUSH` and at most that
//! much output, and switch to `Z_BLOCK` only from there (and before the first
//! output and during a member's header). This made the engine as fast as a
//! plain flate2 inflate of the same layer (it was 9-16% slower); the
//! checkpoints are the same, as the span-edge test and the property test
//! (against span 0, which lists every boundary) check.
//!
//! Concatenated gzip members (pigz, split-and-concatenate): when one member
//! ends and more input follows, the inflater is reset for a new gzip (or
//! zlib) header and continues. Member starts are not forced checkpoints, but
//! the point after a later member's header is an ordinary candidate. Offsets
//! stay cumulative over members, and the window is *not* cleared between
//! members. Anything after a member that is not a valid member (garbage, zero
//! padding) fails, as it does in the reference.
//!
//! # The window without extra copies
//!
//! zran keeps a 32 KiB circular buffer and copies it out, rotated, for each
//! checkpoint. We instead inflate into one larger linear buffer whose first
//! 32 KiB hold history: output is written after it, and when the buffer is
//! full its last 32 KiB are moved to the front. The 32 KiB before the write
//! position are thus always contiguous, so a checkpoint is one copy, and
//! the caller's `out` callback receives slices of the same buffer.

use crate::blob::{Checkpoint, GzipZinfo};
use crate::ffi::{self, Inflater, Step};
use crate::{ZinfoError, WINDOW_SIZE};

/// Output space after the 32 KiB history: large enough that the history move
/// (32 KiB) is rare compared with the data inflated.
const OUT_SPACE: usize = 1024 * 1024;

/// Builds gzip checkpoints while inflating, push-style: feed compressed
/// bytes, receive uncompressed bytes, read checkpoints as they appear.
pub struct GzipCheckpointer {
    inflater: Inflater,
    span: u64,
    /// `[history (WINDOW_SIZE) | output space]`; bytes before `pos` are
    /// uncompressed data already delivered (zeros before the stream start).
    buf: Box<[u8]>,
    /// Write position in `buf`, always >= WINDOW_SIZE.
    pos: usize,
    /// Compressed bytes consumed so far (zran's `totin`).
    total_in: u64,
    /// Uncompressed bytes produced so far (zran's `totout`).
    total_out: u64,
    /// `total_out` of the last checkpoint.
    last_out: u64,
    checkpoints: Vec<Checkpoint>,
    /// The current member returned `Z_STREAM_END`; more input starts a new one.
    member_ended: bool,
    /// Compressed offset where the current member starts.
    member_start: u64,
    /// The current member's header has been fully parsed.
    header_done: bool,
    /// Members started so far (1 after the first byte).
    members: u64,
    /// An error was returned; the stream state is unusable.
    failed: bool,
}

impl GzipCheckpointer {
    /// Start a new stream. `span_size` is the reference's span (e.g. 4 MiB);
    /// 0 puts a checkpoint at every block boundary.
    pub fn new(span_size: u64) -> Result<Self, ZinfoError> {
        if span_size > i64::MAX as u64 {
            return Err(ZinfoError::InvalidArgument(format!(
                "span size {span_size} does not fit in an i64"
            )));
        }
        let inflater = Inflater::new(ffi::WBITS_AUTO).map_err(|code| zlib_error(code, 0))?;
        Ok(GzipCheckpointer {
            inflater,
            span: span_size,
            buf: vec![0u8; WINDOW_SIZE + OUT_SPACE].into_boxed_slice(),
            pos: WINDOW_SIZE,
            total_in: 0,
            total_out: 0,
            last_out: 0,
            checkpoints: Vec::new(),
            member_ended: false,
            member_start: 0,
            header_done: false,
            members: 1,
            failed: false,
        })
    }

    /// Consume all of `input` (the next compressed bytes of the blob), calling
    /// `out` with every uncompressed byte produced, in order. New checkpoints
    /// are appended to [`checkpoints`](Self::checkpoints).
    ///
    /// After an error the checkpointer is unusable (later calls return
    /// [`ZinfoError::Poisoned`]).
    pub fn feed(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<(), ZinfoError> {
        if self.failed {
            return Err(ZinfoError::Poisoned);
        }
        let r = self.feed_inner(input, out);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn feed_inner(
        &mut self,
        mut input: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<(), ZinfoError> {
        while !input.is_empty() {
            if self.member_ended {
                // More input after a member's end: it must be another member.
                self.inflater
                    .reset(ffi::WBITS_AUTO)
                    .map_err(|c| zlib_error(c, self.total_in))?;
                self.member_ended = false;
                self.header_done = false;
                self.member_start = self.total_in;
                self.members += 1;
            }
            if self.pos == self.buf.len() {
                // Output space full: keep the last 32 KiB as history.
                self.buf.copy_within(self.pos - WINDOW_SIZE..self.pos, 0);
                self.pos = WINDOW_SIZE;
            }

            // Stop at block boundaries only where one could become a checkpoint:
            // before the first output, during a member's header, and once the
            // span is (nearly) full. Elsewhere inflate freely, but never past
            // `last_out + span`: no boundary at or before it qualifies.
            let room = self.buf.len() - self.pos;
            let until_span = (self.last_out + self.span).saturating_sub(self.total_out);
            let (flush, limit) = if self.total_out == 0 || !self.header_done || until_span == 0 {
                (ffi::Z_BLOCK, room)
            } else {
                (ffi::Z_NO_FLUSH, room.min(until_span as usize))
            };
            let step =
                self.inflater
                    .inflate(input, &mut self.buf[self.pos..self.pos + limit], flush);
            input = &input[step.consumed..];
            self.total_in += step.consumed as u64;
            if step.produced > 0 {
                let start = self.pos;
                self.pos += step.produced;
                self.total_out += step.produced as u64;
                out(&self.buf[start..self.pos]);
            }

            match step.code {
                ffi::Z_OK => {}
                ffi::Z_STREAM_END => {
                    // No checkpoint after the last block (bit 6 would forbid it
                    // anyway); decide on the next member when input arrives.
                    self.member_ended = true;
                    continue;
                }
                ffi::Z_BUF_ERROR if step.consumed > 0 || step.produced > 0 => {}
                code => return Err(self.step_error(code, &step)),
            }

            if step.data_type & 128 != 0 {
                self.header_done = true;
                if step.data_type & 64 == 0
                    && (self.total_out == 0 || self.total_out - self.last_out > self.span)
                {
                    self.checkpoints.push(Checkpoint {
                        compressed_offset: self.total_in,
                        uncompressed_offset: self.total_out,
                        bits: (step.data_type & 7) as u8,
                        window: self.buf[self.pos - WINDOW_SIZE..self.pos].into(),
                    });
                    self.last_out = self.total_out;
                }
            }
        }
        Ok(())
    }

    fn step_error(&self, code: i32, step: &Step) -> ZinfoError {
        let msg = self.inflater.message(code);
        let offset = self.total_in;
        if self.members > 1 && !self.header_done {
            return ZinfoError::TrailingData {
                offset: self.member_start,
                msg,
            };
        }
        match code {
            ffi::Z_DATA_ERROR => ZinfoError::Corrupt { offset, msg },
            ffi::Z_NEED_DICT => ZinfoError::Corrupt {
                offset,
                msg: "zlib stream needs a preset dictionary".to_string(),
            },
            ffi::Z_BUF_ERROR => {
                debug_assert!(step.consumed == 0 && step.produced == 0);
                ZinfoError::Zlib {
                    code,
                    what: "made no progress",
                    offset,
                }
            }
            _ => zlib_error(code, offset),
        }
    }

    /// Checkpoints found so far, in stream order.
    pub fn checkpoints(&self) -> &[Checkpoint] {
        &self.checkpoints
    }

    /// Compressed bytes consumed so far.
    pub fn total_in(&self) -> u64 {
        self.total_in
    }

    /// Uncompressed bytes produced so far.
    pub fn total_out(&self) -> u64 {
        self.total_out
    }

    /// The input has ended. Succeeds only if the last member ended cleanly
    /// (trailer checked) and at least one member was seen.
    pub fn finish(self) -> Result<GzipZinfo, ZinfoError> {
        if self.failed {
            return Err(ZinfoError::Poisoned);
        }
        if self.total_in == 0 {
            return Err(ZinfoError::Empty);
        }
        if !self.member_ended {
            if self.members > 1 && !self.header_done {
                return Err(ZinfoError::TrailingData {
                    offset: self.member_start,
                    msg: "incomplete gzip header".to_string(),
                });
            }
            return Err(ZinfoError::Truncated {
                offset: self.total_in,
            });
        }
        if self.checkpoints.is_empty() {
            // Cannot happen: the point after the first header always qualifies.
            return Err(ZinfoError::Zlib {
                code: 0,
                what: "produced no checkpoint",
                offset: self.total_in,
            });
        }
        Ok(GzipZinfo {
            span_size: self.span as i64,
            checkpoints: self.checkpoints,
            legacy_v1: false,
        })
    }
}

pub(crate) fn zlib_error(code: i32, offset: u64) -> ZinfoError {
    ZinfoError::Zlib {
        code,
        what: ffi::code_name(code),
        offset,
    }
}
