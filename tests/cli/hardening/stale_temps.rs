//! Temporaries of dead writers (issue 10 item 7): a build to an `oci:`
//! destination killed mid-copy leaves its `.tmp-*` blob; the next run removes
//! it, while a live writer's temporary in the same layout is never touched.
use crate::support::proxied::proxied_registry;
use crate::support::proxy::Fault;
use crate::support::{soci_bin, text};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn temps(dest: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in [dest.to_path_buf(), dest.join("blobs/sha256")] {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    v.push(e.path());
                }
            }
        }
    }
    v
}

/// `soci create` from the proxied registry into `oci:DEST`, left running.
fn spawn_create(host: &str, store: &Path, dest: &Path) -> Child {
    Command::new(soci_bin())
        .args([
            "create",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            &format!("{host}/app/one:v1"),
            "--dest",
            &format!("oci:{}:v1", dest.display()),
        ])
        // Long enough that the stalled copy is still in flight when killed.
        .env("SOCI_REGISTRY_STALL_TIMEOUT", "300")
        .env("SOCI_REGISTRY_TIMEOUT", "600")
        .env_remove("SOCI_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (at most 60 s, only to prove "no hang") for a temporary in `dest`,
/// other than `except`, that stays (the stalled layer's, not a small blob's
/// that is renamed at once).
fn wait_for_temp(dest: &Path, child: &mut Child, except: Option<&Path>) -> PathBuf {
    let t = Instant::now();
    loop {
        let found: Vec<PathBuf> = temps(dest)
            .into_iter()
            .filter(|p| Some(p.as_path()) != except)
            .collect();
        if !found.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
            if let Some(p) = found.into_iter().find(|p| p.exists()) {
                return p;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build ended before writing a temporary"
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no temporary appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killed_build_temporaries_are_removed_next_run_but_live_ones_kept() {
    let env = proxied_registry();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    // The biggest layer stalls half-way, so its copy into the layout is caught
    // with a temporary on disk.
    let layer = env.fx.images[0]
        .layers
        .iter()
        .max_by_key(|b| b.bytes.len())
        .unwrap()
        .clone();
    let host = env.proxy.host();
    for sig in [libc::SIGKILL, libc::SIGTERM] {
        let dest = tmp.path().join(format!("dest{sig}"));
        env.proxy.clear();
        env.proxy.add(
            "GET",
            &layer.digest,
            usize::MAX,
            Fault::Stall(layer.bytes.len() / 2, Duration::from_secs(120)),
        );
        let mut child = spawn_create(&host, &store, &dest);
        let leftover = wait_for_temp(&dest, &mut child, None);
        // Test-only unsafe (no safe std API sends a chosen signal).
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        assert!(!child.wait().unwrap().success());
        assert!(
            leftover.exists(),
            "the killed run's temporary is gone already"
        );

        // A live writer: stalled on the same layer, its temporary on disk.
        let mut live = spawn_create(&host, &store, &dest);
        let live_tmp = wait_for_temp(&dest, &mut live, Some(&leftover));

        // The next run (a healthy source, same destination) cleans up the dead
        // writer's temporary and leaves the live one alone.
        let fx = soci_testkit::make_oci_layout(&tmp.path().join(format!("src{sig}")), "v1");
        let healthy_run = || {
            let o = Command::new(soci_bin())
                .args([
                    "create",
                    "--min-layer-size",
                    "0",
                    "--store",
                    store.to_str().unwrap(),
                    &fx.oci_ref(),
                    "--dest",
                    &format!("oci:{}:other", dest.display()),
                ])
                .env_remove("SOCI_STORE")
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o));
        };
        healthy_run();
        assert!(!leftover.exists(), "dead writer's {leftover:?} survived");
        assert!(live_tmp.exists(), "live writer's {live_tmp:?} was removed");
        let _ = live.kill();
        let _ = live.wait();
        // Once that writer is gone too, the next run leaves no temporary at all.
        healthy_run();
        assert!(temps(&dest).is_empty(), "{:?}", temps(&dest));
    }
}
