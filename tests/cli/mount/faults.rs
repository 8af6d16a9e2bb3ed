//! Faults: the registry dies while the image is mounted (reads of what was
//! not fetched end in EIO within the retry budget, other files keep working,
//! the mount still unmounts), and a SIGKILLed mount leaves no mount behind.
use super::harness::*;
use crate::support::*;
use std::time::Duration;

/// Pushes the fixture with a v2 index; returns the SOCI-enabled reference.
fn pushed(fx: &Fixture, reg: &Registry) -> String {
    let img = format!("{}/app:1", reg.host());
    skopeo_copy(&format!("oci:{}:1", p(&fx.layout)), &docker(&img)).unwrap();
    let store = fx.dir.path().join("store");
    let soci_img = format!("{}/app:1-soci", reg.host());
    build_index("convert", &[&img, &soci_img], &store);
    soci_img
}

/// Slow: waits out the mount's retries (about 20 s) against a dead registry.
#[test]
fn slow_registry_dying_mid_mount_gives_eio_not_a_hang() {
    if !fuse_available("slow_registry_dying_mid_mount_gives_eio_not_a_hang") {
        return;
    }
    let reg = Registry::start().unwrap();
    let fx = fixture();
    let img = pushed(&fx, &reg);
    let mp = fx.dir.path().join("mnt");
    let empty = fx.dir.path().join("empty");
    let mut m = mount(
        &[&img, "--plain-http", "--store", p(&empty)],
        &mp,
        &[
            ("SOCI_REGISTRY_TIMEOUT", "20"),
            ("SOCI_REGISTRY_RETRIES", "2"),
            ("SOCI_REGISTRY_STALL_TIMEOUT", "3"),
        ],
    );
    let before = std::fs::read(mp.join("usr/lib/shared.so")).unwrap();
    assert_eq!(
        before,
        std::fs::read(fx.unpacked.join("usr/lib/shared.so")).unwrap()
    );
    drop(reg);
    // A file no read fetched yet: EIO, well within a bound that a hang
    // (a request without a deadline) would exceed.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = mp.join("usr/lib/big2.bin");
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(path));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("a read against a dead registry hung for 120 s");
    let e = r.expect_err("read succeeded with the registry gone");
    assert_eq!(e.raw_os_error(), Some(5), "{e}");
    // Other files keep working: one already read, one of the layer fetched
    // whole, and the tree.
    assert_eq!(std::fs::read(mp.join("usr/lib/shared.so")).unwrap(), before);
    assert_eq!(
        std::fs::read(mp.join("top.txt")).unwrap(),
        b"top layer, no zTOC\n"
    );
    assert!(std::fs::read_dir(mp.join("usr/lib")).unwrap().count() >= 5);
    let (code, lines) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    assert!(!is_mounted(&mp));
    assert!(
        lines[0].contains("read errors") && !lines[0].contains(" 0 read errors"),
        "{lines:?}"
    );
    assert!(
        m.stderr_text().contains("usr/lib/big2.bin"),
        "{}",
        m.stderr_text()
    );
}

#[test]
fn sigkill_of_the_mount_leaves_no_mount_behind() {
    if !fuse_available("sigkill_of_the_mount_leaves_no_mount_behind") {
        return;
    }
    let reg = Registry::start().unwrap();
    let fx = fixture();
    let img = pushed(&fx, &reg);
    let mp = fx.dir.path().join("mnt");
    let empty = fx.dir.path().join("empty");
    let mut m = mount(&[&img, "--plain-http", "--store", p(&empty)], &mp, &[]);
    assert!(is_mounted(&mp));
    std::fs::read(mp.join("etc/passwd")).unwrap();
    let (code, _) = m.stop_with("KILL");
    assert_eq!(code, None, "killed by the signal");
    // fusermount3 (auto_unmount) notices the dead connection and unmounts.
    let start = std::time::Instant::now();
    while is_mounted(&mp) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!is_mounted(&mp), "still mounted 30 s after SIGKILL");
}

#[test]
fn unmount_from_outside_ends_the_command_cleanly() {
    if !fuse_available("unmount_from_outside_ends_the_command_cleanly") {
        return;
    }
    let fx = fixture();
    let dst = converted(&fx, &[]);
    let mp = fx.dir.path().join("mnt");
    let mut m = mount(
        &[&dst, "--store", p(&fx.dir.path().join("empty"))],
        &mp,
        &[],
    );
    let st = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(&mp)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        m.wait(Duration::from_secs(60)),
        Some(0),
        "stderr: {}",
        m.stderr_text()
    );
    assert!(!is_mounted(&mp));
}

#[test]
fn an_altered_range_answer_is_eio_and_never_cached() {
    if !fuse_available("an_altered_range_answer_is_eio_and_never_cached") {
        return;
    }
    use crate::support::proxy::{Fault, FaultProxy};
    let reg = Registry::start().unwrap();
    let fx = fixture();
    let img = pushed(&fx, &reg);
    let proxy = FaultProxy::start(reg.addr());
    let via = img.replace(&reg.host(), &proxy.host());
    let mp = fx.dir.path().join("mnt");
    let empty = fx.dir.path().join("empty");
    let mut m = mount(&[&via, "--plain-http", "--store", p(&empty)], &mp, &[]);
    // Every blob answer from now on has one byte flipped.
    proxy.add("GET", "/blobs/", usize::MAX, Fault::Corrupt);
    let e = std::fs::read(mp.join("usr/lib/text.txt")).expect_err("altered bytes were served");
    assert_eq!(e.raw_os_error(), Some(5), "{e}");
    assert!(
        m.stderr_text().contains("does not match the zTOC"),
        "{}",
        m.stderr_text()
    );
    // The bad answer was not cached: once the registry answers right, the
    // same file reads correctly.
    proxy.clear();
    assert_eq!(
        std::fs::read(mp.join("usr/lib/text.txt")).unwrap(),
        std::fs::read(fx.unpacked.join("usr/lib/text.txt")).unwrap()
    );
    let (code, _) = m.stop_with("TERM");
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
}

#[test]
fn sigterm_unmounts_even_while_a_process_sits_in_the_mount() {
    if !fuse_available("sigterm_unmounts_even_while_a_process_sits_in_the_mount") {
        return;
    }
    let fx = fixture();
    let dst = converted(&fx, &[]);
    let mp = fx.dir.path().join("mnt");
    let mut m = mount(
        &[&dst, "--store", p(&fx.dir.path().join("empty"))],
        &mp,
        &[],
    );
    let mut busy = std::process::Command::new("sleep")
        .arg("120")
        .current_dir(mp.join("usr/lib"))
        .spawn()
        .unwrap();
    let (code, lines) = m.stop_with("TERM");
    let _ = busy.kill();
    let _ = busy.wait();
    assert_eq!(code, Some(0), "stderr: {}", m.stderr_text());
    assert!(lines[0].starts_with("unmounted "), "{lines:?}");
    assert!(!is_mounted(&mp));
}

/// As an unprivileged user on a machine whose /dev/fuse is root's only (as
/// here): one line naming /dev/fuse and the missing permission, exit 1,
/// nothing mounted. Needs root to drop to `nobody` (setpriv).
#[test]
fn mounting_without_access_to_dev_fuse_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata("/dev/fuse") else {
        eprintln!("skipping: /dev/fuse is missing");
        return;
    };
    let root = std::process::Command::new("id").arg("-u").output().unwrap();
    if meta.permissions().mode() & 0o006 != 0 || String::from_utf8_lossy(&root.stdout).trim() != "0"
    {
        eprintln!("skipping: needs root, and a /dev/fuse that others cannot open");
        return;
    }
    let fx = fixture();
    let conv = fx.dir.path().join("conv");
    let dst = converted(&fx, &[]);
    let mp = fx.dir.path().join("mnt");
    std::fs::create_dir_all(&mp).unwrap();
    // nobody must reach the layout and own the mount point.
    for d in [fx.dir.path(), conv.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&conv)
        .status()
        .unwrap();
    std::process::Command::new("chown")
        .arg("65534:65534")
        .arg(&mp)
        .status()
        .unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(soci_bin())
        .args([
            "mount",
            &dst,
            p(&mp),
            "--store",
            p(&fx.dir.path().join("nobody-store")),
        ])
        .env("HOME", fx.dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/dev/fuse") && err.contains("not permitted"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!is_mounted(&mp));
}
