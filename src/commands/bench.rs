//! `soci bench startup`: a thin wrapper over the soci-bench crate.
use crate::cli::{BenchCommand, GlobalArgs};
use soci_bench::{Profile, StartupConfig};

pub fn run(cmd: BenchCommand, g: &GlobalArgs) -> anyhow::Result<u8> {
    let BenchCommand::Startup(a) = cmd;
    let root = std::env::current_dir()?;
    let mut cfg = StartupConfig::new(root);
    // Never a `target/` in whatever directory this runs in: a per-user cache.
    cfg.data_dir = data_dir();
    cfg.out_dir = a.out.unwrap_or_else(|| cfg.data_dir.join("results"));
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

/// Where `soci bench startup` keeps its data (registry, stores, the demo image,
/// results): $SOCI_BENCH_DATA, else $XDG_CACHE_HOME/soci-rs/bench, else
/// ~/.cache/soci-rs/bench, else a directory under the system's temp dir.
fn data_dir() -> std::path::PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("SOCI_BENCH_DATA") {
        return d.into();
    }
    let cache = env("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".cache")));
    match cache {
        Some(c) => c.join("soci-rs/bench"),
        None => std::env::temp_dir().join("soci-rs-bench"),
    }
}
