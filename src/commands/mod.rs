//! One entry point per command.
mod ztoc;

use crate::cli::{Cli, Command};

/// Runs the parsed command line; returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Ztoc(cmd) => ztoc::run(cmd, &cli.global),
    }
}
