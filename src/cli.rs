//! Every command and flag, defined once, with the text that feeds `--help`.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  error (bad input, I/O, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument, a bad SOCI_REGISTRY_* value)
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
    /// Build the zTOCs and the SOCI index of an image; with --push or --dest,
    /// put them next to the image.
    #[command(after_help = CREATE_HELP)]
    Create(CreateArgs),
    /// Make a SOCI-enabled image (index manifest v2) at DST: the image plus its
    /// SOCI index, as one image index. Same as `create SRC --dest DST`.
    #[command(after_help = CONVERT_HELP)]
    Convert(ConvertArgs),
    /// Push the SOCI index that `create` left in the local store next to the image.
    #[command(after_help = AFTER_HELP)]
    Push(PushArgs),
    /// Prove an image's SOCI index works: every zTOC decodes, belongs to a layer of
    /// the image, and matches the layer (checkpoints, span digests, file table).
    /// Reads each layer once. Exit code 3 when something does not match.
    #[command(after_help = AFTER_HELP)]
    Verify(VerifyArgs),
    /// SOCI indexes in the local store.
    #[command(subcommand, after_help = AFTER_HELP)]
    Index(IndexCommand),
    /// Work with zTOCs: the per-layer table of contents and checkpoints.
    #[command(subcommand, after_help = AFTER_HELP)]
    Ztoc(ZtocCommand),
    /// Benchmarks: how much sooner a container starts with the SOCI index.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Full pull vs lazy start of images through a shaping proxy in front of a local
    /// registry (needs docker-registry and skopeo); prints time to ready, bytes and
    /// requests; writes startup.json/.svg/.md. Without SRC: the cached fixture images
    /// (scripts/bench-fixtures.py) and fixtures/traces.
    Startup(BenchStartupArgs),
}

#[derive(Debug, Args)]
pub struct BenchStartupArgs {
    /// Images (any reference soci reads: oci:DIR[:TAG], docker-archive:FILE, HOST/REPO:TAG).
    pub src: Vec<String>,
    /// Startup trace(s): JSON (fixtures/traces) or one path per line; one for all SRC or one per SRC.
    #[arg(long)]
    pub trace: Vec<PathBuf>,
    /// Network profiles BANDWIDTH/RTT (repeatable).
    #[arg(long = "profile", default_values_t = ["100M/20ms".to_string(), "1G/2ms".to_string()])]
    pub profiles: Vec<String>,
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = parse_span_size)]
    pub span_size: u64,
    #[arg(long, default_value_t = 10 * 1024 * 1024, value_parser = parse_size)]
    pub min_layer_size: u64,
    /// Range requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Span sizes to sweep (comma separated); empty for none.
    #[arg(long, value_delimiter = ',', value_parser = parse_span_size)]
    pub sweep_span_sizes: Vec<u64>,
    /// --min-layer-size values to sweep (comma separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    pub sweep_min_layer_sizes: Vec<u64>,
    /// Where startup.json, startup.svg and startup.md go.
    #[arg(long, short = 'o', default_value = "soci-bench-results")]
    pub out: PathBuf,
}

const CREATE_HELP: &str = "\
Image references:
  docker://HOST/REPO:TAG, HOST/REPO[:TAG|@DIGEST]   an image in a registry
  oci:DIR[:TAG]                                     an OCI image layout
  docker-archive:FILE                               a `docker save` archive (with --dest, its
                                                    plain-tar layers are gzipped, deterministically,
                                                    and indexed in the same pass)

Copying to DST: each layer read for its zTOC is uploaded in the same pass; the other
blobs go 4 at a time; each streamed (bounded memory);
blobs already at DST are skipped; into another repository of the same registry they
are mounted, not copied; an upload that fails on a reset or a 408/429/5xx starts over.

Examples:
  soci create --plain-http 127.0.0.1:5000/app:1.0 --push
  soci create oci:./image:latest --dest oci:./image-soci:latest
  soci create --index-version v1 registry.example.com/app:1.0 --push
  soci create docker-archive:app.tar --dest registry.example.com/app:1.0

Exit codes:
  0  success
  1  error (bad input, I/O, registry, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument, a bad SOCI_REGISTRY_* value)
  3  `--verify` found a mismatch";

const CONVERT_HELP: &str = "\
Copying to DST: each layer read for its zTOC is uploaded in the same pass; the other
blobs go 4 at a time; each streamed (bounded memory);
blobs already at DST are skipped; into another repository of the same registry they
are mounted, not copied; an upload that fails on a reset or a 408/429/5xx starts over.

Examples:
  soci convert registry.example.com/app:1.0 registry.example.com/app:1.0-soci
  soci convert --plain-http oci:./image:latest 127.0.0.1:5000/app:soci
  soci convert docker-archive:app.tar oci:./app-soci:latest

Exit codes:
  0  success
  1  error (bad input, I/O, registry, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument, a bad SOCI_REGISTRY_* value)";

/// How to reach registries and which platforms to use.
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    /// Platform to use, os/arch[/variant] (repeatable). Default: the host's; a
    /// single-platform image is used whatever its platform.
    #[arg(long, short = 'p', value_name = "PLATFORM")]
    pub platform: Vec<String>,
    /// Use every platform of a multi-platform image.
    #[arg(long, conflicts_with = "platform")]
    pub all_platforms: bool,
    /// Talk plain HTTP to the registry (local registries).
    #[arg(long)]
    pub plain_http: bool,
    /// Trust this extra CA certificate (PEM) for registry TLS.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Registry user name (password from --password-stdin). Default: what Docker
    /// would use from $DOCKER_CONFIG/config.json (credHelpers, auths, credsStore;
    /// helpers are the docker-credential-NAME programs on PATH), else anonymous.
    #[arg(long, short = 'u')]
    pub username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// The local store (an OCI image layout plus an artifacts database).
    /// Default: $XDG_DATA_HOME/soci-rs or ~/.local/share/soci-rs.
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
    /// Layers processed at the same time. Default: the number of CPUs.
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum IndexVersionArg {
    /// Index manifest v2: linked from a SOCI-enabled image index (Fargate, current snapshotters).
    V2,
    /// Legacy index manifest v1: found through the referrers API / fallback tag.
    V1,
}

/// What to build (the reference's build flags).
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Uncompressed bytes between checkpoints.
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = parse_span_size)]
    pub span_size: u64,
    /// Layers smaller than this (compressed bytes) get no zTOC and are pulled whole.
    #[arg(long, default_value_t = 10 * 1024 * 1024, value_parser = parse_size)]
    pub min_layer_size: u64,
    /// Optimisations: `xattr` marks layers without extended attributes so the
    /// snapshotter skips xattr lookups.
    #[arg(long, value_parser = ["xattr"])]
    pub optimizations: Vec<String>,
    /// A file to prefetch when the container starts (repeatable).
    #[arg(long, value_name = "PATH")]
    pub prefetch_file: Vec<String>,
    /// A JSON file with an array of paths to prefetch.
    #[arg(long, value_name = "FILE")]
    pub prefetch_files_json: Option<PathBuf>,
    /// Rebuild zTOCs even when the local store has them.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// SOCI index manifest version.
    #[arg(long, value_enum, default_value_t = IndexVersionArg::V2)]
    pub index_version: IndexVersionArg,
    /// The build tool identifier written into zTOCs and the index.
    #[arg(long, default_value = "AWS SOCI CLI v0.2")]
    pub build_tool_identifier: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The image to index.
    pub source: String,
    /// Push the result next to the image in its registry (v2: re-tag the image as
    /// a SOCI-enabled image index; v1: referrers).
    #[arg(long, conflicts_with = "dest")]
    pub push: bool,
    /// Put the SOCI-enabled image here (a registry tag or oci:DIR[:TAG]).
    #[arg(long, value_name = "DST")]
    pub dest: Option<String>,
    /// Verify the index against the image right after building it.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub image: ImageArgs,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The image: docker://HOST/REPO:TAG, HOST/REPO[:TAG|@DIGEST], oci:DIR[:TAG]
    /// or docker-archive:FILE.
    pub source: String,
    /// A tagged registry reference or oci:DIR[:TAG].
    pub dest: String,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub image: ImageArgs,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image whose index `create` left in the local store (same reference).
    pub source: String,
    /// Where to push (default: the source's tag).
    #[arg(long, value_name = "DST")]
    pub dest: Option<String>,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub image: ImageArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The (SOCI-enabled) image to check.
    pub source: String,
    #[command(flatten)]
    pub image: ImageArgs,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// List the SOCI indexes in the local store.
    #[command(alias = "ls")]
    List(IndexListArgs),
    /// Print a SOCI index manifest from the local store.
    Info(IndexInfoArgs),
    /// Remove SOCI indexes from the local store (zTOCs still used by another
    /// index are kept).
    #[command(alias = "remove")]
    Rm(IndexRmArgs),
}

#[derive(Debug, Args)]
pub struct IndexListArgs {
    /// Only indexes built for this image reference.
    #[arg(long = "ref")]
    pub image_ref: Option<String>,
    /// Only digests.
    #[arg(long)]
    pub digests_only: bool,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IndexInfoArgs {
    pub digest: String,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IndexRmArgs {
    pub digests: Vec<String>,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ZtocCommand {
    /// Build the zTOC of one layer blob (a .tar.gz or .tar file), in one pass.
    #[command(after_help = AFTER_HELP)]
    Build(ZtocBuildArgs),
    /// List the zTOCs in the local store.
    #[command(alias = "ls", after_help = AFTER_HELP)]
    List(ZtocListArgs),
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
pub struct ZtocListArgs {
    /// Only the zTOC of this layer.
    #[arg(long)]
    pub layer_digest: Option<String>,
    /// Only digests.
    #[arg(long)]
    pub digests_only: bool,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ZtocInfoArgs {
    /// A zTOC file, or the digest of a zTOC in the local store.
    pub ztoc: String,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "soci ztoc get-file ZTOC LAYER_BLOB PATH [-o FILE]\n       soci ztoc get-file ZTOC PATH --image SRC [-o FILE]"
)]
pub struct ZtocGetFileArgs {
    /// A zTOC file, or the digest of a zTOC in the local store.
    pub ztoc: String,
    /// The layer blob file, then the file's name exactly as stored in the layer
    /// (e.g. `etc/passwd`, `./app`); with --image only the name.
    #[arg(num_args = 1..=2, required = true, value_name = "LAYER_BLOB PATH")]
    pub rest: Vec<String>,
    /// Read the layer from this image instead of a file, fetching only the spans
    /// that hold the file (HTTP range requests for registries).
    #[arg(long, value_name = "SRC")]
    pub image: Option<String>,
    /// Write the file here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub image_args: ImageArgs,
}

/// Parses a size in bytes with an optional KiB/MiB suffix (0 allowed).
pub fn parse_size(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    parse_span_size(s)
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
    let v = v
        .checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if v == 0 {
        return Err("the span size must be greater than 0".into());
    }
    Ok(v)
}
