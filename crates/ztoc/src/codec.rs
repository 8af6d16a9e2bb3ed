//! The zTOC blob: flatbuffers encode/decode, byte-identical to the reference Go
//! implementation (`ztoc/ztoc_marshaler.go` of awslabs/soci-snapshotter).
//!
//! # Why the encoder looks like this
//!
//! The zTOC is content-addressed: its sha256 digest goes into the SOCI index, so
//! "a valid flatbuffer" is not enough, we must produce the *same bytes* as Go. A
//! flatbuffer's bytes depend on the order in which objects are created and fields are
//! pushed, so [`encode`] replays Go's calls one for one (not flatc's generated
//! `create()`, which reorders fields by size):
//!
//! 1. `version`, `build_tool_identifier` strings;
//! 2. entries from last to first: strings `name`, `type`, `linkname`, `uname`, `gname`,
//!    `mod_time` (all always created, even when empty), then per PAX record (sorted by
//!    key) the key and value strings and the `Xattr` table, then the `xattrs` vector
//!    (always, maybe empty), then the `FileMetadata` table with slots pushed 0..=13;
//! 3. the `metadata` vector and the `TOC` table;
//! 4. the `checkpoints` byte vector, span digest strings first to last, their vector,
//!    then `CompressionInfo` pushing `max_span_id`, `span_digests`, `checkpoints`,
//!    `compression_algorithm`;
//! 5. the `Ztoc` table pushing `version`, `build_tool_identifier`, `toc`,
//!    `compressed_archive_size`, `uncompressed_archive_size`, `compression_info`;
//! 6. `Finish` without file identifier or size prefix (`finish_minimal`).
//!
//! Scalars equal to their schema default are not written (Go's `forceDefaults` is off),
//! so a gzip zTOC has no `compression_algorithm` field. Compared with the Go runtime
//! soci pins (flatbuffers `go/builder.go` at v25.12.19), the Rust builder's padding
//! (`Prep`/`align`), vtable trimming (trailing absent slots dropped) and finish
//! alignment (`minalign`) are the same algorithms as Go's. Vtable de-duplication
//! differs in one detail: Go compares only the field offsets, Rust the whole vtable
//! including the object's inline size. For this schema that never matters: the five
//! tables have vtables of different lengths (their last slot is always written), so
//! only tables of one type can share; `Xattr` and `FileMetadata`, the only types with
//! several instances, first push an offset that is always present (`key`, `name`)
//! while the builder head is 4-aligned, so their inline size is "offset of the first
//! pushed field + 4" and equal field offsets imply equal vtables. The golden tests
//! (`tests/codec_golden.rs`) check all of this against Go-made blobs.
//!
//! # Decoding
//!
//! [`decode`] never trusts the input: it runs the flatbuffers verifier (limits scaled
//! to the blob size, see [`verifier_options`]) and then reads with bounds-checked safe
//! accessors, so arbitrary bytes give an error, never a panic. Strings are read as raw
//! bytes (tar names need not be UTF-8; a missing NUL terminator is accepted, as Go
//! does). Then, like Go's `Unmarshal`, entries are sorted by `uncompressed_offset`
//! and each entry must start at or after the tar header derived from the previous one.

use std::collections::BTreeMap;

use flatbuffers::{
    FlatBufferBuilder, ForwardsUOffset, InvalidFlatbuffer, Vector, Verifiable, Verifier,
    VerifierOptions, WIPOffset,
};

use crate::model::{CompressionAlgorithm, CompressionInfo, EntryType, Toc, TocEntry, Ztoc};

/// Tar block size: entries' headers start on 512-byte boundaries.
const TAR_BLOCK_SIZE: i64 = 512;

/// Why a zTOC blob could not be decoded.
#[derive(thiserror::Error, Debug)]
pub enum CodecError {
    /// The flatbuffers verifier rejected the blob.
    #[error("invalid zTOC: not a valid flatbuffer ({0})")]
    InvalidFlatbuffer(#[from] InvalidFlatbuffer),
    /// A verified blob that our reader still could not follow (should not happen).
    #[error("invalid zTOC: malformed flatbuffer ({0})")]
    Malformed(&'static str),
    /// The root table lacks its `toc` or `compression_info` table. Go's `Unmarshal`
    /// fails on these too (it panics on the nil table and recovers into an error).
    #[error("invalid zTOC: missing {0} table")]
    MissingTable(&'static str),
    /// Go's `ErrInvalidTOCEntry`: after sorting by offset, an entry's data starts
    /// before the tar header that must follow the previous entry.
    #[error(
        "invalid zTOC: entry at offset {offset} starts before the end of the previous entry ({min_offset})"
    )]
    OverlappingEntry {
        /// `uncompressed_offset` of the offending entry.
        offset: i64,
        /// Derived offset of its tar header: `align512(prev.offset + prev.size)`.
        min_offset: i64,
    },
}

/// `"sha256:<hex>"` of `bytes`: the OCI digest of an encoded zTOC (the
/// workspace's one implementation, also `soci_oci::spec::sha256_digest`).
pub use soci_digest::sha256_digest;

// ---------------------------------------------------------------------------------
// Schema: vtable byte offsets (4 + 2 * slot index), from `ztoc/fbs/ztoc.fbs`.

mod slot {
    use flatbuffers::VOffsetT;

    const fn vt(index: VOffsetT) -> VOffsetT {
        4 + 2 * index
    }

    pub(crate) const XATTR_KEY: VOffsetT = vt(0);
    pub(crate) const XATTR_VALUE: VOffsetT = vt(1);

    pub(crate) const FM_NAME: VOffsetT = vt(0);
    pub(crate) const FM_TYPE: VOffsetT = vt(1);
    pub(crate) const FM_UNCOMPRESSED_OFFSET: VOffsetT = vt(2);
    pub(crate) const FM_UNCOMPRESSED_SIZE: VOffsetT = vt(3);
    pub(crate) const FM_LINKNAME: VOffsetT = vt(4);
    pub(crate) const FM_MODE: VOffsetT = vt(5);
    pub(crate) const FM_UID: VOffsetT = vt(6);
    pub(crate) const FM_GID: VOffsetT = vt(7);
    pub(crate) const FM_UNAME: VOffsetT = vt(8);
    pub(crate) const FM_GNAME: VOffsetT = vt(9);
    pub(crate) const FM_MOD_TIME: VOffsetT = vt(10);
    pub(crate) const FM_DEVMAJOR: VOffsetT = vt(11);
    pub(crate) const FM_DEVMINOR: VOffsetT = vt(12);
    pub(crate) const FM_XATTRS: VOffsetT = vt(13);

    pub(crate) const CI_COMPRESSION_ALGORITHM: VOffsetT = vt(0);
    pub(crate) const CI_MAX_SPAN_ID: VOffsetT = vt(1);
    pub(crate) const CI_SPAN_DIGESTS: VOffsetT = vt(2);
    pub(crate) const CI_CHECKPOINTS: VOffsetT = vt(3);

    pub(crate) const TOC_METADATA: VOffsetT = vt(0);

    pub(crate) const ZTOC_VERSION: VOffsetT = vt(0);
    pub(crate) const ZTOC_BUILD_TOOL_IDENTIFIER: VOffsetT = vt(1);
    pub(crate) const ZTOC_COMPRESSED_ARCHIVE_SIZE: VOffsetT = vt(2);
    pub(crate) const ZTOC_UNCOMPRESSED_ARCHIVE_SIZE: VOffsetT = vt(3);
    pub(crate) const ZTOC_TOC: VOffsetT = vt(4);
    pub(crate) const ZTOC_COMPRESSION_INFO: VOffsetT = vt(5);
}

/// `CompressionInfo.compression_algorithm` default in the schema (`Gzip`).
const DEFAULT_COMPRESSION_ALGORITHM: i8 = 1;

// ---------------------------------------------------------------------------------
// Encoding

/// Encodes `z` as the reference Go `ztoc.Marshal` would, byte for byte.
///
/// PAX records are written sorted by key (bytewise); if a key occurs more than once,
/// only its last value is kept (Go keeps them in a map).
pub fn encode(z: &Ztoc) -> Vec<u8> {
    let mut b = FlatBufferBuilder::with_capacity(estimate_size(z));

    let version = b.create_string(&z.version);
    let build_tool = b.create_string(&z.build_tool_identifier);

    // TOC: entries are created last to first, as Go does.
    let mut entry_offsets = vec![WIPOffset::new(0); z.toc.entries.len()];
    for (i, e) in z.toc.entries.iter().enumerate().rev() {
        entry_offsets[i] = encode_entry(&mut b, e);
    }
    b.start_vector::<WIPOffset<()>>(entry_offsets.len());
    for off in entry_offsets.iter().rev() {
        b.push(*off);
    }
    let metadata = b.end_vector::<WIPOffset<()>>(entry_offsets.len());
    let toc_start = b.start_table();
    b.push_slot_always(slot::TOC_METADATA, metadata);
    let toc = b.end_table(toc_start);

    // CompressionInfo.
    let ci = &z.compression_info;
    let checkpoints = b.create_vector(&ci.checkpoints);
    let digest_offsets: Vec<_> = ci.span_digests.iter().map(|d| b.create_string(d)).collect();
    b.start_vector::<WIPOffset<&str>>(digest_offsets.len());
    for off in digest_offsets.iter().rev() {
        b.push(*off);
    }
    let span_digests = b.end_vector::<WIPOffset<&str>>(digest_offsets.len());
    let ci_start = b.start_table();
    b.push_slot(slot::CI_MAX_SPAN_ID, ci.max_span_id, 0);
    b.push_slot_always(slot::CI_SPAN_DIGESTS, span_digests);
    b.push_slot_always(slot::CI_CHECKPOINTS, checkpoints);
    b.push_slot(
        slot::CI_COMPRESSION_ALGORITHM,
        ci.compression_algorithm.to_i8(),
        DEFAULT_COMPRESSION_ALGORITHM,
    );
    let compression_info = b.end_table(ci_start);

    // Root.
    let root_start = b.start_table();
    b.push_slot_always(slot::ZTOC_VERSION, version);
    b.push_slot_always(slot::ZTOC_BUILD_TOOL_IDENTIFIER, build_tool);
    b.push_slot_always(slot::ZTOC_TOC, toc);
    b.push_slot(
        slot::ZTOC_COMPRESSED_ARCHIVE_SIZE,
        z.compressed_archive_size,
        0,
    );
    b.push_slot(
        slot::ZTOC_UNCOMPRESSED_ARCHIVE_SIZE,
        z.uncompressed_archive_size,
        0,
    );
    b.push_slot_always(slot::ZTOC_COMPRESSION_INFO, compression_info);
    let root = b.end_table(root_start);

    // Go's `Finish`: pad to minalign, then the root offset; no identifier, no size prefix.
    b.finish_minimal(root);
    let (mut buf, head) = b.collapse();
    buf.drain(..head);
    buf
}

/// One `FileMetadata` table and everything it points to, in Go's call order.
fn encode_entry<'a>(
    b: &mut FlatBufferBuilder<'a>,
    e: &TocEntry,
) -> WIPOffset<flatbuffers::TableFinishedWIPOffset> {
    let name = b.create_byte_string(&e.name);
    let entry_type = b.create_string(e.entry_type.as_str());
    let linkname = b.create_byte_string(&e.linkname);
    let uname = b.create_byte_string(&e.uname);
    let gname = b.create_byte_string(&e.gname);
    let mod_time = b.create_string(&e.mod_time);

    // Go goes through a map: one value per key (the last one), keys sorted bytewise.
    let records: BTreeMap<&[u8], &[u8]> = e
        .pax_records
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let mut xattr_offsets = Vec::with_capacity(records.len());
    for (key, value) in records {
        let key = b.create_byte_string(key);
        let value = b.create_byte_string(value);
        let start = b.start_table();
        b.push_slot_always(slot::XATTR_KEY, key);
        b.push_slot_always(slot::XATTR_VALUE, value);
        xattr_offsets.push(b.end_table(start));
    }
    b.start_vector::<WIPOffset<()>>(xattr_offsets.len());
    for off in xattr_offsets.iter().rev() {
        b.push(*off);
    }
    let xattrs = b.end_vector::<WIPOffset<()>>(xattr_offsets.len());

    let start = b.start_table();
    b.push_slot_always(slot::FM_NAME, name);
    b.push_slot_always(slot::FM_TYPE, entry_type);
    b.push_slot(slot::FM_UNCOMPRESSED_OFFSET, e.uncompressed_offset, 0);
    b.push_slot(slot::FM_UNCOMPRESSED_SIZE, e.uncompressed_size, 0);
    b.push_slot_always(slot::FM_LINKNAME, linkname);
    b.push_slot(slot::FM_MODE, e.mode, 0);
    b.push_slot(slot::FM_UID, e.uid, 0);
    b.push_slot(slot::FM_GID, e.gid, 0);
    b.push_slot_always(slot::FM_UNAME, uname);
    b.push_slot_always(slot::FM_GNAME, gname);
    b.push_slot_always(slot::FM_MOD_TIME, mod_time);
    b.push_slot(slot::FM_DEVMAJOR, e.devmajor, 0);
    b.push_slot(slot::FM_DEVMINOR, e.devminor, 0);
    b.push_slot_always(slot::FM_XATTRS, xattrs);
    b.end_table(start)
}

/// A generous guess of the encoded size, so the builder rarely has to grow (growing
/// copies the whole buffer; the bytes produced are the same either way).
fn estimate_size(z: &Ztoc) -> usize {
    let strings = |s: usize| s + 8;
    let entries: usize = z
        .toc
        .entries
        .iter()
        .map(|e| {
            let pax: usize = e
                .pax_records
                .iter()
                .map(|(k, v)| strings(k.len()) + strings(v.len()) + 16)
                .sum();
            128 + strings(e.name.len())
                + strings(e.linkname.len())
                + strings(e.uname.len())
                + strings(e.gname.len())
                + strings(e.mod_time.len())
                + pax
        })
        .sum();
    let ci = &z.compression_info;
    256 + entries
        + ci.checkpoints.len()
        + ci.span_digests
            .iter()
            .map(|d| strings(d.len()) + 4)
            .sum::<usize>()
        + z.version.len()
        + z.build_tool_identifier.len()
}

// ---------------------------------------------------------------------------------
// Verification (marker types describing the schema to the flatbuffers verifier)

/// A string read as raw bytes: a `[ubyte]` vector (no UTF-8 or NUL-terminator check).
type RawString<'a> = Vector<'a, u8>;

struct XattrV;
struct FileMetadataV;
struct CompressionInfoV;
struct TocV;
struct ZtocV;

impl Verifiable for XattrV {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<RawString>>("key", slot::XATTR_KEY, false)?
            .visit_field::<ForwardsUOffset<RawString>>("value", slot::XATTR_VALUE, false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for FileMetadataV {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        type S<'a> = ForwardsUOffset<RawString<'a>>;
        v.visit_table(pos)?
            .visit_field::<S>("name", slot::FM_NAME, false)?
            .visit_field::<S>("type", slot::FM_TYPE, false)?
            .visit_field::<i64>("uncompressed_offset", slot::FM_UNCOMPRESSED_OFFSET, false)?
            .visit_field::<i64>("uncompressed_size", slot::FM_UNCOMPRESSED_SIZE, false)?
            .visit_field::<S>("linkname", slot::FM_LINKNAME, false)?
            .visit_field::<i64>("mode", slot::FM_MODE, false)?
            .visit_field::<u32>("uid", slot::FM_UID, false)?
            .visit_field::<u32>("gid", slot::FM_GID, false)?
            .visit_field::<S>("uname", slot::FM_UNAME, false)?
            .visit_field::<S>("gname", slot::FM_GNAME, false)?
            .visit_field::<S>("mod_time", slot::FM_MOD_TIME, false)?
            .visit_field::<i64>("devmajor", slot::FM_DEVMAJOR, false)?
            .visit_field::<i64>("devminor", slot::FM_DEVMINOR, false)?
            .visit_field::<ForwardsUOffset<Vector<ForwardsUOffset<XattrV>>>>(
                "xattrs",
                slot::FM_XATTRS,
                false,
            )?
            .finish();
        Ok(())
    }
}

impl Verifiable for CompressionInfoV {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<i8>(
                "compression_algorithm",
                slot::CI_COMPRESSION_ALGORITHM,
                false,
            )?
            .visit_field::<i32>("max_span_id", slot::CI_MAX_SPAN_ID, false)?
            .visit_field::<ForwardsUOffset<Vector<ForwardsUOffset<RawString>>>>(
                "span_digests",
                slot::CI_SPAN_DIGESTS,
                false,
            )?
            .visit_field::<ForwardsUOffset<Vector<u8>>>("checkpoints", slot::CI_CHECKPOINTS, false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for TocV {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vector<ForwardsUOffset<FileMetadataV>>>>(
                "metadata",
                slot::TOC_METADATA,
                false,
            )?
            .finish();
        Ok(())
    }
}

impl Verifiable for ZtocV {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        type S<'a> = ForwardsUOffset<RawString<'a>>;
        v.visit_table(pos)?
            .visit_field::<S>("version", slot::ZTOC_VERSION, false)?
            .visit_field::<S>(
                "build_tool_identifier",
                slot::ZTOC_BUILD_TOOL_IDENTIFIER,
                false,
            )?
            .visit_field::<i64>(
                "compressed_archive_size",
                slot::ZTOC_COMPRESSED_ARCHIVE_SIZE,
                false,
            )?
            .visit_field::<i64>(
                "uncompressed_archive_size",
                slot::ZTOC_UNCOMPRESSED_ARCHIVE_SIZE,
                false,
            )?
            .visit_field::<ForwardsUOffset<TocV>>("toc", slot::ZTOC_TOC, false)?
            .visit_field::<ForwardsUOffset<CompressionInfoV>>(
                "compression_info",
                slot::ZTOC_COMPRESSION_INFO,
                false,
            )?
            .finish();
        Ok(())
    }
}

/// Verifier limits scaled to the blob, so that a real zTOC with millions of entries
/// passes while a hostile blob (many offsets to one shared table) cannot make
/// verification or decoding blow up.
///
/// - Every table Go writes has its own 4-byte vtable offset, so a Go-made blob holds at
///   most `len / 4` tables; shared tables are the only way to exceed that.
/// - The "apparent size" (bytes verified, counting shared data once per reference)
///   of a Go-made blob stays below `4 * len` (re-reading the shared vtables costs at
///   most 32 bytes per table); `8 * len` leaves room and bounds decode output.
/// - The deepest path is Ztoc → TOC → FileMetadata → Xattr (4 tables).
pub(crate) fn verifier_options(len: usize) -> VerifierOptions {
    VerifierOptions {
        max_depth: 16,
        max_tables: len / 4 + 16,
        max_apparent_size: len.saturating_mul(8).saturating_add(1 << 20),
        ignore_missing_null_terminator: true,
    }
}

// ---------------------------------------------------------------------------------
// Reading (safe, bounds-checked; after verification these checks cannot fail)

type ReadResult<T> = Result<T, CodecError>;

/// A table in the blob: its position and its vtable (the field offsets).
#[derive(Clone, Copy)]
struct TableRef<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The vtable's field slots (without its two-entry header).
    vtable: &'a [u8],
}

fn read_bytes<const N: usize>(buf: &[u8], pos: usize) -> ReadResult<[u8; N]> {
    pos.checked_add(N)
        .and_then(|end| buf.get(pos..end))
        .and_then(|s| s.try_into().ok())
        .ok_or(CodecError::Malformed("read out of bounds"))
}

fn read_u16(buf: &[u8], pos: usize) -> ReadResult<u16> {
    read_bytes::<2>(buf, pos).map(u16::from_le_bytes)
}

fn read_u32(buf: &[u8], pos: usize) -> ReadResult<u32> {
    read_bytes::<4>(buf, pos).map(u32::from_le_bytes)
}

/// Follows the uoffset stored at `pos`.
fn follow_uoffset(buf: &[u8], pos: usize) -> ReadResult<usize> {
    let off = read_u32(buf, pos)? as usize;
    pos.checked_add(off)
        .ok_or(CodecError::Malformed("offset overflow"))
}

/// A vector whose length prefix is at `pos`: (first element position, length).
fn vector_at(buf: &[u8], pos: usize) -> ReadResult<(usize, usize)> {
    let len = read_u32(buf, pos)? as usize;
    Ok((
        pos.checked_add(4)
            .ok_or(CodecError::Malformed("offset overflow"))?,
        len,
    ))
}

/// The bytes of a string or `[ubyte]` whose length prefix is at `pos`.
fn bytes_at(buf: &[u8], pos: usize) -> ReadResult<&[u8]> {
    let (start, len) = vector_at(buf, pos)?;
    start
        .checked_add(len)
        .and_then(|end| buf.get(start..end))
        .ok_or(CodecError::Malformed("vector out of bounds"))
}

impl<'a> TableRef<'a> {
    /// The table whose vtable offset is at `pos`.
    fn at(buf: &'a [u8], pos: usize) -> ReadResult<Self> {
        let soffset = read_u32(buf, pos)? as i32 as i64;
        let start = usize::try_from(pos as i64 - soffset)
            .map_err(|_| CodecError::Malformed("vtable out of bounds"))?;
        let len = read_u16(buf, start)? as usize;
        let vtable = start
            .checked_add(len)
            .and_then(|end| buf.get(start..end))
            .map(|vt| vt.get(4..).unwrap_or_default())
            .ok_or(CodecError::Malformed("vtable out of bounds"))?;
        Ok(TableRef { buf, pos, vtable })
    }

    fn root(buf: &'a [u8]) -> ReadResult<Self> {
        Self::at(buf, follow_uoffset(buf, 0)?)
    }

    /// Absolute position of a field, or `None` when absent (default value).
    fn field(&self, slot: u16) -> ReadResult<Option<usize>> {
        let i = slot as usize - 4;
        match self.vtable.get(i..i + 2) {
            None | Some([0, 0]) => Ok(None),
            Some(off) => Ok(Some(
                self.pos + u16::from_le_bytes([off[0], off[1]]) as usize,
            )),
        }
    }

    fn i64(&self, slot: u16) -> ReadResult<i64> {
        self.field(slot)?.map_or(Ok(0), |p| {
            read_bytes::<8>(self.buf, p).map(i64::from_le_bytes)
        })
    }

    fn u32(&self, slot: u16) -> ReadResult<u32> {
        self.field(slot)?.map_or(Ok(0), |p| read_u32(self.buf, p))
    }

    fn i32(&self, slot: u16) -> ReadResult<i32> {
        self.field(slot)?
            .map_or(Ok(0), |p| read_u32(self.buf, p).map(|v| v as i32))
    }

    fn i8(&self, slot: u16, default: i8) -> ReadResult<i8> {
        self.field(slot)?.map_or(Ok(default), |p| {
            read_bytes::<1>(self.buf, p).map(|b| b[0] as i8)
        })
    }

    /// A string or `[ubyte]` field as raw bytes (empty when absent).
    fn bytes(&self, slot: u16) -> ReadResult<&'a [u8]> {
        match self.field(slot)? {
            None => Ok(&[]),
            Some(p) => bytes_at(self.buf, follow_uoffset(self.buf, p)?),
        }
    }

    /// A string field decoded lossily (used where the model holds a `String`).
    fn string_lossy(&self, slot: u16) -> ReadResult<String> {
        Ok(String::from_utf8_lossy(self.bytes(slot)?).into_owned())
    }

    fn table(&self, slot: u16) -> ReadResult<Option<TableRef<'a>>> {
        match self.field(slot)? {
            None => Ok(None),
            Some(p) => Ok(Some(TableRef::at(self.buf, follow_uoffset(self.buf, p)?)?)),
        }
    }

    /// Element positions of a vector-of-offsets field: each is the position of the
    /// element's target (a table or a string).
    fn offsets(&self, slot: u16) -> ReadResult<impl Iterator<Item = ReadResult<usize>> + 'a> {
        let (start, len) = match self.field(slot)? {
            None => (0, 0),
            Some(p) => vector_at(self.buf, follow_uoffset(self.buf, p)?)?,
        };
        let buf = self.buf;
        Ok((0..len).map(move |i| {
            let pos = i.checked_mul(4).and_then(|o| start.checked_add(o));
            follow_uoffset(buf, pos.ok_or(CodecError::Malformed("offset overflow"))?)
        }))
    }
}

// ---------------------------------------------------------------------------------
// Decoding

/// Decodes a zTOC blob like Go's `ztoc.Unmarshal`; any flatbuffer laid out by the
/// schema is accepted, not only Go's exact bytes.
///
/// Entries come back sorted by `uncompressed_offset` (stable sort: equal offsets keep
/// blob order; Go's sort is unstable). PAX records come back sorted by key with one
/// value per key (the last one), as Go's map holds them. Missing strings and vectors
/// decode as empty and missing scalars as their default; a missing `toc` or
/// `compression_info` table is an error, as in Go.
pub fn decode(bytes: &[u8]) -> Result<Ztoc, CodecError> {
    let opts = verifier_options(bytes.len());
    let mut verifier = Verifier::new(&opts, bytes);
    <ForwardsUOffset<ZtocV>>::run_verifier(&mut verifier, 0)?;

    let root = TableRef::root(bytes)?;
    let toc = root
        .table(slot::ZTOC_TOC)?
        .ok_or(CodecError::MissingTable("toc"))?;
    let ci = root
        .table(slot::ZTOC_COMPRESSION_INFO)?
        .ok_or(CodecError::MissingTable("compression_info"))?;

    let mut entries = Vec::new();
    for pos in toc.offsets(slot::TOC_METADATA)? {
        entries.push(decode_entry(TableRef::at(bytes, pos?)?)?);
    }
    entries.sort_by_key(|e| e.uncompressed_offset);
    check_entry_offsets(&entries)?;

    let mut span_digests = Vec::new();
    for pos in ci.offsets(slot::CI_SPAN_DIGESTS)? {
        span_digests.push(String::from_utf8_lossy(bytes_at(bytes, pos?)?).into_owned());
    }

    Ok(Ztoc {
        version: root.string_lossy(slot::ZTOC_VERSION)?,
        build_tool_identifier: root.string_lossy(slot::ZTOC_BUILD_TOOL_IDENTIFIER)?,
        compressed_archive_size: root.i64(slot::ZTOC_COMPRESSED_ARCHIVE_SIZE)?,
        uncompressed_archive_size: root.i64(slot::ZTOC_UNCOMPRESSED_ARCHIVE_SIZE)?,
        toc: Toc { entries },
        compression_info: CompressionInfo {
            compression_algorithm: CompressionAlgorithm::from_i8(ci.i8(
                slot::CI_COMPRESSION_ALGORITHM,
                DEFAULT_COMPRESSION_ALGORITHM,
            )?),
            max_span_id: ci.i32(slot::CI_MAX_SPAN_ID)?,
            span_digests,
            checkpoints: ci.bytes(slot::CI_CHECKPOINTS)?.to_vec(),
        },
    })
}

fn decode_entry(t: TableRef<'_>) -> ReadResult<TocEntry> {
    let mut records = BTreeMap::new();
    for pos in t.offsets(slot::FM_XATTRS)? {
        let x = TableRef::at(t.buf, pos?)?;
        records.insert(
            x.bytes(slot::XATTR_KEY)?.to_vec(),
            x.bytes(slot::XATTR_VALUE)?.to_vec(),
        );
    }
    Ok(TocEntry {
        name: t.bytes(slot::FM_NAME)?.to_vec(),
        entry_type: EntryType::from(t.string_lossy(slot::FM_TYPE)?),
        uncompressed_offset: t.i64(slot::FM_UNCOMPRESSED_OFFSET)?,
        uncompressed_size: t.i64(slot::FM_UNCOMPRESSED_SIZE)?,
        linkname: t.bytes(slot::FM_LINKNAME)?.to_vec(),
        mode: t.i64(slot::FM_MODE)?,
        uid: t.u32(slot::FM_UID)?,
        gid: t.u32(slot::FM_GID)?,
        uname: t.bytes(slot::FM_UNAME)?.to_vec(),
        gname: t.bytes(slot::FM_GNAME)?.to_vec(),
        mod_time: t.string_lossy(slot::FM_MOD_TIME)?,
        devmajor: t.i64(slot::FM_DEVMAJOR)?,
        devminor: t.i64(slot::FM_DEVMINOR)?,
        pax_records: records.into_iter().collect(),
    })
}

/// Go's `AlignToTarBlock`, with Go's wrapping `int64` arithmetic.
fn align_to_tar_block(o: i64) -> i64 {
    let rem = o % TAR_BLOCK_SIZE;
    if rem > 0 {
        o.wrapping_add(TAR_BLOCK_SIZE - rem)
    } else {
        o
    }
}

/// Go's check in `flatbufferToTOC`: the first tar header is at 0, each next one right
/// after the previous entry's data, padded to 512; no entry's data may start before
/// its header position.
fn check_entry_offsets(entries: &[TocEntry]) -> Result<(), CodecError> {
    let mut next_header = 0i64;
    for e in entries {
        if next_header > e.uncompressed_offset {
            return Err(CodecError::OverlappingEntry {
                offset: e.uncompressed_offset,
                min_offset: next_header,
            });
        }
        next_header = align_to_tar_block(e.uncompressed_offset.wrapping_add(e.uncompressed_size));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_matches_go() {
        assert_eq!(align_to_tar_block(0), 0);
        assert_eq!(align_to_tar_block(1), 512);
        assert_eq!(align_to_tar_block(512), 512);
        assert_eq!(align_to_tar_block(513), 1024);
        // Go's `%` truncates toward zero: negative values are left unaligned.
        assert_eq!(align_to_tar_block(-5), -5);
        // Wraps like Go's int64 instead of panicking.
        assert_eq!(align_to_tar_block(i64::MAX), i64::MAX.wrapping_add(1));
    }

    #[test]
    fn digest_format() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
