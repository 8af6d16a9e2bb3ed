//! Property tests on random data, compression levels, member splits, spans
//! and feed chunkings.

mod common;

use std::io::Cursor;

use common::{build, gzip};
use proptest::prelude::*;
use soci_zinfo::{extract_from_checkpoint, extract_range, GzipZinfo, Zinfo, WINDOW_SIZE};

/// Data with some redundancy so that deflate emits back-references and
/// several blocks: random runs of random bytes and repeats of earlier text.
fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<u8>(), 1usize..400, any::<bool>()), 0..600).prop_map(|parts| {
        let mut v: Vec<u8> = Vec::new();
        for (b, n, copy) in parts {
            if copy && v.len() > n {
                let start = (b as usize * 997) % (v.len() - n);
                let piece = v[start..start + n].to_vec();
                v.extend(piece);
            } else {
                v.extend((0..n).map(|i| b.wrapping_add((i % 7) as u8)));
            }
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn checkpoints_and_extraction_agree(
        data in data_strategy(),
        level in 0u32..=9,
        split in any::<prop::sample::Index>(),
        members in 1usize..=3,
        span in prop::sample::select(vec![0u64, 1, 1000, 16384, 65536, 1 << 22]),
        chunk in 1usize..5000,
        probe in any::<(prop::sample::Index, prop::sample::Index)>(),
    ) {
        // cut the data into `members` gzip members
        let mut gz = Vec::new();
        let cut = if data.is_empty() { 0 } else { split.index(data.len()) };
        let pieces: Vec<&[u8]> = match members {
            1 => vec![&data[..]],
            2 => vec![&data[..cut], &data[cut..]],
            _ => vec![&data[..cut], &[][..], &data[cut..]],
        };
        for p in &pieces {
            gz.extend(gzip(p, level));
        }

        let (whole, out) = build(&gz, span, gz.len()).unwrap();
        prop_assert_eq!(&out, &data);
        let (chunked, out2) = build(&gz, span, chunk).unwrap();
        prop_assert_eq!(&out2, &data);
        prop_assert_eq!(&chunked, &whole);

        // checkpoint invariants
        prop_assert_eq!(whole.checkpoints[0].compressed_offset, 10);
        prop_assert_eq!(whole.checkpoints[0].uncompressed_offset, 0);
        for w in whole.checkpoints.windows(2) {
            let gap = w[1].uncompressed_offset - w[0].uncompressed_offset;
            prop_assert!(gap > span || w[1].uncompressed_offset == 0);
        }
        // Span 0 stops at every block boundary; the checkpoints of any other
        // span must be exactly the greedy pick from those (first boundary with
        // more than `span` bytes since the previous pick), whatever shortcuts
        // the engine takes between candidates.
        let (every, _) = build(&gz, 0, chunk).unwrap();
        let mut expected: Vec<(u64, u64, u8)> = Vec::new();
        for cp in &every.checkpoints {
            let take = match expected.last() {
                None => true,
                Some(&(_, last, _)) => cp.uncompressed_offset == 0 || cp.uncompressed_offset - last > span,
            };
            if take {
                expected.push((cp.compressed_offset, cp.uncompressed_offset, cp.bits));
            }
        }
        let got: Vec<(u64, u64, u8)> = whole.checkpoints.iter().map(|c| (c.compressed_offset, c.uncompressed_offset, c.bits)).collect();
        prop_assert_eq!(got, expected);
        for cp in &whole.checkpoints {
            prop_assert!(cp.bits <= 7);
            let o = cp.uncompressed_offset as usize;
            let n = o.min(WINDOW_SIZE);
            prop_assert!(cp.window[..WINDOW_SIZE - n].iter().all(|&b| b == 0));
            prop_assert!(cp.window[WINDOW_SIZE - n..] == data[o - n..o]);
        }

        // blob round trip
        let back = GzipZinfo::from_blob(&whole.to_blob()).unwrap();
        prop_assert_eq!(&back, &whole);

        // random range through both extraction entry points
        if !data.is_empty() {
            let off = probe.0.index(data.len()) as u64;
            let len = probe.1.index(data.len() - off as usize + 1);
            let got = extract_range(&whole, &mut Cursor::new(&gz), off, len).unwrap();
            prop_assert!(got == data[off as usize..off as usize + len]);

            let z = Zinfo::Gzip(whole.clone());
            let i = z.span_of(off);
            let r = z.span_compressed_range(i, gz.len() as u64);
            let cp = &whole.checkpoints[i as usize];
            let mut buf = vec![0u8; len];
            let n = extract_from_checkpoint(cp, &gz[r.start as usize..], off - cp.uncompressed_offset, &mut buf).unwrap();
            prop_assert_eq!(n, len);
            prop_assert!(buf == data[off as usize..off as usize + len]);
        }
    }
}
