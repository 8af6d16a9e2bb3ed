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
    /// Wrong usage (unknown flag, missing argument); set by clap.
    #[allow(dead_code)]
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
            if global.json {
                let msg = format!("{err:#}");
                println!("{}", serde_json::json!({ "error": msg }));
            }
            eprintln!("soci: {err:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
