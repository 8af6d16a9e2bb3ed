//! `soci`: build SOCI (Seekable OCI) lazy-loading indexes without a daemon.
//!
//! The binary is thin: it parses arguments (`cli`), calls one entry point per
//! command (`commands`), and turns errors into one clear line and an exit code.

// Every `println!`/`eprintln!` of this crate goes through `output`, not std's:
// std's panic when the stream is closed (`soci index list | head -n 1` was a
// panic, exit 101). Defined before the modules so that they shadow std's in
// all of them, including commands added later. See `output::print_line`.
macro_rules! println {
    () => {
        $crate::output::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}
macro_rules! eprintln {
    () => {
        $crate::output::eprint_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::eprint_line(format_args!($($arg)*))
    };
}

mod cli;
mod commands;
mod digest;
mod metrics;
mod output;
mod progress;

use clap::Parser;
use std::process::ExitCode;

/// Exit codes, documented in `soci --help`.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An error: bad input, I/O, registry, corrupt data.
    pub const ERROR: u8 = 1;
    /// Wrong usage (unknown flag, missing argument; set by clap), or an
    /// unusable `SOCI_REGISTRY_*` setting.
    pub const USAGE: u8 = 2;
    /// `verify` ran and found a mismatch.
    pub const VERIFY_FAILED: u8 = 3;
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let global = args.global.clone();
    let result = commands::run(args);
    // A stdout that failed other than by being closed (a full disk behind a
    // redirection): the output is incomplete, so the run did not succeed.
    let result = match (result, output::stdout_error()) {
        (Ok(_), Some(e)) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
        (r, _) => r,
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::from(exit::OK);
            }
            let msg = describe(&err);
            if global.json {
                let mut out = serde_json::json!({ "error": msg });
                // Nothing to index: each layer's reason, as after a successful run.
                if let Some(soci_image::Error::NothingIndexed { layers, .. }) = err.downcast_ref() {
                    out["layers"] = commands::image::layers_json(layers);
                }
                println!("{out}");
            }
            eprintln!("soci: {msg}");
            // A bad setting (e.g. SOCI_REGISTRY_TIMEOUT=1e19) is wrong usage.
            let usage = is_bad_setting(&err);
            ExitCode::from(if usage { exit::USAGE } else { exit::ERROR })
        }
    }
}

/// The error and its causes on one line, like `{:#}`, but without repeating a
/// cause whose text its parent already shows (library errors often embed their
/// source's message and also return it as `source()`).
fn describe(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    one_line(&msg)
}

/// `text` on one line: some errors (flatbuffers' verifier) span several lines
/// with blank ones; an error is one line on stderr, whatever its source.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() && !piece.starts_with([')', ']', ',', '.']) {
            out.push(' ');
        }
        out.push_str(piece);
    }
    out
}

/// Whether `err` comes from a bad setting (e.g. SOCI_REGISTRY_TIMEOUT=1e19),
/// which is wrong usage.
fn is_bad_setting(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        // soci-image passes soci-oci's errors on transparently (a nested
        // cause is boxed).
        let image = c
            .downcast_ref::<soci_image::Error>()
            .or_else(|| c.downcast_ref::<Box<soci_image::Error>>().map(|b| &**b));
        let oci = c.downcast_ref::<soci_oci::Error>().or(match image {
            Some(soci_image::Error::Oci(e)) => Some(e),
            _ => None,
        });
        matches!(oci, Some(soci_oci::Error::InvalidSetting { .. }))
    })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use std::fmt;

    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("inner problem")
        }
    }
    impl std::error::Error for Inner {}

    /// Shows its source's text and also returns it as `source()`.
    #[derive(Debug)]
    struct Outer(Inner);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "outer: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_already_shown_are_not_repeated() {
        let e = anyhow::Error::new(Outer(Inner)).context("cannot build layer x");
        assert_eq!(
            super::describe(&e),
            "cannot build layer x: outer: inner problem"
        );
        let e = anyhow::Error::new(Inner).context("cannot build layer x");
        assert_eq!(super::describe(&e), "cannot build layer x: inner problem");
    }

    #[test]
    fn a_bad_setting_is_seen_through_soci_image() {
        let setting = || soci_oci::Error::InvalidSetting {
            name: "SOCI_REGISTRY_TIMEOUT".into(),
            value: "1e19".into(),
            reason: "too large".into(),
        };
        let direct = anyhow::Error::new(setting()).context("cannot open image x");
        assert!(super::is_bad_setting(&direct));
        let wrapped = anyhow::Error::new(soci_image::Error::Push {
            dest: "r/x:t".into(),
            source: Box::new(soci_image::Error::Oci(setting())),
        });
        assert!(super::is_bad_setting(&wrapped));
        assert!(!super::is_bad_setting(&anyhow::anyhow!("other")));
    }

    #[test]
    fn a_multi_line_cause_is_put_on_one_line() {
        let e = anyhow::anyhow!("not a valid flatbuffer (Range [1, 5) is out of bounds.\n\twhile verifying table field `version`\n\n)")
            .context("x.ztoc is not a valid zTOC");
        assert_eq!(
            super::describe(&e),
            "x.ztoc is not a valid zTOC: not a valid flatbuffer (Range [1, 5) is out of bounds. while verifying table field `version`)"
        );
    }
}
