//! Which program starts the container: runc (an OCI runtime bundle), else the
//! chroot + namespaces fallback (`soci run-init`).
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The runtime asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChoice {
    /// runc when it is on PATH, else chroot.
    #[default]
    Auto,
    /// runc, or an error.
    Runc,
    /// The chroot fallback, even where runc is installed.
    Chroot,
}

/// The runtime that runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// runc, at this path.
    Runc(PathBuf),
    /// chroot + new namespaces.
    Chroot,
}

impl Runtime {
    /// Resolves `choice` against PATH.
    pub fn find(choice: RuntimeChoice) -> Result<Runtime> {
        let runc = find_in_path("runc");
        match (choice, runc) {
            (RuntimeChoice::Chroot, _) => Ok(Runtime::Chroot),
            (_, Some(p)) => Ok(Runtime::Runc(p)),
            (RuntimeChoice::Runc, None) => Err(Error::RuntimeMissing("runc".into())),
            (RuntimeChoice::Auto, None) => Ok(Runtime::Chroot),
        }
    }

    /// `runc` or `chroot`.
    pub fn name(&self) -> &'static str {
        match self {
            Runtime::Runc(_) => "runc",
            Runtime::Chroot => "chroot",
        }
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `runc run --bundle BUNDLE ID`, and `runc delete --force ID` on drop, so
/// no container state is left behind whatever happens.
#[derive(Debug)]
pub(crate) struct RuncContainer {
    pub(crate) runc: PathBuf,
    pub(crate) id: String,
}

impl RuncContainer {
    pub(crate) fn command(&self, bundle: &Path) -> Command {
        let mut c = Command::new(&self.runc);
        c.arg("run").arg("--bundle").arg(bundle).arg(&self.id);
        c
    }
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        let _ = Command::new(&self.runc)
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
