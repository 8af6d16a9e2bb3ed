//! The codec against zTOCs made by the reference Go implementation: decode them, check
//! what they say, and re-encode them to the very same bytes.
//!
//! The goldens live in `/work/shared/golden` (see its README.md); set `SOCI_GOLDEN_DIR`
//! to use another copy. A missing directory fails the tests rather than skipping them.

use std::path::PathBuf;

use soci_ztoc::codec::{decode, encode, sha256_digest};
use soci_ztoc::{CompressionAlgorithm, Ztoc};

fn golden_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOCI_GOLDEN_DIR") {
        return dir.into();
    }
    let in_repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden");
    if in_repo.join("README.md").exists() {
        return in_repo;
    }
    PathBuf::from("/work/shared/golden")
}

fn read_golden(name: &str) -> Vec<u8> {
    let path = golden_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read golden {}: {e}", path.display()))
}

/// One row of the golden README table, plus what we know of the input layer.
struct Golden {
    file: &'static str,
    sha256: &'static str,
    size: usize,
    files: usize,
    spans: usize,
    algorithm: CompressionAlgorithm,
    /// Size of the layer blob (compressed_archive_size).
    layer_size: i64,
    /// Size of the uncompressed tar including record padding (an upper bound on
    /// uncompressed_archive_size), and the exact value when the README gives it.
    tar_size: i64,
    uncompressed_archive_size: Option<i64>,
}

const GZIP: CompressionAlgorithm = CompressionAlgorithm::Gzip;
const NONE: CompressionAlgorithm = CompressionAlgorithm::Uncompressed;

const GOLDENS: &[Golden] = &[
    Golden {
        file: "app.tar.gz.span-4194304.ztoc",
        sha256: "cb2a3a1891ce2033d4effd693c0743a95a6673cf82e732483876ee8898358f44",
        size: 34600,
        files: 10,
        spans: 1,
        algorithm: GZIP,
        layer_size: 256546,
        tar_size: 378880,
        uncompressed_archive_size: Some(376832),
    },
    Golden {
        file: "app.tar.gz.span-65536.ztoc",
        sha256: "6888acf26858007b6a950c04e60868495d0a7fb39e30d7540ab68e6ff5c171ac",
        size: 166064,
        files: 10,
        spans: 5,
        algorithm: GZIP,
        layer_size: 256546,
        tar_size: 378880,
        uncompressed_archive_size: Some(376832),
    },
    Golden {
        file: "app.tar.span-65536.ztoc",
        sha256: "822db61c7d0144f6b36a72158fead5986f87c450d27d4402295b816a0eb8850b",
        size: 2264,
        files: 10,
        spans: 6,
        algorithm: NONE,
        layer_size: 378880,
        tar_size: 378880,
        uncompressed_archive_size: Some(376832),
    },
    Golden {
        file: "edge-pax.tar.gz.span-4194304.ztoc",
        sha256: "e057c694206fabe3f1ace11de608c17e7df2c67baf552a64119c9b8316f54a40",
        size: 43200,
        files: 25,
        spans: 1,
        algorithm: GZIP,
        layer_size: 191430,
        tar_size: 542720,
        uncompressed_archive_size: None,
    },
    Golden {
        file: "edge-pax.tar.gz.span-65536.ztoc",
        sha256: "ef0e7e6832c65482403c251498e451bb22056a2825e2ea57e08615ed1bd7347c",
        size: 108936,
        files: 25,
        spans: 3,
        algorithm: GZIP,
        layer_size: 191430,
        tar_size: 542720,
        uncompressed_archive_size: None,
    },
    Golden {
        file: "edge-pax.tar.span-65536.ztoc",
        sha256: "a3be5c83f4c8794dc62a66bfa55f11b1810736fc26a0bb70142532021d739bb4",
        size: 11096,
        files: 25,
        spans: 9,
        algorithm: NONE,
        layer_size: 542720,
        tar_size: 542720,
        uncompressed_archive_size: None,
    },
    Golden {
        file: "multimember-gnu.tar.gz.span-65536.ztoc",
        sha256: "6acf231efc2a06500f9dcfd08f39343196ff12ef4a924c4d49fd604fdaa1842c",
        size: 134544,
        files: 14,
        spans: 4,
        algorithm: GZIP,
        layer_size: 203596,
        tar_size: 737280,
        uncompressed_archive_size: None,
    },
    Golden {
        file: "fname-ustar.tar.gz.span-65536.ztoc",
        sha256: "30dd93c51fdba03ad832514c73399939b808ffc7dc2f5ed4078450a8895c97b4",
        size: 67928,
        files: 11,
        spans: 2,
        algorithm: GZIP,
        layer_size: 69306,
        tar_size: 337920,
        uncompressed_archive_size: None,
    },
];

fn check_summary(g: &Golden, z: &Ztoc) {
    let f = g.file;
    assert_eq!(z.version, "0.9", "{f}");
    assert_eq!(z.build_tool_identifier, "AWS SOCI CLI v0.2", "{f}");
    assert_eq!(z.toc.entries.len(), g.files, "{f}: files");
    assert_eq!(z.compression_info.span_digests.len(), g.spans, "{f}: spans");
    assert_eq!(
        z.compression_info.max_span_id as usize,
        g.spans - 1,
        "{f}: max_span_id"
    );
    assert_eq!(
        z.compression_info.compression_algorithm, g.algorithm,
        "{f}: algorithm"
    );
    assert_eq!(
        z.compressed_archive_size, g.layer_size,
        "{f}: compressed size"
    );
    let u = z.uncompressed_archive_size;
    assert!(
        u > 0 && u <= g.tar_size && u % 512 == 0,
        "{f}: uncompressed size {u}"
    );
    if let Some(want) = g.uncompressed_archive_size {
        assert_eq!(u, want, "{f}: uncompressed size");
    }
    assert!(
        !z.compression_info.checkpoints.is_empty(),
        "{f}: checkpoints"
    );
    for d in &z.compression_info.span_digests {
        assert!(
            d.starts_with("sha256:") && d.len() == 71,
            "{f}: span digest {d}"
        );
    }
    // Entries come back in offset order, each after the previous one.
    for w in z.toc.entries.windows(2) {
        assert!(
            w[0].uncompressed_offset < w[1].uncompressed_offset,
            "{f}: order"
        );
    }
    for e in &z.toc.entries {
        assert!(
            ["reg", "dir", "symlink", "hardlink", "char", "block", "fifo"]
                .contains(&e.entry_type.as_str()),
            "{f}: type {}",
            e.entry_type
        );
        assert!(e.mod_time.ends_with('Z'), "{f}: mod_time {}", e.mod_time);
    }
}

#[test]
fn goldens_have_the_readme_digests() {
    for g in GOLDENS {
        let bytes = read_golden(g.file);
        assert_eq!(bytes.len(), g.size, "{}", g.file);
        assert_eq!(
            sha256_digest(&bytes),
            format!("sha256:{}", g.sha256),
            "{}",
            g.file
        );
    }
}

#[test]
fn goldens_decode_to_what_the_readme_says() {
    for g in GOLDENS {
        let z = decode(&read_golden(g.file)).unwrap_or_else(|e| panic!("{}: {e}", g.file));
        check_summary(g, &z);
    }
}

#[test]
fn goldens_reencode_byte_identical() {
    for g in GOLDENS {
        let bytes = read_golden(g.file);
        let z = decode(&bytes).unwrap();
        let again = encode(&z);
        if again != bytes {
            let first = again.iter().zip(&bytes).position(|(a, b)| a != b);
            panic!(
                "{}: re-encoded {} bytes differ from Go's {} bytes (first difference at {:?})",
                g.file,
                again.len(),
                bytes.len(),
                first
            );
        }
        assert_eq!(sha256_digest(&again), format!("sha256:{}", g.sha256));
    }
}

#[test]
fn same_layer_same_toc_whatever_the_span() {
    // The span size changes only the zinfo part.
    for (a, b) in [
        ("app.tar.gz.span-4194304.ztoc", "app.tar.gz.span-65536.ztoc"),
        (
            "edge-pax.tar.gz.span-4194304.ztoc",
            "edge-pax.tar.gz.span-65536.ztoc",
        ),
    ] {
        let za = decode(&read_golden(a)).unwrap();
        let zb = decode(&read_golden(b)).unwrap();
        assert_eq!(za.toc, zb.toc, "{a} vs {b}");
    }
    // The uncompressed and gzip ztocs of one tar agree on the TOC as well.
    let gz = decode(&read_golden("edge-pax.tar.gz.span-65536.ztoc")).unwrap();
    let raw = decode(&read_golden("edge-pax.tar.span-65536.ztoc")).unwrap();
    assert_eq!(gz.toc, raw.toc);
    assert_eq!(gz.uncompressed_archive_size, raw.uncompressed_archive_size);
}

#[test]
fn edge_pax_details_decode_as_go_wrote_them() {
    let z = decode(&read_golden("edge-pax.tar.span-65536.ztoc")).unwrap();
    let entries = &z.toc.entries;

    // PAX records of every entry: all of them, sorted by key.
    for e in entries {
        assert!(
            e.pax_records.windows(2).all(|w| w[0].0 < w[1].0),
            "{}",
            e.name_lossy()
        );
        // GNU tar writes atime/ctime for every entry; mtime only when it has a fraction
        // (usr/share/doc/pkg/README.txt has a whole-second mtime and no record).
        assert!(
            e.pax_records.iter().any(|(k, _)| k == b"atime"),
            "{}",
            e.name_lossy()
        );
    }

    let readme = entries
        .iter()
        .find(|e| e.name == b"./usr/share/doc/pkg/README.txt")
        .unwrap();
    assert_eq!(readme.mod_time, "2023-01-01T00:00:00Z");
    assert_eq!(readme.uncompressed_size, 300_000);

    let big = entries.last().unwrap();
    assert_eq!((big.uid, big.gid), (3_000_000, 3_000_001));
    assert_eq!(
        (big.uname.as_slice(), big.gname.as_slice()),
        (&b"bigowner"[..], &b"biggroup"[..])
    );

    let chr = entries
        .iter()
        .find(|e| e.entry_type == "char")
        .expect("char device");
    assert_eq!((chr.devmajor, chr.devminor), (1, 3));
    assert!(entries.iter().any(|e| e.entry_type == "fifo"));
    assert!(entries.iter().any(|e| e.entry_type == "hardlink"));

    let with_xattrs: Vec<_> = entries
        .iter()
        .filter(|e| e.xattrs().next().is_some())
        .collect();
    assert!(!with_xattrs.is_empty());
    assert!(with_xattrs
        .iter()
        .any(|e| e.xattrs().any(|(k, _)| k == b"user.test")
            && e.xattrs().any(|(k, _)| k == b"user.other")));

    assert!(entries.iter().any(|e| e.name.len() > 100), "long PAX path");
    assert!(
        entries.iter().any(|e| e.linkname.len() > 100),
        "long PAX linkpath"
    );
    assert!(entries.iter().any(|e| e.name.ends_with(b".wh..wh..opq")));
}
