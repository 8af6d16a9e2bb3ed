//! `soci`: build SOCI (Seekable OCI) lazy-loading indexes without a daemon.
//!
//! The binary is thin: it parses arguments (`cli`), calls one entry point per
//! command (`commands`), and turns errors into one clear line and an exit code.
mod cli;
mod commands;
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
    match commands::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::from(exit::OK);
            }
            let msg = describe(&err);
            if global.json {
                let mut out = serde_json::json!({ "error": msg });
                // Nothing to index: each layer's reason, as after a successful run.
                if let Some(n) = err.downcast_ref::<soci_image::create::NothingIndexed>() {
                    out["layers"] = commands::image::layers_json(&n.layers);
                }
                println!("{out}");
            }
            eprintln!("soci: {msg}");
            // A bad setting (e.g. SOCI_REGISTRY_TIMEOUT=1e19) is wrong usage.
            let usage = err.chain().any(|c| {
                matches!(
                    c.downcast_ref::<soci_oci::Error>(),
                    Some(soci_oci::Error::InvalidSetting { .. })
                )
            });
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
    msg
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
}
