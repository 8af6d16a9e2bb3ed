//! Reads through the mount: many threads at random offsets of big files (a
//! tiny cache, so spans are evicted and fetched again), and `--record`.
use super::harness::*;
use crate::support::*;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Slow-ish (a few seconds): 8 threads x 200 random reads.
#[test]
fn eight_threads_reading_random_ranges_get_the_right_bytes() {
    if !fuse_available("eight_threads_reading_random_ranges_get_the_right_bytes") {
        return;
    }
    let fx = fixture();
    let src = converted(&fx, &[]);
    let mp = fx.dir.path().join("mnt");
    let cache = fx.dir.path().join("cache");
    let empty = fx.dir.path().join("empty");
    // 256 KiB: four 64 KiB spans in memory and on disk, so most reads evict.
    let mut m = mount(
        &[
            &src,
            "--store",
            p(&empty),
            "--cache-dir",
            p(&cache),
            "--cache-size",
            "256KiB",
            "--json",
        ],
        &mp,
        &[],
    );
    let files = [
        "usr/lib/big.bin",
        "usr/lib/text.txt",
        "usr/lib/big2.bin",
        "usr/lib/shared.so",
        "new-in-3.txt",
    ];
    let expected: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(fx.unpacked.join(f)).unwrap())
        .collect();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (mp, expected) = (&mp, &expected);
            s.spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                let mut next = || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                for _ in 0..200 {
                    let i = (next() % files.len() as u64) as usize;
                    let want = &expected[i];
                    let off = next() % want.len() as u64;
                    let len = (1 + next() % 300_000).min(want.len() as u64 - off) as usize;
                    // O_DIRECT is not needed: each file is opened anew, and the
                    // kernel cache only helps when its pages are right.
                    let f = std::fs::File::open(Path::new(mp).join(files[i])).unwrap();
                    let mut buf = vec![0u8; len];
                    f.read_exact_at(&mut buf, off).unwrap();
                    assert!(
                        buf == want[off as usize..off as usize + len],
                        "thread {t}: {}[{off}..+{len}] differs",
                        files[i]
                    );
                }
            });
        }
    });
    let (code, lines) = m.stop_with("INT");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["read_errors"], 0, "{v}");
    // The disk cache stayed within its bound.
    let on_disk: u64 = std::fs::read_dir(cache.join("spans"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 256 << 10, "{on_disk} bytes in the span cache");
}

#[test]
fn record_lists_the_files_read_in_order_with_their_ranges() {
    if !fuse_available("record_lists_the_files_read_in_order_with_their_ranges") {
        return;
    }
    let fx = fixture();
    let src = converted(&fx, &[]);
    let mp = fx.dir.path().join("mnt");
    let empty = fx.dir.path().join("empty");
    let record = fx.dir.path().join("reads.json");
    let mut m = mount(
        &[&src, "--store", p(&empty), "--record", p(&record)],
        &mp,
        &[],
    );
    assert_eq!(
        std::fs::read(mp.join("etc/hostname")).unwrap(),
        b"upper wins\n"
    );
    let f = std::fs::File::open(mp.join("usr/lib/big.bin")).unwrap();
    let mut buf = vec![0u8; 10_000];
    f.read_exact_at(&mut buf, 1_000_000).unwrap();
    assert_eq!(
        std::fs::read(mp.join("top.txt")).unwrap(),
        b"top layer, no zTOC\n"
    );
    // Through the hardlink: recorded under the first name of the inode.
    std::fs::read(mp.join("usr/lib/shared-link.so")).unwrap();
    // Listing and stat are not reads.
    std::fs::read_dir(mp.join("usr/lib")).unwrap().count();
    std::fs::metadata(mp.join("x.txt")).unwrap();
    let (code, _) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(v["image"], src.as_str());
    assert_eq!(v["command"], serde_json::json!([]));
    let files = v["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "etc/hostname",
            "usr/lib/big.bin",
            "top.txt",
            "usr/lib/shared.so"
        ],
        "{v}"
    );
    assert_eq!(files[0]["size"], 11);
    assert_eq!(files[0]["ranges"], serde_json::json!([[0, 11]]));
    assert_eq!(files[1]["size"], 3_000_000);
    // The kernel reads pages (and may read ahead): the ranges cover the bytes
    // asked for, sorted and merged, and not the whole file.
    let ranges: Vec<(u64, u64)> = files[1]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap()))
        .collect();
    assert!(
        ranges
            .iter()
            .any(|&(o, l)| o <= 1_000_000 && o + l >= 1_010_000),
        "{ranges:?}"
    );
    assert!(
        ranges.windows(2).all(|w| w[0].0 + w[0].1 < w[1].0),
        "{ranges:?}"
    );
    assert!(
        ranges.iter().map(|r| r.1).sum::<u64>() < 3_000_000,
        "{ranges:?}"
    );
}

/// The zTOCs in `store`: (number of spans, the spans of `path` if a file of it).
fn ztoc_spans(store: &Path, path: &str) -> (u64, Option<(u64, u64)>) {
    let list = soci_json(&["ztoc", "list", "--store", p(store)]);
    let mut total = 0;
    let mut file = None;
    for z in list.as_array().unwrap() {
        let d = z["digest"].as_str().unwrap();
        let info = soci_json(&["ztoc", "info", d, "--store", p(store)]);
        total += info["num_spans"].as_u64().unwrap();
        for f in info["files"].as_array().unwrap() {
            if f["filename"] == path {
                file = Some((
                    f["start_span"].as_u64().unwrap(),
                    f["end_span"].as_u64().unwrap(),
                ));
            }
        }
    }
    (total, file)
}

/// Span files in the disk cache.
fn cached_spans(cache: &Path) -> u64 {
    std::fs::read_dir(cache.join("spans"))
        .map(|d| {
            d.filter(|e| {
                let e = e.as_ref().unwrap();
                e.path().extension().is_none()
            })
            .count() as u64
        })
        .unwrap_or(0)
}

/// Polls until the disk cache holds `want` spans (60 s at most).
fn wait_for_spans(cache: &Path, want: u64) {
    let start = std::time::Instant::now();
    while cached_spans(cache) < want {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{} of {want} spans cached after 60 s",
            cached_spans(cache)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn prefetch_spans_are_fetched_in_the_background_without_a_read() {
    if !fuse_available("prefetch_spans_are_fetched_in_the_background_without_a_read") {
        return;
    }
    let fx = fixture();
    let store = fx.dir.path().join("store");
    let dst = converted(&fx, &["--prefetch-file", "/usr/lib/text.txt"]);
    let (_, Some((first, last))) = ztoc_spans(&store, "usr/lib/text.txt") else {
        panic!("text.txt not in the zTOCs");
    };
    let want = last - first + 1;
    let mp = fx.dir.path().join("mnt");
    let cache = fx.dir.path().join("cache");
    let empty = fx.dir.path().join("empty");
    let mut m = mount(
        &[
            &dst,
            "--store",
            p(&empty),
            "--cache-dir",
            p(&cache),
            "--json",
        ],
        &mp,
        &[],
    );
    wait_for_spans(&cache, want);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, lines) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    // The prefetch spans and nothing else, with no file read.
    assert_eq!(v["spans_fetched"], want, "{v}");
    assert_eq!(v["files_read"], 0, "{v}");
}

/// One 4 KiB read (O_DIRECT: no kernel read-ahead) of the first span of a
/// file of several spans, on a mount with `--read-ahead` 1, 0 and 2.
fn spans_fetched_after_one_read(fx: &Fixture, src: &str, read_ahead: &str) -> serde_json::Value {
    use std::os::unix::fs::OpenOptionsExt;
    let run = fx.dir.path().join(format!("ra{read_ahead}"));
    let (mp, cache) = (run.join("mnt"), run.join("cache"));
    let empty = fx.dir.path().join("empty");
    let mut m = mount(
        &[
            src,
            "--store",
            p(&empty),
            "--cache-dir",
            p(&cache),
            "--json",
            "--read-ahead",
            read_ahead,
        ],
        &mp,
        &[],
    );
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(mp.join("usr/lib/big.bin"))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, 0).unwrap();
    let want = std::fs::read(fx.unpacked.join("usr/lib/big.bin")).unwrap();
    assert!(buf == want[..4096], "bytes of big.bin");
    let expected = 1 + read_ahead.parse::<u64>().unwrap();
    wait_for_spans(&cache, expected);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, lines) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    serde_json::from_str(&lines[0]).unwrap()
}

#[test]
fn read_ahead_fetches_the_next_spans_of_the_layer_after_a_miss() {
    if !fuse_available("read_ahead_fetches_the_next_spans_of_the_layer_after_a_miss") {
        return;
    }
    let fx = fixture();
    let src = converted(&fx, &[]);
    let (_, Some((first, last))) = ztoc_spans(&fx.dir.path().join("store"), "usr/lib/big.bin")
    else {
        panic!("big.bin not in the zTOCs");
    };
    assert!(last >= first + 2, "big.bin spans {first}..={last}");
    for (ra, spans) in [("0", 1), ("1", 2), ("2", 3)] {
        let v = spans_fetched_after_one_read(&fx, &src, ra);
        assert_eq!(v["spans_fetched"], spans, "--read-ahead {ra}: {v}");
        assert_eq!(v["read_errors"], 0, "--read-ahead {ra}: {v}");
    }
}

#[test]
fn background_fetch_fetches_every_span_once() {
    if !fuse_available("background_fetch_fetches_every_span_once") {
        return;
    }
    let fx = fixture();
    let store = fx.dir.path().join("store");
    let src = converted(&fx, &[]);
    let (total, _) = ztoc_spans(&store, "");
    let mp = fx.dir.path().join("mnt");
    let cache = fx.dir.path().join("cache");
    let empty = fx.dir.path().join("empty");
    let mut m = mount(
        &[
            &src,
            "--store",
            p(&empty),
            "--cache-dir",
            p(&cache),
            "--background-fetch",
            "--json",
        ],
        &mp,
        &[],
    );
    wait_for_spans(&cache, total);
    // Every file reads from the cache now: no span is fetched twice.
    check_tree(&mp, &fx.expected);
    let (code, lines) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["spans_fetched"], total, "{v}");
    // The cache directory is kept, and a second mount serves from it.
    let mut m = mount(
        &[
            &src,
            "--store",
            p(&empty),
            "--cache-dir",
            p(&cache),
            "--json",
        ],
        &mp,
        &[],
    );
    check_tree(&mp, &fx.expected);
    let (code, lines) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["spans_fetched"], 0, "{v}");
    assert!(v["disk_hits"].as_u64().unwrap() > 0, "{v}");
}

/// 8 threads read 8 neighbouring 4 KiB blocks of one big file at once, with
/// O_DIRECT (no page cache, no readahead: every read reaches the mount), for
/// 10 places in the file: each place lies in one or two spans, and each span
/// must be fetched once however many readers wait for it. The registry
/// answers range requests after 300 ms (a proxy), so the readers overlap.
#[test]
fn concurrent_readers_fetch_each_span_once() {
    if !fuse_available("concurrent_readers_fetch_each_span_once") {
        return;
    }
    use crate::support::proxy::{Fault, FaultProxy};
    use std::os::unix::fs::OpenOptionsExt;
    let reg = Registry::start().unwrap();
    let fx = fixture();
    let img = format!("{}/app:1", reg.host());
    skopeo_copy(&format!("oci:{}:1", p(&fx.layout)), &docker(&img)).unwrap();
    let soci_img = format!("{}/app:1-soci", reg.host());
    build_index("convert", &[&img, &soci_img], &fx.dir.path().join("store"));
    let proxy = FaultProxy::start(reg.addr());
    let via = soci_img.replace(&reg.host(), &proxy.host());
    let mp = fx.dir.path().join("mnt");
    let empty = fx.dir.path().join("empty");
    // No read-ahead: each place's span is fetched once, nothing else.
    let mut m = mount(
        &[
            &via,
            "--plain-http",
            "--store",
            p(&empty),
            "--json",
            "--read-ahead",
            "0",
        ],
        &mp,
        &[],
    );
    proxy.add(
        "GET",
        "/blobs/",
        usize::MAX,
        Fault::Delay(std::time::Duration::from_millis(300)),
    );
    let want = std::fs::read(fx.unpacked.join("usr/lib/big.bin")).unwrap();
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (mp, want, barrier) = (&mp, &want, &barrier);
            s.spawn(move || {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(mp.join("usr/lib/big.bin"))
                    .unwrap();
                for place in 0..10u64 {
                    let off = place * 290_000 + t * 4096;
                    let mut buf = vec![0u8; 4096];
                    barrier.wait();
                    f.read_exact_at(&mut buf, off).unwrap();
                    assert!(
                        buf == want[off as usize..off as usize + 4096],
                        "bytes at {off}"
                    );
                }
            });
        }
    });
    let (code, lines) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let fetched = v["spans_fetched"].as_u64().unwrap();
    assert!(
        (10..=20).contains(&fetched),
        "{fetched} spans fetched for 10 places: {v}"
    );
}

/// The kernel stops asking for opens (the mount answers ENOSYS) and keeps
/// negative entries: a write open must still fail with EROFS, a missing name
/// must stay missing however often it is asked, and reads after the first
/// open keep returning the right bytes.
#[test]
fn without_open_round_trips_writes_fail_missing_names_stay_missing_and_reads_match() {
    if !fuse_available(
        "without_open_round_trips_writes_fail_missing_names_stay_missing_and_reads_match",
    ) {
        return;
    }
    let fx = fixture();
    let src = converted(&fx, &[]);
    let mp = fx.dir.path().join("mnt");
    let empty = fx.dir.path().join("empty");
    let mut m = mount(&[&src, "--store", p(&empty)], &mp, &[]);
    let want = std::fs::read(fx.unpacked.join("usr/lib/text.txt")).unwrap();
    for _ in 0..3 {
        assert_eq!(std::fs::read(mp.join("usr/lib/text.txt")).unwrap(), want);
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(mp.join("usr/lib/text.txt"));
        assert_eq!(w.unwrap_err().raw_os_error(), Some(30), "EROFS expected");
        for missing in ["usr/lib/no-such-file", "no-such-dir/x"] {
            let e = std::fs::metadata(mp.join(missing)).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{missing}");
        }
        let names: Vec<_> = std::fs::read_dir(mp.join("usr/lib"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.iter().any(|n| n == "text.txt"), "{names:?}");
    }
    let (code, _) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
}
