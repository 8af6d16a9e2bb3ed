//! Checkpoint engine, blob format, extraction and span math.

mod common;

use std::io::{Cursor, Write};

use common::{build, flate2_decompress, golden, gzip, sample_data};
use soci_zinfo::{
    extract_from_checkpoint, extract_range, Checkpoint, GzipCheckpointer, GzipZinfo, TarZinfo,
    Zinfo, ZinfoError, PACKED_CHECKPOINT_SIZE, WINDOW_SIZE,
};

/// A multi-member gzip: a member with FNAME+FEXTRA+FCOMMENT+mtime, an empty
/// member, a plain one at level 1, and a stored (level 0) one. Returns the
/// blob and the uncompressed offsets where members start.
fn multi_member() -> (Vec<u8>, Vec<u8>, Vec<u64>) {
    let a = sample_data(300_000, 1);
    let b = sample_data(150_000, 2);
    let c = sample_data(70_000, 3);
    let mut blob = Vec::new();
    let mut e = flate2::GzBuilder::new()
        .filename("layer.tar")
        .extra(vec![b'S', b'C', 4, 0, 1, 2, 3, 4])
        .comment("a comment")
        .mtime(1_600_000_000)
        .write(Vec::new(), flate2::Compression::new(6));
    e.write_all(&a).unwrap();
    blob.extend(e.finish().unwrap());
    blob.extend(gzip(b"", 6)); // empty member
    blob.extend(gzip(&b, 1));
    blob.extend(gzip(&c, 0));
    let mut data = a.clone();
    data.extend(&b);
    data.extend(&c);
    let bounds = vec![0, a.len() as u64, (a.len() + b.len()) as u64];
    (blob, data, bounds)
}

fn expected_window(data: &[u8], out: u64) -> Vec<u8> {
    let out = out as usize;
    let mut w = vec![0u8; WINDOW_SIZE];
    let n = out.min(WINDOW_SIZE);
    w[WINDOW_SIZE - n..].copy_from_slice(&data[out - n..out]);
    w
}

fn check_windows(z: &GzipZinfo, data: &[u8]) {
    for (i, cp) in z.checkpoints.iter().enumerate() {
        assert_eq!(cp.window.len(), WINDOW_SIZE);
        assert!(
            cp.window[..] == expected_window(data, cp.uncompressed_offset)[..],
            "window of checkpoint {i}"
        );
    }
}

// ---------------------------------------------------------------- engine

#[test]
fn chunk_sizes_give_identical_results() {
    let (mm, mm_data, _) = multi_member();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("multimember-gnu", golden("multimember-gnu.tar.gz")),
        ("fname-ustar", golden("fname-ustar.tar.gz")),
        ("generated multi-member", mm),
    ];
    for (name, gz) in &inputs {
        let expected_data = flate2_decompress(gz);
        let (whole, out) = build(gz, 65536, gz.len()).unwrap();
        assert_eq!(out, expected_data, "{name}: output");
        check_windows(&whole, &out);
        for chunk in [1usize, 7, 16 * 1024] {
            let (z, out2) = build(gz, 65536, chunk).unwrap();
            assert_eq!(out2, expected_data, "{name}: output with chunk {chunk}");
            assert_eq!(z, whole, "{name}: checkpoints with chunk {chunk}");
        }
    }
    assert_eq!(flate2_decompress(&inputs[2].1), mm_data);
}

#[test]
fn checkpoint_rules() {
    let (gz, data, bounds) = multi_member();
    let span = 40_000u64;
    let (z, _) = build(&gz, span, 4096).unwrap();
    assert_eq!(z.span_size, span as i64);
    // checkpoint 0 after the first header (10 + FEXTRA 2+8 + "layer.tar\0" + "a comment\0")
    assert_eq!(z.checkpoints[0].compressed_offset, 10 + 10 + 10 + 10);
    assert_eq!(
        (z.checkpoints[0].uncompressed_offset, z.checkpoints[0].bits),
        (0, 0)
    );
    for w in z.checkpoints.windows(2) {
        // strictly more than `span` bytes between checkpoints
        assert!(
            w[1].uncompressed_offset - w[0].uncompressed_offset > span,
            "{:?}",
            w
        );
        assert!(w[1].compressed_offset > w[0].compressed_offset);
    }
    assert!(z.checkpoints.iter().all(|c| c.bits <= 7));
    check_windows(&z, &data);
    // the window is not reset between members: a checkpoint in member 2 or 3
    // close to its start carries data of the previous member.
    assert!(z
        .checkpoints
        .iter()
        .any(|c| c.uncompressed_offset > bounds[1]));

    // span 0: a checkpoint at every block boundary
    let (all, _) = build(&gz, 0, 1 << 20).unwrap();
    assert!(all.checkpoints.len() > z.checkpoints.len());
    check_windows(&all, &data);
}

#[test]
fn empty_leading_block_gives_two_checkpoints_at_zero() {
    // A sync flush before any data emits an empty stored block.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.flush().unwrap();
    e.write_all(&sample_data(100_000, 9)).unwrap();
    let gz = e.finish().unwrap();
    let (z, data) = build(&gz, 65536, 1000).unwrap();
    assert_eq!(z.checkpoints[0].compressed_offset, 10);
    assert_eq!(z.checkpoints[0].uncompressed_offset, 0);
    assert_eq!(
        z.checkpoints[1].uncompressed_offset, 0,
        "{:?}",
        z.checkpoints
    );
    assert!(z.checkpoints[1].compressed_offset > 10);
    // like the reference, offset 0 maps to the last checkpoint at out 0
    let zi = Zinfo::Gzip(z.clone());
    assert_eq!(zi.span_of(0), 1);
    assert_eq!(zi.span_uncompressed_range(0, data.len() as u64), 0..0);
    assert_eq!(
        extract_range(&z, &mut Cursor::new(&gz), 0, 5000).unwrap(),
        &data[..5000]
    );
}

#[test]
fn errors_never_panic() {
    let gz = gzip(&sample_data(20_000, 4), 6);
    // empty input
    assert!(matches!(build(&[], 65536, 10), Err(ZinfoError::Empty)));
    // truncated anywhere
    for cut in 1..gz.len() {
        match build(&gz[..cut], 65536, 333) {
            Err(ZinfoError::Truncated { offset }) => assert_eq!(offset, cut as u64),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // corrupt: every single-bit flip after the header is detected (deflate
    // error, CRC or length check)
    for i in 10..gz.len() {
        let mut bad = gz.clone();
        bad[i] ^= 0x10;
        match build(&bad, 65536, 4096) {
            Err(ZinfoError::Corrupt { offset, msg }) => {
                assert!(offset as usize <= gz.len() && !msg.is_empty());
            }
            // a flip can also make the stream end early/late
            Err(ZinfoError::Truncated { .. }) | Err(ZinfoError::TrailingData { .. }) => {}
            // a few flips (e.g. in the code lengths of unused symbols) do not
            // change the data; the CRC guarantees the output is the same then
            Ok((_, out)) => assert!(
                out == flate2_decompress(&gz),
                "flip at {i} changed the output undetected"
            ),
            Err(other) => panic!("flip at {i}: {other:?}"),
        }
    }
    // trailing garbage and zero padding
    for tail in [
        &b"garbage"[..],
        &[0u8][..],
        &[0u8; 8][..],
        &[0u8; 512][..],
        &[0x1f][..],
        &[0x1f, 0x8b, 8][..],
    ] {
        let mut t = gz.clone();
        t.extend_from_slice(tail);
        let e = build(&t, 65536, 1000).unwrap_err();
        match &e {
            ZinfoError::TrailingData { offset, .. } => assert_eq!(*offset, gz.len() as u64),
            other => panic!("tail {tail:?}: {other:?}"),
        }
        assert!(
            e.to_string().contains(&format!("offset {}", gz.len())),
            "{e}"
        );
    }
    let e = build(&gz[..gz.len() - 3], 65536, 1000).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "gzip stream truncated at compressed offset {}",
            gz.len() - 3
        )
    );
    // not gzip at all
    assert!(matches!(
        build(b"hello world, not gzip", 65536, 4),
        Err(ZinfoError::Corrupt { .. })
    ));
    // poisoned after an error
    let mut cp = GzipCheckpointer::new(65536).unwrap();
    assert!(cp.feed(b"not gzip at all", &mut |_| {}).is_err());
    assert!(matches!(
        cp.feed(&gz, &mut |_| {}),
        Err(ZinfoError::Poisoned)
    ));
    assert!(GzipCheckpointer::new(u64::MAX).is_err());
}

#[test]
fn zlib_wrapped_member_is_accepted_like_the_reference() {
    // inflateInit2(47) auto-detects zlib headers too.
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(b"hello hello hello").unwrap();
    let z = e.finish().unwrap();
    let (zi, out) = build(&z, 65536, 3).unwrap();
    assert_eq!(out, b"hello hello hello");
    assert_eq!(zi.checkpoints[0].compressed_offset, 2);
}

// ---------------------------------------------------------------- blob

fn fake_checkpoint(i: u64) -> Checkpoint {
    let mut w = vec![0u8; WINDOW_SIZE];
    for (k, b) in w.iter_mut().enumerate() {
        *b = (k as u64 * 31 + i) as u8;
    }
    Checkpoint {
        compressed_offset: 100 * i + 10,
        uncompressed_offset: 1000 * i,
        bits: (i % 8) as u8,
        window: w.into(),
    }
}

#[test]
fn blob_v2_round_trip_and_layout() {
    let (gz, _, _) = multi_member();
    let (z, _) = build(&gz, 65536, 1 << 20).unwrap();
    let b = z.to_blob();
    let n = z.checkpoints.len();
    assert_eq!(b.len(), 12 + PACKED_CHECKPOINT_SIZE * n);
    assert_eq!(i32::from_le_bytes(b[0..4].try_into().unwrap()), n as i32);
    assert_eq!(i64::from_le_bytes(b[4..12].try_into().unwrap()), 65536);
    // record 1: in, out, bits, window
    let r = &b[12 + PACKED_CHECKPOINT_SIZE..12 + 2 * PACKED_CHECKPOINT_SIZE];
    assert_eq!(
        u64::from_le_bytes(r[0..8].try_into().unwrap()),
        z.checkpoints[1].compressed_offset
    );
    assert_eq!(
        u64::from_le_bytes(r[8..16].try_into().unwrap()),
        z.checkpoints[1].uncompressed_offset
    );
    assert_eq!(r[16], z.checkpoints[1].bits);
    assert_eq!(&r[17..], &z.checkpoints[1].window[..]);
    let back = GzipZinfo::from_blob(&b).unwrap();
    assert_eq!(back, z);
    assert_eq!(back.to_blob(), b);
}

#[test]
fn blob_v1_round_trip() {
    let mut cps = vec![Checkpoint {
        compressed_offset: 10,
        uncompressed_offset: 0,
        bits: 0,
        window: vec![0u8; WINDOW_SIZE].into(),
    }];
    cps.extend((1..4).map(fake_checkpoint));
    let v1 = GzipZinfo {
        span_size: 4194304,
        checkpoints: cps,
        legacy_v1: true,
    };
    let b = v1.to_blob();
    assert_eq!(b.len(), 12 + PACKED_CHECKPOINT_SIZE * 3);
    assert_eq!(
        i32::from_le_bytes(b[0..4].try_into().unwrap()),
        4,
        "N counts the omitted checkpoint 0"
    );
    let back = GzipZinfo::from_blob(&b).unwrap();
    assert!(back.legacy_v1);
    assert_eq!(back, v1);
    assert_eq!(back.to_blob(), b);
    // v1 with only checkpoint 0: just the header
    let one = GzipZinfo {
        span_size: 7,
        checkpoints: v1.checkpoints[..1].to_vec(),
        legacy_v1: true,
    };
    let b1 = one.to_blob();
    assert_eq!(b1.len(), 12);
    assert_eq!(GzipZinfo::from_blob(&b1).unwrap(), one);
    // the same checkpoints written as v2 are one record longer
    let v2 = GzipZinfo {
        legacy_v1: false,
        ..v1.clone()
    };
    assert_eq!(v2.to_blob().len(), b.len() + PACKED_CHECKPOINT_SIZE);
    assert_eq!(GzipZinfo::from_blob(&v2.to_blob()).unwrap(), v2);
}

#[test]
fn blob_invalid_lengths_and_values() {
    let z = GzipZinfo {
        span_size: 65536,
        checkpoints: (0..3).map(fake_checkpoint).collect(),
        legacy_v1: false,
    };
    let good = z.to_blob();
    let invalid = |b: &[u8]| match GzipZinfo::from_blob(b) {
        Err(ZinfoError::InvalidBlob(m)) => m,
        other => panic!("expected InvalidBlob for {} bytes, got {other:?}", b.len()),
    };
    // every truncation or extension by a few bytes
    for len in [0, 1, 11, 13, 100, good.len() - 1, good.len() - 17] {
        let m = invalid(&good[..len]);
        assert!(m.contains(&format!("length {len}")), "{m}");
    }
    let mut longer = good.clone();
    longer.push(0);
    invalid(&longer);
    // N inconsistent with the length, negative, absurd, zero
    let with_n = |n: i32| {
        let mut b = good.clone();
        b[0..4].copy_from_slice(&n.to_le_bytes());
        b
    };
    for n in [-1, i32::MIN, i32::MAX, 1, 5, 0] {
        invalid(&with_n(n));
    }
    // 12-byte header with N = 0 ("v2, no checkpoints") is rejected too
    let mut hdr = vec![0u8; 12];
    invalid(&hdr);
    hdr[0] = 1; // N = 1, 12 bytes: v1 with only the synthesised checkpoint
    assert_eq!(
        GzipZinfo::from_blob(&hdr).unwrap().checkpoints[0].compressed_offset,
        10
    );
    // bad values
    let mut bad_bits = good.clone();
    bad_bits[12 + 16] = 8;
    invalid(&bad_bits);
    let mut neg = good.clone();
    neg[12 + PACKED_CHECKPOINT_SIZE + 7] = 0x80;
    invalid(&neg);
    // (the correct one still parses)
    assert_eq!(GzipZinfo::from_blob(&good).unwrap(), z);
}

// ---------------------------------------------------------------- extraction

/// Deterministic pseudo-random ranges.
fn ranges(total: u64, n: usize, seed: u64) -> Vec<(u64, usize)> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n)
        .map(|_| {
            let off = next() % total;
            let len = match next() % 4 {
                0 => 1,
                1 => (next() % 100) as usize,
                2 => (next() % 70_000) as usize,
                _ => (next() % 300_000) as usize,
            };
            (off, len)
        })
        .collect()
}

fn expect_slice(data: &[u8], off: u64, len: usize) -> &[u8] {
    let s = (off as usize).min(data.len());
    &data[s..(s + len).min(data.len())]
}

#[test]
fn extract_matches_full_decompression() {
    let (gz, data, bounds) = multi_member();
    let inputs = vec![(gz, data, bounds), {
        let g = golden("multimember-gnu.tar.gz");
        let d = flate2_decompress(&g);
        (g, d, vec![0, 333333])
    }];
    for (gz, data, bounds) in &inputs {
        for span in [0u64, 20_000, 65536, 1 << 22] {
            let (z, _) = build(gz, span, 1 << 16).unwrap();
            let mut checks = ranges(data.len() as u64, 60, span + 7);
            // ranges crossing member boundaries, and reaching / passing the end
            for &b in &bounds[1..] {
                checks.push((b - 1, 2));
                checks.push((b - 5000, 100_000));
                checks.push((b, 10));
            }
            checks.push((data.len() as u64 - 10, 10));
            checks.push((data.len() as u64 - 10, 1000)); // past the end: short
            checks.push((0, data.len()));
            checks.push((3, 0));
            for &(off, len) in &checks {
                let got = extract_range(&z, &mut Cursor::new(gz), off, len).unwrap();
                assert!(
                    got == expect_slice(data, off, len),
                    "span {span}: extract_range({off}, {len})"
                );

                // the same through extract_from_checkpoint with the compressed
                // bytes of the spans covering the range
                let zi = Zinfo::Gzip(z.clone());
                let first = zi.span_of(off);
                let end_off = (off + len as u64).min(data.len() as u64);
                let last = zi.span_of(end_off.saturating_sub(1).max(off));
                let start = zi.span_compressed_range(first, gz.len() as u64).start;
                let end = zi.span_compressed_range(last, gz.len() as u64).end;
                let cp = &z.checkpoints[first as usize];
                let mut out = vec![0u8; len];
                let n = extract_from_checkpoint(
                    cp,
                    &gz[start as usize..end as usize],
                    off - cp.uncompressed_offset,
                    &mut out,
                )
                .unwrap_or_else(|e| {
                    panic!("span {span}: extract_from_checkpoint({off}, {len}): {e}")
                });
                assert!(
                    &out[..n] == expect_slice(data, off, len),
                    "span {span}: extract_from_checkpoint({off}, {len})"
                );
            }
        }
    }
}

#[test]
fn extract_errors() {
    let gz = gzip(&sample_data(200_000, 5), 6);
    let data = flate2_decompress(&gz);
    let (z, _) = build(&gz, 30_000, 1 << 16).unwrap();
    let cp = &z.checkpoints[1];
    let start = cp.span_start() as usize;
    // not enough compressed data for the request
    let mut out = vec![0u8; 100_000];
    match extract_from_checkpoint(cp, &gz[start..start + 1000], 0, &mut out) {
        Err(ZinfoError::Truncated { offset }) => assert_eq!(offset, start as u64 + 1000),
        other => panic!("{other:?}"),
    }
    // empty compressed input
    assert!(extract_from_checkpoint(cp, &[], 0, &mut out).is_err());
    // corrupt data
    let mut bad = gz.clone();
    for b in &mut bad[start + 100..start + 200] {
        *b = 0xff;
    }
    let off = cp.uncompressed_offset;
    match extract_range(&z, &mut Cursor::new(&bad), off, 50_000) {
        Ok(v) => assert!(
            v != expect_slice(&data, off, 50_000),
            "corruption went unnoticed"
        ),
        Err(e) => assert!(
            matches!(e, ZinfoError::Corrupt { .. } | ZinfoError::Truncated { .. }),
            "{e}"
        ),
    }
    // an invalid block type (BTYPE 11) right at checkpoint 0
    match extract_from_checkpoint(&z.checkpoints[0], &[0xff; 100], 0, &mut out) {
        Err(ZinfoError::Corrupt { offset, msg }) => {
            assert_eq!(offset, 11);
            assert!(msg.contains("block type"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // garbage after the member: the request past the end hits it
    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"garbage!!");
    assert!(extract_range(&z, &mut Cursor::new(&trailing), data.len() as u64 - 10, 100).is_err());
    // but a request ending inside the data is fine
    assert_eq!(
        extract_range(&z, &mut Cursor::new(&trailing), data.len() as u64 - 10, 10).unwrap(),
        &data[data.len() - 10..]
    );
    // invalid checkpoints are rejected, not panicking
    let mut weird = cp.clone();
    weird.bits = 9;
    assert!(extract_from_checkpoint(&weird, &gz[start..], 0, &mut out).is_err());
    weird.bits = 0;
    weird.window = vec![0u8; 10].into();
    assert!(extract_from_checkpoint(&weird, &gz[start..], 0, &mut out).is_err());
    // a wrong window produces wrong data or an error, never a panic
    let mut zeroed = cp.clone();
    zeroed.window = vec![0u8; WINDOW_SIZE].into();
    let _ = extract_from_checkpoint(&zeroed, &gz[start..], 0, &mut out);
    let empty = GzipZinfo {
        span_size: 1,
        checkpoints: vec![],
        legacy_v1: false,
    };
    assert!(extract_range(&empty, &mut Cursor::new(&gz), 0, 10).is_err());
}

// ---------------------------------------------------------------- tar zinfo and span math

#[test]
fn tar_zinfo_blob_and_spans() {
    for (s, size) in [
        (65536i64, 0i64),
        (65536, 1),
        (65536, 65536),
        (65536, 65537),
        (4194304, 10 << 20),
        (1, 5),
    ] {
        let t = TarZinfo { span_size: s, size };
        let b = t.to_blob();
        assert_eq!(TarZinfo::from_blob(&b).unwrap(), t);
        let z = Zinfo::Tar(t);
        let n = (size + s - 1) / s;
        assert_eq!(z.num_spans(), n as u64);
        assert_eq!(z.max_span_id(), n as i32 - 1);
        let mut next = 0;
        for i in 0..z.num_spans() {
            let r = z.span_uncompressed_range(i, size as u64);
            assert_eq!(r.start, next);
            assert!(r.end - r.start <= s as u64 && r.end > r.start);
            assert_eq!(z.span_compressed_range(i, size as u64), r);
            assert_eq!(z.span_of(r.start), i);
            assert_eq!(z.span_of(r.end - 1), i);
            next = r.end;
        }
        assert_eq!(next, size as u64);
    }
    // Go's builder output for {version 2, span 65536, size 378880} (app.tar)
    // is checked byte for byte in tests/golden.rs; here: size omitted when 0.
    let zero = TarZinfo {
        span_size: 4,
        size: 0,
    }
    .to_blob();
    assert!(
        zero.len()
            < TarZinfo {
                span_size: 4,
                size: 1
            }
            .to_blob()
            .len()
    );
    // invalid blobs: errors, never panics
    let good = TarZinfo {
        span_size: 65536,
        size: 378880,
    }
    .to_blob();
    for len in 0..good.len() {
        let _ = TarZinfo::from_blob(&good[..len]);
    }
    for i in 0..good.len() {
        for v in [0u8, 0x7f, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] = v;
            let _ = TarZinfo::from_blob(&b);
        }
    }
    assert!(TarZinfo::from_blob(&[]).is_err());
    assert!(TarZinfo::from_blob(&[0xff; 16]).is_err());
    assert!(TarZinfo::from_blob(
        &TarZinfo {
            span_size: 0,
            size: 5
        }
        .to_blob()
    )
    .is_err());
    assert!(TarZinfo::from_blob(
        &TarZinfo {
            span_size: 5,
            size: -1
        }
        .to_blob()
    )
    .is_err());
}

#[test]
fn gzip_span_math() {
    let cps = vec![
        Checkpoint {
            compressed_offset: 10,
            uncompressed_offset: 0,
            bits: 0,
            window: vec![0; WINDOW_SIZE].into(),
        },
        Checkpoint {
            compressed_offset: 500,
            uncompressed_offset: 7000,
            bits: 3,
            window: vec![0; WINDOW_SIZE].into(),
        },
        Checkpoint {
            compressed_offset: 900,
            uncompressed_offset: 14000,
            bits: 0,
            window: vec![0; WINDOW_SIZE].into(),
        },
    ];
    let z = Zinfo::Gzip(GzipZinfo {
        span_size: 6000,
        checkpoints: cps,
        legacy_v1: false,
    });
    assert_eq!(z.num_spans(), 3);
    assert_eq!(z.max_span_id(), 2);
    assert_eq!(z.span_compressed_range(0, 1200), 10..500);
    assert_eq!(z.span_compressed_range(1, 1200), 499..900); // bits: one byte earlier
    assert_eq!(z.span_compressed_range(2, 1200), 900..1200);
    assert_eq!(z.span_uncompressed_range(0, 20000), 0..7000);
    assert_eq!(z.span_uncompressed_range(2, 20000), 14000..20000);
    assert_eq!(z.span_of(0), 0);
    assert_eq!(z.span_of(6999), 0);
    assert_eq!(z.span_of(7000), 1);
    assert_eq!(z.span_of(13999), 1);
    assert_eq!(z.span_of(14000), 2);
    assert_eq!(z.span_of(u64::MAX), 2);
}

#[test]
fn checkpointer_can_move_across_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<GzipCheckpointer>();
    let gz = gzip(&sample_data(100_000, 8), 6);
    let mut cp = GzipCheckpointer::new(32768).unwrap();
    cp.feed(&gz[..5000], &mut |_| {}).unwrap();
    let z = std::thread::spawn(move || {
        cp.feed(&gz[5000..], &mut |_| {}).unwrap();
        cp.finish().unwrap()
    })
    .join()
    .unwrap();
    assert!(z.checkpoints.len() > 1);
}

/// Between checkpoints the engine inflates without stopping at block
/// boundaries, up to exactly `span` bytes past the previous checkpoint. A
/// boundary just one byte further must still become the next checkpoint, and a
/// boundary exactly `span` bytes further must not (the gap must be strictly
/// larger). Span 0 lists every boundary, so it gives the expected answers.
#[test]
fn free_run_stops_exactly_at_the_span_edge() {
    let (blob, data, _) = multi_member();
    let (every, out) = build(&blob, 0, 1 << 16).unwrap();
    assert_eq!(out, data);
    let first = every.checkpoints[0].uncompressed_offset;
    let later: Vec<&Checkpoint> = every.checkpoints[1..]
        .iter()
        .filter(|c| c.uncompressed_offset > first + 1)
        .collect();
    assert!(later.len() >= 8, "sample data yields many blocks");
    for target in later.iter().step_by(later.len() / 8) {
        let gap = target.uncompressed_offset - first;
        // span = gap - 1: `target` is the first boundary past the span.
        let (z, _) = build(&blob, gap - 1, 4096).unwrap();
        assert_eq!(
            z.checkpoints[1].compressed_offset,
            target.compressed_offset,
            "span {}",
            gap - 1
        );
        assert_eq!(
            z.checkpoints[1].uncompressed_offset,
            target.uncompressed_offset
        );
        assert_eq!(z.checkpoints[1].bits, target.bits);
        check_windows(&z, &data);
        // span = gap: `target` is not far enough; the next checkpoint is later.
        let (z, _) = build(&blob, gap, 4096).unwrap();
        let next = z.checkpoints.get(1).map(|c| c.uncompressed_offset);
        assert!(
            next.is_none_or(|o| o > target.uncompressed_offset),
            "span {gap}: {next:?}"
        );
    }
}
