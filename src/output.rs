//! Writing results: atomic files, stdout.
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Writes `bytes` to `path` atomically with soci-oci's one atomic writer: an
/// exclusive, unfollowed temporary `.NAME.tmp-PID-…` in the same directory,
/// fsynced, renamed over `path`, directory fsynced; so an interrupted run never
/// leaves a half-written file and a symlink planted at the temporary name is
/// never written through.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
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

/// Set once stdout is found closed (EPIPE): what is left to print is dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first other error writing to stdout, reported by `main` at the end.
static STDOUT_ERROR: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// `println!` of this crate (see main.rs). A closed stdout (the reader quit,
/// as `head -n 1` does) ends the output quietly: the command still finishes
/// its work (a push is not cut in half because nobody reads its report) and
/// exits as it would have, 0 on success; like ripgrep, no message, no panic.
/// Any other write error is kept for `main`, which fails the run with it.
pub(crate) fn print_line(args: std::fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = r {
        note_stdout_error(e);
    }
}

fn note_stdout_error(e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        return;
    }
    let mut first = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
    if first.is_none() {
        *first = Some(e);
    }
}

/// The first error (not EPIPE) met writing to stdout, if any; flushes first.
pub(crate) fn stdout_error() -> Option<std::io::Error> {
    if !STDOUT_CLOSED.load(Ordering::Relaxed) {
        if let Err(e) = std::io::stdout().lock().flush() {
            note_stdout_error(e);
        }
    }
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// `eprintln!` of this crate: a closed or failing stderr is ignored (there is
/// nowhere left to say anything), instead of std's panic.
pub(crate) fn eprint_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Writes raw bytes to stdout (a closed stdout is not an error, as above).
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => Ok(r?),
    }
}

/// Prints a JSON value, pretty, on stdout.
pub(crate) fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    write_stdout(s.as_bytes())
}
