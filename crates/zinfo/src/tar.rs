//! zinfo of an uncompressed tar layer (reference: `ztoc/compression/tar_zinfo.go`).
//!
//! No checkpoints are needed: span `i` is simply `[i*S, min((i+1)*S, size))`.
//! The zTOC stores the flatbuffer
//! `table TarZinfo { version:int32; span_size:int64; size:int64; }` (root
//! type, no file identifier), written with fields added in that order, which
//! gives bytes identical to the Go flatbuffers builder.

use crate::ZinfoError;

/// Version written in every tar zinfo (kept in step with the gzip blob version).
const TAR_ZINFO_VERSION: i32 = 2;
// Flatbuffer vtable slots (byte offsets in the vtable): 4 + 2 * field index.
const SLOT_VERSION: u16 = 4;
const SLOT_SPAN_SIZE: u16 = 6;
const SLOT_SIZE: u16 = 8;

/// Span geometry of an uncompressed tar layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TarZinfo {
    /// Span size `S` in bytes (> 0 for any meaningful zinfo).
    pub span_size: i64,
    /// Blob size in bytes.
    pub size: i64,
}

impl TarZinfo {
    /// The flatbuffer bytes (identical to Go's `TarZinfo.Bytes()`).
    pub fn to_blob(&self) -> Vec<u8> {
        let mut fbb = flatbuffers::FlatBufferBuilder::with_capacity(64);
        let start = fbb.start_table();
        // Go adds version, span_size, size in this order; defaults (0) omitted.
        fbb.push_slot::<i32>(SLOT_VERSION, TAR_ZINFO_VERSION, 0);
        fbb.push_slot::<i64>(SLOT_SPAN_SIZE, self.span_size, 0);
        fbb.push_slot::<i64>(SLOT_SIZE, self.size, 0);
        let root = fbb.end_table(start);
        fbb.finish_minimal(root);
        fbb.finished_data().to_vec()
    }

    /// Parse the flatbuffer, with full bounds checking. Rejects
    /// `span_size <= 0` and `size < 0`, on which the span arithmetic is
    /// meaningless (Go would divide by zero). The version is not checked (Go
    /// does not either).
    pub fn from_blob(b: &[u8]) -> Result<Self, ZinfoError> {
        let table = root_table(b)?;
        let _version = read_field::<4>(b, table, SLOT_VERSION)?;
        let span_size = i64::from_le_bytes(read_field::<8>(b, table, SLOT_SPAN_SIZE)?);
        let size = i64::from_le_bytes(read_field::<8>(b, table, SLOT_SIZE)?);
        if span_size <= 0 {
            return Err(ZinfoError::InvalidTarZinfo(format!(
                "span size {span_size} is not positive"
            )));
        }
        if size < 0 {
            return Err(ZinfoError::InvalidTarZinfo(format!(
                "size {size} is negative"
            )));
        }
        Ok(TarZinfo { span_size, size })
    }

    /// Span size as an unsigned divisor; a non-positive span size (only
    /// possible in a hand-made value) means one span covering everything.
    pub(crate) fn span(&self) -> u64 {
        if self.span_size > 0 {
            self.span_size as u64
        } else {
            u64::MAX
        }
    }

    /// `ceil(size / S)`; Go's `MaxSpanID` is this minus one.
    pub(crate) fn num_spans(&self) -> u64 {
        let size = self.size.max(0) as u64;
        size.div_ceil(self.span())
    }
}

fn invalid(msg: String) -> ZinfoError {
    ZinfoError::InvalidTarZinfo(msg)
}

fn read_bytes<const N: usize>(b: &[u8], pos: usize) -> Result<[u8; N], ZinfoError> {
    pos.checked_add(N)
        .and_then(|end| b.get(pos..end))
        .map(|s| s.try_into().unwrap())
        .ok_or_else(|| {
            invalid(format!(
                "length {}: read of {N} bytes at {pos} out of bounds",
                b.len()
            ))
        })
}

/// Position of the root table.
fn root_table(b: &[u8]) -> Result<usize, ZinfoError> {
    let off = u32::from_le_bytes(read_bytes::<4>(b, 0)?) as usize;
    // The table must at least hold its vtable offset.
    read_bytes::<4>(b, off)?;
    Ok(off)
}

/// Raw bytes of scalar field `slot` of the table at `table`, or zeros (the
/// default) when the field is absent.
fn read_field<const N: usize>(b: &[u8], table: usize, slot: u16) -> Result<[u8; N], ZinfoError> {
    let soff = i32::from_le_bytes(read_bytes::<4>(b, table)?) as i64;
    let vtable = table as i64 - soff;
    if vtable < 0 {
        return Err(invalid(format!("vtable offset {vtable} out of bounds")));
    }
    let vtable = vtable as usize;
    let vt_len = u16::from_le_bytes(read_bytes::<2>(b, vtable)?) as usize;
    let tbl_len = u16::from_le_bytes(read_bytes::<2>(b, vtable + 2)?) as usize;
    if (slot as usize) + 2 > vt_len {
        return Ok([0; N]);
    }
    let field = u16::from_le_bytes(read_bytes::<2>(b, vtable + slot as usize)?) as usize;
    if field == 0 {
        return Ok([0; N]);
    }
    if field + N > tbl_len {
        return Err(invalid(format!(
            "field at vtable slot {slot} lies outside its table"
        )));
    }
    read_bytes::<N>(b, table + field)
}
