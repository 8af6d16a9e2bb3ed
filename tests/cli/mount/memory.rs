//! The mount's memory stays bounded by its cache, whatever the image size:
//! reading a file many times the `--cache-size` through the mount must not
//! grow the process by more than the cache plus a fixed overhead (spans in
//! flight, FUSE buffers). Slow-ish (~10 s in a debug build: a 96 MiB layer is
//! gzipped, indexed and read once).
use super::harness::*;
use crate::support::*;
use std::io::Read;

/// `VmRSS` or `VmHWM` of `pid`, in bytes.
fn status_bytes(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn reading_24_times_the_cache_keeps_the_mount_within_cache_plus_overhead() {
    const MIB: usize = 1 << 20;
    if !fuse_available("reading_24_times_the_cache_keeps_the_mount_within_cache_plus_overhead") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 96 MiB that gzip shrinks only ~2x (bytes from a 16-letter alphabet), so
    // the layer has ~96 spans of 1 MiB and each span is real work to inflate.
    let mut data = vec![0u8; 96 * MIB];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for chunk in data.chunks_mut(16) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = b'a' + ((x >> (i * 4)) & 0xf) as u8;
        }
    }
    let mut layer = crate::run::Layer::new();
    layer.dir("data", 0o755, 0, 0);
    layer.file("data/big.bin", &data, 0o644, 0, 0);
    let layout = dir.path().join("img");
    std::fs::create_dir_all(&layout).unwrap();
    let src = crate::run::write_image_gzip(
        &layout,
        "1",
        vec![layer.finish()],
        serde_json::json!({}),
        flate2::Compression::default(),
    );
    let store = dir.path().join("store");
    soci_ok(&[
        "create",
        &src,
        "--store",
        p(&store),
        "-q",
        "--span-size",
        "1MiB",
        "--min-layer-size",
        "0",
    ]);
    let mp = dir.path().join("mnt");
    let cache = dir.path().join("cache");
    let cache_size = 4 * MIB as u64;
    let mut m = mount(
        &[
            &src,
            "--store",
            p(&store),
            "--cache-dir",
            p(&cache),
            "--cache-size",
            "4MiB",
            "--json",
        ],
        &mp,
        &[],
    );
    let before = status_bytes(m.pid(), "VmRSS:");
    // Read it all, in 1 MiB reads, and check the bytes as they come.
    let mut f = std::fs::File::open(mp.join("data/big.bin")).unwrap();
    let mut buf = vec![0u8; MIB];
    let mut off = 0usize;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n] == data[off..off + n], "bytes differ at {off}");
        off += n;
    }
    assert_eq!(off, data.len());
    let peak = status_bytes(m.pid(), "VmHWM:");
    let (code, lines) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["read_errors"], 0, "{v}");
    // Spans of about the size asked, each fetched when first read.
    assert!(v["spans_fetched"].as_u64().unwrap() >= 24, "{v}");
    assert!(v["peak_rss_bytes"].as_u64().unwrap() >= peak, "{v}");
    // The bound: the memory cache (min(256 MiB, --cache-size)) + a fixed
    // overhead for 4 FUSE threads each holding a span being read and one
    // being fetched and inflated (1 MiB each) + allocator slack. Without the
    // bound the 96 MiB read would all stay in memory.
    let overhead = 28 * MIB as u64;
    let grew = peak.saturating_sub(before);
    // The figure docs/benchmarks.md quotes (`--nocapture` shows it).
    eprintln!(
        "soci mount: RSS {} KiB after mounting, peak {} KiB after reading 96 MiB with --cache-size 4MiB",
        before >> 10,
        peak >> 10
    );
    assert!(
        grew <= cache_size + overhead,
        "the mount grew by {} MiB reading 96 MiB with a 4 MiB cache (RSS {} MiB before, peak {} MiB): {v}",
        grew >> 20,
        before >> 20,
        peak >> 20
    );
}
