//! Every command and flag, defined once, with the text that feeds `--help`.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  error (bad input, I/O, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument)
  3  `verify` found a mismatch";

/// Build SOCI (Seekable OCI) lazy-loading indexes, without a daemon.
///
/// A SOCI index lets a container runtime (AWS Fargate, containerd with the
/// soci-snapshotter) start a container before its image is downloaded, fetching
/// only the bytes it reads. `soci` builds the zTOCs (one per layer: a file table
/// and decompression checkpoints) and the index, byte-compatible with AWS's `soci`.
#[derive(Debug, Parser)]
#[command(name = "soci", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with zTOCs: the per-layer table of contents and checkpoints.
    #[command(subcommand, after_help = AFTER_HELP)]
    Ztoc(ZtocCommand),
}

#[derive(Debug, Subcommand)]
pub enum ZtocCommand {
    /// Build the zTOC of one layer blob (a .tar.gz or .tar file), in one pass.
    #[command(after_help = AFTER_HELP)]
    Build(ZtocBuildArgs),
    /// Print what a zTOC holds, as JSON (files, spans and their sizes).
    #[command(after_help = AFTER_HELP)]
    Info(ZtocInfoArgs),
    /// Extract one file of a layer through its zTOC: only the spans that hold the
    /// file are decompressed, starting at the nearest checkpoint.
    #[command(name = "get-file", after_help = AFTER_HELP)]
    GetFile(ZtocGetFileArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CompressionArg {
    /// Guess from the blob's first bytes (gzip magic, else tar).
    Auto,
    Gzip,
    /// A plain, uncompressed tar.
    Tar,
}

#[derive(Debug, Args)]
pub struct ZtocBuildArgs {
    /// The layer blob: a gzip-compressed or an uncompressed tar.
    pub layer: PathBuf,
    /// Where to write the zTOC; `-` for stdout. Default: LAYER.ztoc
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Uncompressed bytes between checkpoints (gzip) or span length (tar).
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = parse_span_size)]
    pub span_size: u64,
    /// The build tool identifier written into the zTOC.
    #[arg(long, default_value_t = soci_ztoc::build::default_build_tool_identifier())]
    pub build_tool_identifier: String,
    /// How the layer is compressed.
    #[arg(long, value_enum, default_value_t = CompressionArg::Auto)]
    pub compression: CompressionArg,
}

#[derive(Debug, Args)]
pub struct ZtocInfoArgs {
    /// A zTOC file.
    pub ztoc: PathBuf,
}

#[derive(Debug, Args)]
pub struct ZtocGetFileArgs {
    /// A zTOC file.
    pub ztoc: PathBuf,
    /// The layer blob the zTOC was built from.
    pub layer: PathBuf,
    /// The file's name exactly as stored in the layer (e.g. `etc/passwd`, `./app`).
    pub path: String,
    /// Write the file here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Parses a span size: plain bytes or with a KiB/MiB suffix (`65536`, `64KiB`, `4MiB`).
pub fn parse_span_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("MiB") {
        (n, 1u64 << 20)
    } else if let Some(n) = t.strip_suffix("KiB") {
        (n, 1u64 << 10)
    } else {
        (t, 1)
    };
    let v: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size in bytes (e.g. 4194304 or 4MiB)"))?;
    let v = v.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))?;
    if v == 0 {
        return Err("the span size must be greater than 0".into());
    }
    Ok(v)
}
