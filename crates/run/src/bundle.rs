//! The OCI runtime bundle: `config.json` (runtime spec 1.0) for runc, also
//! read by the chroot fallback, so both runtimes start the same process.
use crate::user::User;
use serde::Deserialize;
use serde_json::json;
use std::path::Path;

/// The PATH Docker gives a process whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The hostname inside the container.
pub const HOSTNAME: &str = "soci-run";

/// Docker's default capability set: what a container's root may do.
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The process environment: the image's Env, PATH and HOME added when it
/// sets none, `HOSTNAME` as Docker sets it.
pub fn environment(image_env: &[String], user: &User) -> Vec<String> {
    let mut env: Vec<String> = image_env.to_vec();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={HOSTNAME}"));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    env
}

/// `config.json` for a container whose root is `rootfs` (the overlay).
///
/// Namespaces: pid, mount, ipc, uts. The network namespace is the host's
/// (no `network` entry, as `docker run --network host`): a start-up
/// benchmark measures the image, not network setup, and the chroot fallback
/// could not bring up even a loopback interface without netlink code.
pub fn runtime_config(
    rootfs: &Path,
    args: &[String],
    env: &[String],
    cwd: &str,
    user: &User,
    binds: &[Bind],
) -> serde_json::Value {
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": CAPABILITIES,
                "effective": CAPABILITIES,
                "permitted": CAPABILITIES,
            },
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": HOSTNAME,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for b in binds {
            mounts.push(json!({
                "destination": b.destination,
                "type": "bind",
                "source": b.source,
                "options": ["rbind", "rprivate"],
            }));
        }
    }
    spec
}

/// The files of `/etc` bound over the image's (see [`host_files`]).
pub const HOST_FILES: [&str; 3] = ["resolv.conf", "hosts", "hostname"];

/// A host file bound over a path of the container (its `/etc/resolv.conf`,
/// `/etc/hosts`, `/etc/hostname`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Bind {
    /// The host file.
    pub source: std::path::PathBuf,
    /// Where it appears in the container (absolute).
    pub destination: String,
}

/// Copies of the host's `/etc/resolv.conf` and `/etc/hosts` and an
/// `/etc/hostname` in `dir`, to bind over the image's, as Docker does for a
/// container on the host's network: names resolve inside the container as
/// on the host, the container's writes reach neither the host's files nor
/// the image's upper layer. A host file that cannot be read is left out.
pub fn host_files(dir: &Path) -> std::io::Result<Vec<Bind>> {
    let mut out = Vec::new();
    for name in HOST_FILES {
        let bytes = match name {
            "hostname" => Some(format!("{HOSTNAME}\n").into_bytes()),
            _ => std::fs::read(Path::new("/etc").join(name)).ok(),
        };
        let Some(bytes) = bytes else { continue };
        let source = dir.join(name);
        std::fs::write(&source, bytes)?;
        out.push(Bind {
            source,
            destination: format!("/etc/{name}"),
        });
    }
    Ok(out)
}

/// The parts of `config.json` the chroot fallback uses.
#[derive(Debug, Deserialize)]
pub struct Spec {
    /// The process to run.
    pub process: Process,
    /// The root file system.
    pub root: Root,
    /// The container's hostname.
    #[serde(default)]
    pub hostname: String,
    /// Mounts; the chroot fallback makes the `bind` ones.
    #[serde(default)]
    pub mounts: Vec<SpecMount>,
}

/// An entry of `mounts`.
#[derive(Debug, Deserialize)]
pub struct SpecMount {
    /// Where in the container.
    pub destination: String,
    /// `bind`, `proc`, `tmpfs`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// What is mounted (a host path for `bind`).
    #[serde(default)]
    pub source: std::path::PathBuf,
}

/// `process` of the runtime spec.
#[derive(Debug, Deserialize)]
pub struct Process {
    /// Who runs it.
    pub user: SpecUser,
    /// Program and arguments.
    pub args: Vec<String>,
    /// `NAME=value` pairs.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory inside the root.
    pub cwd: String,
}

/// `process.user`.
#[derive(Debug, Deserialize)]
pub struct SpecUser {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    #[serde(default, rename = "additionalGids")]
    pub additional_gids: Vec<u32>,
}

/// `root`.
#[derive(Debug, Deserialize)]
pub struct Root {
    /// The root file system's host path.
    pub path: std::path::PathBuf,
}
