//! A short, stable-Rust run of the fuzz targets (`fuzz/`, run for real with
//! `cargo fuzz`, see docs/reliability.md): each target gets its seed corpus,
//! every saved crash input in `fuzz/regressions/<target>/`, and seeded random
//! mutations of the seeds for a few seconds. Any panic fails the test.
#[path = "../../../fuzz/src/targets.rs"]
#[allow(unreachable_pub)] // its items are the fuzz crate's public API there
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Per-target time budget (the whole file stays well under a minute).
const BUDGET: Duration = Duration::from_secs(6);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
    512,
    32768,
    32785,
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 if !v.is_empty() => {
                let n = rng.below(v.len()) + 1;
                v.truncate(n);
            }
            3 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + rng.below(64)).min(v.len());
                v.drain(a..b);
            }
            4 => {
                let i = rng.below(v.len() + 1);
                let n = rng.below(32);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i..i, bytes);
            }
            5 if v.len() >= 8 => {
                let i = rng.below(v.len() - 7);
                let w = INTERESTING[rng.below(INTERESTING.len())];
                let k = [1usize, 2, 4, 8][rng.below(4)];
                v[i..i + k].copy_from_slice(&w.to_le_bytes()[..k]);
            }
            6 if !other.is_empty() => {
                let a = rng.below(other.len());
                let b = (a + rng.below(256)).min(other.len());
                let i = rng.below(v.len() + 1);
                v.splice(i..i, other[a..b].iter().copied());
            }
            _ => {
                if !v.is_empty() {
                    let a = rng.below(v.len());
                    let b = (a + 1 + rng.below(16)).min(v.len());
                    let chunk = v[a..b].to_vec();
                    let i = rng.below(v.len() + 1);
                    v.splice(i..i, chunk);
                }
            }
        }
    }
    v
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Saved crash inputs of a target (committed after a fix), and a small
/// sample of the corpus the real fuzzing runs grew (`fuzz/seeds/<target>`).
fn regressions(target: &str) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for kind in ["regressions", "seeds"] {
        let dir = root().join("fuzz").join(kind).join(target);
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                v.push(read(&e.path()));
            }
        }
    }
    v
}

fn with_split(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = (a.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

fn run(name: &str, seeds: Vec<Vec<u8>>, target: fn(&[u8]), max_len: usize) {
    let mut all = seeds;
    all.extend(regressions(name));
    for s in &all {
        target(s);
    }
    let mut rng = Rng(0x5eed_0000 ^ (name.len() as u64 * 0x9E37_79B9));
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < BUDGET {
        let s = &all[rng.below(all.len())];
        let o = &all[rng.below(all.len())];
        let mut input = mutate(&mut rng, s, o);
        input.truncate(max_len);
        let r = std::panic::catch_unwind(|| target(&input));
        if r.is_err() {
            let dir = std::env::temp_dir().join(format!("soci-fuzz-smoke-{name}"));
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join(format!("crash-{n}"));
            std::fs::write(&p, &input).unwrap();
            panic!("{name}: panic on input saved to {}", p.display());
        }
        n += 1;
    }
    eprintln!(
        "{name}: {} seeds, {n} mutated inputs in {:?}",
        all.len(),
        start.elapsed()
    );
}

fn golden(name: &str) -> Vec<u8> {
    read(&root().join("fixtures/golden").join(name))
}

#[test]
fn fuzz_smoke_ztoc() {
    let small = golden("app.tar.span-65536.ztoc");
    let small_pax = golden("edge-pax.tar.span-65536.ztoc");
    let gz_ztoc = golden("app.tar.gz.span-4194304.ztoc");
    let tar = golden("app.tar");
    let gz = golden("app.tar.gz");
    run(
        "ztoc",
        vec![
            with_split(&small, &tar),
            with_split(&small_pax, &golden("edge-pax.tar")[..4096]),
            with_split(&gz_ztoc, &gz),
            with_split(&gz_ztoc, &gz[..1000]),
            small.clone(),
        ],
        targets::ztoc,
        1 << 20,
    );
}

#[test]
fn fuzz_smoke_zinfo_blob() {
    // The checkpoints blob inside a real zTOC, and a tar zinfo.
    let z = soci_ztoc::codec::decode(&golden("app.tar.gz.span-4194304.ztoc")).unwrap();
    let t = soci_ztoc::codec::decode(&golden("app.tar.span-65536.ztoc")).unwrap();
    let gz = golden("app.tar.gz");
    run(
        "zinfo_blob",
        vec![
            with_split(&z.compression_info.checkpoints, &gz),
            with_split(&t.compression_info.checkpoints, &[]),
            z.compression_info.checkpoints.clone(),
        ],
        targets::zinfo_blob,
        1 << 20,
    );
}

#[test]
fn fuzz_smoke_checkpoint_tar() {
    let gz = golden("app.tar.gz");
    let mm = golden("multimember-gnu.tar.gz");
    let tar = golden("edge-pax.tar");
    let mut seeds = Vec::new();
    for ctl in [0u8, 0x0a, 0x13, 0x22, 0x2c] {
        let mut s = vec![ctl];
        s.extend_from_slice(&gz[..gz.len().min(40_000)]);
        seeds.push(s);
    }
    let mut s = vec![0x1b];
    s.extend_from_slice(&mm[..mm.len().min(40_000)]);
    seeds.push(s);
    let mut s = vec![0x11];
    s.extend_from_slice(&tar[..20_000]);
    seeds.push(s);
    run("checkpoint_tar", seeds, targets::checkpoint_tar, 64 << 10);
}

#[test]
fn fuzz_smoke_json_docs() {
    let mut seeds = Vec::new();
    let blobs = root().join("fixtures/example-image/blobs/sha256");
    for e in std::fs::read_dir(&blobs).unwrap().flatten() {
        let b = read(&e.path());
        if b.first() == Some(&b'{') && b.len() < 64 << 10 {
            seeds.push(b);
        }
    }
    seeds.push(read(&root().join("fixtures/example-image/index.json")));
    seeds.push(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v2+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/octet-stream","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"annotations":{"com.amazon.soci.image-layer-digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}],"annotations":{"com.amazon.soci.build-tool-identifier":"x"}}"#.to_vec());
    seeds.push(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":7,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json"},{}]}"#.to_vec());
    run("json_docs", seeds, targets::json_docs, 256 << 10);
}
