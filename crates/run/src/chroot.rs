//! The fallback runtime where runc is absent: chroot plus new pid, mount, ipc
//! and uts namespaces, in two stages of the same binary (`soci run-init`).
//!
//! Stage 1 unshares the namespaces (a fresh process, so single-threaded, as
//! unshare requires), makes every mount private (nothing it mounts shows in
//! the host's namespace, and all of it goes when the namespace dies), mounts
//! /dev (a tmpfs with the few device nodes bound from the host) and a
//! read-only /sys into the root, then starts stage 2, which is PID 1 of the
//! new pid namespace. Stage 2 mounts /proc (it must be mounted from inside
//! the pid namespace to show its processes), chroots, drops to the image's
//! user and groups and execs the workload. It is weaker than runc: no
//! capability bounding, seccomp or cgroups, and root in the container is
//! root of the host's user namespace.
use crate::bundle::Spec;
use crate::error::{Error, Result};
use crate::paths::resolve;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// The device nodes a container gets, bound from the host's /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

fn read_spec(config: &Path) -> Result<Spec> {
    let raw = std::fs::read(config).map_err(|e| Error::io("cannot read", config, e))?;
    serde_json::from_slice(&raw).map_err(|e| Error::Config {
        digest: config.display().to_string(),
        reason: e.to_string(),
    })
}

fn sys(what: String) -> impl FnOnce(nix::Error) -> Error {
    move |e| Error::sys(what, e)
}

/// Stage 1: new namespaces, /dev and /sys in the root, then `stage2`
/// (a command that runs [`stage2`] with the same config) as PID 1 of the new
/// pid namespace. Returns the exit code to exit with (the workload's, or 128
/// + the signal that ended it).
pub fn stage1(config: &Path, mut stage2_cmd: Command) -> Result<i32> {
    let spec = read_spec(config)?;
    let root = &spec.root.path;
    // Before unshare: once the pid namespace is unshared, this process can
    // start no more threads (clone with CLONE_THREAD fails with EINVAL).
    let cancel = crate::Cancel::new();
    let watcher = crate::signals::SignalWatcher::install(cancel.clone())?;
    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS,
    )
    .map_err(sys("cannot create namespaces (unshare)".into()))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("cannot make the mounts private".into()))?;
    if !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname).map_err(sys("cannot set the hostname".into()))?;
    }
    let dev = resolve(root, Path::new("dev"), true, true)?;
    std::fs::create_dir_all(&dev).map_err(|e| Error::io("cannot create", &dev, e))?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=755,size=65536k"),
    )
    .map_err(sys(format!("cannot mount a tmpfs on {}", dev.display())))?;
    for d in DEVICES {
        let host = Path::new("/dev").join(d);
        if !host.exists() {
            continue;
        }
        let node = dev.join(d);
        std::fs::write(&node, b"").map_err(|e| Error::io("cannot create", &node, e))?;
        mount(
            Some(&host),
            &node,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(format!(
            "cannot bind {} into the container",
            host.display()
        )))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(name));
    }
    let shm = dev.join("shm");
    let _ = std::fs::create_dir(&shm);
    let _ = mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    );
    let sysfs = resolve(root, Path::new("sys"), true, true)?;
    if std::fs::create_dir_all(&sysfs).is_ok() {
        mount(
            Some("sysfs"),
            &sysfs,
            Some("sysfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(sys(format!("cannot mount sysfs on {}", sysfs.display())))?;
    }
    // The host files bound over the image's (resolv.conf, hosts, hostname):
    // the mount point is made inside the root if the image lacks it.
    for m in spec.mounts.iter().filter(|m| m.kind == "bind") {
        let dst = resolve(root, Path::new(&m.destination), true, false)?;
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
        }
        if !dst.exists() {
            std::fs::write(&dst, b"").map_err(|e| Error::io("cannot create", &dst, e))?;
        }
        mount(
            Some(&m.source),
            &dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(format!(
            "cannot bind {} over {}",
            m.source.display(),
            m.destination
        )))?;
    }
    // The workload's stage: PID 1 of the new pid namespace.
    let mut child = stage2_cmd
        .spawn()
        .map_err(|e| Error::io("cannot start", "soci run-init (stage 2)", e))?;
    cancel.set_target(Some(crate::signals::Target::Pid(child.id() as i32)));
    let status = child
        .wait()
        .map_err(|e| Error::io("cannot wait for", "soci run-init (stage 2)", e))?;
    cancel.set_target(None);
    drop(watcher);
    Ok(crate::exit_code(status))
}

/// Stage 2, PID 1 of the container's pid namespace: /proc, chroot, user,
/// exec. Returns only on failure.
pub fn stage2(config: &Path) -> Error {
    match stage2_inner(config) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn stage2_inner(config: &Path) -> Result<std::convert::Infallible> {
    let spec = read_spec(config)?;
    let root = &spec.root.path;
    let proc_dir = resolve(root, Path::new("proc"), true, true)?;
    std::fs::create_dir_all(&proc_dir).map_err(|e| Error::io("cannot create", &proc_dir, e))?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(sys(format!("cannot mount /proc on {}", proc_dir.display())))?;
    nix::unistd::chroot(root).map_err(sys(format!("cannot chroot to {}", root.display())))?;
    std::env::set_current_dir(&spec.process.cwd).map_err(|e| {
        Error::io(
            "cannot change to the working directory",
            &spec.process.cwd,
            e,
        )
    })?;
    let user = &spec.process.user;
    let groups: Vec<nix::unistd::Gid> = user
        .additional_gids
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(sys("cannot set the groups".into()))?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(user.gid))
        .map_err(sys(format!("cannot set gid {}", user.gid)))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(user.uid))
        .map_err(sys(format!("cannot set uid {}", user.uid)))?;
    // After the uid change (which clears it): stage 1 killed means the
    // container dies with it.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(sys("cannot set the parent-death signal".into()))?;
    let mut cmd = Command::new(&spec.process.args[0]);
    cmd.args(&spec.process.args[1..]).env_clear();
    for e in &spec.process.env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    let err = cmd.exec();
    Err(Error::io("cannot run", &spec.process.args[0], err))
}
