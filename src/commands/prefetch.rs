//! `soci prefetch list|info`: prefetch artifacts in the local store.
use super::image::open_store;
use crate::cli::{GlobalArgs, PrefetchCommand, PrefetchInfoArgs, PrefetchListArgs};
use crate::output::{print_json, write_stdout};
use anyhow::{bail, Context, Result};
use serde_json::json;
use soci_index::store::{ArtifactKind, Store};
use soci_index::PrefetchArtifact;

pub(super) fn run(cmd: PrefetchCommand, global: &GlobalArgs) -> Result<u8> {
    match cmd {
        PrefetchCommand::List(a) => list(a, global),
        PrefetchCommand::Info(a) => info(a, global),
    }
}

/// The artifact's span count, or `None` when its blob is missing or unreadable
/// (the row is still listed, as the reference does).
fn total_spans(store: &Store, digest: &soci_oci::spec::Digest) -> Option<u64> {
    let bytes = store.get_blob(digest).ok()?;
    PrefetchArtifact::from_json(&bytes)
        .ok()
        .map(|a| a.total_spans())
}

fn list(a: PrefetchListArgs, global: &GlobalArgs) -> Result<u8> {
    let store = open_store(a.store.as_deref())?;
    let mut list = store.list_prefetches()?;
    if let Some(index) = &a.index {
        let blobs = super::listing::index_blobs(&store, index)?;
        list.retain(|r| blobs.iter().any(|b| b.digest == r.digest));
    }
    if global.json {
        let v: Vec<_> = list
            .iter()
            .map(|r| {
                json!({
                    "digest": r.digest,
                    "size": r.size,
                    "layer_digest": r.layer_digest,
                    "total_spans": total_spans(&store, &r.digest),
                    "created_at": r.created_at,
                })
            })
            .collect();
        print_json(&json!(v))?;
        return Ok(crate::exit::OK);
    }
    let mut out = String::new();
    if global.quiet {
        for r in &list {
            out.push_str(&format!("{}\n", r.digest));
        }
    } else {
        out.push_str(&format!(
            "{:<72} {:<72} {:>6}  CREATED\n",
            "DIGEST", "LAYER DIGEST", "SPANS"
        ));
        for r in &list {
            let spans = total_spans(&store, &r.digest)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "N/A".into());
            out.push_str(&format!(
                "{:<72} {:<72} {:>6}  {}\n",
                r.digest,
                r.layer_digest.as_ref().map_or("-", |d| d.as_str()),
                spans,
                r.created_at
            ));
        }
    }
    write_stdout(out.as_bytes())?;
    Ok(crate::exit::OK)
}

fn info(a: PrefetchInfoArgs, global: &GlobalArgs) -> Result<u8> {
    let store = open_store(a.store.as_deref())?;
    // Text that is not a digest names nothing in the store.
    let recs = match soci_oci::spec::Digest::parse(&a.digest) {
        Ok(d) => store.get_artifact(&d)?,
        Err(_) => Vec::new(),
    };
    let Some(rec) = recs.iter().find(|r| r.kind == ArtifactKind::Prefetch) else {
        match recs.first() {
            Some(r) => bail!(
                "{} is not a prefetch artifact (it is a {})",
                a.digest,
                r.kind
            ),
            None => bail!(
                "no prefetch artifact {} in the local store {} (see `soci prefetch list`)",
                a.digest,
                store.dir().display()
            ),
        }
    };
    let bytes = soci_index::parse_digest(&a.digest)
        .and_then(|d| store.get_blob(&d))
        .with_context(|| format!("cannot read prefetch artifact {}", a.digest))?;
    let artifact = PrefetchArtifact::from_json(&bytes)
        .with_context(|| format!("{} is not a valid prefetch artifact", a.digest))?;
    if global.json {
        print_json(&json!({
            "digest": rec.digest,
            "size": rec.size,
            "layer_digest": rec.layer_digest,
            "created_at": rec.created_at,
            "total_spans": artifact.total_spans(),
            "artifact": artifact,
        }))?;
        return Ok(crate::exit::OK);
    }
    let mut out = String::new();
    out.push_str(&format!("Digest:        {}\n", rec.digest));
    out.push_str(&format!("Version:       {}\n", artifact.version));
    out.push_str(&format!(
        "Span Ranges:   {}\n",
        artifact.prefetch_spans.len()
    ));
    out.push_str(&format!(
        "Layer Digest:  {}\n",
        rec.layer_digest.as_ref().map_or("-", |d| d.as_str())
    ));
    out.push_str(&format!("Size:          {} bytes\n", rec.size));
    out.push_str(&format!(
        "Created:       {}\n\nPrefetch Spans:\n",
        rec.created_at
    ));
    for (i, s) in artifact.prefetch_spans.iter().enumerate() {
        out.push_str(&format!(
            "  [{i}] StartSpan: {}, EndSpan: {} (covers {} spans)\n",
            s.start_span,
            s.end_span,
            s.end_span.saturating_sub(s.start_span) + 1
        ));
        if s.priority != 0 {
            out.push_str(&format!("      Priority: {}\n", s.priority));
        }
    }
    out.push_str(&format!(
        "\nTotal spans to prefetch: {}\n",
        artifact.total_spans()
    ));
    write_stdout(out.as_bytes())?;
    Ok(crate::exit::OK)
}
