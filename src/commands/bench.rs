//! `soci bench …`: runs the separate `soci-bench` binary (crates/bench).
//!
//! The benchmark brings a shaping proxy, a registry launcher (soci-testkit), bcrypt
//! and zstd; none of that belongs in the CLI people ship, so `soci` only finds the
//! bench binary and hands over to it (docs/architecture.md, "The bench binary").
use crate::cli::{BenchArgs, GlobalArgs};
use anyhow::{anyhow, Context};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

const BENCH_EXE: &str = "soci-bench";

pub(super) fn run(a: BenchArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let exe = find_bench_exe().ok_or_else(|| {
        anyhow!(
            "`soci bench` needs the {BENCH_EXE} binary, found neither next to {} nor on PATH; \
             install it with `cargo install --path crates/bench` (or `cargo build -p soci-bench`)",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "soci".into())
        )
    })?;
    // Global flags given before `bench` (`soci --json bench startup`) go along;
    // those after it are already in `a.args`.
    let mut args: Vec<OsString> = Vec::new();
    if g.json {
        args.push("--json".into());
    }
    if g.quiet {
        args.push("--quiet".into());
    }
    args.extend(a.args.into_iter().map(OsString::from));
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(&args);
    exec(cmd).with_context(|| format!("running {}", exe.display()))
}

/// Replaces this process: soci-bench's output, exit code and signals are the
/// user's directly, with no `soci` left in between.
#[cfg(unix)]
fn exec(mut cmd: std::process::Command) -> anyhow::Result<u8> {
    use std::os::unix::process::CommandExt;
    Err(cmd.exec().into())
}

#[cfg(not(unix))]
fn exec(mut cmd: std::process::Command) -> anyhow::Result<u8> {
    let status = cmd.status()?;
    Ok(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

/// `soci-bench` next to the running `soci` (how `cargo build`, `cargo install`
/// and release archives lay them out), else the first on PATH.
fn find_bench_exe() -> Option<PathBuf> {
    let name = format!("{BENCH_EXE}{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(&name)));
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(&name)).collect())
        .unwrap_or_default();
    beside.into_iter().chain(on_path).find(|p| is_file(p))
}

fn is_file(p: &Path) -> bool {
    p.metadata().map(|m| m.is_file()).unwrap_or(false)
}
