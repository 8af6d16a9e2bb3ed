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
) -> serde_json::Value {
    json!({
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
    })
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
