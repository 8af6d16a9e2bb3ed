//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;

use flatbuffers::{ForwardsUOffset, Table, Vector};
use soci_zinfo::{GzipCheckpointer, GzipZinfo, ZinfoError};

/// The repository's copy of the golden fixtures.
pub(crate) fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden")
}

pub(crate) fn golden(name: &str) -> Vec<u8> {
    let p = golden_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// What a reference zTOC says about its compression info.
#[derive(Debug)]
pub(crate) struct ZtocZinfo {
    pub compressed_archive_size: i64,
    pub uncompressed_archive_size: i64,
    /// CompressionInfo slot 0 (1 = gzip, the default; 2 = uncompressed).
    pub algorithm: i8,
    pub max_span_id: i32,
    pub span_digests: Vec<String>,
    /// CompressionInfo slot 3: the zinfo blob.
    pub checkpoints: Vec<u8>,
}

/// Read the fields we need from a zTOC flatbuffer with the `flatbuffers`
/// crate's generic table API (independent of this crate's code).
/// Ztoc: slot 2 compressed_archive_size, 3 uncompressed_archive_size,
/// 5 compression_info; CompressionInfo: 0 algorithm, 1 max_span_id,
/// 2 span_digests, 3 checkpoints. Vtable offset of slot i = 4 + 2i.
// Test-only unsafe: the flatbuffers generic table API has no safe form.
#[allow(unsafe_code)]
pub(crate) fn read_ztoc(buf: &[u8]) -> ZtocZinfo {
    let root = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
    // SAFETY (test only): the golden files are valid flatbuffers written by
    // the reference Go code; the slots read have the types of ztoc.fbs.
    unsafe {
        let ztoc = Table::new(buf, root);
        let ci = ztoc
            .get::<ForwardsUOffset<Table>>(14, None)
            .expect("compression_info");
        let digests = ci
            .get::<ForwardsUOffset<Vector<ForwardsUOffset<&str>>>>(8, None)
            .map(|v| v.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        ZtocZinfo {
            compressed_archive_size: ztoc.get::<i64>(8, Some(0)).unwrap(),
            uncompressed_archive_size: ztoc.get::<i64>(10, Some(0)).unwrap(),
            algorithm: ci.get::<i8>(4, Some(1)).unwrap(),
            max_span_id: ci.get::<i32>(6, Some(0)).unwrap(),
            span_digests: digests,
            checkpoints: ci
                .get::<ForwardsUOffset<Vector<u8>>>(10, None)
                .map(|v| v.bytes().to_vec())
                .unwrap_or_default(),
        }
    }
}

/// Run the checkpointer over `gz`, fed in pieces of `chunk` bytes; returns
/// the zinfo and the whole uncompressed output.
pub(crate) fn build(
    gz: &[u8],
    span: u64,
    chunk: usize,
) -> Result<(GzipZinfo, Vec<u8>), ZinfoError> {
    let mut cp = GzipCheckpointer::new(span)?;
    let mut out = Vec::new();
    for piece in gz.chunks(chunk.max(1)) {
        cp.feed(piece, &mut |b| out.extend_from_slice(b))?;
        assert_eq!(cp.total_out(), out.len() as u64);
    }
    assert_eq!(cp.total_in(), gz.len() as u64);
    Ok((cp.finish()?, out))
}

/// Full decompression with flate2 (zlib-rs backend), all members.
pub(crate) fn flate2_decompress(gz: &[u8]) -> Vec<u8> {
    let mut d = flate2::read::MultiGzDecoder::new(gz);
    let mut v = Vec::new();
    d.read_to_end(&mut v).unwrap();
    v
}

/// One gzip member made by flate2.
pub(crate) fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Deterministic, moderately compressible data (a xorshift PRNG mixed with
/// repeated words), `n` bytes.
pub(crate) fn sample_data(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let words: [&[u8]; 8] = [
        b"layer ",
        b"span ",
        b"checkpoint ",
        b"tar ",
        b"\0\0\0\0",
        b"zran ",
        b"\n",
        b"0123456789",
    ];
    let mut v = Vec::with_capacity(n + 16);
    while v.len() < n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        if s & 3 == 0 {
            v.extend_from_slice(&s.to_le_bytes()[..(s >> 60) as usize % 8 + 1]);
        } else {
            v.extend_from_slice(words[(s >> 33) as usize % 8]);
        }
    }
    v.truncate(n);
    v
}
