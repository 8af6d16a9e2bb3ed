//! The codec on synthetic zTOCs and on hostile input: round trips, Go's offset check,
//! and "never panics" on truncated, mutated and random blobs.

use std::path::PathBuf;
use std::time::Instant;

use flatbuffers::FlatBufferBuilder;
use proptest::prelude::*;
use soci_ztoc::codec::{decode, encode, CodecError};
use soci_ztoc::{CompressionAlgorithm, CompressionInfo, Toc, TocEntry, Ztoc, ZTOC_VERSION};

fn golden(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("SOCI_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let in_repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden");
            if in_repo.join("README.md").exists() {
                in_repo
            } else {
                PathBuf::from("/work/shared/golden")
            }
        });
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read golden {}: {e}", path.display()))
}

fn entry(name: &[u8], offset: i64, size: i64) -> TocEntry {
    TocEntry {
        name: name.to_vec(),
        entry_type: "reg".into(),
        uncompressed_offset: offset,
        uncompressed_size: size,
        mode: 0o644,
        mod_time: "2021-03-04T05:06:07.123456789Z".into(),
        ..Default::default()
    }
}

fn ztoc(entries: Vec<TocEntry>, algorithm: CompressionAlgorithm) -> Ztoc {
    Ztoc {
        version: ZTOC_VERSION.into(),
        build_tool_identifier: "soci-rs test".into(),
        compressed_archive_size: 123_456,
        uncompressed_archive_size: 1 << 40,
        toc: Toc { entries },
        compression_info: CompressionInfo {
            compression_algorithm: algorithm,
            max_span_id: 2,
            span_digests: vec![
                format!("sha256:{}", "a".repeat(64)),
                format!("sha256:{}", "b".repeat(64)),
                format!("sha256:{}", "c".repeat(64)),
            ],
            checkpoints: (0..=255u8).cycle().take(1000).collect(),
        },
    }
}

/// What decode gives back for `z`: entries in offset order, PAX records sorted by key
/// with one (the last) value per key.
fn normalized(mut z: Ztoc) -> Ztoc {
    z.toc.entries.sort_by_key(|e| e.uncompressed_offset);
    for e in &mut z.toc.entries {
        let map: std::collections::BTreeMap<_, _> = e.pax_records.drain(..).collect();
        e.pax_records = map.into_iter().collect();
    }
    z
}

/// Entries exercising every field: non-UTF-8 bytes, empty strings, unsorted and
/// duplicate PAX keys, extreme ids, negative device numbers.
fn tricky_entries() -> Vec<TocEntry> {
    let mut v = Vec::new();

    let mut e = entry(b"", 512, 0); // empty name and strings everywhere
    e.entry_type = String::new().into();
    e.mod_time = String::new();
    e.mode = 0;
    v.push(e);

    let mut e = entry(b"caf\xe9/\xff\xfe\x00name", 1024, 5);
    e.linkname = b"\x80\x81 target".to_vec();
    e.uname = b"us\xc3\x28er".to_vec();
    e.gname = b"gr\xa0oup".to_vec();
    e.uid = u32::MAX;
    e.gid = u32::MAX - 1;
    e.mode = -1;
    e.devmajor = -1;
    e.devminor = i64::MIN;
    e.entry_type = "char".into();
    v.push(e);

    let mut e = entry(b"x/many-xattrs", 2048, 70_000);
    for i in (0..40).rev() {
        e.pax_records.push((
            format!("SCHILY.xattr.user.k{i:02}").into_bytes(),
            vec![i as u8; i],
        ));
    }
    e.pax_records
        .push((b"path".to_vec(), b"x/many-xattrs".to_vec()));
    e.pax_records
        .push((b"SCHILY.xattr.user.\xff".to_vec(), b"\x00\x01\x02".to_vec()));
    e.pax_records.push((b"".to_vec(), b"".to_vec()));
    e.pax_records.push((b"mtime".to_vec(), b"1.5".to_vec()));
    e.pax_records.push((b"mtime".to_vec(), b"2.5".to_vec())); // duplicate: last wins
    v.push(e);

    let mut e = entry(b"big", 72_704, i64::MAX - 72_704);
    e.entry_type = "block".into();
    e.devmajor = 259;
    e.devminor = 7;
    e.uid = 3_000_000;
    e.gid = 3_000_001;
    v.push(e);
    v
}

#[test]
fn round_trip_tricky_entries_all_algorithms() {
    for algo in [
        CompressionAlgorithm::Gzip,
        CompressionAlgorithm::Uncompressed,
        CompressionAlgorithm::Other(5),
        CompressionAlgorithm::Other(0),
        CompressionAlgorithm::Other(-128),
    ] {
        let z = ztoc(tricky_entries(), algo);
        let bytes = encode(&z);
        let back = decode(&bytes).unwrap_or_else(|e| panic!("{algo:?}: {e}"));
        assert_eq!(back, normalized(z.clone()), "{algo:?}");
        assert_eq!(encode(&back), bytes, "{algo:?}: re-encode is stable");
    }
}

#[test]
fn round_trip_sorts_entries_by_offset() {
    let mut entries = tricky_entries();
    entries.reverse();
    let z = ztoc(entries, CompressionAlgorithm::Gzip);
    let back = decode(&encode(&z)).unwrap();
    let offsets: Vec<_> = back
        .toc
        .entries
        .iter()
        .map(|e| e.uncompressed_offset)
        .collect();
    assert_eq!(offsets, [512, 1024, 2048, 72_704]);
    assert_eq!(back, normalized(z));
}

#[test]
fn round_trip_empty_and_default_ztoc() {
    let z = Ztoc {
        version: String::new(),
        build_tool_identifier: String::new(),
        compressed_archive_size: 0,
        uncompressed_archive_size: 0,
        toc: Toc::default(),
        compression_info: CompressionInfo::default(),
    };
    let bytes = encode(&z);
    assert_eq!(decode(&bytes).unwrap(), z);

    let mut z = ztoc(vec![], CompressionAlgorithm::Uncompressed);
    z.compressed_archive_size = -1;
    z.compression_info.max_span_id = i32::MIN;
    assert_eq!(decode(&encode(&z)).unwrap(), z);
}

/// Default scalars are left out (Go's forceDefaults is off): a gzip zTOC is 8 bytes
/// shorter than the same zTOC marked uncompressed (1 byte for the enum + padding and
/// one more vtable slot, rounded), and zero sizes shorten the root table.
#[test]
fn default_scalars_are_not_written() {
    let gzip = encode(&ztoc(vec![], CompressionAlgorithm::Gzip));
    let raw = encode(&ztoc(vec![], CompressionAlgorithm::Uncompressed));
    assert!(gzip.len() < raw.len(), "{} vs {}", gzip.len(), raw.len());

    let mut e = entry(b"a", 512, 0);
    e.mode = 0;
    let zeros = encode(&ztoc(vec![e.clone()], CompressionAlgorithm::Gzip));
    e.uid = 1;
    e.devmajor = 1;
    let ones = encode(&ztoc(vec![e], CompressionAlgorithm::Gzip));
    assert!(zeros.len() < ones.len());
}

#[test]
fn overlapping_entries_are_rejected_like_go() {
    // 512 + 1000 ends at 1512, so the next header is at 1536: data at 1024 is inside.
    let z = ztoc(
        vec![entry(b"a", 512, 1000), entry(b"b", 1024, 1)],
        CompressionAlgorithm::Gzip,
    );
    let err = decode(&encode(&z)).unwrap_err();
    match err {
        CodecError::OverlappingEntry { offset, min_offset } => {
            assert_eq!((offset, min_offset), (1024, 1536));
        }
        other => panic!("wrong error: {other}"),
    }
    assert_eq!(
        err_string(&z),
        "invalid zTOC: entry at offset 1024 starts before the end of the previous entry (1536)"
    );

    // Exactly at the derived header is fine (Go compares header <= offset) ...
    let z = ztoc(
        vec![entry(b"a", 512, 1000), entry(b"b", 1536, 1)],
        CompressionAlgorithm::Gzip,
    );
    decode(&encode(&z)).unwrap();
    // ... and so is a first entry at 0 or a zero-size entry followed by one at its offset.
    let z = ztoc(
        vec![entry(b"a", 0, 0), entry(b"b", 0, 0)],
        CompressionAlgorithm::Gzip,
    );
    decode(&encode(&z)).unwrap();

    // A negative offset starts before the first header (0).
    let z = ztoc(vec![entry(b"a", -1, 0)], CompressionAlgorithm::Gzip);
    assert!(matches!(
        decode(&encode(&z)),
        Err(CodecError::OverlappingEntry {
            offset: -1,
            min_offset: 0
        })
    ));

    // Sorting happens before the check: out-of-order but valid entries are fine.
    let z = ztoc(
        vec![entry(b"b", 2048, 1), entry(b"a", 512, 1)],
        CompressionAlgorithm::Gzip,
    );
    decode(&encode(&z)).unwrap();

    // Offsets + sizes that overflow i64 wrap like Go instead of panicking.
    let z = ztoc(
        vec![entry(b"a", 512, i64::MAX), entry(b"b", 1024, 0)],
        CompressionAlgorithm::Gzip,
    );
    decode(&encode(&z)).unwrap();
}

fn err_string(z: &Ztoc) -> String {
    decode(&encode(z)).unwrap_err().to_string()
}

/// A Ztoc root table made by hand, to test what decode does with missing parts.
fn root_only(with_toc: bool, with_ci: bool) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let version = b.create_string("0.9");
    let toc = with_toc.then(|| {
        let t = b.start_table();
        b.end_table(t) // a TOC without its metadata vector
    });
    let ci = with_ci.then(|| {
        let t = b.start_table();
        b.end_table(t) // all defaults
    });
    let t = b.start_table();
    b.push_slot_always(4, version);
    if let Some(toc) = toc {
        b.push_slot_always(12, toc);
    }
    if let Some(ci) = ci {
        b.push_slot_always(14, ci);
    }
    let root = b.end_table(t);
    b.finish_minimal(root);
    b.finished_data().to_vec()
}

#[test]
fn missing_tables() {
    // Go panics (and recovers into an error) on a missing toc or compression_info.
    assert!(matches!(
        decode(&root_only(false, true)),
        Err(CodecError::MissingTable("toc"))
    ));
    assert!(matches!(
        decode(&root_only(true, false)),
        Err(CodecError::MissingTable("compression_info"))
    ));
    // Missing vectors and scalars inside them are empty / default, as in Go.
    let z = decode(&root_only(true, true)).unwrap();
    assert_eq!(z.version, "0.9");
    assert_eq!(z.build_tool_identifier, "");
    assert!(z.toc.entries.is_empty());
    assert_eq!(z.compression_info, CompressionInfo::default());
}

#[test]
fn garbage_is_an_error() {
    assert!(matches!(decode(&[]), Err(CodecError::InvalidFlatbuffer(_))));
    assert!(decode(&[0, 0, 0]).is_err());
    assert!(decode(&[0xff; 4]).is_err());
    assert!(decode(&[4, 0, 0, 0]).is_err());
    let msg = decode(&[1, 2, 3, 4]).unwrap_err().to_string();
    assert!(
        msg.starts_with("invalid zTOC: not a valid flatbuffer ("),
        "{msg}"
    );
}

/// Decoding `bytes` must not panic; when it succeeds, the result must survive a
/// round trip through our encoder unchanged.
fn decode_never_panics(bytes: &[u8]) -> bool {
    match decode(bytes) {
        Ok(z) => {
            let again = decode(&encode(&z)).expect("re-encoded zTOC must decode");
            assert_eq!(again, z);
            true
        }
        Err(e) => {
            let _ = e.to_string();
            false
        }
    }
}

#[test]
fn truncated_goldens_are_rejected() {
    for name in ["app.tar.span-65536.ztoc", "edge-pax.tar.span-65536.ztoc"] {
        let bytes = golden(name);
        // Every prefix: the root offset points near the end, so none of them can verify ...
        for len in 0..bytes.len() - 1 {
            assert!(
                !decode_never_panics(&bytes[..len]),
                "{name}: prefix {len} decoded"
            );
        }
        // ... except the one that loses only the NUL after the last string (`version`,
        // created first, so it ends the blob): like Go we do not require the terminator.
        assert_eq!(bytes.last(), Some(&0));
        let short = decode(&bytes[..bytes.len() - 1]).expect("NUL-less last string");
        assert_eq!(short, decode(&bytes).unwrap());
    }
    let bytes = golden("app.tar.gz.span-65536.ztoc");
    for len in (0..bytes.len()).step_by(997) {
        assert!(!decode_never_panics(&bytes[..len]), "prefix {len} decoded");
    }
}

/// xorshift64*: a tiny seeded generator, so failures are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_goldens_never_panic() {
    let mut rng = Rng(0x5eed_50c1);
    for name in ["app.tar.span-65536.ztoc", "edge-pax.tar.span-65536.ztoc"] {
        let original = golden(name);
        let (mut ok, mut err) = (0, 0);
        for _ in 0..3000 {
            let mut bytes = original.clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(bytes.len());
                bytes[i] = match rng.below(3) {
                    0 => bytes[i] ^ (1 << rng.below(8)),
                    1 => rng.next() as u8,
                    _ => [0x00, 0xff, 0x7f, 0x80][rng.below(4)],
                };
            }
            if decode_never_panics(&bytes) {
                ok += 1
            } else {
                err += 1
            }
        }
        eprintln!("{name}: 3000 mutations, {ok} decoded, {err} rejected");
        assert!(err > 0, "{name}: no mutation was rejected");
    }
}

#[test]
fn random_four_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let v = rng.next().to_le_bytes();
        decode_never_panics(&v[..4]);
    }
    for x in [0u32, 4, 8, u32::MAX, 0x8000_0000, 0x7fff_ffff] {
        decode_never_panics(&x.to_le_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_never_panics(&bytes);
    }

    #[test]
    fn spliced_golden_never_panics(
        start in 0usize..2264,
        len in 0usize..64,
        fill in proptest::collection::vec(any::<u8>(), 64),
    ) {
        let mut bytes = golden("app.tar.span-65536.ztoc");
        let end = (start + len).min(bytes.len());
        bytes[start..end].copy_from_slice(&fill[..end - start]);
        decode_never_panics(&bytes);
    }
}

/// A hostile blob: one metadata vector whose elements all point at the same entry,
/// whose xattrs vector points many times at one Xattr. Verification limits must stop
/// the blow-up instead of building a huge Ztoc.
#[test]
fn shared_tables_are_bounded() {
    let mut b = FlatBufferBuilder::new();
    let version = b.create_string("0.9");
    let key = b.create_string("k");
    let t = b.start_table();
    b.push_slot_always(4, key);
    b.push_slot_always(6, key);
    let xattr = b.end_table(t);
    let n = 20_000;
    b.start_vector::<flatbuffers::WIPOffset<()>>(n);
    for _ in 0..n {
        b.push(xattr);
    }
    let xattrs = b.end_vector::<flatbuffers::WIPOffset<()>>(n);
    let t = b.start_table();
    b.push_slot_always(30, xattrs);
    let fm = b.end_table(t);
    b.start_vector::<flatbuffers::WIPOffset<()>>(n);
    for _ in 0..n {
        b.push(fm);
    }
    let metadata = b.end_vector::<flatbuffers::WIPOffset<()>>(n);
    let t = b.start_table();
    b.push_slot_always(4, metadata);
    let toc = b.end_table(t);
    let t = b.start_table();
    let ci = b.end_table(t);
    let t = b.start_table();
    b.push_slot_always(4, version);
    b.push_slot_always(12, toc);
    b.push_slot_always(14, ci);
    let root = b.end_table(t);
    b.finish_minimal(root);
    let bytes = b.finished_data();
    // 160 KB that would expand to 400 million Xattr tables.
    let started = Instant::now();
    let res = decode(bytes);
    assert!(
        matches!(res, Err(CodecError::InvalidFlatbuffer(_))),
        "{:?}",
        res.map(|_| ())
    );
    eprintln!(
        "hostile {} B blob rejected in {:?}",
        bytes.len(),
        started.elapsed()
    );
}

#[test]
fn timing_100k_entries() {
    // SOCI_CODEC_TIMING_ENTRIES overrides the count (e.g. to check that time is linear).
    let n: i64 = std::env::var("SOCI_CODEC_TIMING_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let entries: Vec<TocEntry> = (0..n)
        .map(|i| {
            let mut e = entry(
                format!("usr/share/doc/pkg{}/file-{i}.txt", i % 977).as_bytes(),
                512 + i * 1024,
                300,
            );
            e.uname = b"root".to_vec();
            e.gname = b"root".to_vec();
            if i % 10 == 0 {
                e.pax_records = vec![
                    (b"SCHILY.xattr.user.a".to_vec(), b"1".to_vec()),
                    (b"mtime".to_vec(), b"1614834367.123456789".to_vec()),
                ];
            }
            e
        })
        .collect();
    let z = ztoc(entries, CompressionAlgorithm::Gzip);
    let started = Instant::now();
    let bytes = encode(&z);
    let encoded = started.elapsed();
    let started = Instant::now();
    let back = decode(&bytes).unwrap();
    let decoded = started.elapsed();
    eprintln!(
        "{n} entries: {} bytes, encode {encoded:?}, decode {decoded:?} ({} build)",
        bytes.len(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert_eq!(back, z);
}

/// Decode reads the schema, not Go's layout: a blob with fields in another order,
/// forced defaults, a shared string, a file identifier, unsorted and duplicate PAX keys
/// and a NUL-less string decodes to what Go's reader would make of it.
#[test]
fn decodes_any_valid_layout() {
    let mut e = entry(b"etc/\xffpasswd", 512, 7);
    e.pax_records = vec![
        (b"b".to_vec(), b"2".to_vec()),
        (b"a".to_vec(), b"1".to_vec()),
    ];
    let want = normalized(ztoc(vec![e.clone()], CompressionAlgorithm::Uncompressed));

    let mut b = FlatBufferBuilder::new();
    b.force_defaults(true);
    // Created first, so it ends the blob: its NUL is cut off below.
    let version = b.create_string(&want.version);
    let mut xattrs = Vec::new();
    for (k, v) in [(&b"b"[..], &b"2"[..]), (b"a", b"0"), (b"a", b"1")] {
        let k = b.create_byte_string(k);
        let v = b.create_byte_string(v);
        let t = b.start_table();
        b.push_slot_always(6, v);
        b.push_slot_always(4, k);
        xattrs.push(b.end_table(t));
    }
    let xattrs = b.create_vector(&xattrs);
    let empty = b.create_shared_string("");
    let mod_time = b.create_string(&e.mod_time);
    let name = b.create_byte_string(&e.name);
    let kind = b.create_string("reg");
    let t = b.start_table();
    b.push_slot_always(30, xattrs);
    b.push_slot(28, e.devminor, 0);
    b.push_slot(26, e.devmajor, 0);
    b.push_slot_always(24, mod_time);
    b.push_slot_always(22, empty); // gname
    b.push_slot_always(20, empty); // uname
    b.push_slot(18, e.gid, 0);
    b.push_slot(16, e.uid, 0);
    b.push_slot(14, e.mode, 0);
    b.push_slot_always(12, empty); // linkname
    b.push_slot(10, e.uncompressed_size, 0);
    b.push_slot(8, e.uncompressed_offset, 0);
    b.push_slot_always(6, kind);
    b.push_slot_always(4, name);
    let fm = b.end_table(t);
    let metadata = b.create_vector(&[fm]);
    let t = b.start_table();
    b.push_slot_always(4, metadata);
    let toc = b.end_table(t);
    let ci = &want.compression_info;
    let digests: Vec<_> = ci.span_digests.iter().map(|d| b.create_string(d)).collect();
    let digests = b.create_vector(&digests);
    let checkpoints = b.create_vector(&ci.checkpoints);
    let t = b.start_table();
    b.push_slot_always(10, checkpoints);
    b.push_slot_always(8, digests);
    b.push_slot(6, ci.max_span_id, 0);
    b.push_slot(4, 2i8, 1);
    let ci = b.end_table(t);
    let tool = b.create_string(&want.build_tool_identifier);
    let t = b.start_table();
    b.push_slot_always(14, ci);
    b.push_slot_always(12, toc);
    b.push_slot(10, want.uncompressed_archive_size, 0);
    b.push_slot(8, want.compressed_archive_size, 0);
    b.push_slot_always(6, tool);
    b.push_slot_always(4, version);
    let root = b.end_table(t);
    b.finish(root, Some("ZTOC"));
    let mut bytes = b.finished_data().to_vec();
    assert_eq!(&bytes[bytes.len() - 4..], b"0.9\0");
    bytes.pop();

    let got = decode(&bytes).unwrap();
    assert_eq!(got, want);
    // Our encoder does not keep that layout, of course.
    assert_ne!(encode(&got), bytes);
}
