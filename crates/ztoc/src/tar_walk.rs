//! A push-based tar walker that reports entries exactly as Go's `archive/tar`
//! `Reader.Next()` (Go 1.19) does, as the reference soci builds its TOC
//! (`ztoc/toc_builder.go` `metadataFromTarReader` + `getType`).
//!
//! Bytes of the uncompressed layer are pushed in with [`TarWalker::feed`] in slices of any
//! size; completed entries are drained with [`TarWalker::take_entries`]; [`TarWalker::finish`]
//! reports the tar position at which Go would have returned `io.EOF`.
//!
//! The walker models Go's reader as a state machine over the stream position. Go's
//! `Next()` is, per call:
//! 1. discard the rest of the previous entry's data (EOF here is `ErrUnexpectedEOF`), then
//!    its padding (EOF here is a clean `io.EOF`);
//! 2. read a header block (0 bytes then EOF: `io.EOF`; a zero block then EOF or a second
//!    zero block: `io.EOF`; zero block then a non-zero block: `ErrHeader`);
//! 3. for `x`/`g` PAX headers and GNU `L`/`K` long names, read the (<= 1 MiB) data and loop;
//! 4. otherwise merge PAX records, long names, map `\0` to dir/reg, handle PAX sparse
//!    headers (format 1.0 reads its map from the data section) and return the entry.
//!
//! Position tracking is `u64` throughout; entry data is skipped without copying.

use std::collections::BTreeMap;

use crate::gotime::marshal_text_utc;
use crate::model::{EntryType, TocEntry};

const BLOCK: usize = 512;
/// Go's `maxSpecialFileSize`: the limit on PAX header and GNU long name/link data.
const MAX_SPECIAL_FILE_SIZE: u64 = 1 << 20;

const PAX_PATH: &[u8] = b"path";
const PAX_LINKPATH: &[u8] = b"linkpath";
const PAX_UNAME: &[u8] = b"uname";
const PAX_GNAME: &[u8] = b"gname";
const PAX_UID: &[u8] = b"uid";
const PAX_GID: &[u8] = b"gid";
const PAX_ATIME: &[u8] = b"atime";
const PAX_MTIME: &[u8] = b"mtime";
const PAX_CTIME: &[u8] = b"ctime";
const PAX_SIZE: &[u8] = b"size";
const GNU_SPARSE_NUMBLOCKS: &[u8] = b"GNU.sparse.numblocks";
const GNU_SPARSE_OFFSET: &[u8] = b"GNU.sparse.offset";
const GNU_SPARSE_NUMBYTES: &[u8] = b"GNU.sparse.numbytes";
const GNU_SPARSE_MAP: &[u8] = b"GNU.sparse.map";
const GNU_SPARSE_NAME: &[u8] = b"GNU.sparse.name";
const GNU_SPARSE_MAJOR: &[u8] = b"GNU.sparse.major";
const GNU_SPARSE_MINOR: &[u8] = b"GNU.sparse.minor";
const GNU_SPARSE_SIZE: &[u8] = b"GNU.sparse.size";
const GNU_SPARSE_REALSIZE: &[u8] = b"GNU.sparse.realsize";

/// Why the walk failed. Every case is fatal for the layer, as in the reference.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TarError {
    /// An entry whose type the reference's `getType` rejects (incl. PAX global headers,
    /// which Go surfaces as entries, and GNU sparse/volume/multi-volume entries).
    #[error("unsupported input tar entry '{}' ({}) {:?} at offset {offset}", show_flag(*.typeflag), flag_description(*.typeflag), String::from_utf8_lossy(.name))]
    Unsupported {
        /// The header's typeflag byte.
        typeflag: u8,
        /// The entry's name, raw.
        name: Vec<u8>,
        /// Offset of the entry's (last) header block.
        offset: u64,
    },
    /// Go's `archive/tar: invalid tar header` (`ErrHeader`) and its causes.
    #[error("invalid tar header at offset {offset}: {reason}")]
    InvalidHeader {
        /// Offset of the header block.
        offset: u64,
        /// Which field or check failed.
        reason: String,
    },
    /// Go's `archive/tar: header field too long` for PAX / GNU long name data over 1 MiB.
    #[error("tar {what} at offset {offset} is larger than 1 MiB (size {size})")]
    FieldTooLong {
        /// Offset of the header that announced it.
        offset: u64,
        /// Which record: PAX header or GNU long name/link.
        what: &'static str,
        /// The size announced.
        size: i64,
    },
    /// Go's `io.ErrUnexpectedEOF`: the input ended inside a header, special data or
    /// entry data.
    #[error("tar stream truncated at offset {offset} in {context}")]
    Truncated {
        /// Tar offset where the input ended.
        offset: u64,
        /// What was being read, e.g. "a header block".
        context: String,
    },
}

fn show_flag(f: u8) -> String {
    if f.is_ascii_graphic() {
        (f as char).to_string()
    } else {
        format!("\\x{f:02x}")
    }
}

fn flag_description(f: u8) -> &'static str {
    match f {
        b'g' => "pax global header",
        b'S' => "GNU sparse file",
        b'V' => "GNU volume header",
        b'M' => "GNU multi-volume continuation",
        b'7' => "contiguous file",
        b'D' => "GNU directory dump",
        b'N' => "old GNU long name",
        _ => "unknown type",
    }
}

/// One header block as Go's `readHeader` parses it, later updated by PAX/GNU extensions.
#[derive(Debug, Clone)]
struct Hdr {
    typeflag: u8,
    name: Vec<u8>,
    linkname: Vec<u8>,
    size: i64,
    mode: i64,
    uid: i64,
    gid: i64,
    mtime: (i64, i64),
    uname: Vec<u8>,
    gname: Vec<u8>,
    devmajor: i64,
    devminor: i64,
    /// Offset of this header block in the stream.
    offset: u64,
}

type PaxRecords = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug)]
enum State {
    /// Reading a header block into `blk`.
    Header,
    /// Read one zero block; reading the next block into `blk`.
    SecondZero,
    /// Skipping the rest of an entry's data, then its padding.
    Skip {
        data: u64,
        pad: u64,
    },
    /// Collecting the data of an `x`/`g`/`L`/`K` header.
    Special {
        hdr: Box<Hdr>,
        buf: Vec<u8>,
        /// Bytes Go's `readSpecialFile` reads: min(size, 1 MiB + 1).
        want: usize,
        /// Physical data size of the special entry.
        nb: u64,
        pad: u64,
    },
    /// Reading a GNU PAX sparse 1.0 map from the start of the data section into `blk`.
    SparseMap(Box<SparseMap>),
    /// Go returned `io.EOF` at `pos`.
    Done,
    Failed(TarError),
}

#[derive(Debug)]
struct SparseMap {
    hdr: Hdr,
    pax: Option<PaxRecords>,
    /// Physical data bytes of the entry not consumed yet.
    nb: u64,
    pad: u64,
    /// Map bytes read so far; `cursor` is where the next token starts.
    buf: Vec<u8>,
    cursor: usize,
    newlines: u64,
    /// `None` until the entry count token is parsed.
    num_entries: Option<i64>,
}

/// Push-based walker over an uncompressed tar stream; see the module docs.
#[derive(Debug)]
pub struct TarWalker {
    state: State,
    /// Stream position as Go's `PositionTrackerReader` counts it (bytes consumed).
    pos: u64,
    blk: Box<[u8; BLOCK]>,
    fill: usize,
    /// Records of the last `x` header of the entry being assembled.
    pax: Option<PaxRecords>,
    gnu_long_name: Vec<u8>,
    gnu_long_link: Vec<u8>,
    /// Name of the entry whose data is being skipped (for error messages).
    cur_name: Vec<u8>,
    entries: Vec<TocEntry>,
}

impl Default for TarWalker {
    fn default() -> Self {
        Self::new()
    }
}

impl TarWalker {
    /// A walker at the start of an archive, expecting a header block.
    pub fn new() -> Self {
        TarWalker {
            state: State::Header,
            pos: 0,
            blk: Box::new([0u8; BLOCK]),
            fill: 0,
            pax: None,
            gnu_long_name: Vec::new(),
            gnu_long_link: Vec::new(),
            cur_name: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Next bytes of the uncompressed stream, any slice sizes (1 byte to MBs). Data of
    /// regular files is skipped without copying. After Go's end of archive, further bytes
    /// are ignored. After an error, the same error is returned again.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), TarError> {
        while !data.is_empty() {
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Done => return Ok(()),
                State::Skip { data: d, pad } => {
                    let left = if *d > 0 { d } else { pad };
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    self.pos += n;
                    data = &data[n as usize..];
                }
                State::Special { buf, want, .. } => {
                    let n = (*want - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..n]);
                    self.pos += n as u64;
                    data = &data[n..];
                }
                State::Header | State::SecondZero | State::SparseMap(_) => {
                    let n = (BLOCK - self.fill).min(data.len());
                    self.blk[self.fill..self.fill + n].copy_from_slice(&data[..n]);
                    self.fill += n;
                    self.pos += n as u64;
                    data = &data[n..];
                    if self.fill == BLOCK {
                        self.fill = 0;
                        let r = self.on_block();
                        self.check(r)?;
                    }
                }
            }
            let r = self.settle();
            self.check(r)?;
        }
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// True once Go would have returned `io.EOF` (two zero blocks were read, or
    /// [`finish`](Self::finish) found a clean end of input).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Entries completed so far, in archive order.
    pub fn take_entries(&mut self) -> Vec<TocEntry> {
        std::mem::take(&mut self.entries)
    }

    /// Input ended. `Ok(uncompressed_archive_size)` is the stream position when Go
    /// reports `io.EOF`; `Err` where Go reports `io.ErrUnexpectedEOF` (or an earlier error).
    pub fn finish(&mut self) -> Result<u64, TarError> {
        let r = match &self.state {
            State::Failed(e) => Err(e.clone()),
            State::Done => Ok(()),
            State::Header | State::SecondZero if self.fill == 0 => Ok(()),
            State::Header => Err(self.truncated("a header block".to_string())),
            State::SecondZero => Err(self.truncated("the end-of-archive marker".to_string())),
            // EOF inside the padding after an entry is a clean io.EOF in Go (tryReadFull).
            State::Skip { data: 0, .. } => Ok(()),
            State::Skip { .. } => Err(self.truncated(format!(
                "the data of entry {:?}",
                String::from_utf8_lossy(&self.cur_name)
            ))),
            State::Special { hdr, .. } => Err(self.truncated(format!(
                "the data of special header '{}' at offset {}",
                show_flag(hdr.typeflag),
                hdr.offset
            ))),
            State::SparseMap(sm) => Err(self.truncated(format!(
                "the sparse map of entry {:?}",
                String::from_utf8_lossy(&sm.hdr.name)
            ))),
        };
        match r {
            Ok(()) => {
                self.state = State::Done;
                Ok(self.pos)
            }
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    fn truncated(&self, context: String) -> TarError {
        TarError::Truncated {
            offset: self.pos,
            context,
        }
    }

    fn check(&mut self, r: Result<(), TarError>) -> Result<(), TarError> {
        if let Err(e) = r {
            self.state = State::Failed(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Performs the transitions that need no input.
    fn settle(&mut self) -> Result<(), TarError> {
        loop {
            match &self.state {
                State::Skip { data: 0, pad: 0 } => self.state = State::Header,
                State::Special { buf, want, .. } if buf.len() == *want => self.finish_special()?,
                State::SparseMap(sm) if sm.nb < BLOCK as u64 && self.fill == 0 => {
                    // Go reads the map through the entry's data reader: a block that does
                    // not fit in the remaining data is io.ErrUnexpectedEOF.
                    return Err(TarError::InvalidHeader {
                        offset: sm.hdr.offset,
                        reason: format!(
                            "GNU sparse 1.0 map of {:?} runs past the entry's data",
                            String::from_utf8_lossy(&sm.hdr.name)
                        ),
                    });
                }
                _ => return Ok(()),
            }
        }
    }

    /// A full block is in `blk`.
    fn on_block(&mut self) -> Result<(), TarError> {
        let offset = self.pos - BLOCK as u64;
        match &self.state {
            State::Header => {
                if self.blk.iter().all(|&b| b == 0) {
                    self.state = State::SecondZero;
                    return Ok(());
                }
                let hdr = parse_header(&self.blk, offset)?;
                self.on_header(hdr)
            }
            State::SecondZero => {
                if self.blk.iter().all(|&b| b == 0) {
                    self.state = State::Done;
                    Ok(())
                } else {
                    Err(TarError::InvalidHeader {
                        offset,
                        reason: "a zero block is followed by a non-zero block".into(),
                    })
                }
            }
            State::SparseMap(_) => self.on_sparse_map_block(),
            _ => unreachable!("on_block in a non-block state"),
        }
    }

    fn on_header(&mut self, hdr: Hdr) -> Result<(), TarError> {
        let nb = regular_file_size(&hdr)?;
        match hdr.typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                let want = nb.min(MAX_SPECIAL_FILE_SIZE + 1) as usize;
                self.state = State::Special {
                    hdr: Box::new(hdr),
                    buf: Vec::with_capacity(want.min(1 << 16)),
                    want,
                    nb,
                    pad: block_padding(nb),
                };
                Ok(())
            }
            _ => self.on_file_header(hdr),
        }
    }

    fn finish_special(&mut self) -> Result<(), TarError> {
        let State::Special {
            hdr, buf, nb, pad, ..
        } = std::mem::replace(&mut self.state, State::Header)
        else {
            unreachable!()
        };
        if nb > MAX_SPECIAL_FILE_SIZE {
            return Err(TarError::FieldTooLong {
                offset: hdr.offset,
                what: match hdr.typeflag {
                    b'L' => "GNU long name",
                    b'K' => "GNU long link name",
                    _ => "PAX header",
                },
                size: hdr.size,
            });
        }
        match hdr.typeflag {
            b'x' | b'g' => {
                let recs = parse_pax(&buf).map_err(|reason| TarError::InvalidHeader {
                    offset: hdr.offset,
                    reason,
                })?;
                if hdr.typeflag == b'g' {
                    // Go returns the global header as an entry; soci's getType rejects it.
                    return Err(TarError::Unsupported {
                        typeflag: b'g',
                        name: hdr.name,
                        offset: hdr.offset,
                    });
                }
                self.pax = Some(recs);
            }
            b'L' => self.gnu_long_name = parse_string(&buf).to_vec(),
            b'K' => self.gnu_long_link = parse_string(&buf).to_vec(),
            _ => unreachable!(),
        }
        self.state = State::Skip {
            data: nb - buf.len() as u64,
            pad,
        };
        Ok(())
    }

    /// The `default:` branch of Go's `next()`.
    fn on_file_header(&mut self, mut hdr: Hdr) -> Result<(), TarError> {
        let pax = self.pax.take();
        let long_name = std::mem::take(&mut self.gnu_long_name);
        let long_link = std::mem::take(&mut self.gnu_long_link);
        if let Some(recs) = &pax {
            merge_pax(&mut hdr, recs)?;
        }
        if !long_name.is_empty() {
            hdr.name = long_name;
        }
        if !long_link.is_empty() {
            hdr.linkname = long_link;
        }
        if hdr.typeflag == 0 {
            // Legacy archives use a trailing slash for directories.
            hdr.typeflag = if hdr.name.ends_with(b"/") { b'5' } else { b'0' };
        }
        // The PAX records may have changed the size: set up the data reader again.
        let nb = regular_file_size(&hdr)?;
        let pad = block_padding(nb);
        self.cur_name = hdr.name.clone();

        if hdr.typeflag == b'S' {
            // Old GNU sparse: Go reads the sparse map (maybe extension blocks) and returns
            // the entry, which soci's getType rejects. We reject it straight away.
            return Err(unsupported(&hdr));
        }

        // readGNUSparsePAXHeaders
        let empty = PaxRecords::new();
        let recs = pax.as_ref().unwrap_or(&empty);
        let get = |k: &[u8]| recs.get(k).map(Vec::as_slice).unwrap_or(b"");
        let (major, minor) = (get(GNU_SPARSE_MAJOR), get(GNU_SPARSE_MINOR));
        let is1x0 = match (major, minor) {
            (b"0", b"0") | (b"0", b"1") => false,
            (b"1", b"0") => true,
            (a, b) if !a.is_empty() || !b.is_empty() => return self.emit(hdr, pax, nb, pad),
            _ if !get(GNU_SPARSE_MAP).is_empty() => false,
            _ => return self.emit(hdr, pax, nb, pad),
        };
        let sparse_name = get(GNU_SPARSE_NAME);
        if !sparse_name.is_empty() {
            hdr.name = sparse_name.to_vec();
        }
        let mut size = get(GNU_SPARSE_SIZE);
        if size.is_empty() {
            size = get(GNU_SPARSE_REALSIZE);
        }
        if !size.is_empty() {
            hdr.size = go_parse_int(size).ok_or_else(|| TarError::InvalidHeader {
                offset: hdr.offset,
                reason: format!(
                    "invalid GNU sparse size {:?}",
                    String::from_utf8_lossy(size)
                ),
            })?;
        }
        if is1x0 {
            self.state = State::SparseMap(Box::new(SparseMap {
                hdr,
                pax,
                nb,
                pad,
                buf: Vec::new(),
                cursor: 0,
                newlines: 0,
                num_entries: None,
            }));
            return Ok(());
        }
        let spd = read_sparse_map_0x1(recs).ok_or_else(|| TarError::InvalidHeader {
            offset: hdr.offset,
            reason: "invalid GNU sparse 0.x map".into(),
        })?;
        validate_sparse(&hdr, &spd)?;
        self.emit(hdr, pax, nb, pad)
    }

    /// One block of a GNU sparse 1.0 map (Go's `readGNUSparseMap1x0` `feedTokens`).
    fn on_sparse_map_block(&mut self) -> Result<(), TarError> {
        let State::SparseMap(sm) = &mut self.state else {
            unreachable!()
        };
        sm.nb -= BLOCK as u64;
        sm.buf.extend_from_slice(&self.blk[..]);
        sm.newlines += self.blk.iter().filter(|&&c| c == b'\n').count() as u64;
        let bad = |sm: &SparseMap| TarError::InvalidHeader {
            offset: sm.hdr.offset,
            reason: format!(
                "invalid GNU sparse 1.0 map of {:?}",
                String::from_utf8_lossy(&sm.hdr.name)
            ),
        };
        if sm.num_entries.is_none() {
            if sm.newlines < 1 {
                return Ok(());
            }
            let tok = next_token(sm);
            match go_parse_int(&tok) {
                Some(n) if n >= 0 && n.wrapping_mul(2) >= n => sm.num_entries = Some(n),
                _ => return Err(bad(sm)),
            }
        }
        let n = sm.num_entries.unwrap_or(0);
        if sm.newlines < 2 * n as u64 {
            return Ok(());
        }
        let mut spd = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let off = next_token(sm);
            let len = next_token(sm);
            match (go_parse_int(&off), go_parse_int(&len)) {
                (Some(o), Some(l)) => spd.push((o, l)),
                _ => return Err(bad(sm)),
            }
        }
        let State::SparseMap(sm) = std::mem::replace(&mut self.state, State::Header) else {
            unreachable!()
        };
        let sm = *sm;
        validate_sparse(&sm.hdr, &spd)?;
        self.emit(sm.hdr, sm.pax, sm.nb, sm.pad)
    }

    /// Go's `next()` returned `hdr`: record it (or reject its type, as `getType` does).
    fn emit(
        &mut self,
        hdr: Hdr,
        pax: Option<PaxRecords>,
        nb: u64,
        pad: u64,
    ) -> Result<(), TarError> {
        let entry_type = match hdr.typeflag {
            b'0' => EntryType::Reg,
            b'1' => EntryType::Hardlink,
            b'2' => EntryType::Symlink,
            b'3' => EntryType::Char,
            b'4' => EntryType::Block,
            b'5' => EntryType::Dir,
            b'6' => EntryType::Fifo,
            _ => return Err(unsupported(&hdr)),
        };
        self.cur_name = hdr.name.clone();
        self.entries.push(TocEntry {
            name: hdr.name,
            entry_type,
            uncompressed_offset: self.pos as i64,
            uncompressed_size: hdr.size,
            linkname: hdr.linkname,
            mode: hdr.mode,
            uid: hdr.uid as u32,
            gid: hdr.gid as u32,
            uname: hdr.uname,
            gname: hdr.gname,
            mod_time: marshal_text_utc(hdr.mtime.0, hdr.mtime.1),
            devmajor: hdr.devmajor,
            devminor: hdr.devminor,
            pax_records: pax.map(|m| m.into_iter().collect()).unwrap_or_default(),
        });
        self.state = State::Skip { data: nb, pad };
        Ok(())
    }
}

fn unsupported(hdr: &Hdr) -> TarError {
    TarError::Unsupported {
        typeflag: hdr.typeflag,
        name: hdr.name.clone(),
        offset: hdr.offset,
    }
}

/// Go's `handleRegularFile`: the physical data size of the entry.
fn regular_file_size(hdr: &Hdr) -> Result<u64, TarError> {
    let nb = if is_header_only_type(hdr.typeflag) {
        0
    } else {
        hdr.size
    };
    if nb < 0 {
        return Err(TarError::InvalidHeader {
            offset: hdr.offset,
            reason: format!("negative size {nb}"),
        });
    }
    Ok(nb as u64)
}

fn is_header_only_type(flag: u8) -> bool {
    matches!(flag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6')
}

fn block_padding(n: u64) -> u64 {
    n.wrapping_neg() & (BLOCK as u64 - 1)
}

/// `nextToken` of `readGNUSparseMap1x0`: up to the next newline (removed).
fn next_token(sm: &mut SparseMap) -> Vec<u8> {
    sm.newlines -= 1;
    let rest = &sm.buf[sm.cursor..];
    let i = rest
        .iter()
        .position(|&c| c == b'\n')
        .expect("a newline is counted");
    let tok = rest[..i].to_vec();
    sm.cursor += i + 1;
    tok
}

/// `handleSparseFile`'s validation.
fn validate_sparse(hdr: &Hdr, spd: &[(i64, i64)]) -> Result<(), TarError> {
    if is_header_only_type(hdr.typeflag) || !validate_sparse_entries(spd, hdr.size) {
        return Err(TarError::InvalidHeader {
            offset: hdr.offset,
            reason: format!(
                "invalid sparse map for {:?}",
                String::from_utf8_lossy(&hdr.name)
            ),
        });
    }
    Ok(())
}

/// Go's `validateSparseEntries` (entries are (offset, length)).
fn validate_sparse_entries(sp: &[(i64, i64)], size: i64) -> bool {
    if size < 0 {
        return false;
    }
    let mut pre_end = 0i64;
    for &(off, len) in sp {
        if off < 0 || len < 0 || off > i64::MAX - len || off + len > size || pre_end > off {
            return false;
        }
        pre_end = off + len;
    }
    true
}

/// Go's `readGNUSparseMap0x1`; `None` is `ErrHeader`.
fn read_sparse_map_0x1(recs: &PaxRecords) -> Option<Vec<(i64, i64)>> {
    let num = recs
        .get(GNU_SPARSE_NUMBLOCKS)
        .map(Vec::as_slice)
        .unwrap_or(b"");
    let n = go_parse_int(num)?;
    if n < 0 || n.wrapping_mul(2) < n {
        return None;
    }
    let map = recs.get(GNU_SPARSE_MAP).map(Vec::as_slice).unwrap_or(b"");
    let parts: Vec<&[u8]> = if map.is_empty() {
        Vec::new()
    } else {
        map.split(|&c| c == b',').collect()
    };
    if parts.len() as u64 != 2 * n as u64 {
        return None;
    }
    parts
        .chunks(2)
        .map(|p| Some((go_parse_int(p[0])?, go_parse_int(p[1])?)))
        .collect()
}

/// Go's `mergePAX`: records with empty values keep the header's value.
fn merge_pax(hdr: &mut Hdr, recs: &PaxRecords) -> Result<(), TarError> {
    for (k, v) in recs {
        if v.is_empty() {
            continue;
        }
        let ok = match k.as_slice() {
            PAX_PATH => {
                hdr.name = v.clone();
                true
            }
            PAX_LINKPATH => {
                hdr.linkname = v.clone();
                true
            }
            PAX_UNAME => {
                hdr.uname = v.clone();
                true
            }
            PAX_GNAME => {
                hdr.gname = v.clone();
                true
            }
            PAX_UID => go_parse_int(v).map(|x| hdr.uid = x).is_some(),
            PAX_GID => go_parse_int(v).map(|x| hdr.gid = x).is_some(),
            PAX_ATIME | PAX_CTIME => parse_pax_time(v).is_some(),
            PAX_MTIME => parse_pax_time(v).map(|t| hdr.mtime = t).is_some(),
            PAX_SIZE => go_parse_int(v).map(|x| hdr.size = x).is_some(),
            _ => true,
        };
        if !ok {
            return Err(TarError::InvalidHeader {
                offset: hdr.offset,
                reason: format!(
                    "invalid PAX record {}={:?}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                ),
            });
        }
    }
    Ok(())
}

/// Go's `parsePAXTime`: `(secs, nanos)` for `time.Unix`, `None` is `ErrHeader`.
fn parse_pax_time(s: &[u8]) -> Option<(i64, i64)> {
    let (ss, sn) = match s.iter().position(|&c| c == b'.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &b""[..]),
    };
    let secs = go_parse_int(ss)?;
    if sn.is_empty() {
        return Some((secs, 0));
    }
    if !sn.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut nsecs = 0i64;
    for i in 0..9 {
        nsecs = nsecs * 10 + sn.get(i).map_or(0, |&c| (c - b'0') as i64);
    }
    if ss.first() == Some(&b'-') {
        nsecs = -nsecs;
    }
    Some((secs, nsecs))
}

/// Go's `parsePAX` over the data of an `x`/`g` header; `Err` is `ErrHeader`.
fn parse_pax(mut s: &[u8]) -> Result<PaxRecords, String> {
    let mut recs = PaxRecords::new();
    let mut sparse_map: Vec<&[u8]> = Vec::new();
    while !s.is_empty() {
        let (k, v, rest) = parse_pax_record(s)?;
        s = rest;
        if k == GNU_SPARSE_OFFSET || k == GNU_SPARSE_NUMBYTES {
            let even = sparse_map.len() & 1 == 0;
            if (even && k != GNU_SPARSE_OFFSET)
                || (!even && k != GNU_SPARSE_NUMBYTES)
                || v.contains(&b',')
            {
                return Err("invalid GNU sparse 0.0 PAX records".into());
            }
            sparse_map.push(v);
        } else {
            recs.insert(k.to_vec(), v.to_vec());
        }
    }
    if !sparse_map.is_empty() {
        recs.insert(GNU_SPARSE_MAP.to_vec(), sparse_map.join(&b','));
    }
    Ok(recs)
}

/// (key, value, rest of the PAX data)
type PaxRecordSplit<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// Go's `parsePAXRecord`: `"%d %s=%s\n"`.
fn parse_pax_record(s: &[u8]) -> Result<PaxRecordSplit<'_>, String> {
    let bad = |why: &str| {
        let shown = String::from_utf8_lossy(&s[..s.len().min(40)]).into_owned();
        format!("invalid PAX record ({why}) at {shown:?}")
    };
    let sp = s
        .iter()
        .position(|&c| c == b' ')
        .ok_or_else(|| bad("no length"))?;
    let (n_str, rest) = (&s[..sp], &s[sp + 1..]);
    let n = go_parse_int(n_str).ok_or_else(|| bad("bad length"))?;
    if n < 5 || n > s.len() as i64 {
        return Err(bad("bad length"));
    }
    let n = n - (n_str.len() as i64 + 1);
    if n <= 0 {
        return Err(bad("bad length"));
    }
    let n = n as usize;
    let (rec, nl, rem) = (&rest[..n - 1], rest[n - 1], &rest[n..]);
    if nl != b'\n' {
        return Err(bad("no newline"));
    }
    let eq = rec
        .iter()
        .position(|&c| c == b'=')
        .ok_or_else(|| bad("no '='"))?;
    let (k, v) = (&rec[..eq], &rec[eq + 1..]);
    // validPAXRecord
    let valid = !k.is_empty()
        && match k {
            PAX_PATH | PAX_LINKPATH | PAX_UNAME | PAX_GNAME => !v.contains(&0),
            _ => !k.contains(&0),
        };
    if !valid {
        return Err(bad("NUL or empty key"));
    }
    Ok((k, v, rem))
}

/// Go's `parser.parseString`: up to the first NUL.
fn parse_string(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits, in range.
fn go_parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut x: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        x = x.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if x > 1 << 63 {
            return None;
        }
        Some((x as i64).wrapping_neg())
    } else {
        i64::try_from(x).ok()
    }
}

/// Parses numeric header fields, remembering whether any failed (Go's `parser.err`).
#[derive(Default)]
struct Parser {
    err: bool,
}

impl Parser {
    /// Go's `parseNumeric`: base-256 when the high bit of the first byte is set, else octal.
    fn numeric(&mut self, b: &[u8]) -> i64 {
        if !b.is_empty() && b[0] & 0x80 != 0 {
            let inv: u8 = if b[0] & 0x40 != 0 { 0xff } else { 0 };
            let mut x: u64 = 0;
            for (i, &c) in b.iter().enumerate() {
                let mut c = c ^ inv;
                if i == 0 {
                    c &= 0x7f;
                }
                if x >> 56 > 0 {
                    self.err = true;
                    return 0;
                }
                x = x << 8 | c as u64;
            }
            if x >> 63 > 0 {
                self.err = true;
                return 0;
            }
            return if inv == 0xff { !(x as i64) } else { x as i64 };
        }
        self.octal(b)
    }

    /// Go's `parseOctal`: trim spaces and NULs, then `ParseUint(parseString(b), 8, 64)`.
    fn octal(&mut self, b: &[u8]) -> i64 {
        let trim = |c: &u8| *c == b' ' || *c == 0;
        let start = b.iter().position(|c| !trim(c)).unwrap_or(b.len());
        let end = b.iter().rposition(|c| !trim(c)).map_or(start, |i| i + 1);
        let b = &b[start..end];
        if b.is_empty() {
            return 0;
        }
        let s = parse_string(b);
        let mut x: u64 = 0;
        let mut ok = !s.is_empty();
        for &c in s {
            if !(b'0'..=b'7').contains(&c) {
                ok = false;
                break;
            }
            match x.checked_mul(8) {
                Some(v) => x = v | (c - b'0') as u64,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            self.err = true;
            return 0;
        }
        x as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V7,
    UstarPax,
    Gnu,
    Star,
}

/// Go's `block.getFormat`: checksum (unsigned or signed) then magic; `None` is unknown.
fn get_format(blk: &[u8; BLOCK]) -> Option<Format> {
    let mut p = Parser::default();
    let value = p.octal(&blk[148..156]);
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &c) in blk.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += c as i64;
        signed += c as i8 as i64;
    }
    if p.err || (value != unsigned && value != signed) {
        return None;
    }
    let magic = &blk[257..263];
    let version = &blk[263..265];
    let trailer = &blk[508..512];
    Some(if magic == b"ustar\0" && trailer == b"tar\0" {
        Format::Star
    } else if magic == b"ustar\0" {
        Format::UstarPax
    } else if magic == b"ustar " && version == b" \0" {
        Format::Gnu
    } else {
        Format::V7
    })
}

/// Go's `readHeader` for a non-zero block.
fn parse_header(blk: &[u8; BLOCK], offset: u64) -> Result<Hdr, TarError> {
    let format = get_format(blk).ok_or_else(|| TarError::InvalidHeader {
        offset,
        reason: "checksum mismatch".into(),
    })?;
    let mut p = Parser::default();
    let mut hdr = Hdr {
        typeflag: blk[156],
        name: parse_string(&blk[0..100]).to_vec(),
        linkname: parse_string(&blk[157..257]).to_vec(),
        size: p.numeric(&blk[124..136]),
        mode: p.numeric(&blk[100..108]),
        uid: p.numeric(&blk[108..116]),
        gid: p.numeric(&blk[116..124]),
        mtime: (p.numeric(&blk[136..148]), 0),
        uname: Vec::new(),
        gname: Vec::new(),
        devmajor: 0,
        devminor: 0,
        offset,
    };
    if format != Format::V7 {
        hdr.uname = parse_string(&blk[265..297]).to_vec();
        hdr.gname = parse_string(&blk[297..329]).to_vec();
        hdr.devmajor = p.numeric(&blk[329..337]);
        hdr.devminor = p.numeric(&blk[337..345]);
        let prefix: &[u8] = match format {
            Format::UstarPax => parse_string(&blk[345..500]),
            Format::Star => {
                p.numeric(&blk[476..488]); // atime
                p.numeric(&blk[488..500]); // ctime
                parse_string(&blk[345..476])
            }
            Format::Gnu => {
                // GNU has no prefix; but a pre-Go1.8 writer bug put one where atime and
                // ctime live. Go uses it when those fields fail to parse.
                let mut p2 = Parser::default();
                if blk[345] != 0 {
                    p2.numeric(&blk[345..357]);
                }
                if blk[357] != 0 {
                    p2.numeric(&blk[357..369]);
                }
                let s = parse_string(&blk[345..500]);
                if p2.err && s.is_ascii() {
                    s
                } else {
                    b""
                }
            }
            Format::V7 => unreachable!(),
        };
        if !prefix.is_empty() {
            let mut name = Vec::with_capacity(prefix.len() + 1 + hdr.name.len());
            name.extend_from_slice(prefix);
            name.push(b'/');
            name.extend_from_slice(&hdr.name);
            hdr.name = name;
        }
    }
    if p.err {
        return Err(TarError::InvalidHeader {
            offset,
            reason: "invalid numeric field".into(),
        });
    }
    Ok(hdr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_numeric_cases() {
        let mut p = Parser::default();
        assert_eq!(p.numeric(b"0000644\0"), 0o644);
        assert_eq!(p.numeric(b"  644  \0"), 0o644);
        assert_eq!(p.numeric(b"\0\0\0\0\0\0\0\0"), 0);
        assert_eq!(p.numeric(b"        "), 0);
        assert_eq!(p.numeric(b"12\x003    "), 0o12); // parseString after trimming
        assert!(!p.err);
        // base-256 positive and negative
        assert_eq!(p.numeric(&[0x80, 0, 0, 0, 0, 0x2d, 0xc6, 0xc0]), 3_000_000);
        assert_eq!(p.numeric(&[0xff; 8]), -1);
        assert_eq!(p.numeric(&[0xff, 0xff, 0xff, 0xfe]), -2);
        assert!(!p.err);
        // base-256 overflow: 9 significant bytes
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[3] = 1;
        p.numeric(&big);
        assert!(p.err);
        let mut p = Parser::default();
        let mut top = [0u8; 12];
        top[0] = 0x80;
        top[4] = 0x80; // bit 63 set
        p.numeric(&top);
        assert!(p.err);
        for bad in [&b"0008\0\0\0\0"[..], b"1 2", b"+1", b"0x10", b"-1"] {
            let mut p = Parser::default();
            p.numeric(bad);
            assert!(p.err, "{bad:?}");
        }
        // octal over 64 bits
        let mut p = Parser::default();
        p.numeric(b"7777777777777777777777777");
        assert!(p.err);
        // 2^64-1 in octal becomes -1 (Go's int64(uint64))
        let mut p = Parser::default();
        assert_eq!(p.numeric(b"1777777777777777777777"), -1);
        assert!(!p.err);
    }

    #[test]
    fn go_parse_int_cases() {
        assert_eq!(go_parse_int(b"0"), Some(0));
        assert_eq!(go_parse_int(b"+12"), Some(12));
        assert_eq!(go_parse_int(b"-12"), Some(-12));
        assert_eq!(go_parse_int(b"007"), Some(7));
        assert_eq!(go_parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(go_parse_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+",
            b"-",
            b"9223372036854775808",
            b"1_000",
            b" 1",
            b"1 ",
            b"0x1",
        ] {
            assert_eq!(go_parse_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pax_time_cases() {
        assert_eq!(
            parse_pax_time(b"1350244992.023960108"),
            Some((1350244992, 23960108))
        );
        assert_eq!(
            parse_pax_time(b"1350244992.02396010"),
            Some((1350244992, 23960100))
        );
        assert_eq!(
            parse_pax_time(b"1350244992.3"),
            Some((1350244992, 300000000))
        );
        assert_eq!(parse_pax_time(b"1350244992"), Some((1350244992, 0)));
        assert_eq!(parse_pax_time(b"1350244992."), Some((1350244992, 0)));
        assert_eq!(parse_pax_time(b"-1.000000001"), Some((-1, -1)));
        assert_eq!(parse_pax_time(b"-0.5"), Some((0, -500000000)));
        assert_eq!(parse_pax_time(b"1.1234567899999"), Some((1, 123456789)));
        assert_eq!(parse_pax_time(b"0.123456789abcdef"), None);
        assert_eq!(parse_pax_time(b"1.-5"), None);
        assert_eq!(parse_pax_time(b"1.5.5"), None);
        assert_eq!(parse_pax_time(b""), None);
        assert_eq!(parse_pax_time(b"."), None);
        assert_eq!(parse_pax_time(b"+1.5"), Some((1, 500000000)));
    }

    /// A well-formed record, as Go's `formatPAXRecord` writes it.
    fn rec(k: &str, v: &str) -> Vec<u8> {
        let size = k.len() + v.len() + 3;
        let size = size + size.to_string().len();
        let record = format!("{size} {k}={v}\n");
        if record.len() != size {
            return format!("{} {k}={v}\n", record.len()).into_bytes();
        }
        record.into_bytes()
    }

    #[test]
    fn pax_records() {
        let data = [rec("k", "1"), rec("path", "a/b/c")].concat();
        let r = parse_pax(&data).unwrap();
        assert_eq!(r.get(&b"k"[..]).unwrap(), b"1");
        assert_eq!(r.get(&b"path"[..]).unwrap(), b"a/b/c");
        // value may contain '=' and newline
        let r = parse_pax(b"11 k=a=b\nc\n").unwrap();
        assert_eq!(r.get(&b"k"[..]).unwrap(), b"a=b\nc");
        // empty value is kept
        assert_eq!(parse_pax(b"5 k=\n").unwrap().get(&b"k"[..]).unwrap(), b"");
        // duplicates: last wins
        assert_eq!(
            parse_pax(b"6 k=1\n6 k=2\n")
                .unwrap()
                .get(&b"k"[..])
                .unwrap(),
            b"2"
        );
        // sparse 0.0 records fold into GNU.sparse.map
        let data = [
            rec("GNU.sparse.offset", "0"),
            rec("GNU.sparse.numbytes", "5"),
            rec("GNU.sparse.offset", "9"),
            rec("GNU.sparse.numbytes", "1"),
        ]
        .concat();
        let r = parse_pax(&data).unwrap();
        assert_eq!(r.get(GNU_SPARSE_MAP).unwrap(), b"0,5,9,1");
        assert!(!r.contains_key(GNU_SPARSE_OFFSET));
        let bad_cases: Vec<Vec<u8>> = vec![
            b"6 k=1".to_vec(),     // too short
            b"6 k=1\n\n".to_vec(), // trailing junk
            b"6 k1\nxx".to_vec(),  // no newline where the length says
            b"5 =1\n".to_vec(),    // empty key
            b"8 k=12\n".to_vec(),  // length past the end
            b"x k=1\n".to_vec(),
            b"4 k=\n".to_vec(), // n < 5
            b"-6 k=1\n".to_vec(),
            b"9 path=\0\n".to_vec(),         // NUL in path value
            b"8 a\0b=1\n".to_vec(),          // NUL in key
            rec("GNU.sparse.numbytes", "5"), // numbytes before offset
            rec("GNU.sparse.offset", "1,2"),
            b"00000000006 k=1\n".to_vec(), // length shorter than its own digits
        ];
        for bad in &bad_cases {
            assert!(
                parse_pax(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // NUL allowed in other values
        assert!(parse_pax(b"6 k=\0\n").is_ok());
        // Leading zeros and '+' in the length are accepted by strconv.ParseInt.
        assert!(parse_pax(b"+7 k=1\n").is_ok());
        assert!(parse_pax(b"07 k=1\n").is_ok());
    }

    #[test]
    fn sparse_entries_validation() {
        assert!(validate_sparse_entries(&[(0, 5), (5, 5)], 10));
        assert!(!validate_sparse_entries(&[(0, 5), (4, 5)], 10));
        assert!(!validate_sparse_entries(&[(0, 11)], 10));
        assert!(!validate_sparse_entries(&[(-1, 1)], 10));
        assert!(!validate_sparse_entries(&[(i64::MAX, 1)], i64::MAX));
        assert!(validate_sparse_entries(&[], 0));
        assert!(!validate_sparse_entries(&[], -1));
    }
}
