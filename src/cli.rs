//! Every command and flag, defined once, with the text that feeds `--help`.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The exit codes of a command that works on local files only (no registry, no
/// verify): the end of its `--help`, written once.
macro_rules! local_exit_codes {
    () => {
        "Exit codes:
  0  success
  1  error (bad input, I/O, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument)"
    };
}

/// Build SOCI (Seekable OCI) lazy-loading indexes, without a daemon.
///
/// A SOCI index lets a container runtime (AWS Fargate, containerd with the
/// soci-snapshotter) start a container before its image is downloaded, fetching
/// only the bytes it reads. `soci` builds the zTOCs (one per layer: a file table
/// and decompression checkpoints) and the index, byte-compatible with AWS's `soci`.
#[derive(Debug, Parser)]
#[command(name = "soci", version, after_help = ROOT_HELP, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars. On list commands (`index list`, `ztoc list`,
    /// `prefetch list`): print digests only, one per line, as the reference's `-q`.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build the zTOCs and the SOCI index of an image; with --push or --dest,
    /// put them next to the image.
    #[command(after_help = CREATE_HELP)]
    Create(CreateArgs),
    /// Make a SOCI-enabled image (index manifest v2) at DST: the image plus its
    /// SOCI index, as one image index. Same as `create SRC --dest DST`.
    #[command(after_help = CONVERT_HELP)]
    Convert(ConvertArgs),
    /// Push the SOCI index that `create` left in the local store next to the
    /// image, as stored: nothing is rebuilt.
    #[command(after_help = PUSH_HELP)]
    Push(PushArgs),
    /// Prove an image's SOCI index works: every zTOC decodes, belongs to a layer of
    /// the image, and matches the layer (checkpoints, span digests, file table).
    /// Reads each layer once. Exit code 3 when something does not match.
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// SOCI indexes in the local store.
    #[command(subcommand, after_help = INDEX_HELP)]
    Index(IndexCommand),
    /// Work with zTOCs: the per-layer table of contents and checkpoints.
    #[command(subcommand, after_help = ZTOC_HELP)]
    Ztoc(ZtocCommand),
    /// Benchmarks: how much sooner a container starts with the SOCI index.
    ///
    /// Runs the separate `soci-bench` binary (next to `soci`, else on PATH).
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// Prefetch artifacts in the local store (the spans a runtime fetches
    /// eagerly, from --prefetch-file).
    #[command(subcommand, after_help = PREFETCH_HELP)]
    Prefetch(PrefetchCommand),
    /// Run an image as a container (needs root): its root filesystem mounted
    /// lazily through its SOCI index (`soci mount`), or pulled in full with
    /// --full, under a writable overlayfs layer; started with runc, else chroot.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Internal: the chroot runtime's container init (started by `soci run`).
    #[command(name = "run-init", hide = true, after_help = RUN_INIT_HELP)]
    RunInit(RunInitArgs),
    /// Mount an image's root filesystem read-only, served lazily through FUSE
    /// from its SOCI index: listing and stat fetch nothing, a read fetches
    /// only the spans that hold it. Runs in the foreground: prints `mounted
    /// MOUNTPOINT` once the mount answers, serves until SIGINT/SIGTERM or an
    /// unmount from outside (`fusermount3 -u`), then unmounts and prints what
    /// it fetched. Needs /dev/fuse and fusermount3 (Debian package fuse3).
    #[command(after_help = MOUNT_HELP)]
    Mount(MountArgs),
    /// Find the SOCI indexes a registry repository keeps for images it no
    /// longer has (v1 indexes in referrers fallback tags), and with --delete
    /// remove them. A dry run by default.
    #[command(after_help = GC_HELP)]
    Gc(GcArgs),
}

const MOUNT_HELP: &str = "\
Examples:
  soci mount --plain-http 127.0.0.1:5000/app:1.0 /mnt/app
  soci mount oci:./layout:1.0 /mnt/app --cache-dir ~/.cache/soci --cache-size 4096MiB
  soci mount registry.example.com/app:1.0 /mnt/app --background-fetch --record reads.json
  fusermount3 -u /mnt/app        (from another shell: unmounts, and the command exits 0)

The image must have a SOCI index (v2 or v1, in the registry or the local
store). Layers without a zTOC are fetched whole when the mount starts. A read
that cannot be served within the registry retry budget (--timeout, default
120 s here) fails with EIO; other files keep working. The mount goes away with
the process, even when it is killed (fusermount3's auto-unmount).

Output: `mounted MOUNTPOINT` once, then at the end one line of statistics
(with --json: {\"event\":\"mounted\",...} and {\"event\":\"unmounted\",...}).

Exit codes:
  0  unmounted cleanly (signal or external unmount)
  1  error (no index, no /dev/fuse, mount refused, registry); one line on stderr says what
  2  wrong usage (unknown flag, missing argument)";

#[derive(Debug, Args)]
pub(crate) struct MountArgs {
    /// The (SOCI-indexed) image to mount.
    pub source: String,
    /// An existing directory to mount it on.
    pub mountpoint: PathBuf,
    /// Directory of the on-disk span cache, kept across mounts. Default: a
    /// temporary directory removed at unmount.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Bound of the on-disk span cache; memory holds at most 256 MiB of spans
    /// (less when this is smaller). Local copies of layers without a zTOC are
    /// not counted.
    #[arg(long, value_name = "SIZE", default_value = "1024MiB", value_parser = parse_size)]
    pub cache_size: u64,
    /// After the prefetch artifacts' spans, fetch the rest of every layer in
    /// the background (as the snapshotter's background fetcher).
    #[arg(long)]
    pub background_fetch: bool,
    /// After a read waited for a span to be fetched, fetch this many of the
    /// spans that follow it in its layer in the background, while the program
    /// works on what it got (the files it reads next mostly lie further on in
    /// the same layer). Costs a few percent more bytes; 0 turns it off.
    #[arg(
        long,
        value_name = "SPANS",
        default_value_t = 1,
        env = "SOCI_READ_AHEAD"
    )]
    pub read_ahead: u64,
    /// At unmount, write the files read through the mount and their byte
    /// ranges, in first-read order (the trace JSON of `soci bench startup
    /// --trace`: image, command, files with path, size and ranges).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub image: ImageArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// The repository, HOST/REPO (a tag or digest, if given, is ignored).
    #[arg(value_name = "REPO")]
    pub repository: String,
    /// Delete what is found (DELETE of the index manifests; the fallback tag
    /// rewritten without their entries, or deleted when nothing else is in
    /// it). Without it nothing is changed.
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How to reach a registry: part of [`ImageArgs`], and alone for commands
/// that talk to one repository and build nothing (`gc`).
#[derive(Debug, Clone, Args)]
pub(crate) struct RegistryArgs {
    /// Talk plain HTTP (local registries): bare, to every registry of the
    /// command; `--plain-http=HOST[:PORT][,…]` (as in the image reference),
    /// only to those. Credentials go in plain HTTP only to loopback hosts and
    /// to hosts named here.
    #[arg(
        long,
        value_name = "HOST[:PORT]",
        num_args = 0..=1,
        require_equals = true,
        value_delimiter = ','
    )]
    pub plain_http: Option<Vec<String>>,
    /// Trust this extra CA certificate (PEM) for registry TLS.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Do not verify registries' TLS certificates (prints a warning). Anyone
    /// on the network path can then read and alter the traffic.
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Client certificate (PEM) for registries that require one; with --tlskey.
    /// Presented on every registry request, uploads and token requests included.
    #[arg(long, value_name = "FILE", requires = "tlskey")]
    pub tlscert: Option<PathBuf>,
    /// Private key (PEM) of --tlscert.
    #[arg(long, value_name = "FILE", requires = "tlscert")]
    pub tlskey: Option<PathBuf>,
    /// Overall limit in seconds for one registry request (a whole blob
    /// download or upload, the token exchange included), retries included
    /// (default: $SOCI_REGISTRY_TIMEOUT, else 3600; see also
    /// SOCI_REGISTRY_STALL_TIMEOUT and SOCI_REGISTRY_RETRIES).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
    /// Print each HTTP exchange with registries on stderr (the /v2/
    /// challenge, token requests, manifests, blobs, ranges, HEADs, uploads,
    /// mounts, referrers: method, URL, status, headers; credentials, tokens,
    /// cookies and URL queries shown as <redacted>).
    #[arg(long, visible_alias = "debug")]
    pub http_dump: bool,
    /// Registry credentials, USER:PASSWORD or USER with --password-stdin, for
    /// ONE registry: the destination of `convert`, `create --dest/--push` and
    /// `push`; the image's registry for the other commands. Never sent to
    /// another registry, and only when that registry asks (a 401 challenge).
    /// Default: what Docker would use from $DOCKER_CONFIG/config.json
    /// (credHelpers, auths, credsStore; helpers are the docker-credential-NAME
    /// programs in PATH's absolute directories), else anonymous.
    #[arg(
        long = "user",
        short = 'u',
        visible_alias = "username",
        value_name = "USER[:PASSWORD]"
    )]
    pub username: Option<String>,
    /// Read the password of -u/--user from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

impl RegistryArgs {
    /// The same settings as [`ImageArgs`] (the rest at their defaults), so
    /// one function turns them into registry options.
    pub(crate) fn to_image_args(&self) -> ImageArgs {
        // ImageArgs at its defaults (whatever fields it gains), then ours.
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            image: ImageArgs,
        }
        let mut a = Defaults::try_parse_from(["soci"])
            .expect("every ImageArgs flag has a default")
            .image;
        a.registry = self.clone();
        a
    }
}

const GC_HELP: &str = "\
What gc covers: v1 SOCI index manifests listed in a referrers fallback tag
(sha256-<hex>) whose image manifest (sha256:<hex>) is gone from the repository,
and those fallback tags (other tools' entries, e.g. signatures, are kept). Not
v2: a v2 SOCI index lives inside the SOCI-enabled image index, so it goes with
its image (the registry's garbage collection of untagged manifests removes it).
Not v1 indexes found only through a registry's referrers API: a deleted image's
digest is in no tag, so nothing leads to them (such registries clean up
referrers themselves). An image still there, even untagged, keeps its indexes.

Examples:
  soci gc registry.example.com/app                  (dry run: what would go)
  soci gc registry.example.com/app --delete
  soci --json gc --plain-http 127.0.0.1:5000/app --delete

Exit codes:
  0  success (also: nothing found)
  1  error (bad input, registry, a registry that does not allow deletes)
  2  wrong usage (unknown flag, missing argument)";

/// `soci run --runtime`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum RuntimeArg {
    /// runc when it is on PATH, else chroot.
    Auto,
    /// runc (an OCI runtime bundle); an error where it is not installed.
    Runc,
    /// chroot + new pid, mount, ipc and uts namespaces, even where runc is installed.
    Chroot,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The image: a registry reference, oci:DIR[:TAG], oci-archive:FILE[:TAG].
    pub source: String,
    /// The command and its arguments, after `--`: replaces the image's Cmd
    /// (its Entrypoint stays, as with `docker run`; see --entrypoint).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
    /// Pull every layer and unpack it in full before starting (the baseline a
    /// lazy start is measured against), instead of mounting it lazily.
    #[arg(long)]
    pub full: bool,
    /// Use DIR as the image's root filesystem instead of pulling or mounting
    /// it: typically a `soci mount` of the same image kept up between runs (as
    /// a snapshotter keeps its mounts, so the kernel's page cache stays warm).
    /// The image's config still comes from SOURCE; DIR is left as it is.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["full", "record", "cache_dir", "background_fetch", "read_ahead"])]
    pub rootfs: Option<PathBuf>,
    /// The lazy mount's read-ahead (`soci mount --read-ahead`).
    #[arg(long, value_name = "SPANS", conflicts_with = "full")]
    pub read_ahead: Option<u64>,
    /// Write what the workload read through the lazy mount to FILE: the files
    /// in first-read order with their byte ranges, as JSON that `soci create
    /// --prefetch-files-json` and `soci bench startup --trace` accept.
    #[arg(long, value_name = "FILE", conflicts_with = "full")]
    pub record: Option<PathBuf>,
    /// Which runtime starts the container.
    #[arg(long, value_enum, default_value_t = RuntimeArg::Auto)]
    pub runtime: RuntimeArg,
    /// Replace the image's Entrypoint with this program (`''`: no entrypoint,
    /// CMD alone).
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
    /// The lazy mount's span cache directory (`soci mount --cache-dir`).
    #[arg(long, value_name = "DIR", conflicts_with = "full")]
    pub cache_dir: Option<PathBuf>,
    /// Let the lazy mount fetch the rest of each layer in the background
    /// (`soci mount --background-fetch`).
    #[arg(long, conflicts_with = "full")]
    pub background_fetch: bool,
    /// Keep the writable layer (overlayfs upper directory) in DIR, to see
    /// what the container wrote; by default it is temporary.
    #[arg(long, value_name = "DIR")]
    pub upper: Option<PathBuf>,
    /// Where the run's temporary directory (unpacked layers, mount points,
    /// the bundle) goes. Default: $TMPDIR, else /tmp.
    #[arg(long, value_name = "DIR")]
    pub tmp_dir: Option<PathBuf>,
    /// Give the container this terminal's standard input (default: /dev/null).
    #[arg(long, short = 'i')]
    pub interactive: bool,
    #[command(flatten)]
    pub image: ImageArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RunInitArgs {
    /// Run stage 2 (PID 1 of the container: /proc, chroot, user, exec).
    #[arg(long)]
    pub stage2: bool,
    /// The bundle's config.json.
    pub config: PathBuf,
}

const RUN_HELP: &str = "\
Root filesystem: lazy by default (a `soci mount` child process on a temporary
directory: only what the workload reads is fetched), or --full (every layer pulled,
digest-checked and unpacked, whiteouts applied), or --rootfs DIR (one already there,
e.g. a `soci mount` kept up between runs). Over it, a writable overlayfs layer in a
temporary directory (--upper keeps it). The process is the image's Entrypoint + Cmd
(or CMD), with its Env, WorkingDir and User (resolved in the image's /etc/passwd and
/etc/group); copies of the host's /etc/resolv.conf and /etc/hosts and an /etc/hostname
are bound over the image's, as Docker does. Runtime: runc with an OCI bundle (new pid, mount, ipc and uts
namespaces; the host's network), else chroot + the same namespaces (weaker: no
capability bounding, seccomp or cgroups); stderr says which ran. Every mount and
temporary directory is removed at the end, also after an error, SIGINT or SIGTERM
(the signal goes to the container, which is killed 3 s later if still running).

Output: the workload's stdout and stderr; then on stderr the time to the root
filesystem, to the workload's first stdout line and to its exit, and the bytes
fetched (with --json: one JSON object, the last line on stdout).

Examples:
  soci run --plain-http 127.0.0.1:5000/app:1.0-soci
  soci run registry.example.com/python:3.12-soci -- python3 -c 'import numpy; print(1)'
  soci run --full registry.example.com/python:3.12 -- python3 -c 'import numpy; print(1)'
  soci run --record startup.json registry.example.com/app:1.0-soci
  soci create registry.example.com/app:1.0 --prefetch-files-json startup.json --push
  soci run --runtime chroot --upper ./writes oci:./image:latest -- sh -c 'echo hi > /x'
  soci mount --plain-http 127.0.0.1:5000/app:1.0-soci /mnt/app &   # kept up between runs
  soci run --plain-http 127.0.0.1:5000/app:1.0-soci --rootfs /mnt/app

Exit codes:
  the workload's exit code (128+N when signal N ended it)
  1  error before the workload ran (bad input, I/O, registry, not root); one line on
     stderr says what and where
  2  wrong usage (unknown flag, missing argument)";

const RUN_INIT_HELP: &str = "\
Started by `soci run --runtime chroot` with the bundle's config.json; not for direct use.

Examples:
  soci run-init /tmp/soci-run-x/bundle/config.json

Exit codes:
  the workload's exit code
  1  the container could not be set up";

#[derive(Debug, Subcommand)]
pub(crate) enum PrefetchCommand {
    /// List the prefetch artifacts in the local store (of one SOCI index with --index).
    #[command(alias = "ls", after_help = PREFETCH_LIST_HELP)]
    List(PrefetchListArgs),
    /// Show one prefetch artifact: its layer and span ranges.
    #[command(after_help = PREFETCH_INFO_HELP)]
    Info(PrefetchInfoArgs),
}

const PREFETCH_LIST_HELP: &str = concat!(
    "\
Examples:
  soci prefetch list
  soci prefetch list --index sha256:3b1f…   (the prefetch artifacts of one SOCI index)
  soci prefetch list -q                     (digests only)

",
    local_exit_codes!()
);

const PREFETCH_INFO_HELP: &str = concat!(
    "\
Examples:
  soci prefetch info sha256:9c0e…
  soci --json prefetch info sha256:9c0e…

",
    local_exit_codes!()
);

#[derive(Debug, Args)]
pub(crate) struct PrefetchListArgs {
    /// Only the prefetch artifacts that this SOCI index references.
    #[arg(long, value_name = "DIGEST")]
    pub index: Option<String>,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PrefetchInfoArgs {
    /// The digest of a prefetch artifact in the local store.
    pub digest: String,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

/// `soci bench` passes everything after `bench` to `soci-bench`, which defines
/// the benchmarks and their flags: the `soci` binary does not link them.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The benchmark (`startup`) and its options; `soci bench startup --help` lists them.
    #[arg(
        value_name = "BENCHMARK [OPTIONS]",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

const CREATE_HELP: &str = "\
Image references:
  docker://HOST/REPO:TAG, HOST/REPO[:TAG|@DIGEST]   an image in a registry
  oci:DIR[:TAG]                                     an OCI image layout
  oci-archive:FILE[:TAG]                            an OCI image layout in a tar file (as
                                                    skopeo and podman write it)
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
  soci create oci:./image:latest --min-layer-size 0 --verify
  soci create registry.example.com/ml:1.0 --push --max-uncompressed-size 200GiB --max-files 10000000
  soci create registry.example.com/app:1.0 --push -u ci:$PW
  soci create --push registry.example.com/app:1.0 registry.example.com/api:2.3
  soci create --push --from-file images.txt --max-images 4
  soci create --push --from-file images.txt --shard \"$JOB_COMPLETION_INDEX/8\"
  soci create --from-file images.txt --shard 1/4 --list   (this shard's images; nothing built)
  soci create registry.example.com/app:1.0 --push --prefetch-files-json startup.json
                                  (startup.json from `soci run --record`: only the spans read)

Several images (more than one SRC, --from-file, or --shard): each is indexed as
alone, --max-images at a time; a layer shared by images being indexed at once is
built once. Each image's index goes next to it (--push) or to the local store;
--dest takes one image only. Output: one line per image, then a summary (with
--json, one JSON object per line, the summary last). Exit code 1 if any image
failed (the others are still indexed; the summary names the failed ones).
  soci create registry.example.com/app:1.1 --push --cache-from registry.example.com/base:3
                                  (CI: base layers' zTOCs come from the base image's SOCI index)

zTOC cache: before building a layer's zTOC, the local store, then the SOCI indexes of
the source image, of the destination (the version --push/--dest replaces) and of each
--cache-from image are searched for one of the same layer, span size and build tool;
it is fetched (digest-checked), decoded and checked against the layer's size, span size,
compression and build tool, else refused with a warning and the layer built. The result
is byte-identical to a build. A registry destination that already has this index (same
platforms, index version, span size, build tool, min layer size; no --prefetch-file or
--optimizations) is left as it is: \"already indexed\", exit 0, no layer read.
--force rebuilds everything; --no-cache keeps to the local store.

Credentials: -u/--user is the destination's (--dest, --push), else the source's;
--src-user gives the source's when it differs from the destination.

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
  echo \"$PW\" | soci convert src.example.com/app:1.0 dst.example.com/app:1.0 -u ci --password-stdin
  soci convert --src-user bob:$SRC_PW src.example.com/app:1.0 dst.example.com/app:1.0 -u ci:$DST_PW

Credentials: -u/--user is the destination's, --src-user the source's; each is sent
only to its registry, after that registry asks for it (a 401 challenge).

Exit codes:
  0  success
  1  error (bad input, I/O, registry, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument, a bad SOCI_REGISTRY_* value)";

/// How to reach registries and which platforms to use.
#[derive(Debug, Clone, Args)]
pub(crate) struct ImageArgs {
    /// Platform to use, os/arch[/variant] (repeatable). Default: the host's; a
    /// single-platform image is used whatever its platform.
    #[arg(long, short = 'p', value_name = "PLATFORM")]
    pub platform: Vec<String>,
    /// Use every platform of a multi-platform image.
    #[arg(long, conflicts_with = "platform")]
    pub all_platforms: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Credentials for the source registry when it differs from the
    /// destination (convert, create --dest), USER:PASSWORD or USER with
    /// --src-password-stdin.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub src_user: Option<String>,
    /// Read the password of --src-user from standard input.
    #[arg(long, requires = "src_user", conflicts_with = "password_stdin")]
    pub src_password_stdin: bool,
    /// The registry host -u/--user belongs to (set by the command, not a flag).
    #[arg(skip)]
    pub user_registry: Option<String>,
    /// The registry host --src-user belongs to (set by the command, not a flag).
    #[arg(skip)]
    pub src_registry: Option<String>,
    /// The local store (an OCI image layout plus an artifacts database).
    /// Default: $XDG_DATA_HOME/soci-rs or ~/.local/share/soci-rs.
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
    /// Layers processed at the same time. Default: the number of CPUs.
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum IndexVersionArg {
    /// Index manifest v2: linked from a SOCI-enabled image index (Fargate, current snapshotters).
    V2,
    /// Legacy index manifest v1: found through the referrers API / fallback tag.
    V1,
}

/// What to build (the reference's build flags).
#[derive(Debug, Clone, Args)]
pub(crate) struct BuildArgs {
    /// Uncompressed bytes between checkpoints.
    #[arg(long, default_value_t = soci_ztoc::build::DEFAULT_SPAN_SIZE, value_parser = parse_span_size)]
    pub span_size: u64,
    /// Layers smaller than this (compressed bytes) get no zTOC and are pulled whole.
    #[arg(long, default_value_t = soci_image::DEFAULT_MIN_LAYER_SIZE, value_parser = parse_size)]
    pub min_layer_size: u64,
    /// Optimisations: `xattr` marks layers without extended attributes so the
    /// snapshotter skips xattr lookups.
    #[arg(long, value_parser = [soci_index::XATTR_OPTIMIZATION])]
    pub optimizations: Vec<String>,
    /// A file to prefetch when the container starts (repeatable).
    #[arg(long, value_name = "PATH")]
    pub prefetch_file: Vec<String>,
    /// A JSON file with the paths to prefetch: an array of paths (whole
    /// files, as the Go CLI), or the trace `soci run --record FILE` writes.
    /// From the trace, a file with `ranges` gets only the spans holding the
    /// bytes read; one without gets the whole file (docs/format.md §6.2).
    #[arg(long, value_name = "FILE")]
    pub prefetch_files_json: Option<PathBuf>,
    /// Rebuild every zTOC: do not reuse one from the local store or a
    /// registry, and publish even when the destination is already indexed.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// SOCI index manifest version.
    #[arg(long, value_enum, default_value_t = IndexVersionArg::V2)]
    pub index_version: IndexVersionArg,
    /// The build tool identifier written into zTOCs and the index. The default is
    /// the reference CLI's, so the zTOCs and index match its bytes.
    #[arg(long, default_value = soci_ztoc::build::DEFAULT_BUILD_TOOL_IDENTIFIER)]
    pub build_tool_identifier: String,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Where `create` and `convert` may find zTOCs already built.
#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    /// Also look for layers' zTOCs in the SOCI index of this image (repeatable),
    /// e.g. the base image's: a zTOC of the same layer, span size and build
    /// tool is fetched and checked instead of downloading the layer. The
    /// source's own SOCI index and the one at the destination are always looked at.
    #[arg(long, value_name = "REF")]
    pub cache_from: Vec<String>,
    /// Reuse no zTOC from a registry (the source's, the destination's or
    /// --cache-from's SOCI indexes), and do not take an already indexed
    /// destination for a no-op; the local store is still used (--force skips it too).
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The image(s) to index. Several SRCs (or --from-file) index each one,
    /// --max-images at a time, with one result line per image.
    #[arg(value_name = "SRC", required_unless_present = "from_file")]
    pub sources: Vec<String>,
    /// Push the result next to the image in its registry (v2: re-tag the image as
    /// a SOCI-enabled image index; v1: referrers).
    #[arg(long, conflicts_with = "dest")]
    pub push: bool,
    /// Put the SOCI-enabled image here (a registry tag, oci:DIR[:TAG] or
    /// oci-archive:FILE[:TAG]; an existing archive keeps its other tags).
    #[arg(long, value_name = "DST")]
    pub dest: Option<String>,
    /// Verify the index against the image right after building it, before
    /// anything is pushed (a mismatch exits 3 with nothing published); with a
    /// destination, also check the index is found there.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub image: ImageArgs,
    /// Also index the images listed in FILE: one reference a line, blank
    /// lines and lines starting with `#` skipped; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// With several images: how many are indexed at the same time (each one's
    /// layers still use --jobs). Default: 2. An image that only waits for
    /// another image's build of a shared layer does not count: the next
    /// image starts meanwhile.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_images: Option<u16>,
    /// Keep only the images of shard I of N (0 <= I < N): those whose
    /// reference, as written, hashes to I (FNV-1a 64 mod N). N machines given
    /// the same list and I = 0..N-1 index every image exactly once, without
    /// talking to each other.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Print the references this run would index (after --from-file and
    /// --shard), one a line, and exit: nothing is read or built.
    #[arg(long)]
    pub list: bool,
}

/// `--shard I/N`: this machine's part of a list split N ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// I, from 0.
    pub index: u64,
    /// N, at least 1.
    pub count: u64,
}

/// Parses `--shard I/N`.
pub(crate) fn parse_shard(s: &str) -> Result<Shard, String> {
    let bad = || format!("`{s}` is not a shard: give I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let index: u64 = i.trim().parse().map_err(|_| bad())?;
    let count: u64 = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// The image: docker://HOST/REPO:TAG, HOST/REPO[:TAG|@DIGEST], oci:DIR[:TAG],
    /// oci-archive:FILE[:TAG] or docker-archive:FILE.
    pub source: String,
    /// A tagged registry reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG].
    pub dest: String,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub image: ImageArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The image whose index `create` left in the local store (any reference to
    /// the same image manifests).
    pub source: String,
    /// Where to push (default: the source's tag).
    #[arg(long, value_name = "DST")]
    pub dest: Option<String>,
    /// Push this stored SOCI index (a digest, or a unique prefix of one) instead
    /// of the newest one stored for the image.
    #[arg(long, value_name = "DIGEST")]
    pub index: Option<String>,
    /// Only consider stored indexes of this version. Default: the version of the
    /// newest index stored for the image.
    #[arg(long, value_enum)]
    pub index_version: Option<IndexVersionArg>,
    /// When the destination already has a SOCI index for the image: `warn` (say
    /// so on stderr, push anyway), `skip` (push nothing, exit 0) or `allow`
    /// (push without a word).
    #[arg(long, value_enum, default_value_t = ExistingIndex::Warn)]
    pub existing_index: ExistingIndex,
    /// Blobs uploaded at the same time.
    #[arg(long, value_name = "N", default_value_t = soci_image::publish::COPY_JOBS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_concurrent_uploads: u16,
    #[command(flatten)]
    pub image: ImageArgs,
}

/// `soci push --existing-index`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ExistingIndex {
    Warn,
    Skip,
    Allow,
}

const PUSH_HELP: &str = "\
What is pushed: for each platform of the image (or each --platform), the newest
SOCI index that `soci create` stored for that image manifest, byte for byte, with
its zTOCs and prefetch artifacts: the options given to `create` (--min-layer-size,
--span-size, --prefetch-file, ...) are the ones the registry gets. v2: the image's
blobs and manifests are copied to DST when missing, then a SOCI-enabled image index
is tagged at DST (default: the source's tag). v1: the index manifests are pushed
with the image manifest as their subject (referrers API, else the fallback tag).
Nothing stored for the image: an error that says to run `soci create` first.

Examples:
  soci create --plain-http 127.0.0.1:5000/app:1.0 --min-layer-size 0
  soci push --plain-http 127.0.0.1:5000/app:1.0
  soci push --index sha256:a998 --existing-index skip registry.example.com/app:1.0

Exit codes:
  0  success (also: nothing pushed with --existing-index skip)
  1  error (bad input, I/O, registry, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument)";

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The (SOCI-enabled) image to check.
    pub source: String,
    #[command(flatten)]
    pub image: ImageArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum IndexCommand {
    /// List the SOCI indexes in the local store.
    #[command(alias = "ls", after_help = INDEX_LIST_HELP)]
    List(IndexListArgs),
    /// Print a SOCI index manifest from the local store.
    #[command(after_help = INDEX_INFO_HELP)]
    Info(IndexInfoArgs),
    /// Remove SOCI indexes from the local store (zTOCs still used by another
    /// index are kept).
    #[command(alias = "remove", after_help = INDEX_RM_HELP)]
    Rm(IndexRmArgs),
}

#[derive(Debug, Args)]
pub(crate) struct IndexListArgs {
    /// Only indexes built for this image reference, or pushed to it (the
    /// --dest/--push destination of `create`, `convert`, `push`).
    #[arg(long = "ref")]
    pub image_ref: Option<String>,
    /// Only indexes built for this platform, os/arch[/variant].
    #[arg(long, short = 'p', value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Only digests (same as -q).
    #[arg(long)]
    pub digests_only: bool,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct IndexInfoArgs {
    pub digest: String,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct IndexRmArgs {
    /// Digests of the SOCI indexes to remove.
    pub digests: Vec<String>,
    /// Remove every index built for, or pushed to, this image reference.
    #[arg(long = "ref", value_name = "REF")]
    pub image_ref: Option<String>,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

// Parsed once per run: the size of the registry flags in GetFile costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum ZtocCommand {
    /// Build the zTOC of one layer blob (a .tar.gz or .tar file), in one pass.
    #[command(after_help = ZTOC_BUILD_HELP)]
    Build(ZtocBuildArgs),
    /// List the zTOCs in the local store.
    #[command(alias = "ls", after_help = ZTOC_LIST_HELP)]
    List(ZtocListArgs),
    /// Print what a zTOC holds, as JSON (files, spans and their sizes).
    #[command(after_help = ZTOC_INFO_HELP)]
    Info(ZtocInfoArgs),
    /// Extract one file of a layer through its zTOC: only the spans that hold the
    /// file are decompressed, starting at the nearest checkpoint.
    #[command(name = "get-file", after_help = GET_FILE_HELP)]
    GetFile(ZtocGetFileArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum CompressionArg {
    /// Guess from the blob's first bytes (gzip magic, else tar).
    Auto,
    Gzip,
    /// A plain, uncompressed tar.
    Tar,
}

#[derive(Debug, Args)]
pub(crate) struct ZtocBuildArgs {
    /// The layer blob: a gzip-compressed or an uncompressed tar.
    pub layer: PathBuf,
    /// Where to write the zTOC; `-` for stdout. Default: LAYER.ztoc
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Uncompressed bytes between checkpoints (gzip) or span length (tar).
    #[arg(long, default_value_t = soci_ztoc::build::DEFAULT_SPAN_SIZE, value_parser = parse_span_size)]
    pub span_size: u64,
    /// The build tool identifier written into the zTOC. The default is the
    /// reference CLI's (the same as `soci create`), so the zTOC matches its bytes.
    #[arg(long, default_value = soci_ztoc::build::DEFAULT_BUILD_TOOL_IDENTIFIER)]
    pub build_tool_identifier: String,
    /// How the layer is compressed.
    #[arg(long, value_enum, default_value_t = CompressionArg::Auto)]
    pub compression: CompressionArg,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ZtocListArgs {
    /// Only the zTOC of this layer.
    #[arg(long)]
    pub layer_digest: Option<String>,
    /// Only this zTOC.
    #[arg(long, value_name = "DIGEST")]
    pub ztoc_digest: Option<String>,
    /// Only the zTOCs of the SOCI indexes built for, or pushed to, this image
    /// reference (see `index list --ref`).
    #[arg(long, value_name = "REF")]
    pub image_ref: Option<String>,
    /// Only digests (same as -q).
    #[arg(long)]
    pub digests_only: bool,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ZtocInfoArgs {
    /// A zTOC file, or the digest of a zTOC in the local store.
    pub ztoc: String,
    #[arg(long, value_name = "DIR", env = "SOCI_STORE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "soci ztoc get-file ZTOC LAYER_BLOB PATH [-o FILE]\n       soci ztoc get-file ZTOC PATH --image SRC [-o FILE]"
)]
pub(crate) struct ZtocGetFileArgs {
    /// A zTOC file, or the digest of a zTOC in the local store.
    pub ztoc: String,
    /// The layer blob file, then the file's name exactly as stored in the layer
    /// (e.g. `etc/passwd`, `./app`); with --image only the name.
    #[arg(num_args = 1..=2, required = true, value_name = "LAYER_BLOB PATH")]
    pub rest: Vec<String>,
    /// Read the layer from this image instead of a file, fetching only the spans
    /// that hold the file (HTTP range requests for registries); each span is
    /// checked against the zTOC's span digest before use.
    #[arg(long, value_name = "SRC")]
    pub image: Option<String>,
    /// Write the file here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub image_args: ImageArgs,
}

const ROOT_HELP: &str = "\
Examples:
  soci create --plain-http 127.0.0.1:5000/app:1.0 --push
  soci convert registry.example.com/app:1.0 registry.example.com/app:1.0-soci
  soci verify registry.example.com/app:1.0-soci

Exit codes:
  0  success
  1  error (bad input, I/O, registry, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument, a bad SOCI_REGISTRY_* value)
  3  `verify` found a mismatch";

const VERIFY_HELP: &str = "\
Examples:
  soci verify registry.example.com/app:1.0-soci
  soci verify --plain-http --all-platforms 127.0.0.1:5000/app:1.0
  soci verify oci-archive:app-soci.tar:latest

Exit codes:
  0  success
  1  error (bad input, I/O, registry, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument)
  3  a zTOC or the index does not match the image";

const INDEX_HELP: &str = concat!(
    "\
Examples:
  soci index list --ref registry.example.com/app:1.0
  soci index info \"$(soci index list -q | head -n 1)\"
  soci index rm --ref registry.example.com/app:1.0

",
    local_exit_codes!()
);

const INDEX_LIST_HELP: &str = concat!(
    "\
Examples:
  soci index list
  soci index list --ref registry.example.com/app:1.0 --platform linux/arm64
  soci index list -q                        (digests only)

",
    local_exit_codes!()
);

const INDEX_INFO_HELP: &str = concat!(
    "\
Examples:
  soci index info sha256:3b1f…
  soci index info \"$(soci index list -q --ref registry.example.com/app:1.0 | head -n 1)\"

",
    local_exit_codes!()
);

const INDEX_RM_HELP: &str = concat!(
    "\
Examples:
  soci index rm sha256:3b1f…
  soci index rm --ref registry.example.com/app:1.0
  soci index list -q | xargs soci index rm  (everything)

",
    local_exit_codes!()
);

const ZTOC_HELP: &str = concat!(
    "\
Examples:
  soci ztoc build layer.tar.gz -o layer.ztoc
  soci ztoc list --image-ref registry.example.com/app:1.0
  soci ztoc get-file layer.ztoc layer.tar.gz etc/os-release

",
    local_exit_codes!()
);

const ZTOC_BUILD_HELP: &str = concat!(
    "\
Examples:
  soci ztoc build layer.tar.gz                      (writes layer.tar.gz.ztoc)
  soci ztoc build --span-size 1MiB layer.tar -o layer.ztoc
  soci ztoc build layer.tar.gz -o - | sha256sum

",
    local_exit_codes!()
);

const ZTOC_LIST_HELP: &str = concat!(
    "\
Examples:
  soci ztoc list
  soci ztoc list --image-ref registry.example.com/app:1.0 -q
  soci ztoc list --layer-digest sha256:52f4…

",
    local_exit_codes!()
);

const ZTOC_INFO_HELP: &str = concat!(
    "\
Examples:
  soci ztoc info layer.ztoc
  soci ztoc info sha256:9a1b… > ztoc.json     (a zTOC of the local store)

",
    local_exit_codes!()
);

const GET_FILE_HELP: &str = "\
Examples:
  soci ztoc get-file layer.ztoc layer.tar.gz etc/os-release
  soci ztoc get-file sha256:9a1b… etc/os-release --image registry.example.com/app:1.0 -o os-release

Exit codes:
  0  success
  1  error (bad input, I/O, registry, corrupt data); one line on stderr says what and where
  2  wrong usage (unknown flag, missing argument)";

const BENCH_HELP: &str = "\
`soci bench` runs `soci-bench` from the directory of `soci`, else from PATH. Install it
with `cargo install --path crates/bench` (or build it with `cargo build -p soci-bench`).
`cargo bench --bench startup` runs the same benchmark from a checkout.

Examples:
  soci bench startup
  soci bench startup oci:./app:1.0 --trace trace.json --profile 100M/20ms
  soci bench startup --help

Exit codes:
  0  success
  1  error (bad input, I/O, registry, corrupt data, soci-bench not found); one line on
     stderr says what and where
  2  wrong usage (unknown flag, missing argument)";

const PREFETCH_HELP: &str = concat!(
    "\
Examples:
  soci prefetch list
  soci prefetch info sha256:9c0e…

",
    local_exit_codes!()
);

/// Parses `--timeout`: seconds (fractions allowed), more than 0, at most a year.
pub(crate) fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v <= 366.0 * 86400.0) {
        return Err(format!(
            "`{s}`: give a number of seconds above 0 and at most a year"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

// One parser for both binaries (`soci` and `soci-bench`): see soci_index::size.
pub(crate) use soci_index::size::{parse_size, parse_span_size};

/// Limits on what one layer may hold, against gzip bombs: the zTOC (and the
/// memory building it) grows with a layer's uncompressed size and file count.
#[derive(Debug, Clone, Args)]
pub(crate) struct LimitArgs {
    /// Refuse a layer whose uncompressed tar is larger than this (bytes, or
    /// with a KiB/MiB/GiB suffix). The default, 64GiB, fits a 20 GB ML layer
    /// three times over.
    #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = parse_limit_size)]
    pub max_uncompressed_size: u64,
    /// Refuse a layer holding more files (tar entries) than this.
    #[arg(long, value_name = "N", default_value_t = soci_ztoc::build::DEFAULT_MAX_FILES)]
    pub max_files: u64,
}

/// A limit: a size as for `--span-size`, also with a GiB suffix.
pub(crate) fn parse_limit_size(s: &str) -> Result<u64, String> {
    match s.trim().strip_suffix("GiB") {
        Some(n) => n
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|v| v.checked_mul(1 << 30))
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("`{s}` is not a size (e.g. 64GiB)")),
        None => parse_span_size(s).map_err(|_| format!("`{s}` is not a size (e.g. 64GiB)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `--help` of every command and subcommand ends with examples of it, then
    /// the exit codes.
    #[test]
    fn every_command_has_examples() {
        fn walk(cmd: &mut clap::Command, path: &str, bad: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name()).trim().to_string();
            let help = cmd.render_long_help().to_string();
            let examples = help.find("Examples:\n  soci ");
            let exit = help.rfind("Exit codes:");
            if !matches!((examples, exit), (Some(e), Some(x)) if e < x) {
                bad.push(path.clone());
            }
            for sub in cmd.get_subcommands_mut() {
                if sub.get_name() != "help" {
                    walk(sub, &path, bad);
                }
            }
        }
        let mut bad = Vec::new();
        walk(&mut Cli::command(), "", &mut bad);
        assert!(bad.is_empty(), "commands without examples: {bad:?}");
    }

    /// `gc`'s registry flags reach the registry options as `create`'s do.
    #[test]
    fn gc_registry_flags_become_image_args() {
        let cli = Cli::try_parse_from([
            "soci",
            "gc",
            "--plain-http=h:5000",
            "-k",
            "--timeout",
            "7",
            "-u",
            "ci:pw",
            "h:5000/r",
        ])
        .unwrap();
        let Command::Gc(a) = cli.command else {
            panic!("not gc")
        };
        let i = a.registry.to_image_args();
        assert_eq!(i.registry.plain_http, Some(vec!["h:5000".to_string()]));
        assert!(i.registry.insecure);
        assert_eq!(i.registry.timeout, Some(std::time::Duration::from_secs(7)));
        assert_eq!(i.registry.username.as_deref(), Some("ci:pw"));
        assert!(i.platform.is_empty() && i.jobs.is_none() && i.src_user.is_none());
    }

    /// `--max-uncompressed-size` keeps "64GiB" as its default text (readable in
    /// `--help`); it must still be the library's default.
    #[test]
    fn limit_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["soci", "ztoc", "build", "layer.tar"]).unwrap();
        let Command::Ztoc(ZtocCommand::Build(a)) = cli.command else {
            panic!("not ztoc build")
        };
        assert_eq!(
            a.limits.max_uncompressed_size,
            soci_ztoc::build::DEFAULT_MAX_UNCOMPRESSED_SIZE
        );
        assert_eq!(a.limits.max_files, soci_ztoc::build::DEFAULT_MAX_FILES);
        assert_eq!(a.span_size, soci_ztoc::build::DEFAULT_SPAN_SIZE);
        assert_eq!(
            a.build_tool_identifier,
            soci_ztoc::build::DEFAULT_BUILD_TOOL_IDENTIFIER
        );
    }
}
