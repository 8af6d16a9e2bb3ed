//! One entry point per command.
mod bench;
mod gc;
pub(crate) mod image;
mod index;
mod listing;
mod many;
mod mount;
mod prefetch;
mod run;
mod ztoc;

use crate::cli::{Cli, Command};

/// Runs the parsed command line; returns the exit code.
pub(crate) fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        // Several images (or a list, or a shard of one): `many` runs the
        // one-image path for each.
        Command::Create(a) if many::is_many(&a) => many::create_many(a, g),
        Command::Create(a) => image::create_cmd(a, g),
        Command::Convert(a) => image::convert_cmd(a, g),
        Command::Push(a) => image::push_cmd(a, g),
        Command::Verify(a) => image::verify_cmd(a, g),
        Command::Index(cmd) => index::run(cmd, g),
        Command::Ztoc(cmd) => ztoc::run(cmd, g),
        Command::Bench(cmd) => bench::run(cmd, g),
        Command::Prefetch(cmd) => prefetch::run(cmd, g),
        Command::Run(a) => run::run_cmd(a, g),
        Command::RunInit(a) => run::run_init_cmd(a),
        Command::Mount(a) => mount::run(a, g),
        Command::Gc(a) => gc::run(a, g),
    }
}
