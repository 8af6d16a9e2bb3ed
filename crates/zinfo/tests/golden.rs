//! Our zinfo against zTOCs made by the reference Go/C implementation
//! (fixtures/golden, see its README).

mod common;

use common::{build, golden, read_ztoc};
use sha2::{Digest, Sha256};
use soci_zinfo::{GzipZinfo, TarZinfo, Zinfo};

const GZIP_GOLDENS: &[(&str, u64)] = &[
    ("app.tar.gz", 4194304),
    ("app.tar.gz", 65536),
    ("edge-pax.tar.gz", 4194304),
    ("edge-pax.tar.gz", 65536),
    ("multimember-gnu.tar.gz", 65536),
    ("fname-ustar.tar.gz", 65536),
];

fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

#[test]
fn gzip_checkpoints_match_reference_bytes() {
    for &(layer, span) in GZIP_GOLDENS {
        let gz = golden(layer);
        let ztoc = read_ztoc(&golden(&format!("{layer}.span-{span}.ztoc")));
        assert_eq!(ztoc.algorithm, 1, "{layer}");
        let (ours, tar) = build(&gz, span, 16 * 1024).unwrap();
        let blob = ours.to_blob();
        assert_eq!(
            blob.len(),
            ztoc.checkpoints.len(),
            "{layer} span {span}: blob length"
        );
        if blob != ztoc.checkpoints {
            let theirs = GzipZinfo::from_blob(&ztoc.checkpoints).unwrap();
            panic!(
                "{layer} span {span}: checkpoints differ\nours:   {:?}\ntheirs: {:?}",
                ours.checkpoints, theirs.checkpoints
            );
        }
        // Parsing the reference blob gives back the same value, v2.
        let parsed = GzipZinfo::from_blob(&ztoc.checkpoints).unwrap();
        assert!(!parsed.legacy_v1);
        assert_eq!(parsed, ours);

        // Span arithmetic: digests over our compressed ranges equal the
        // reference's span digests, and the span count matches max_span_id.
        let z = Zinfo::Gzip(ours);
        assert_eq!(z.max_span_id(), ztoc.max_span_id, "{layer} span {span}");
        assert_eq!(ztoc.compressed_archive_size, gz.len() as i64);
        let digests: Vec<String> = (0..z.num_spans())
            .map(|i| {
                let r = z.span_compressed_range(i, gz.len() as u64);
                sha256_digest(&gz[r.start as usize..r.end as usize])
            })
            .collect();
        assert_eq!(
            digests, ztoc.span_digests,
            "{layer} span {span}: span digests"
        );

        // Uncompressed ranges tile [0, uncompressed size).
        let usize_ = ztoc.uncompressed_archive_size as u64;
        let mut next = 0;
        for i in 0..z.num_spans() {
            let r = z.span_uncompressed_range(i, usize_);
            assert_eq!(r.start, next);
            assert_eq!(
                z.span_of(r.start),
                i,
                "{layer} span {span}: span_of start of span {i}"
            );
            next = r.end;
        }
        assert_eq!(next, usize_);
        assert!(usize_ <= tar.len() as u64);
    }
}

#[test]
fn golden_readme_facts() {
    let (mm, _) = build(&golden("multimember-gnu.tar.gz"), 65536, 1 << 20).unwrap();
    assert!(
        mm.checkpoints.iter().any(|c| c.compressed_offset == 120240
            && c.uncompressed_offset == 333333
            && c.bits == 0),
        "multimember-gnu: checkpoint at the start of member 2 expected: {:?}",
        mm.checkpoints
    );
    let (f, _) = build(&golden("fname-ustar.tar.gz"), 65536, 1 << 20).unwrap();
    assert_eq!(f.checkpoints[0].compressed_offset, 26);
    assert_eq!(f.checkpoints[0].uncompressed_offset, 0);
    assert!(f.checkpoints[0].window.iter().all(|&b| b == 0));
    let (a, _) = build(&golden("app.tar.gz"), 65536, 1 << 20).unwrap();
    assert_eq!(a.checkpoints[0].compressed_offset, 10);
}

#[test]
fn tar_zinfo_matches_reference_bytes() {
    for layer in ["app.tar", "edge-pax.tar"] {
        let tar = golden(layer);
        let ztoc = read_ztoc(&golden(&format!("{layer}.span-65536.ztoc")));
        assert_eq!(ztoc.algorithm, 2, "{layer}");
        let ours = TarZinfo {
            span_size: 65536,
            size: tar.len() as i64,
        };
        assert_eq!(ours.to_blob(), ztoc.checkpoints, "{layer}: tar zinfo bytes");
        assert_eq!(TarZinfo::from_blob(&ztoc.checkpoints).unwrap(), ours);
        let z = Zinfo::Tar(ours);
        assert_eq!(z.max_span_id(), ztoc.max_span_id, "{layer}");
        let digests: Vec<String> = (0..z.num_spans())
            .map(|i| {
                let r = z.span_compressed_range(i, tar.len() as u64);
                sha256_digest(&tar[r.start as usize..r.end as usize])
            })
            .collect();
        assert_eq!(digests, ztoc.span_digests, "{layer}: span digests");
    }
}
