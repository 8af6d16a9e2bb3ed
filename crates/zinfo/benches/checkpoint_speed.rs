//! Speed of checkpoint building against plain inflate with the same backend
//! (zlib-rs), measured in the same run.
//!
//! `cargo bench -p soci-zinfo --bench checkpoint_speed` generates ~300 MB of
//! tar-like data and gzips it (level 6), or uses the gzip file named by
//! `$ZINFO_BENCH_GZ`. Reports MB/s of uncompressed output, best of 3.

use std::io::{Read, Write};
use std::time::Instant;

use soci_zinfo::GzipCheckpointer;

fn generate() -> Vec<u8> {
    let words: [&[u8]; 12] = [
        b"usr/lib/x86_64-linux-gnu/",
        b"libc.so.6 ",
        b"\0\0\0\0\0\0\0\0",
        b"0000644\0",
        b"ustar  \0",
        b"root\0",
        b"#include <stdio.h>\n",
        b"int main(void) {\n",
        b"    return 0;\n}\n",
        b"\x7fELF\x02\x01\x01",
        b"the quick brown fox ",
        b"jumps over the lazy dog\n",
    ];
    let mut s: u64 = 0x9e3779b97f4a7c15;
    let mut v = Vec::with_capacity(300 << 20);
    while v.len() < 300 << 20 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        if matches!(s % 5, 0) {
            v.extend_from_slice(&s.to_le_bytes()); // some incompressible bytes
        } else {
            v.extend_from_slice(words[(s >> 40) as usize % words.len()]);
        }
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&v).unwrap();
    e.finish().unwrap()
}

fn best_of<F: FnMut() -> u64>(mut f: F) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut bytes = 0;
    for _ in 0..3 {
        let t = Instant::now();
        bytes = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, bytes)
}

fn main() {
    let gz = match std::env::var_os("ZINFO_BENCH_GZ") {
        Some(p) => std::fs::read(p).unwrap(),
        None => generate(),
    };
    println!("input: {:.1} MB gzip", gz.len() as f64 / 1e6);

    let (t_plain, n_plain) = best_of(|| {
        let mut d = flate2::read::MultiGzDecoder::new(&gz[..]);
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            let k = d.read(&mut buf).unwrap();
            if k == 0 {
                break n;
            }
            n += k as u64;
        }
    });
    println!(
        "plain inflate (flate2, zlib-rs):  {:7.1} MB/s",
        n_plain as f64 / t_plain / 1e6
    );

    for span in [1u64 << 22, 1 << 16] {
        let mut ncp = 0;
        let (t_cp, n_cp) = best_of(|| {
            let mut cp = GzipCheckpointer::new(span).unwrap();
            let mut n = 0u64;
            for chunk in gz.chunks(64 * 1024) {
                cp.feed(chunk, &mut |b| n += b.len() as u64).unwrap();
            }
            ncp = cp.finish().unwrap().checkpoints.len();
            n
        });
        assert_eq!(n_cp, n_plain);
        println!(
            "GzipCheckpointer span {:>7}:     {:7.1} MB/s ({:.2}x plain, {} checkpoints)",
            span,
            n_cp as f64 / t_cp / 1e6,
            t_plain / t_cp,
            ncp
        );
    }
}
