//! Cross-check with an independent zran implementation: gztool
//! (github.com/circulosmeos/gztool), if installed.
//!
//! `gztool -i -s N -I idx file.gz` builds an index with a span of N MiB and
//! `gztool -ll -I idx file.gz` lists its access points as
//! `#k: @ <compressed> / <uncompressed> ...`. What the listed compressed offset
//! means is established (and asserted) below by comparing with our
//! checkpoints: see `GZTOOL_OFFSET_MEANING`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{build, gzip, sample_data};

/// gztool lists zran's `in` (our `compressed_offset`, the first *full* byte
/// after the block boundary) unchanged, even when `bits != 0`; it is not the
/// span start `in - 1`.
const GZTOOL_OFFSET_MEANING: &str =
    "gztool's compressed offset == checkpoint.compressed_offset (zran `in`)";

fn gztool_available() -> bool {
    Command::new("gztool").arg("-h").output().is_ok()
}

/// (compressed, uncompressed) pairs listed by `gztool -ll`.
fn gztool_points(dir: &Path, gz: &[u8], span_mib: u32) -> Vec<(u64, u64)> {
    let file = dir.join("layer.gz");
    let idx = dir.join("layer.gzi");
    std::fs::write(&file, gz).unwrap();
    let _ = std::fs::remove_file(&idx);
    let st = Command::new("gztool")
        .args(["-i", "-s", &span_mib.to_string(), "-I"])
        .arg(&idx)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "gztool -i failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let ll = Command::new("gztool")
        .args(["-ll", "-I"])
        .arg(&idx)
        .arg(&file)
        .output()
        .unwrap();
    assert!(ll.status.success(), "gztool -ll failed");
    // The listing goes to stderr or stdout depending on the version.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&ll.stdout),
        String::from_utf8_lossy(&ll.stderr)
    );
    let mut points = Vec::new();
    for part in text.split('#').skip(1) {
        // "<k>: @ <in> / <out> L..."
        let Some(rest) = part.split_once(": @ ").map(|(_, r)| r) else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let cin = it.next().and_then(|s| s.parse::<u64>().ok());
        let slash = it.next();
        let cout = it.next().and_then(|s| s.parse::<u64>().ok());
        if let (Some(cin), Some("/"), Some(cout)) = (cin, slash, cout) {
            points.push((cin, cout));
        }
    }
    assert!(
        !points.is_empty(),
        "could not parse gztool -ll output:\n{text}"
    );
    points
}

#[test]
fn access_points_match_gztool() {
    if !gztool_available() {
        println!("SKIPPED: gztool is not installed");
        return;
    }
    println!("{GZTOOL_OFFSET_MEANING}");
    let dir = tempfile::tempdir().unwrap();
    let single = gzip(&sample_data(9 << 20, 11), 6);
    let mut multi = gzip(&sample_data(3 << 20, 12), 9);
    multi.extend(gzip(&sample_data((5 << 20) + 12345, 13), 1));
    let mut saw_bits = false;
    for (name, gz) in [("single member", &single), ("two members", &multi)] {
        for span_mib in [1u32, 2] {
            let span = u64::from(span_mib) << 20;
            let (ours, _) = build(gz, span, 1 << 16).unwrap();
            let theirs = gztool_points(dir.path(), gz, span_mib);
            let ours_pairs: Vec<(u64, u64)> = ours
                .checkpoints
                .iter()
                .map(|c| (c.compressed_offset, c.uncompressed_offset))
                .collect();
            println!("{name}, span {span_mib} MiB: ours {ours_pairs:?}\n  gztool {theirs:?}");
            assert_eq!(ours_pairs, theirs, "{name}, span {span_mib} MiB");
            saw_bits |= ours.checkpoints.iter().any(|c| c.bits != 0);
        }
    }
    assert!(
        saw_bits,
        "no checkpoint with bits != 0: the offset meaning was not exercised"
    );
}
