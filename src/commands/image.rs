//! `soci create|convert|push|verify`: whole images.
use crate::cli::{
    BuildArgs, ConvertArgs, CreateArgs, ExistingIndex, GlobalArgs, ImageArgs, IndexVersionArg,
    PushArgs, VerifyArgs,
};
use crate::output::print_json;
use crate::progress::ImageProgress;
use anyhow::{bail, Context, Result};
use serde_json::json;
use soci_image::create::{CreateOptions, Created};
use soci_image::job::{CreateJob, PushJob, Target};
use soci_image::verify::{verify, VerifyReport};
use soci_index::manifest::IndexVersion;
use soci_index::prefetch::PrefetchRequest;
use soci_index::store::Store;
use soci_oci::open_source;
use soci_oci::reference::ImageRef;
use soci_oci::registry::{ClientCert, Credentials, HostCredentials, RegistryOptions};
use soci_oci::source::{ImageSource, PlatformChoice};
use std::io::Read;

/// Opens the local store (`--store` or the default directory).
pub(crate) fn open_store(dir: Option<&std::path::Path>) -> Result<Store> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => Store::default_dir()?,
    };
    Store::open(&dir).with_context(|| format!("cannot open the local store {}", dir.display()))
}

/// Ends the process with a usage error (exit code 2), as clap does.
pub(crate) fn usage_error(message: String) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::ArgumentConflict,
        format!("{message}\n"),
    )
    .exit()
}

/// `-u USER[:PASSWORD]` (or `--src-user`) as credentials: the password after
/// the first `:`, else from stdin with `from_stdin`; neither is a usage error.
fn basic_credentials(
    flag: &str,
    stdin_flag: &str,
    user: &str,
    from_stdin: bool,
) -> Result<Credentials> {
    let (username, inline) = match user.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (user, None),
    };
    if username.is_empty() {
        usage_error(format!(
            "{flag} needs a user name: {flag} USER:PASSWORD or {flag} USER {stdin_flag}"
        ));
    }
    let password = match (inline, from_stdin) {
        (Some(_), true) => usage_error(format!(
            "{flag} USER:PASSWORD already gives the password; drop {stdin_flag} or the :PASSWORD"
        )),
        (Some(p), false) => p.to_string(),
        (None, false) => usage_error(format!(
            "{flag} {username} gives no password: use {flag} {username}:PASSWORD, or {flag} {username} {stdin_flag} with the password on standard input"
        )),
        (None, true) => {
            // Read stdin once, however many registries the command opens.
            static STDIN_PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            match STDIN_PASSWORD.get() {
                Some(p) => p.clone(),
                None => {
                    let mut password = String::new();
                    std::io::stdin()
                        .read_to_string(&mut password)
                        .context("cannot read the password from stdin")?;
                    let password = password.trim_end_matches(['\n', '\r']).to_string();
                    let _ = STDIN_PASSWORD.set(password.clone());
                    password
                }
            }
        }
    };
    Ok(Credentials::Basic {
        username: username.to_string(),
        password,
    })
}

/// The registry host of `r`, if it is a registry image.
fn registry_host(r: &ImageRef) -> Option<String> {
    match r {
        ImageRef::Registry { registry, .. } => Some(registry.clone()),
        _ => None,
    }
}

/// Binds -u/--user to the registry it belongs to (`user_image`: the
/// destination when there is one, else the source) and --src-user to the
/// source's, refusing a flag whose image is not in a registry.
pub(crate) fn bind_credentials(
    a: &ImageArgs,
    src: &ImageRef,
    user_image: &ImageRef,
) -> Result<ImageArgs> {
    let mut a = a.clone();
    if a.registry.username.is_some() {
        a.user_registry = Some(registry_host(user_image).with_context(|| {
            if user_image == src {
                format!("-u/--user gives registry credentials, but {src} is not a registry image")
            } else {
                format!("-u/--user gives the destination's registry credentials, but {user_image} is not a registry image (for the source's registry use --src-user)")
            }
        })?);
    }
    if a.src_user.is_some() {
        a.src_registry = Some(registry_host(src).with_context(|| {
            format!("--src-user gives the credentials of the source's registry, but {src} is not a registry image")
        })?);
        if a.src_registry == a.user_registry {
            bail!(
                "-u/--user and --src-user both give credentials for {}: keep one",
                a.src_registry.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(a)
}

pub(crate) fn registry_options(a: &ImageArgs) -> Result<RegistryOptions> {
    let mut opts = RegistryOptions {
        credentials: Credentials::DockerConfig,
        plain_http: a
            .registry
            .plain_http
            .as_ref()
            .is_some_and(|hosts| hosts.is_empty()),
        plain_http_hosts: a.registry.plain_http.clone().unwrap_or_default(),
        tls_ca: a.registry.tls_ca.clone(),
        insecure: a.registry.insecure,
        client_cert: match (&a.registry.tlscert, &a.registry.tlskey) {
            (Some(cert), Some(key)) => Some(ClientCert {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        timeout: a.registry.timeout,
        http_dump: a.registry.http_dump,
        ..Default::default()
    };
    let scoped = [
        (
            &a.registry.username,
            a.registry.password_stdin,
            &a.user_registry,
            "-u/--user",
            "--password-stdin",
        ),
        (
            &a.src_user,
            a.src_password_stdin,
            &a.src_registry,
            "--src-user",
            "--src-password-stdin",
        ),
    ];
    for (user, from_stdin, registry, flag, stdin_flag) in scoped {
        let Some(user) = user else { continue };
        let credentials = basic_credentials(flag, stdin_flag, user, from_stdin)?;
        match registry {
            Some(host) => opts.host_credentials.push(HostCredentials {
                registry: host.clone(),
                credentials,
                origin: flag.to_string(),
            }),
            // A command with one image: its registry is the only one.
            None if matches!(opts.credentials, Credentials::Basic { .. }) => {
                bail!(
                    "-u/--user and --src-user both give the image's registry credentials: keep one"
                )
            }
            None => opts.credentials = credentials,
        }
    }
    if a.registry.insecure {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            eprintln!("warning: -k/--insecure: registry TLS certificates are not verified; anyone on the network path can read and alter the traffic");
        });
    }
    Ok(opts)
}

pub(crate) fn platform_choice(a: &ImageArgs) -> Result<PlatformChoice> {
    if a.all_platforms {
        return Ok(PlatformChoice::All);
    }
    if a.platform.is_empty() {
        return Ok(PlatformChoice::Host);
    }
    let list = a
        .platform
        .iter()
        .map(|p| {
            p.parse()
                .with_context(|| format!("invalid --platform {p:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PlatformChoice::List(list))
}

pub(crate) fn parse_ref(s: &str) -> Result<ImageRef> {
    // The error names the reference already ("invalid image reference …").
    Ok(s.parse::<ImageRef>()?)
}

pub(crate) fn open(r: &ImageRef, a: &ImageArgs) -> Result<Box<dyn ImageSource>> {
    open_source(r, &registry_options(a)?).with_context(|| format!("cannot open image {r}"))
}

fn jobs(a: &ImageArgs) -> usize {
    a.jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1)
}

pub(crate) fn create_options(
    b: &BuildArgs,
    a: &ImageArgs,
    version: IndexVersion,
) -> Result<CreateOptions> {
    let mut prefetch = b.prefetch_file.clone();
    let mut recorded = Vec::new();
    if let Some(f) = &b.prefetch_files_json {
        let text = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        let form = prefetch_files_json(&text).with_context(|| {
            format!(
                "{} must be a JSON array of paths, or a trace object (`soci run --record`) with files[].path",
                f.display()
            )
        })?;
        match form {
            PrefetchJson::Paths(list) => prefetch.extend(list),
            PrefetchJson::Recorded(files) => recorded = files,
        }
    }
    Ok(CreateOptions {
        span_size: b.span_size,
        min_layer_size: b.min_layer_size,
        xattr_optimization: b
            .optimizations
            .iter()
            .any(|o| o == soci_index::XATTR_OPTIMIZATION),
        prefetch_paths: soci_index::prefetch::trim_prefetch_paths(&prefetch),
        prefetch_requests: recorded,
        force: b.force,
        index_version: version,
        jobs: jobs(a),
        build_tool_identifier: b.build_tool_identifier.clone(),
        platforms: platform_choice(a)?,
        require_stored: false,
        max_uncompressed_size: b.limits.max_uncompressed_size,
        max_files: b.limits.max_files,
        ..Default::default()
    })
}

/// What a `--prefetch-files-json` file asks for.
#[derive(Debug, PartialEq, Eq)]
enum PrefetchJson {
    /// A JSON array of paths: whole files, as the Go CLI.
    Paths(Vec<String>),
    /// The trace object `soci run --record` writes, files in order; a file
    /// with `ranges` gets only the spans holding them (docs/format.md §6.2).
    Recorded(Vec<PrefetchRequest>),
}

/// Parses a `--prefetch-files-json` file: a JSON array of paths, or the
/// trace object (`{"files": [{"path": ..., "size": ..., "ranges":
/// [[offset, length], ...]}], ...}`). Trace paths are trimmed and empty ones
/// dropped, like the array's; absent, `null` or empty `ranges` mean the
/// whole file.
fn prefetch_files_json(text: &[u8]) -> Result<PrefetchJson> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Form {
        Paths(Vec<String>),
        Trace { files: Vec<TraceFile> },
    }
    #[derive(serde::Deserialize)]
    struct TraceFile {
        path: String,
        #[serde(default)]
        ranges: Option<Vec<(u64, u64)>>,
    }
    Ok(match serde_json::from_slice(text)? {
        Form::Paths(p) => PrefetchJson::Paths(p),
        Form::Trace { files } => PrefetchJson::Recorded(
            files
                .into_iter()
                .map(|f| {
                    PrefetchRequest::recorded(f.path.trim(), f.ranges.filter(|r| !r.is_empty()))
                })
                .filter(|r| !r.path.is_empty())
                .collect(),
        ),
    })
}

pub(crate) fn version(b: &BuildArgs) -> IndexVersion {
    match b.index_version {
        IndexVersionArg::V1 => IndexVersion::V1,
        IndexVersionArg::V2 => IndexVersion::V2,
    }
}

fn created_json(c: &Created) -> serde_json::Value {
    json!({
        "image": c.root.digest,
        "platforms": c.platforms.iter().map(|p| json!({
            "platform": p.image.platform,
            "manifest": p.image.descriptor.digest,
            "index": p.index.descriptor.digest,
            "index_size": p.index.bytes.len(),
            "ztocs": p.ztocs.iter().map(|z| json!({"layer": z.layer_digest, "ztoc": z.ztoc_digest, "size": z.ztoc_size})).collect::<Vec<_>>(),
            "prefetches": p.prefetches.iter().map(|f| json!({"layer": f.layer_digest, "digest": f.digest})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "layers": layers_json(&c.layers),
        "skipped_platforms": c.skipped_platforms.iter().map(|(p, why)| json!({"platform": p, "reason": why})).collect::<Vec<_>>(),
        "prefetch_not_found": c.prefetch_not_found,
    })
}

/// What happened to each layer, for `--json` (also in the error object when
/// nothing was indexed).
pub(crate) fn layers_json(
    layers: &[(soci_oci::spec::Descriptor, soci_image::LayerOutcome)],
) -> serde_json::Value {
    layers
        .iter()
        .map(|(d, o)| {
            let (status, ztoc, reason) = match o {
                soci_image::LayerOutcome::Built { ztoc, .. } => {
                    ("built", Some(ztoc.ztoc_digest.clone()), None)
                }
                soci_image::LayerOutcome::Reused { ztoc }
                | soci_image::LayerOutcome::Fetched { ztoc, .. } => {
                    ("reused", Some(ztoc.ztoc_digest.clone()), None)
                }
                soci_image::LayerOutcome::Skipped { reason } => {
                    ("skipped", None, Some(reason.clone()))
                }
            };
            let mut layer = json!({"digest": d.digest, "media_type": d.media_type, "size": d.size, "status": status, "ztoc": ztoc, "reason": reason});
            // Where a reused zTOC came from: the local store, or a registry image.
            match o {
                soci_image::LayerOutcome::Reused { .. } => layer["from"] = json!("store"),
                soci_image::LayerOutcome::Fetched { from, .. } => {
                    layer["from"] = json!("registry");
                    layer["cache_ref"] = json!(from);
                }
                _ => {}
            }
            layer
        })
        .collect()
}

fn print_created(c: &Created, store: &Store) {
    for (d, o) in &c.layers {
        println!("{}", o.line(&d.digest));
    }
    // Where it went: the local store (`soci push` and `index info` read it there).
    for p in &c.platforms {
        println!(
            "soci index {} for {} ({}) in the local store {}",
            p.index.descriptor.digest,
            p.image.descriptor.digest,
            platform_str(&p.image.platform),
            store.dir().display()
        );
    }
    for path in &c.prefetch_not_found {
        eprintln!("warning: prefetch file {path} not found in any layer");
    }
}

fn platform_str(p: &soci_oci::spec::Platform) -> String {
    let mut s = format!("{}/{}", p.os, p.architecture);
    if !p.variant.is_empty() {
        s = format!("{s}/{}", p.variant);
    }
    s
}

/// How [`run_create`] shows its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// One image: print the report (text, or the JSON object) as it comes.
    Print,
    /// One of several images (`create A B`, `--from-file`): print nothing on
    /// stdout, return the JSON object; the caller prints one line per image.
    Collect,
}

/// Entry point for `soci create` (and `convert`, `push`): maps the flags to a
/// [`CreateJob`], runs it and prints its report (with [`Show::Print`]).
/// Returns the exit code and the JSON result.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_create(
    source_ref: &str,
    dest: Option<String>,
    push: bool,
    verify_after: bool,
    mut opts: CreateOptions,
    image: &ImageArgs,
    global: &GlobalArgs,
    require_stored: bool,
    show: Show,
    progress: &dyn soci_image::Reporter,
) -> Result<(u8, serde_json::Value)> {
    // Text on stdout, or the JSON object, only for one image.
    let text = show == Show::Print && !global.json;
    let json_out = show == Show::Print && global.json;
    let src = parse_ref(source_ref)?;
    let target = match (dest, push) {
        (Some(d), _) => Target::To(parse_ref(&d)?),
        (None, true) => Target::InPlace,
        (None, false) => Target::Store,
    };
    opts.require_stored = require_stored;
    let job = CreateJob::new(src.clone(), target, opts)?.verify(verify_after);
    let dest = job.destination().cloned();
    let image = &bind_credentials(image, &src, dest.as_ref().unwrap_or(&src))?;
    let store = open_store(image.store.as_deref())?;
    let job = job.registry_options(registry_options(image)?);
    // Timings and bytes per layer for --json; forwards everything to the bars.
    // Not the verification's: --json's timings and bytes are the build's.
    let reporter = crate::metrics::Metered::new(progress);
    let report = match job.run(&store, &reporter, progress) {
        Ok(r) => r,
        Err(e) => {
            // Nothing to index: still say per layer why, as after a successful run.
            if let (soci_image::Error::NothingIndexed { layers, .. }, true) = (&e, text) {
                for (d, o) in layers {
                    println!("{}", o.line(&d.digest));
                }
            }
            return Err(e.into());
        }
    };
    for w in &report.cache_warnings {
        eprintln!("warning: {w}");
    }
    if let Some(already) = &report.already_indexed {
        return print_already_indexed(&report.created, already, &reporter, text, json_out);
    }
    let created = &report.created;
    let mut out = created_json(created);
    if !report.cache_warnings.is_empty() {
        out["cache_warnings"] = json!(report.cache_warnings);
    }
    if text {
        print_created(created, &store);
    }
    let mut code = crate::exit::OK;
    if let Some(v) = &report.verified {
        if !v.ok || dest.is_none() {
            if text {
                print_verify(v);
            }
            out["verify"] = serde_json::to_value(v)?;
        }
        if !v.ok {
            if dest.is_some() {
                eprintln!("soci: verify failed: nothing was pushed");
            }
            if json_out {
                print_json(&out)?;
            }
            return Ok((crate::exit::VERIFY_FAILED, out));
        }
    }
    if let (Some(dest), Some(result)) = (&dest, &report.published) {
        // So that `index list --ref DST` (and `rm`, `ztoc list --image-ref`) find
        // it; the push itself succeeded, so a failure here is only a warning.
        if let Err(e) = super::listing::remember_destination(&store, &result.soci_indexes, dest) {
            eprintln!("warning: {e:#}");
        }
        if text {
            print_pushed(result);
        }
        out["pushed"] = serde_json::to_value(result)?;
    }
    if let Some(e) = report.failure {
        return Err(e.into());
    }
    reporter.annotate(&mut out);
    if let Some(v) = &report.verified_at_destination {
        if text {
            print_verify(v);
        }
        out["verify"] = serde_json::to_value(v)?;
        if !v.ok {
            code = crate::exit::VERIFY_FAILED;
        }
    }
    if json_out {
        print_json(&out)?;
    }
    Ok((code, out))
}

/// `create --push`/`--dest` found the destination already indexed with the
/// same options: says so (per layer, and the index), nothing was published.
fn print_already_indexed(
    c: &Created,
    already: &soci_image::cache::AlreadyIndexed,
    reporter: &crate::metrics::Metered<'_>,
    text: bool,
    json_out: bool,
) -> Result<(u8, serde_json::Value)> {
    let mut out = created_json(c);
    out["already_indexed"] = serde_json::to_value(already)?;
    reporter.annotate(&mut out);
    if json_out {
        print_json(&out)?;
    }
    if !text {
        return Ok((crate::exit::OK, out));
    }
    for (d, o) in &c.layers {
        println!("{}", o.line(&d.digest));
    }
    let what = match &already.image_index {
        Some(d) => format!("SOCI-enabled image {d}"),
        None => format!(
            "soci index(es) {}",
            already
                .soci_indexes
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    println!(
        "already indexed: {} has {what} with these options; nothing to do (--force rebuilds)",
        already.destination
    );
    Ok((crate::exit::OK, out))
}

/// `create`'s build options, with its zTOC cache flags (--no-cache,
/// --cache-from); the same for one image and for many.
pub(crate) fn create_cmd_options(a: &CreateArgs) -> Result<CreateOptions> {
    let opts = create_options(&a.build, &a.image, version(&a.build))?;
    with_cache_flags(opts, &a.cache)
}

/// `opts` with the zTOC cache flags (--no-cache, --cache-from) of `create`
/// and `convert`.
fn with_cache_flags(mut opts: CreateOptions, a: &crate::cli::CacheArgs) -> Result<CreateOptions> {
    opts.registry_cache = !a.no_cache;
    opts.cache_from = a
        .cache_from
        .iter()
        .map(|r| parse_ref(r).with_context(|| format!("invalid --cache-from {r:?}")))
        .collect::<Result<_>>()?;
    Ok(opts)
}

/// `soci create` of one image (several go through `many`).
pub(crate) fn create_cmd(a: CreateArgs, global: &GlobalArgs) -> Result<u8> {
    let opts = create_cmd_options(&a)?;
    let progress = ImageProgress::new(global.quiet, global.json);
    run_create(
        &a.sources[0],
        a.dest.clone(),
        a.push,
        a.verify,
        opts,
        &a.image,
        global,
        false,
        Show::Print,
        &progress,
    )
    .map(|(code, _)| code)
}

pub(crate) fn convert_cmd(a: ConvertArgs, global: &GlobalArgs) -> Result<u8> {
    if a.build.index_version != IndexVersionArg::V2 {
        bail!("convert makes index manifest v2; use `create --index-version v1 --push` for v1");
    }
    let opts = with_cache_flags(
        create_options(&a.build, &a.image, IndexVersion::V2)?,
        &a.cache,
    )?;
    let progress = ImageProgress::new(global.quiet, global.json);
    run_create(
        &a.source,
        Some(a.dest.clone()),
        false,
        false,
        opts,
        &a.image,
        global,
        false,
        Show::Print,
        &progress,
    )
    .map(|(code, _)| code)
}

/// Entry point for `soci push`: publishes what `create` stored, never rebuilds.
pub(crate) fn push_cmd(a: PushArgs, global: &GlobalArgs) -> Result<u8> {
    use soci_image::stored::StoredChoice;
    let src = parse_ref(&a.source)?;
    let target = match &a.dest {
        Some(d) => Target::To(parse_ref(d)?),
        None => Target::InPlace,
    };
    let job = PushJob::new(src, target)?;
    let store = open_store(a.image.store.as_deref())?;
    let index = match &a.index {
        Some(d) => {
            let stored = store.list_indexes(&soci_index::store::IndexFilter::default())?;
            Some(
                crate::digest::resolve(d, stored.iter().map(|r| &r.digest), "SOCI index")
                    .with_context(|| format!("in the local store {}", store.dir().display()))?,
            )
        }
        None => None,
    };
    let explicit_platforms = a.image.all_platforms || !a.image.platform.is_empty();
    let choice = StoredChoice {
        index,
        version: a.index_version.map(|v| match v {
            IndexVersionArg::V1 => IndexVersion::V1,
            IndexVersionArg::V2 => IndexVersion::V2,
        }),
        platforms: if explicit_platforms {
            Some(platform_choice(&a.image)?)
        } else {
            None
        },
    };
    let job = job
        .choice(choice)
        .registry_options(registry_options(&a.image)?)
        .jobs(jobs(&a.image))
        .copy_jobs(a.max_concurrent_uploads.into())
        .look_for_existing(a.existing_index != ExistingIndex::Allow);
    let dest = job.destination().clone();
    let reporter = ImageProgress::new(global.quiet, global.json);
    let mut out = serde_json::Value::Null;
    let pushed = job.run(&store, &reporter, &mut |plan| {
        let (created, version) = (plan.created, plan.version);
        if !global.json {
            for p in &created.platforms {
                println!(
                    "soci index {} ({}, {}) for {}: {} zTOC(s), {} prefetch artifact(s)",
                    p.index.descriptor.digest,
                    version,
                    platform_str(&p.image.platform),
                    p.image.descriptor.digest,
                    p.ztocs.len(),
                    p.prefetches.len()
                );
            }
        }
        out = json!({
            "indexes": created.platforms.iter().map(|p| json!({
                "index": p.index.descriptor.digest,
                "version": version.as_str(),
                "platform": p.image.platform,
                "manifest": p.image.descriptor.digest,
                "ztocs": p.ztocs.len(),
                "prefetches": p.prefetches.len(),
            })).collect::<Vec<_>>(),
        });
        let existing = &plan.existing;
        if !existing.is_empty() {
            match a.existing_index {
                ExistingIndex::Skip => {
                    if global.json {
                        out["skipped"] = json!({"existing": existing});
                    } else {
                        println!(
                            "skipped: {dest} already has SOCI index(es) {} (--existing-index skip)",
                            crate::digest::join(existing)
                        );
                    }
                    return false;
                }
                ExistingIndex::Warn if !global.quiet => eprintln!(
                    "warning: {dest} already has SOCI index(es) {}; pushing anyway (--existing-index skip leaves it as is)",
                    crate::digest::join(existing)
                ),
                _ => {}
            }
        }
        true
    })?;
    match pushed {
        Some(result) if global.json => {
            out["pushed"] = serde_json::to_value(&result)?;
            print_json(&out)?;
        }
        Some(result) => print_pushed(&result),
        // Skipped: the destination already has an index.
        None if global.json => print_json(&out)?,
        None => {}
    }
    Ok(crate::exit::OK)
}

fn print_pushed(result: &soci_image::publish::PublishResult) {
    match &result.image_index {
        Some(d) => println!(
            "pushed SOCI-enabled image {} ({})",
            result.destination, d.digest
        ),
        None => println!(
            "pushed soci index(es) {} to {} ({})",
            crate::digest::join(&result.soci_indexes),
            result.destination,
            result.referrers.clone().unwrap_or_default()
        ),
    }
}

fn print_verify(r: &VerifyReport) {
    for p in &r.platforms {
        println!(
            "{} {}: index {} ({})",
            platform_str(&p.platform),
            p.manifest_digest,
            p.index_digest.as_ref().map_or("-", |d| d.as_str()),
            p.found_via.as_deref().unwrap_or("not found")
        );
        for problem in &p.problems {
            println!("  PROBLEM {problem}");
        }
        for l in &p.layers {
            println!(
                "  layer {} ztoc {}: {} ({} files, {} spans)",
                l.layer_digest,
                l.ztoc_digest,
                if l.ok { "ok" } else { "MISMATCH" },
                l.files,
                l.spans
            );
            for problem in &l.problems {
                println!("    {problem}");
            }
        }
        for u in &p.unindexed_layers {
            println!("  layer {u}: no zTOC (pulled in full)");
        }
    }
    println!("{}", if r.ok { "verify: OK" } else { "verify: FAILED" });
}

/// Entry point for `soci verify`.
pub(crate) fn verify_cmd(a: VerifyArgs, global: &GlobalArgs) -> Result<u8> {
    let src = parse_ref(&a.source)?;
    let source = open(&src, &a.image)?;
    let store = open_store(a.image.store.as_deref()).ok();
    let reporter = ImageProgress::new(global.quiet, global.json);
    let report = verify(
        &*source,
        store.as_ref(),
        &platform_choice(&a.image)?,
        jobs(&a.image),
        &reporter,
    )?;
    if global.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        print_verify(&report);
    }
    Ok(if report.ok {
        crate::exit::OK
    } else {
        crate::exit::VERIFY_FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_files_json_forms() {
        assert_eq!(
            prefetch_files_json(br#"["/a", " b "]"#).unwrap(),
            PrefetchJson::Paths(vec!["/a".into(), " b ".into()])
        );
        let t = br#"{"image": "i", "command": [], "files": [
            {"path": "a", "size": 9, "ranges": [[1, 2], [5, 1]]},
            {"path": " b ", "size": 9, "ranges": []},
            {"path": "c", "ranges": null},
            {"path": "d"},
            {"path": "  "}
        ]}"#;
        let whole = |p: &str| PrefetchRequest::recorded(p, None);
        assert_eq!(
            prefetch_files_json(t).unwrap(),
            PrefetchJson::Recorded(vec![
                PrefetchRequest::recorded("a", Some(vec![(1, 2), (5, 1)])),
                whole("b"),
                whole("c"),
                whole("d"),
            ])
        );
        // A range that is not an [offset, length] pair of unsigned numbers.
        for bad in [
            &br#"{"files": [{"path": "a", "ranges": [[1]]}]}"#[..],
            br#"{"files": [{"path": "a", "ranges": [[-1, 2]]}]}"#,
            br#"{"files": 3}"#,
        ] {
            assert!(prefetch_files_json(bad).is_err());
        }
    }
}
