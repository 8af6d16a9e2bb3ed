//! Round trips on generated layers: every regular file read back through the zTOC
//! equals the original, for many compressors and stream shapes.
mod common;
use common::*;
use flate2::{Compression, GzBuilder};
use proptest::prelude::*;
use soci_ztoc::build::LayerCompression::{Gzip, Uncompressed};
use std::io::Write;

fn layer(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut t = TarMaker::new();
    for (name, data) in files {
        t.file(name, data);
    }
    t.finish()
}

fn files_strategy() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec(
        (
            "[a-z]{1,12}(/[a-z0-9][a-z0-9._-]{0,19}){0,3}",
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..5000),
                (1usize..200_000, any::<u8>())
                    .prop_map(|(n, b)| (0..n).map(|i| b.wrapping_add((i / 97) as u8)).collect()),
            ],
        ),
        1..25,
    )
    .prop_map(|v| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter(|(n, _)| seen.insert(n.clone()))
            .collect()
    })
}

fn with_header(tar: &[u8]) -> Vec<u8> {
    let mut e = GzBuilder::new()
        .filename("layer.tar")
        .extra(vec![1, 2, 3, 4])
        .comment("a comment")
        .mtime(12345)
        .write(Vec::new(), Compression::new(6));
    e.write_all(tar).unwrap();
    e.finish().unwrap()
}

fn multi_member(tar: &[u8]) -> Vec<u8> {
    let cut = tar.len() / 3;
    let mut out = gzip(&tar[..cut], 6);
    out.extend(gzip(b"", 6)); // an empty member in the middle
    out.extend(gzip(&tar[cut..], 1));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn every_file_reads_back(files in files_strategy(), span in prop_oneof![Just(16u64 * 1024), Just(64 * 1024), Just(4 << 20)]) {
        let tar = layer(&files);
        let n_regular = files.len();
        for level in [1, 6, 9] {
            let blob = gzip(&tar, level);
            let z = build(&blob, Gzip, span);
            prop_assert_eq!(check_all_files(&z, &blob, &tar), n_regular);
        }
        for blob in [with_header(&tar), multi_member(&tar)] {
            let z = build(&blob, Gzip, span);
            prop_assert_eq!(check_all_files(&z, &blob, &tar), n_regular);
        }
        let z = build(&tar, Uncompressed, span);
        prop_assert_eq!(check_all_files(&z, &tar, &tar), n_regular);
    }
}

fn pigz(args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let mut child = std::process::Command::new("pigz")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    assert!(out.status.success());
    Some(out.stdout)
}

#[test]
fn pigz_output_including_independent_blocks() {
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                format!("f{i}"),
                (0..60_000u32)
                    .map(|j| ((j * (i + 3)) % 251) as u8)
                    .collect(),
            )
        })
        .collect();
    let tar = layer(&files);
    let Some(plain) = pigz(&["-c", "-b", "128"], &tar) else {
        panic!("pigz is not installed: run scripts/install-test-deps.sh");
    };
    for blob in [
        plain,
        pigz(&["-c", "--independent", "-b", "128"], &tar).unwrap(),
    ] {
        let z = build(&blob, Gzip, 64 * 1024);
        assert_eq!(check_all_files(&z, &blob, &tar), files.len());
    }
    // pigz on an empty tar still writes one member.
    let empty = TarMaker::new().finish();
    let blob = pigz(&["-c", "--independent"], &empty).unwrap();
    let z = build(&blob, Gzip, 64 * 1024);
    assert!(z.toc.entries.is_empty());
}
