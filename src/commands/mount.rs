//! `soci mount`: an image's root filesystem through FUSE (crates/mount).
use super::image::{open, open_store, parse_ref, platform_choice};
use crate::cli::{GlobalArgs, MountArgs};
use anyhow::{Context, Result};
use serde_json::json;
use soci_oci::source::ImageSource;
use std::io::Write;
use std::sync::Arc;

/// A read that cannot be served fails after this long (retries included)
/// unless --timeout or SOCI_REGISTRY_TIMEOUT says otherwise: an hour (the
/// default for whole-blob copies) would leave a process reading the mount
/// hanging that long.
const MOUNT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Memory for inflated spans, at most.
const MEMORY_LIMIT: u64 = 256 << 20;

/// FUSE threads: several reads (and their span fetches) at once.
const FUSE_THREADS: usize = 4;

fn line(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")?;
    out.flush()?;
    Ok(())
}

/// Entry point for `soci mount`.
pub(crate) fn run(a: MountArgs, global: &GlobalArgs) -> Result<u8> {
    let src = parse_ref(&a.source)?;
    if !a.mountpoint.is_dir() {
        anyhow::bail!(
            "mount point {} is not an existing directory",
            a.mountpoint.display()
        );
    }
    let mut image_args = a.image.clone();
    if image_args.registry.timeout.is_none() && std::env::var_os("SOCI_REGISTRY_TIMEOUT").is_none()
    {
        image_args.registry.timeout = Some(MOUNT_REQUEST_TIMEOUT);
    }
    let source: Arc<dyn ImageSource> = Arc::from(open(&src, &image_args)?);
    let store = open_store(a.image.store.as_deref()).ok();
    let temp;
    let cache_dir = match &a.cache_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("soci-mount-")
                .tempdir()
                .context("cannot create a temporary cache directory")?;
            temp.path().to_path_buf()
        }
    };
    let layers_dir = cache_dir.join("layers");
    std::fs::create_dir_all(&layers_dir)
        .with_context(|| format!("cannot create the cache directory {}", layers_dir.display()))?;
    let image = soci_mount::image::open_image(
        &*source,
        store.as_ref(),
        &platform_choice(&a.image)?,
        &layers_dir,
    )
    .with_context(|| format!("cannot mount {}", a.source))?;
    let opts = soci_mount::ServeOptions {
        mountpoint: a.mountpoint.clone(),
        threads: FUSE_THREADS,
        memory_limit: MEMORY_LIMIT.min(a.cache_size.max(1)),
        cache_dir: cache_dir.join("spans"),
        cache_size: a.cache_size,
        background_fetch: a.background_fetch,
        read_ahead: a.read_ahead,
    };
    let mp = a.mountpoint.display().to_string();
    let mut printed = Ok(());
    let served = soci_mount::serve(source, image, &opts, &mut || {
        printed = if global.json {
            line(&json!({"event": "mounted", "mountpoint": mp}).to_string())
        } else {
            line(&format!("mounted {mp}"))
        };
    })
    .with_context(|| format!("cannot mount {}", a.source))?;
    // A closed stdout does not stop the mount; the unmount line then fails too.
    let _ = printed;
    if let Some(path) = &a.record {
        let mut rec = served.recording.clone();
        rec.image = a.source.clone();
        let mut bytes = serde_json::to_vec_pretty(&rec)?;
        bytes.push(b'\n');
        crate::output::write_atomic(path, &bytes)
            .with_context(|| format!("cannot write the record file {}", path.display()))?;
    }
    let s = &served.stats;
    if global.json {
        let mut v = serde_json::to_value(s)?;
        v["event"] = json!("unmounted");
        v["mountpoint"] = json!(mp);
        line(&v.to_string())?;
    } else {
        line(&format!(
            "unmounted {mp}: fetched {} bytes ({} spans in {} range requests, {} layers whole) and {} bytes of index and zTOCs, {} files read, {} read errors",
            s.bytes_fetched, s.spans_fetched, s.range_requests, s.layers_fetched_whole, s.index_bytes, s.files_read, s.read_errors
        ))?;
    }
    Ok(crate::exit::OK)
}
