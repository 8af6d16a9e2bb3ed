//! Interruption: `soci create` and `soci create --push` killed with SIGINT or
//! SIGKILL at seeded random moments. Afterwards the store holds only whole
//! blobs, `index list` works, the registry's tag is absent or complete, and
//! the same command run again succeeds.
use crate::support::proxied::soci;
use crate::support::{check_store_blobs, example_image, soci_bin, text};
use soci_oci::spec::{self, Descriptor};
use soci_oci::{Credentials, ImageSource, RegistryClient, RegistryOptions, RegistrySource};
use soci_testkit::{skopeo_copy, Registry};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn opts() -> RegistryOptions {
    RegistryOptions {
        credentials: Credentials::Anonymous,
        plain_http: true,
        tls_ca: None,
        ..Default::default()
    }
}

/// Runs `soci args`, kills it with `sig` after `delay` (if still running).
/// Returns whether it was killed.
fn run_and_kill(args: &[&str], sig: i32, delay: Duration) -> bool {
    let mut child = Command::new(soci_bin())
        .args(args)
        .env_remove("SOCI_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Test-only unsafe (no safe std API sends a chosen signal).
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
    let status = child.wait().unwrap();
    !status.success()
}

const ROUNDS: usize = 12;

/// Milliseconds a run of `args` takes into an empty store (then emptied
/// again), at least 20.
fn clean_run_ms(args: &[&str], store: &Path) -> u64 {
    let _ = std::fs::remove_dir_all(store);
    let t = Instant::now();
    let o = soci(args);
    assert!(o.status.success(), "{}", text(&o));
    let ms = t.elapsed().as_millis() as u64;
    let _ = std::fs::remove_dir_all(store);
    ms.max(20)
}

fn check_store(store: &Path) {
    check_store_blobs(store);
    let o = soci(&["index", "list", "--store", store.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "index list after an interruption: {}",
        text(&o)
    );
    let o = soci(&["ztoc", "list", "--store", store.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "ztoc list after an interruption: {}",
        text(&o)
    );
}

/// The tag is absent, or everything it references (recursively: index →
/// manifests → config and layers; SOCI index → zTOCs) is in the registry.
fn check_tag_complete(host: &str, repo: &str, tag: &str) {
    let src =
        RegistrySource::new(format!("{host}/{repo}:{tag}").parse().unwrap(), &opts()).unwrap();
    let target = RegistryClient::new(host, &opts()).unwrap();
    let Ok((root, raw)) = src.resolve_root() else {
        return;
    };
    let mut manifests: Vec<(Descriptor, Vec<u8>)> = Vec::new();
    if root.media_type == spec::MEDIA_TYPE_OCI_INDEX {
        let idx: spec::Index = serde_json::from_slice(&raw).unwrap();
        for d in idx.manifests {
            let m = src.fetch_manifest(&d).unwrap_or_else(|e| {
                panic!("tag {tag} references missing manifest {}: {e}", d.digest)
            });
            manifests.push((d, m));
        }
    } else {
        manifests.push((root, raw));
    }
    for (d, raw) in manifests {
        let m: spec::Manifest = serde_json::from_slice(&raw).unwrap();
        for b in std::iter::once(&m.config).chain(m.layers.iter()) {
            assert!(
                target.blob_exists(repo, &b.digest).unwrap(),
                "manifest {} references blob {} missing from the registry",
                d.digest,
                b.digest
            );
        }
    }
}

#[test]
fn create_killed_at_random_moments_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = example_image();
    let args = [
        "create",
        "--min-layer-size",
        "0",
        "--store",
        store.to_str().unwrap(),
        &src,
    ];
    kill_rounds(
        "create",
        &args,
        &store,
        0x50c1_2026,
        |i| i % 2 != 0,
        || {},
        || {
            let o = soci(&[
                "index",
                "list",
                "--digests-only",
                "--store",
                store.to_str().unwrap(),
            ]);
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).lines().count(),
                1,
                "{}",
                text(&o)
            );
        },
    );
}

/// ROUNDS times: run `args`, kill it (SIGKILL, or SIGINT when `sigint(round)`)
/// at a seeded moment in the first half of a clean run, check the store and
/// `after_kill`, run it again to success, check the store and `after_rerun`. Fresh store every other
/// round, so early moments are hit too. At least 2 runs must really be cut.
fn kill_rounds(
    what: &str,
    args: &[&str],
    store: &Path,
    seed: u64,
    sigint: impl Fn(usize) -> bool,
    after_kill: impl Fn(),
    after_rerun: impl Fn(),
) {
    let mut rng = Rng(seed);
    let mut killed = 0;
    // Kill moments are drawn over the first half of a clean run into an empty
    // store (later moments often miss a warm-cache run altogether).
    let span = clean_run_ms(args, store);
    for i in 0..ROUNDS {
        if i % 2 == 0 {
            let _ = std::fs::remove_dir_all(store);
        }
        let sig = if sigint(i) {
            libc::SIGINT
        } else {
            libc::SIGKILL
        };
        let delay = Duration::from_millis(rng.below(span / 2 + 1));
        killed += run_and_kill(args, sig, delay) as usize;
        check_store(store);
        after_kill();
        let o = soci(args);
        assert!(
            o.status.success(),
            "rerun after kill at {delay:?}: {}",
            text(&o)
        );
        check_store(store);
        after_rerun();
    }
    eprintln!("{what}: {killed} of {ROUNDS} runs interrupted (clean run: {span} ms)");
    assert!(
        killed >= 2,
        "only {killed} runs were interrupted: the kill moments missed the run"
    );
}

#[test]
fn create_push_killed_at_random_moments_then_rerun() {
    let reg = Registry::start().unwrap_or_else(|e| panic!("test registry: {e}"));
    let host = reg.host();
    skopeo_copy(&example_image(), &format!("docker://{host}/ex/img:v1")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let image = format!("{host}/ex/img:v1");
    let args = [
        "create",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--push",
        "--store",
        store.to_str().unwrap(),
        &image,
    ];
    let tag_complete = || check_tag_complete(&host, "ex/img", "v1");
    kill_rounds(
        "create --push",
        &args,
        &store,
        0xdead_beef_2026,
        |i| i % 3 == 0,
        tag_complete,
        tag_complete,
    );
    // What was pushed is a SOCI-enabled index whose SOCI index is complete.
    let src = RegistrySource::new(image.parse().unwrap(), &opts()).unwrap();
    let (root, raw) = src.resolve_root().unwrap();
    assert_eq!(root.media_type, spec::MEDIA_TYPE_OCI_INDEX);
    let idx: spec::Index = serde_json::from_slice(&raw).unwrap();
    assert!(
        idx.manifests.len() >= 2,
        "{}",
        String::from_utf8_lossy(&raw)
    );
}
