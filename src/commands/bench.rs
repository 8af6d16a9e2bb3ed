//! `soci bench startup`: a thin wrapper over the soci-bench crate.
use crate::cli::{BenchCommand, GlobalArgs};
use soci_bench::{Profile, StartupConfig};

pub fn run(cmd: BenchCommand, g: &GlobalArgs) -> anyhow::Result<u8> {
    let BenchCommand::Startup(a) = cmd;
    let root = std::env::current_dir()?;
    let mut cfg = StartupConfig::new(root);
    cfg.sources = a.src;
    cfg.traces = a.trace;
    cfg.profiles = a
        .profiles
        .iter()
        .map(|p| Profile::parse(p))
        .collect::<anyhow::Result<_>>()?;
    cfg.span_size = a.span_size;
    cfg.min_layer_size = a.min_layer_size;
    cfg.parallel = a.parallel;
    cfg.span_sweep = a.sweep_span_sizes;
    cfg.min_layer_sweep = a.sweep_min_layer_sizes;
    cfg.out_dir = a.out;
    cfg.verbose = !g.quiet;
    cfg.command = std::env::args().collect::<Vec<_>>().join(" ");
    let r = soci_bench::startup(&cfg)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", soci_bench::report::text(&r));
        println!("results: {}/startup.{{json,svg,md}}", cfg.out_dir.display());
    }
    Ok(0)
}
