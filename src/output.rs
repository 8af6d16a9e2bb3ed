//! Writing results: atomic files, stdout.
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically with soci-oci's one atomic writer: an
/// exclusive, unfollowed temporary `.NAME.tmp-PID-…` in the same directory,
/// fsynced, renamed over `path`, directory fsynced; so an interrupted run never
/// leaves a half-written file and a symlink planted at the temporary name is
/// never written through.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    soci_oci::fsio::write_atomic(dir, &format!(".{name}.tmp-"), path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes raw bytes to stdout.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Prints a JSON value, pretty, on stdout.
pub fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    write_stdout(s.as_bytes())
}
