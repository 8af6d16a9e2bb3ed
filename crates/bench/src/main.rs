//! `soci-bench`: the benchmark binary, kept apart from `soci` so the shipped
//! CLI does not link the benchmark, its shaping proxy or the registry launcher
//! (see docs/architecture.md, "The bench binary"). `soci bench …` runs it.
use clap::{Args, Parser, Subcommand};
use soci_bench::{Profile, StartupConfig};
use soci_index::size::{parse_size, parse_span_size};
use std::path::PathBuf;
use std::process::ExitCode;

/// Benchmarks: how much sooner a container starts with the SOCI index.
///
/// Also reachable as `soci bench …`, which runs this binary when it sits next
/// to `soci` or on PATH.
#[derive(Debug, Parser)]
#[command(name = "soci-bench", version, after_help = BENCH_HELP)]
struct Cli {
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long, global = true)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Full pull vs lazy start of images through a shaping proxy in front of a local
    /// registry (needs docker-registry and skopeo); prints time to ready, bytes and
    /// requests; writes startup.json/.svg/.md. Without SRC: the realistic images
    /// cached by scripts/bench-fixtures.py if any, else a generated demo image
    /// (2 layers of ~11 MiB, a trace reading a few percent of it). Data (local
    /// registry, stores, demo image, results) goes to $SOCI_BENCH_DATA, else
    /// $XDG_CACHE_HOME/soci-rs/bench (~/.cache/soci-rs/bench).
    #[command(after_help = BENCH_HELP)]
    Startup(BenchStartupArgs),
}

#[derive(Debug, Args)]
struct BenchStartupArgs {
    /// Images (any reference soci reads: oci:DIR[:TAG], docker-archive:FILE, HOST/REPO:TAG).
    src: Vec<String>,
    /// Startup trace(s): JSON (fixtures/traces) or one path per line; one for all SRC or one per SRC.
    #[arg(long)]
    trace: Vec<PathBuf>,
    /// Network profiles BANDWIDTH/RTT (repeatable).
    #[arg(long = "profile", default_values_t = ["100M/20ms".to_string(), "1G/2ms".to_string()])]
    profiles: Vec<String>,
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = parse_span_size)]
    span_size: u64,
    #[arg(long, default_value_t = 10 * 1024 * 1024, value_parser = parse_size)]
    min_layer_size: u64,
    /// Range requests in flight at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Span sizes to sweep (comma separated); empty for none.
    #[arg(long, value_delimiter = ',', value_parser = parse_span_size)]
    sweep_span_sizes: Vec<u64>,
    /// --min-layer-size values to sweep (comma separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sweep_min_layer_sizes: Vec<u64>,
    /// Where startup.json, startup.svg and startup.md go. Default: `results` in
    /// the data directory (see above).
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// Also start each image for real, beside the replay model: full pull +
    /// run, lazy mount + run, and lazy + the prefetch recorded by a first lazy
    /// run (`soci run --record`), timed to the workload's first stdout line
    /// (else its exit). Needs root, runc (else chroot) and `soci` beside
    /// soci-bench or on PATH.
    #[arg(long)]
    real_run: bool,
    /// Rounds of each real strategy per profile; the report gives the median
    /// and the range. With --real-run and no --trace, the model replays the
    /// trace the first lazy run recorded (its floor is then that of the byte
    /// ranges the workload read).
    #[arg(long, default_value_t = 1, requires = "real_run")]
    rounds: usize,
    /// The --real-run workload, after `--` (default: the image's Entrypoint + Cmd).
    #[arg(last = true, value_name = "CMD", requires = "real_run")]
    run_cmd: Vec<String>,
}

const BENCH_HELP: &str = "\
Examples:
  soci-bench startup
  soci bench startup oci:./app:1.0 --trace trace.json --profile 100M/20ms
  sudo soci bench startup oci:./py:1 --trace t.json --real-run -- python3 -c 'import numpy; print(1)'
  sudo soci bench startup oci:./py:1 --real-run --rounds 5 --profile 100M/20ms
  cargo bench --bench startup        (from a checkout: the same run, results under target/)

Exit codes:
  0  success
  1  error (bad input, I/O, registry, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument)";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match startup(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            }
            eprintln!("soci-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Entry point for `soci-bench startup` (and `soci bench startup`).
fn startup(cli: Cli) -> anyhow::Result<()> {
    let BenchCommand::Startup(a) = cli.command;
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
    cfg.verbose = !cli.quiet;
    if a.real_run {
        cfg.real_run = Some(soci_bench::RealRun {
            soci: soci_bench::RealRun::find_soci()?,
            cmd: a.run_cmd,
            rounds: a.rounds,
        });
    }
    cfg.command = std::env::args().collect::<Vec<_>>().join(" ");
    let r = soci_bench::startup(&cfg)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", soci_bench::report::text(&r));
        println!("results: {}/startup.{{json,svg,md}}", cfg.out_dir.display());
    }
    Ok(())
}

/// Where `soci-bench startup` keeps its data (registry, stores, the demo image,
/// results): $SOCI_BENCH_DATA, else $XDG_CACHE_HOME/soci-rs/bench, else
/// ~/.cache/soci-rs/bench, else a directory under the system's temp dir.
fn data_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("SOCI_BENCH_DATA") {
        return d.into();
    }
    let cache = env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".cache")));
    match cache {
        Some(c) => c.join("soci-rs/bench"),
        None => std::env::temp_dir().join("soci-rs-bench"),
    }
}
