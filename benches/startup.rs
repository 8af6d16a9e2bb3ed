//! `cargo bench --bench startup [-- OPTIONS]`: how much sooner a container starts
//! with a SOCI index than with a full pull, on realistic images and real startup
//! traces, through a shaping proxy (100 Mbit/s / 20 ms and 1 Gbit/s / 2 ms).
//!
//! Images: the cache built once by `sudo scripts/bench-fixtures.py` (needs the
//! Debian mirror and PyPI; everything afterwards is offline) under
//! target/bench-data/images; without it a small generated image is used. Traces:
//! fixtures/traces/*.json (committed). Results: a table on stdout and
//! target/bench-data/results/startup.{json,svg,md}.
//!
//! Options: --images debian,python,app,bigunused  --profiles 100M/20ms,1G/2ms
//!          --sweep (add the span-size and min-layer-size sweeps; ~8 min in all)
//!          --no-sweep (the default)  --span-size BYTES  --parallel N  --out DIR
//!          --real-run (as root: also full pull + run, lazy mount + run and lazy +
//!          recorded prefetch + run of each image's own command, with the `soci`
//!          cargo built; see `soci bench startup --help`; adds the `pyreal` image,
//!          the host's python + numpy, pandas, built on first use by
//!          `scripts/bench-fixtures.py --real-python`)  --rounds N (real runs)
use soci_bench::{Profile, StartupConfig};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return Ok(()); // cargo test --benches probing
    }
    let mut cfg = StartupConfig::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    // The default run stays within a few minutes: the sweeps are opt-in.
    let (span_sweep, min_layer_sweep) = (
        std::mem::take(&mut cfg.span_sweep),
        std::mem::take(&mut cfg.min_layer_sweep),
    );
    let mut it = args.iter().filter(|a| *a != "--bench");
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--images" => cfg.only = val()?.split(',').map(String::from).collect(),
            "--profiles" => {
                cfg.profiles = val()?
                    .split(',')
                    .map(Profile::parse)
                    .collect::<anyhow::Result<_>>()?
            }
            "--no-sweep" => {
                cfg.span_sweep.clear();
                cfg.min_layer_sweep.clear();
            }
            "--sweep" => {
                cfg.span_sweep = span_sweep.clone();
                cfg.min_layer_sweep = min_layer_sweep.clone();
            }
            "--span-size" => cfg.span_size = val()?.parse()?,
            "--parallel" => cfg.parallel = val()?.parse()?,
            "--out" => cfg.out_dir = PathBuf::from(val()?),
            "--real-run" => {
                cfg.real_run = Some(soci_bench::RealRun {
                    soci: PathBuf::from(env!("CARGO_BIN_EXE_soci")),
                    cmd: Vec::new(),
                    rounds: 1,
                })
            }
            "--rounds" => {
                let n = val()?.parse()?;
                match &mut cfg.real_run {
                    Some(r) => r.rounds = n,
                    None => anyhow::bail!("--rounds comes after --real-run"),
                }
            }
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    cfg.command = format!(
        "cargo bench --bench startup{}",
        if args.is_empty() {
            String::new()
        } else {
            format!(" -- {}", args.join(" "))
        }
    );
    if cfg.real_run.is_some() {
        // The real-run image is built on demand (PyPI once, then cached).
        let want = cfg.only.is_empty() || cfg.only.iter().any(|o| o == "pyreal");
        if want && !cfg.data_dir.join("images/pyreal/index.json").exists() {
            let status = std::process::Command::new("python3")
                .arg(cfg.repo_root.join("scripts/bench-fixtures.py"))
                .arg("--real-python")
                .arg("--data")
                .arg(&cfg.data_dir)
                .status()?;
            anyhow::ensure!(
                status.success(),
                "scripts/bench-fixtures.py --real-python failed"
            );
        }
    }
    let r = soci_bench::startup(&cfg)?;
    println!("{}", soci_bench::report::text(&r));
    println!("results: {}/startup.{{json,svg,md}}", cfg.out_dir.display());
    Ok(())
}
