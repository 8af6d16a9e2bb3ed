//! Named edge cases of the tar walk and the zTOC, each checked through a real build.
mod common;
use common::*;
use soci_ztoc::build::LayerCompression::{Gzip, Uncompressed};
use soci_ztoc::TocEntry;
use tar::EntryType;

const SPAN: u64 = 64 * 1024;

fn entry<'a>(z: &'a soci_ztoc::Ztoc, name: &str) -> &'a TocEntry {
    z.toc
        .entries
        .iter()
        .find(|e| e.name == name.as_bytes())
        .unwrap_or_else(|| panic!("no entry {name}"))
}

#[test]
fn hardlinks_and_symlinks() {
    let mut t = TarMaker::new();
    t.file("data/original", b"hello")
        .link(EntryType::Link, "data/hard", "data/original");
    t.link(EntryType::Symlink, "data/soft", "original").link(
        EntryType::Symlink,
        "dangling",
        "/no/such",
    );
    let tar = t.finish();
    let blob = gzip(&tar, 6);
    let z = build(&blob, Gzip, SPAN);
    assert_eq!(entry(&z, "data/hard").entry_type, "hardlink");
    assert_eq!(entry(&z, "data/hard").linkname, b"data/original");
    assert_eq!(entry(&z, "data/soft").entry_type, "symlink");
    assert_eq!(entry(&z, "dangling").linkname, b"/no/such");
    // A hardlink reads as its target.
    let zi = z.zinfo().unwrap();
    let target = z.find_regular(b"data/hard").unwrap();
    assert_eq!(
        z.extract_entry(&zi, target, &mut std::io::Cursor::new(&blob))
            .unwrap(),
        b"hello"
    );
    assert!(
        z.find_regular(b"data/soft").is_err(),
        "a symlink is not a regular file"
    );
}

#[test]
fn long_names_and_link_targets() {
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}", "f".repeat(150));
    let long_target = format!("/{}", "t".repeat(200));
    let mut t = TarMaker::new();
    t.file(&long_name, b"long"); // GNU ././@LongLink
    t.link(EntryType::Symlink, "short-link", &long_target);
    t.pax(&[
        ("path", format!("pax/{long_name}").as_bytes()),
        ("linkpath", long_target.as_bytes()),
    ]);
    t.link(EntryType::Symlink, "ignored-by-pax", "x");
    let tar = t.finish();
    let z = build(&gzip(&tar, 6), Gzip, SPAN);
    assert_eq!(entry(&z, &long_name).uncompressed_size, 4);
    assert_eq!(entry(&z, "short-link").linkname, long_target.as_bytes());
    let pax = entry(&z, &format!("pax/{long_name}"));
    assert_eq!(pax.linkname, long_target.as_bytes());
    assert!(
        pax.pax_records.iter().any(|(k, _)| k == b"path"),
        "PAX records kept in full"
    );
    assert_eq!(check_all_files(&z, &gzip(&tar, 6), &tar), 1);
}

#[test]
fn pax_xattrs_are_kept_sorted() {
    let mut t = TarMaker::new();
    t.pax(&[
        ("SCHILY.xattr.user.test", b"value"),
        (
            "SCHILY.xattr.security.capability",
            &[
                1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        ("mtime", b"1600000000.123456789"),
    ]);
    t.file("bin/ping", b"\x7fELF");
    let tar = t.finish();
    let z = build(&tar, Uncompressed, SPAN);
    let e = entry(&z, "bin/ping");
    let keys: Vec<&[u8]> = e.pax_records.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(
        keys,
        vec![
            &b"SCHILY.xattr.security.capability"[..],
            b"SCHILY.xattr.user.test",
            b"mtime"
        ]
    );
    assert_eq!(e.xattrs().count(), 2);
    assert!(e.has_xattrs());
    assert_eq!(e.mod_time, "2020-09-13T12:26:40.123456789Z");
}

#[test]
fn uid_gid_over_2_pow_21() {
    let mut t = TarMaker::new();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_size(1);
    h.set_uid(3_000_000);
    h.set_gid(3_000_001);
    h.set_mtime(0);
    t.b.append_data(&mut h, "big-ids", &b"x"[..]).unwrap();
    t.pax(&[("uid", b"4000000"), ("gid", b"4000001")])
        .file("pax-ids", b"y");
    let tar = t.finish();
    let z = build(&gzip(&tar, 1), Gzip, SPAN);
    assert_eq!(
        (entry(&z, "big-ids").uid, entry(&z, "big-ids").gid),
        (3_000_000, 3_000_001)
    );
    assert_eq!(
        (entry(&z, "pax-ids").uid, entry(&z, "pax-ids").gid),
        (4_000_000, 4_000_001)
    );
    assert_eq!(entry(&z, "big-ids").mod_time, "1970-01-01T00:00:00Z");
}

#[test]
fn empty_files_and_directories() {
    let mut t = TarMaker::new();
    t.dir("empty-dir/")
        .file("empty-file", b"")
        .file("after", b"after");
    let tar = t.finish();
    let blob = gzip(&tar, 9);
    let z = build(&blob, Gzip, SPAN);
    assert_eq!(entry(&z, "empty-dir/").entry_type, "dir");
    let ef = entry(&z, "empty-file");
    assert_eq!((ef.entry_type.as_str(), ef.uncompressed_size), ("reg", 0));
    assert_eq!(
        ef.uncompressed_offset, 1024,
        "data offset is set for empty files too"
    );
    assert_eq!(check_all_files(&z, &blob, &tar), 2);
}

#[test]
fn whiteouts_are_ordinary_files() {
    let mut t = TarMaker::new();
    t.file(".wh.deleted", b"")
        .dir("opaque/")
        .file("opaque/.wh..wh..opq", b"");
    let z = build(&gzip(&t.finish(), 6), Gzip, SPAN);
    assert_eq!(entry(&z, ".wh.deleted").entry_type, "reg");
    assert_eq!(entry(&z, "opaque/.wh..wh..opq").entry_type, "reg");
}

#[test]
fn fifo_and_device_nodes() {
    let mut t = TarMaker::new();
    t.node(EntryType::Fifo, "dev/fifo", 0, 0)
        .node(EntryType::Char, "dev/null", 1, 3);
    t.node(EntryType::Block, "dev/sda", 8, 0);
    let z = build(&gzip(&t.finish(), 6), Gzip, SPAN);
    assert_eq!(entry(&z, "dev/fifo").entry_type, "fifo");
    let n = entry(&z, "dev/null");
    assert_eq!(
        (n.entry_type.as_str(), n.devmajor, n.devminor),
        ("char", 1, 3)
    );
    assert_eq!(entry(&z, "dev/sda").entry_type, "block");
}

#[test]
fn ten_thousand_small_files() {
    let mut t = TarMaker::new();
    for i in 0..10_000 {
        t.file(&format!("many/{i:05}"), format!("file {i}\n").as_bytes());
    }
    let tar = t.finish();
    let blob = gzip(&tar, 6);
    let z = build(&blob, Gzip, SPAN);
    assert_eq!(z.toc.entries.len(), 10_000);
    assert!(z.compression_info.span_digests.len() > 1);
    assert_eq!(check_all_files(&z, &blob, &tar), 10_000);
}

#[test]
fn empty_layer() {
    let tar = TarMaker::new().finish(); // just the end-of-archive blocks
    let z = build(&gzip(&tar, 6), Gzip, SPAN);
    assert!(z.toc.entries.is_empty());
    assert_eq!(z.uncompressed_archive_size, 1024);
    assert_eq!(z.compression_info.span_digests.len(), 1);
    let zt = build(&tar, Uncompressed, SPAN);
    assert!(zt.toc.entries.is_empty());
}

#[test]
fn file_spanning_many_spans() {
    // Pseudo-random (incompressible-ish) content so spans are many and real.
    let mut data = vec![0u8; 3 * 1024 * 1024];
    let mut x = 0x1234_5678u32;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x % 7) as u8 + b'a';
    }
    let mut t = TarMaker::new();
    t.file("big", &data).file("small", b"tail");
    let tar = t.finish();
    let blob = gzip(&tar, 6);
    let z = build(&blob, Gzip, SPAN);
    let zi = z.zinfo().unwrap();
    let e = entry(&z, "big");
    let first = zi.span_of(e.uncompressed_offset as u64);
    let last = zi.span_of((e.uncompressed_offset + e.uncompressed_size) as u64);
    assert!(
        last - first >= 20,
        "the file covers {} spans",
        last - first + 1
    );
    assert_eq!(check_all_files(&z, &blob, &tar), 2);
    let zt = build(&tar, Uncompressed, SPAN);
    assert_eq!(
        zt.compression_info.span_digests.len() as u64,
        (tar.len() as u64).div_ceil(SPAN)
    );
    assert_eq!(check_all_files(&zt, &tar, &tar), 2);
}

#[test]
fn unsupported_entry_types_fail_the_build() {
    for (kind, what) in [
        (EntryType::XGlobalHeader, "g"),
        (EntryType::GNUSparse, "S"),
        (EntryType::Continuous, "7"),
    ] {
        let mut t = TarMaker::new();
        t.file("ok", b"ok").raw(kind, "bad", b"");
        let err = build_err(&gzip(&t.finish(), 6), Gzip, SPAN);
        assert!(err.contains("unsupported"), "type {what}: {err}");
    }
}

#[test]
fn offsets_beyond_4_gib() {
    // A 4.5 GiB file of zeros followed by a small file, gzip level 1: ~4.5 MB compressed.
    use flate2::write::GzEncoder;
    use std::io::Write;
    const BIG: u64 = 4 * 1024 * 1024 * 1024 + 512 * 1024 * 1024;
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").unwrap();
    h.set_size(BIG);
    h.set_entry_type(EntryType::Regular);
    h.set_mtime(0);
    h.set_cksum();
    enc.write_all(h.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(BIG >> 20) {
        enc.write_all(&zeros).unwrap();
    }
    let mut t = TarMaker::new();
    t.file("after-4gib", b"still here");
    enc.write_all(&t.finish()).unwrap();
    let blob = enc.finish().unwrap();
    let z = build(&blob, Gzip, 4 << 20);
    let e = entry(&z, "after-4gib");
    assert_eq!(e.uncompressed_offset as u64, 512 + BIG + 512);
    let zi = z.zinfo().unwrap();
    let got = z
        .extract_entry(&zi, e, &mut std::io::Cursor::new(&blob))
        .unwrap();
    assert_eq!(got, b"still here");
}

/// A blob that fails to inflate or walk is reported as a digest mismatch when
/// its digest is not the expected one (corrupted on the way), and as what is
/// wrong with it when the digest is right (the layer itself is bad).
#[test]
fn broken_content_is_a_digest_mismatch_only_when_the_digest_differs() {
    use soci_ztoc::build::{build_ztoc, BuildError, BuildOptions, NoProgress};
    use std::io::Cursor;
    let digest = |b: &[u8]| {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
    };
    let mut t = TarMaker::new();
    for i in 0..40 {
        let data: Vec<u8> = (0..20_000u32).map(|j| (j * (i + 3) / 7) as u8).collect();
        t.file(&format!("f{i}"), &data);
    }
    let good = gzip(&t.finish(), 6);
    let mut corrupt = good.clone();
    let mid = corrupt.len() / 3;
    corrupt[mid] ^= 0x55;
    let mut not_tar = TarMaker::new();
    not_tar.raw(EntryType::XGlobalHeader, "g", b"");
    let bad_layer = gzip(&not_tar.finish(), 6);

    let run = |blob: &[u8], expected: &str| {
        let mut opts = BuildOptions::new(Gzip);
        opts.expected_digest = Some(soci_digest::Digest::parse(expected).unwrap());
        build_ztoc(Cursor::new(blob), &opts, &mut NoProgress)
    };
    // Corrupted in transit: the digest says so, even though inflate failed first.
    match run(&corrupt, &digest(&good)) {
        Err(BuildError::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, digest(&good));
            assert_eq!(actual, digest(&corrupt));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    // The same bytes when they are what the descriptor says: the real problem.
    match run(&corrupt, &digest(&corrupt)) {
        Err(BuildError::Zinfo(_)) => {}
        other => panic!("expected an inflate error, got {other:?}"),
    }
    match run(&bad_layer, &digest(&bad_layer)) {
        Err(BuildError::Tar(e)) => assert!(e.to_string().contains("unsupported"), "{e}"),
        other => panic!("expected a tar error, got {other:?}"),
    }
    assert!(run(&good, &digest(&good)).is_ok());
}
