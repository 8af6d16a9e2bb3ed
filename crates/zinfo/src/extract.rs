//! Random access: inflate from a checkpoint (zran's `extract`, as adapted by
//! the reference's `extract_data_from_buffer`).
//!
//! A checkpoint sits at a deflate block boundary inside some member, after
//! that member's header, so we start a *raw* inflater (no header expected),
//! re-insert the 1-7 leftover bits of the byte before the boundary with
//! `inflatePrime`, and restore the 32 KiB history with `inflateSetDictionary`.
//! Then we inflate, discarding output until the wanted offset.
//!
//! When that member ends, the raw inflater has not consumed its 8-byte gzip
//! trailer (CRC-32, ISIZE): we skip it once, then reset the inflater to
//! automatic gzip/zlib header mode, in which later members' headers and
//! trailers are handled by zlib itself, and continue through them.

use std::io::{Read, Seek, SeekFrom};

use crate::blob::{Checkpoint, GzipZinfo};
use crate::checkpointer::zlib_error;
use crate::ffi::{self, Inflater};
use crate::{ZinfoError, WINDOW_SIZE};

/// Size of a gzip member trailer: CRC-32 and ISIZE.
const GZIP_TRAILER_SIZE: usize = 8;
/// Largest piece of output discarded per inflate call while skipping.
const DISCARD_SIZE: usize = 64 * 1024;
/// Read size used by [`extract_range`].
const READ_SIZE: usize = 64 * 1024;

/// A supplier of consecutive chunks of compressed input; an empty chunk means
/// the input has ended.
trait Source {
    fn next_chunk(&mut self) -> Result<&[u8], ZinfoError>;
}

struct SliceSource<'a>(Option<&'a [u8]>);

impl Source for SliceSource<'_> {
    fn next_chunk(&mut self) -> Result<&[u8], ZinfoError> {
        Ok(self.0.take().unwrap_or(&[]))
    }
}

struct ReaderSource<'r, R> {
    reader: &'r mut R,
    buf: Vec<u8>,
}

impl<R: Read> Source for ReaderSource<'_, R> {
    fn next_chunk(&mut self) -> Result<&[u8], ZinfoError> {
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(n) => return Ok(&self.buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Decompress starting at checkpoint `cp`.
///
/// `compressed` holds the blob bytes from the span start
/// (`cp.compressed_offset - (cp.bits != 0)`) up to at least the end of the
/// wanted data (more is fine, e.g. up to the blob end). `skip` uncompressed
/// bytes after the checkpoint are discarded, then `out` is filled. Returns the
/// number of bytes written, which is less than `out.len()` only if the gzip
/// stream ends first. If `compressed` ends before `out` is full and before
/// the stream ends, that is a [`ZinfoError::Truncated`] error.
pub fn extract_from_checkpoint(
    cp: &Checkpoint,
    compressed: &[u8],
    skip: u64,
    out: &mut [u8],
) -> Result<usize, ZinfoError> {
    extract(cp, &mut SliceSource(Some(compressed)), skip, out)
}

/// Read `[offset, offset + len)` of the uncompressed stream from a reader over
/// the whole blob: picks the checkpoint at or before `offset`, seeks to its
/// span start and reads only from there, as far as needed. The result is
/// shorter than `len` only if the stream ends first.
pub fn extract_range<R: Read + Seek>(
    z: &GzipZinfo,
    blob: &mut R,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, ZinfoError> {
    if z.checkpoints.is_empty() {
        return Err(ZinfoError::InvalidArgument(
            "zinfo has no checkpoints".to_string(),
        ));
    }
    let cp = &z.checkpoints[z.checkpoint_index_for(offset)];
    if offset < cp.uncompressed_offset {
        return Err(ZinfoError::InvalidArgument(format!(
            "offset {offset} is before the first checkpoint (uncompressed offset {})",
            cp.uncompressed_offset
        )));
    }
    blob.seek(SeekFrom::Start(cp.span_start()))?;
    let mut out = vec![0u8; len];
    let mut src = ReaderSource {
        reader: blob,
        buf: vec![0u8; READ_SIZE],
    };
    let n = extract(cp, &mut src, offset - cp.uncompressed_offset, &mut out)?;
    out.truncate(n);
    Ok(out)
}

fn extract(
    cp: &Checkpoint,
    src: &mut dyn Source,
    skip: u64,
    out: &mut [u8],
) -> Result<usize, ZinfoError> {
    if cp.bits > 7 {
        return Err(ZinfoError::InvalidArgument(format!(
            "checkpoint bits {} > 7",
            cp.bits
        )));
    }
    if cp.window.len() != WINDOW_SIZE {
        return Err(ZinfoError::InvalidArgument(format!(
            "checkpoint window is {} bytes, not {WINDOW_SIZE}",
            cp.window.len()
        )));
    }
    if out.is_empty() {
        return Ok(0);
    }
    // Absolute compressed offset of the next byte of `input`.
    let mut pos = cp.span_start();
    let mut input: &[u8] = src.next_chunk()?;

    let mut inf = Inflater::new(ffi::WBITS_RAW).map_err(|c| zlib_error(c, pos))?;
    if cp.bits != 0 {
        // The low `bits` bits of the next block are the high bits of the byte
        // just before the checkpoint.
        while input.is_empty() {
            input = src.next_chunk()?;
            if input.is_empty() {
                return Err(ZinfoError::Truncated { offset: pos });
            }
        }
        let value = input[0] >> (8 - cp.bits);
        inf.prime(cp.bits, value).map_err(|c| zlib_error(c, pos))?;
        input = &input[1..];
        pos += 1;
    }
    inf.set_dictionary(&cp.window)
        .map_err(|c| zlib_error(c, pos))?;

    let mut discard = if skip > 0 {
        vec![0u8; (skip as usize).min(DISCARD_SIZE)]
    } else {
        Vec::new()
    };
    let mut to_skip = skip;
    let mut written = 0usize;
    // Still inflating the checkpoint's own member in raw mode.
    let mut raw_mode = true;
    // Trailer bytes still to drop after the first member's end.
    let mut trailer_left = 0usize;
    // The current member has ended; another one may follow.
    let mut member_ended = false;

    while to_skip > 0 || written < out.len() {
        if input.is_empty() {
            input = src.next_chunk()?;
            if input.is_empty() {
                if member_ended && trailer_left == 0 {
                    return Ok(written); // the gzip stream ends here
                }
                return Err(ZinfoError::Truncated { offset: pos });
            }
        }
        if trailer_left > 0 {
            let n = trailer_left.min(input.len());
            input = &input[n..];
            pos += n as u64;
            trailer_left -= n;
            continue;
        }
        if member_ended {
            inf.reset(ffi::WBITS_AUTO).map_err(|c| zlib_error(c, pos))?;
            member_ended = false;
        }

        let dst: &mut [u8] = if to_skip > 0 {
            let n = (to_skip as usize).min(discard.len());
            &mut discard[..n]
        } else {
            &mut out[written..]
        };
        let step = inf.inflate(input, dst, ffi::Z_NO_FLUSH);
        input = &input[step.consumed..];
        pos += step.consumed as u64;
        if to_skip > 0 {
            to_skip -= step.produced as u64;
        } else {
            written += step.produced;
        }
        match step.code {
            ffi::Z_OK => {}
            ffi::Z_BUF_ERROR if step.consumed > 0 || step.produced > 0 => {}
            ffi::Z_STREAM_END => {
                member_ended = true;
                if raw_mode {
                    // Raw inflate leaves the first member's trailer unread;
                    // in gzip mode zlib consumes later trailers itself.
                    raw_mode = false;
                    trailer_left = GZIP_TRAILER_SIZE;
                }
            }
            ffi::Z_DATA_ERROR => {
                return Err(ZinfoError::Corrupt {
                    offset: pos,
                    msg: inf.message(step.code),
                })
            }
            ffi::Z_NEED_DICT => {
                return Err(ZinfoError::Corrupt {
                    offset: pos,
                    msg: "zlib stream needs a preset dictionary".to_string(),
                })
            }
            ffi::Z_BUF_ERROR => {
                return Err(ZinfoError::Zlib {
                    code: step.code,
                    what: "made no progress",
                    offset: pos,
                })
            }
            code => return Err(zlib_error(code, pos)),
        }
    }
    Ok(written)
}
