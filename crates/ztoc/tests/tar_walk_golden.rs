//! The tar walker against the reference zTOCs in /work/shared/golden: every field of every
//! FileMetadata and the uncompressed archive size must match, whatever the feed chunking.
//!
//! The golden zTOCs are decoded with a minimal flatbuffers table reader written here, so
//! this test does not depend on the crate's codec.

use std::io::Read;
use std::path::{Path, PathBuf};

use soci_ztoc::tar_walk::TarWalker;
use soci_ztoc::TocEntry;

const GOLDEN_DIR: &str = "/work/shared/golden";

/// (layer file, ztoc file)
const GOLDENS: &[(&str, &str)] = &[
    ("app.tar", "app.tar.span-65536.ztoc"),
    ("edge-pax.tar", "edge-pax.tar.span-65536.ztoc"),
    ("app.tar.gz", "app.tar.gz.span-65536.ztoc"),
    ("app.tar.gz", "app.tar.gz.span-4194304.ztoc"),
    ("edge-pax.tar.gz", "edge-pax.tar.gz.span-65536.ztoc"),
    ("edge-pax.tar.gz", "edge-pax.tar.gz.span-4194304.ztoc"),
    (
        "multimember-gnu.tar.gz",
        "multimember-gnu.tar.gz.span-65536.ztoc",
    ),
    ("fname-ustar.tar.gz", "fname-ustar.tar.gz.span-65536.ztoc"),
];

// ---- minimal flatbuffers reader -------------------------------------------------------

#[derive(Clone, Copy)]
struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn u16_at(b: &[u8], p: usize) -> u16 {
    u16::from_le_bytes(b[p..p + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], p: usize) -> u32 {
    u32::from_le_bytes(b[p..p + 4].try_into().unwrap())
}

impl<'a> Table<'a> {
    fn root(buf: &'a [u8]) -> Self {
        Table {
            buf,
            pos: u32_at(buf, 0) as usize,
        }
    }
    fn field(&self, slot: usize) -> Option<usize> {
        let soff = i32::from_le_bytes(self.buf[self.pos..self.pos + 4].try_into().unwrap());
        let vt = (self.pos as i64 - soff as i64) as usize;
        let vt_len = u16_at(self.buf, vt) as usize;
        let o = 4 + 2 * slot;
        if o + 2 > vt_len {
            return None;
        }
        match u16_at(self.buf, vt + o) {
            0 => None,
            off => Some(self.pos + off as usize),
        }
    }
    fn indirect(&self, p: usize) -> usize {
        p + u32_at(self.buf, p) as usize
    }
    fn bytes(&self, slot: usize) -> Vec<u8> {
        self.field(slot)
            .map(|p| {
                let s = self.indirect(p);
                let n = u32_at(self.buf, s) as usize;
                self.buf[s + 4..s + 4 + n].to_vec()
            })
            .unwrap_or_default()
    }
    fn string(&self, slot: usize) -> String {
        String::from_utf8(self.bytes(slot)).unwrap()
    }
    fn i64(&self, slot: usize) -> i64 {
        self.field(slot)
            .map(|p| i64::from_le_bytes(self.buf[p..p + 8].try_into().unwrap()))
            .unwrap_or(0)
    }
    fn u32(&self, slot: usize) -> u32 {
        self.field(slot).map(|p| u32_at(self.buf, p)).unwrap_or(0)
    }
    fn table(&self, slot: usize) -> Table<'a> {
        Table {
            buf: self.buf,
            pos: self.indirect(self.field(slot).expect("table field")),
        }
    }
    fn tables(&self, slot: usize) -> Vec<Table<'a>> {
        let Some(p) = self.field(slot) else {
            return Vec::new();
        };
        let v = self.indirect(p);
        let n = u32_at(self.buf, v) as usize;
        (0..n)
            .map(|i| Table {
                buf: self.buf,
                pos: self.indirect(v + 4 + 4 * i),
            })
            .collect()
    }
}

/// (entries, uncompressed_archive_size) of a golden zTOC.
fn decode_golden(ztoc: &[u8]) -> (Vec<TocEntry>, i64) {
    let root = Table::root(ztoc);
    let toc = root.table(4);
    let entries = toc
        .tables(0)
        .iter()
        .map(|m| TocEntry {
            name: m.bytes(0),
            entry_type: m.string(1).into(),
            uncompressed_offset: m.i64(2),
            uncompressed_size: m.i64(3),
            linkname: m.bytes(4),
            mode: m.i64(5),
            uid: m.u32(6),
            gid: m.u32(7),
            uname: m.bytes(8),
            gname: m.bytes(9),
            mod_time: m.string(10),
            devmajor: m.i64(11),
            devminor: m.i64(12),
            pax_records: m
                .tables(13)
                .iter()
                .map(|x| (x.bytes(0), x.bytes(1)))
                .collect(),
        })
        .collect();
    (entries, root.i64(3))
}

// ---- helpers ----------------------------------------------------------------------------

fn golden(name: &str) -> PathBuf {
    Path::new(GOLDEN_DIR).join(name)
}

fn uncompressed_layer(name: &str) -> Vec<u8> {
    let raw = std::fs::read(golden(name)).unwrap();
    if name.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    }
}

fn walk(data: &[u8], chunk: usize) -> (Vec<TocEntry>, u64) {
    let mut w = TarWalker::new();
    let mut entries = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        w.feed(c).unwrap();
        entries.extend(w.take_entries());
    }
    let size = w.finish().unwrap();
    entries.extend(w.take_entries());
    assert!(w.is_done());
    (entries, size)
}

fn assert_same(layer: &str, got: &[TocEntry], want: &[TocEntry]) {
    assert_eq!(got.len(), want.len(), "{layer}: entry count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{layer}: entry {i} ({})", w.name_lossy());
    }
}

// ---- tests ------------------------------------------------------------------------------

#[test]
fn golden_layers_whole_and_513_byte_chunks() {
    for &(layer, ztoc) in GOLDENS {
        let (want, want_size) = decode_golden(&std::fs::read(golden(ztoc)).unwrap());
        assert!(!want.is_empty(), "{ztoc}: decoded no entries");
        let data = uncompressed_layer(layer);
        for chunk in [data.len(), 513, 4096, 65536 + 7] {
            let (got, size) = walk(&data, chunk);
            assert_same(&format!("{layer} (chunk {chunk})"), &got, &want);
            assert_eq!(
                size as i64, want_size,
                "{layer} (chunk {chunk}): archive size"
            );
        }
    }
}

#[test]
fn golden_layers_one_byte_chunks() {
    for &(layer, ztoc) in GOLDENS.iter().filter(|(_, z)| z.contains("65536")) {
        let (want, want_size) = decode_golden(&std::fs::read(golden(ztoc)).unwrap());
        let data = uncompressed_layer(layer);
        let (got, size) = walk(&data, 1);
        assert_same(&format!("{layer} (1-byte)"), &got, &want);
        assert_eq!(size as i64, want_size, "{layer} (1-byte): archive size");
    }
}

/// Facts from the golden README, independent of the zTOC decoding.
#[test]
fn golden_known_values() {
    let (_, size) = walk(&uncompressed_layer("app.tar"), 1 << 20);
    assert_eq!(
        size, 376_832,
        "app.tar stops at the 2nd zero block, before record padding"
    );

    let (entries, _) = walk(&uncompressed_layer("edge-pax.tar"), 1 << 20);
    assert_eq!(entries.len(), 25);
    let last = entries.last().unwrap();
    assert_eq!((last.uid, last.gid), (3_000_000, 3_000_001));
    assert!(entries.iter().any(|e| e.entry_type == "fifo"));
    let chr = entries.iter().find(|e| e.entry_type == "char").unwrap();
    assert_eq!((chr.devmajor, chr.devminor), (1, 3));
    assert!(entries
        .iter()
        .any(|e| e.xattrs().any(|(k, _)| k == b"user.test")));
    assert!(entries
        .iter()
        .any(|e| e.name.len() > 100 && e.entry_type == "reg"));

    let (entries, _) = walk(&uncompressed_layer("multimember-gnu.tar.gz"), 1 << 20);
    assert_eq!(entries.len(), 14);
    assert!(entries
        .iter()
        .all(|e| (e.uid, e.gid) == (3_000_000, 3_000_001)));
    assert!(entries.iter().any(|e| e.name.len() > 100));

    let (entries, _) = walk(&uncompressed_layer("fname-ustar.tar.gz"), 1 << 20);
    assert_eq!(entries.len(), 11);
    assert!(
        entries.iter().any(|e| e.name.len() > 100),
        "ustar prefix joined"
    );
}
