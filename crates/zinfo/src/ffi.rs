//! The only `unsafe` code of this crate: a minimal owner of a zlib-rs
//! (`libz-rs-sys`) inflate stream.
//!
//! We need the raw zlib API because no safe wrapper exposes what the zran
//! algorithm relies on: `inflate(Z_BLOCK)` (stop at every deflate block
//! boundary), `z_stream.data_type` (where did it stop, how many bits of the
//! last byte are still unused), `inflatePrime` (re-insert those bits) and
//! `inflateSetDictionary` (restore the 32 KiB history).
//!
//! Invariants kept by [`Inflater`]:
//! - the `z_stream` lives in a `Box` and never moves after `inflateInit2_`
//!   (zlib keeps a back pointer from its state to the stream and rejects
//!   calls on a moved stream);
//! - it is initialised exactly once in [`Inflater::new`] and ended exactly
//!   once in `Drop`;
//! - `next_in`/`next_out` are set from the slices passed to
//!   [`Inflater::inflate`] right before each `inflate` call; stale values left
//!   in the stream afterwards are never dereferenced (reset, prime, set
//!   dictionary and end do not read them).

use std::ffi::{c_int, CStr};

use libz_rs_sys as z;

pub(crate) use z::{
    Z_BLOCK, Z_BUF_ERROR, Z_DATA_ERROR, Z_NEED_DICT, Z_NO_FLUSH, Z_OK, Z_STREAM_END,
};

/// `inflateInit2` window bits: 15-bit window, automatic gzip or zlib header
/// detection (32 + 15).
pub(crate) const WBITS_AUTO: c_int = 47;
/// `inflateInit2` window bits: raw deflate, 15-bit window, no header/trailer.
pub(crate) const WBITS_RAW: c_int = -15;

/// Result of one `inflate` call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    /// zlib return code (`Z_OK`, `Z_STREAM_END`, `Z_DATA_ERROR`, ...).
    pub code: c_int,
    /// Input bytes consumed by this call.
    pub consumed: usize,
    /// Output bytes written by this call.
    pub produced: usize,
    /// `z_stream.data_type` after the call: bits 0-2 = unused bits in the last
    /// consumed byte, 64 = the current block is the member's last, 128 = stopped
    /// at a block boundary (or right after a header).
    pub data_type: c_int,
}

/// An initialised zlib-rs inflate stream.
pub(crate) struct Inflater {
    strm: Box<z::z_stream>,
}

impl Inflater {
    /// `inflateInit2(strm, window_bits)`. Returns the zlib error code on failure.
    pub(crate) fn new(window_bits: c_int) -> Result<Self, c_int> {
        // `zalloc`/`zfree` are None: zlib-rs then uses the Rust allocator
        // (feature "rust-allocator" of the workspace dependency).
        let mut strm: Box<z::z_stream> = Box::default();
        // SAFETY: `strm` is a valid, default-initialised (null pointers,
        // no allocator) z_stream at a stable heap address; the version string
        // and struct size are those of the library we link, as inflateInit2
        // requires.
        let ret = unsafe {
            z::inflateInit2_(
                &mut *strm,
                window_bits,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if ret != Z_OK {
            // zlib frees its state on failure; dropping the plain Box (no
            // `Inflater` exists yet, so no `inflateEnd`) is all that is left.
            return Err(ret);
        }
        Ok(Inflater { strm })
    }

    /// `inflateReset2(strm, window_bits)`: start a new stream (e.g. the next
    /// gzip member), keeping the allocated state.
    pub(crate) fn reset(&mut self, window_bits: c_int) -> Result<(), c_int> {
        // SAFETY: `self.strm` was initialised by `inflateInit2_` and has not
        // moved (it is boxed); no pointers from a previous call are used.
        let ret = unsafe { z::inflateReset2(&mut *self.strm, window_bits) };
        if ret == Z_OK {
            Ok(())
        } else {
            Err(ret)
        }
    }

    /// `inflatePrime(strm, bits, value)`: insert the `bits` (1..=7) high bits of
    /// the byte before a checkpoint, as the low bits of `value`.
    pub(crate) fn prime(&mut self, bits: u8, value: u8) -> Result<(), c_int> {
        // SAFETY: initialised, boxed stream; `inflatePrime` only touches the
        // stream's own state (bits <= 16 is checked by the library).
        let ret =
            unsafe { z::inflatePrime(&mut *self.strm, c_int::from(bits), c_int::from(value)) };
        if ret == Z_OK {
            Ok(())
        } else {
            Err(ret)
        }
    }

    /// `inflateSetDictionary`: preload the history window (raw inflate only).
    pub(crate) fn set_dictionary(&mut self, dict: &[u8]) -> Result<(), c_int> {
        let len = u32::try_from(dict.len()).map_err(|_| z::Z_STREAM_ERROR)?;
        // SAFETY: initialised, boxed stream; `dict` is a valid readable slice of
        // `len` bytes for the duration of the call, and zlib copies it.
        let ret = unsafe { z::inflateSetDictionary(&mut *self.strm, dict.as_ptr(), len) };
        if ret == Z_OK {
            Ok(())
        } else {
            Err(ret)
        }
    }

    /// One `inflate(strm, flush)` call from `input` into `output`. At most
    /// `u32::MAX` bytes of either are offered per call.
    #[inline]
    pub(crate) fn inflate(&mut self, input: &[u8], output: &mut [u8], flush: c_int) -> Step {
        let avail_in = input.len().min(u32::MAX as usize) as u32;
        let avail_out = output.len().min(u32::MAX as usize) as u32;
        let strm = &mut *self.strm;
        strm.next_in = input.as_ptr();
        strm.avail_in = avail_in;
        strm.next_out = output.as_mut_ptr();
        strm.avail_out = avail_out;
        // SAFETY: initialised, boxed stream. `next_in`/`avail_in` describe a
        // readable region inside `input` and `next_out`/`avail_out` a writable
        // region inside `output` (slice pointers are never null, even when
        // empty); both slices outlive the call and zlib does not keep the
        // pointers beyond it in any way we rely on (we overwrite them on the
        // next call before inflating again).
        let code = unsafe { z::inflate(strm, flush) };
        Step {
            code,
            consumed: (avail_in - strm.avail_in) as usize,
            produced: (avail_out - strm.avail_out) as usize,
            data_type: strm.data_type,
        }
    }

    /// zlib's error message for the last call (`strm.msg`), or a description of
    /// `code` when zlib set none.
    pub(crate) fn message(&self, code: c_int) -> String {
        if !self.strm.msg.is_null() {
            // SAFETY: zlib-rs only ever stores pointers to static
            // NUL-terminated strings in `msg`.
            let s = unsafe { CStr::from_ptr(self.strm.msg) };
            return s.to_string_lossy().into_owned();
        }
        code_name(code).to_string()
    }
}

// SAFETY: the stream and its zlib-rs state are exclusively owned by this
// value (no thread-local or shared state inside); moving it to another thread
// is fine. `&Inflater` only allows reading `msg`, a pointer to a static string.
unsafe impl Send for Inflater {}
// SAFETY: see above; no interior mutability is reachable through `&Inflater`.
unsafe impl Sync for Inflater {}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: the stream was successfully initialised in `new` (otherwise no
        // `Inflater` exists) and is ended exactly once, here.
        unsafe {
            z::inflateEnd(&mut *self.strm);
        }
    }
}

/// Symbolic name of a zlib return code.
pub(crate) fn code_name(code: c_int) -> &'static str {
    match code {
        z::Z_OK => "Z_OK",
        z::Z_STREAM_END => "Z_STREAM_END",
        z::Z_NEED_DICT => "Z_NEED_DICT",
        z::Z_ERRNO => "Z_ERRNO",
        z::Z_STREAM_ERROR => "Z_STREAM_ERROR",
        z::Z_DATA_ERROR => "Z_DATA_ERROR",
        z::Z_MEM_ERROR => "Z_MEM_ERROR",
        z::Z_BUF_ERROR => "Z_BUF_ERROR",
        z::Z_VERSION_ERROR => "Z_VERSION_ERROR",
        _ => "unknown zlib return code",
    }
}
