//! The one error type of soci-run: each variant names what failed and where.
use std::path::PathBuf;

/// What can go wrong while preparing or running a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the image (registry, layout, archive) failed.
    #[error(transparent)]
    Oci(#[from] soci_oci::Error),
    /// A file system operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`cannot create`, `cannot mount overlay on`, ...).
        what: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A layer's bytes do not match its descriptor.
    #[error("layer {digest} failed verification: got {got}, {size} bytes (descriptor: {expected_size} bytes)")]
    LayerDigest {
        /// The descriptor's digest.
        digest: String,
        /// The digest of the bytes received.
        got: String,
        /// Bytes received.
        size: u64,
        /// The descriptor's size.
        expected_size: i64,
    },
    /// A layer could not be unpacked (corrupt tar or compression, an entry
    /// that would land outside the root filesystem).
    #[error("cannot unpack layer {digest}: {reason}")]
    Unpack {
        /// The layer's digest.
        digest: String,
        /// Why.
        reason: String,
    },
    /// The image config is missing or not valid JSON.
    #[error("image config {digest}: {reason}")]
    Config {
        /// The config blob's digest.
        digest: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The image's `User` cannot be resolved in its /etc/passwd or /etc/group.
    #[error("user {user:?} of the image: {reason}")]
    User {
        /// The `User` string.
        user: String,
        /// Why it cannot be resolved.
        reason: String,
    },
    /// Nothing to run: no entrypoint, no cmd, no command given.
    #[error("the image has no entrypoint or cmd: give a command after `--`")]
    NoCommand,
    /// Running a container needs root (mounts, namespaces, runc).
    #[error("soci run needs root (it mounts overlayfs and FUSE and creates namespaces); run it as root, e.g. with sudo")]
    NotRoot,
    /// The requested runtime is not installed.
    #[error(
        "runtime {0} not found: install it (Debian: apt-get install runc) or use --runtime chroot"
    )]
    RuntimeMissing(String),
    /// A child process (runc, the mount, the init) failed before the workload ran.
    #[error("{what}: {detail}")]
    Child {
        /// Which child.
        what: String,
        /// What happened.
        detail: String,
    },
    /// SIGINT or SIGTERM arrived before the workload started.
    #[error("interrupted by signal {0}")]
    Interrupted(i32),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        source: nix::Error,
    },
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys {
            what: what.into(),
            source,
        }
    }
}

/// soci-run's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
