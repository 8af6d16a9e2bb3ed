//! `soci create A B C`, `--from-file FILE`, `--shard I/N`: many images in one
//! run, a few at a time. Each image runs the one-image path
//! ([`super::image::run_create`]) unchanged; what this adds is the list, the
//! shard, the concurrency bound and the per-image result lines. Images built
//! on one base share its layers through the local store, and a layer two
//! images reach at once is built once (soci-image's in-process claim).
//! docs/scale.md says why several machines need no coordination.
use super::image::{create_cmd_options, run_create, usage_error, Show};
use crate::cli::{CreateArgs, GlobalArgs, Shard};
use crate::progress::ImageProgress;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Images indexed at the same time unless `--max-images` says otherwise:
/// one image's registry round trips (manifests, HEADs, the publish) then
/// overlap another's inflating, while each image's layers use `--jobs`
/// workers; more would mostly add threads competing for the same cores.
pub(crate) const DEFAULT_MAX_IMAGES: usize = 2;

/// Whether `create` runs the many-images path: more than one SRC, a list, a
/// shard or `--list`. One SRC alone keeps the one-image output.
pub(crate) fn is_many(a: &CreateArgs) -> bool {
    a.sources.len() > 1 || a.from_file.is_some() || a.shard.is_some() || a.list
}

/// The shard a reference belongs to out of `count`: FNV-1a 64 of the
/// reference as written (so every machine computes the same, whatever its
/// platform or Rust version), mod `count`.
pub(crate) fn shard_of(reference: &str, count: u64) -> u64 {
    fnv1a64(reference.as_bytes()) % count
}

/// FNV-1a, 64 bits: tiny, fixed by its published definition.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The references of a list file: one a line, trimmed; blank lines and
/// `#` comments skipped.
pub(crate) fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// SRCs, then the list file's references, each once (first kept), then the
/// shard's part.
fn references(a: &CreateArgs) -> Result<Vec<String>> {
    let mut all = a.sources.clone();
    if let Some(f) = &a.from_file {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the list of images from standard input")?;
            s
        } else {
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the list of images {}", f.display()))?
        };
        let listed = parse_list(&text);
        if listed.is_empty() && a.sources.is_empty() {
            anyhow::bail!(
                "{} lists no image (one reference a line; blank lines and # comments are skipped)",
                f.display()
            );
        }
        all.extend(listed);
    }
    let mut seen = std::collections::HashSet::new();
    all.retain(|r| seen.insert(r.clone()));
    Ok(all)
}

fn keep(shard: Option<Shard>, r: &str) -> bool {
    shard.is_none_or(|s| shard_of(r, s.count) == s.index)
}

/// What one image of the run came to.
struct Done {
    reference: String,
    result: Result<(u8, Value)>,
}

/// `soci create` with several images (see [`is_many`]).
pub(crate) fn create_many(a: CreateArgs, global: &GlobalArgs) -> Result<u8> {
    if a.from_file.as_deref().is_some_and(|f| f.as_os_str() == "-")
        && (a.image.registry.password_stdin || a.image.src_password_stdin)
    {
        usage_error(
            "--from-file - and --password-stdin both read standard input: give the list as a file"
                .into(),
        );
    }
    let all = references(&a)?;
    if a.dest.is_some() && all.len() > 1 {
        usage_error(format!(
            "--dest takes one image, and {} are given: use --push to put each index next to its image",
            all.len()
        ));
    }
    let chosen: Vec<String> = all.iter().filter(|r| keep(a.shard, r)).cloned().collect();
    if a.list {
        if global.json {
            let shard = a.shard.map(|s| format!("{}/{}", s.index, s.count));
            println!(
                "{}",
                json!({"references": chosen, "total": all.len(), "shard": shard})
            );
        } else {
            for r in &chosen {
                println!("{r}");
            }
        }
        return Ok(crate::exit::OK);
    }
    let opts = create_cmd_options(&a)?;
    let max_images = a.max_images.map_or(DEFAULT_MAX_IMAGES, usize::from);
    // One set of bars for all images (keyed by layer digest).
    let progress = ImageProgress::new(global.quiet, global.json);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..max_images.clamp(1, chosen.len().max(1)) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(reference) = chosen.get(k) else {
                    break;
                };
                let result = run_create(
                    reference,
                    a.dest.clone(),
                    a.push,
                    a.verify,
                    opts.clone(),
                    &a.image,
                    global,
                    false,
                    Show::Collect,
                    &progress,
                );
                let done = Done {
                    reference: reference.clone(),
                    result,
                };
                // As each image ends, so a long run shows progress on stdout.
                print_done(&done, global.json);
                results.lock().unwrap_or_else(|e| e.into_inner()).push(done);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    summarize(&results, all.len(), a.shard, global.json)
}

/// Counts of the layer outcomes in one image's JSON result.
fn layer_counts(out: &Value) -> (usize, usize, usize) {
    let count = |status: &str| {
        out["layers"]
            .as_array()
            .map_or(0, |l| l.iter().filter(|x| x["status"] == status).count())
    };
    (count("built"), count("reused"), count("skipped"))
}

fn print_done(d: &Done, json: bool) {
    // The one-image path prints these with its text; here it printed nothing.
    if let Ok((_, out)) = &d.result {
        for path in out["prefetch_not_found"].as_array().into_iter().flatten() {
            eprintln!(
                "warning: {}: prefetch file {} not found in any layer",
                d.reference,
                path.as_str().unwrap_or_default()
            );
        }
    }
    match (&d.result, json) {
        (Ok((code, out)), true) => {
            let mut o = out.clone();
            o["reference"] = json!(d.reference);
            o["ok"] = json!(*code == crate::exit::OK);
            println!("{o}");
        }
        (Err(e), true) => {
            let mut o = json!({"reference": d.reference, "ok": false, "error": crate::describe(e)});
            if let Some(soci_image::Error::NothingIndexed { layers, .. }) = e.downcast_ref() {
                o["layers"] = super::image::layers_json(layers);
            }
            println!("{o}");
        }
        (Ok((code, out)), false) => {
            let (built, reused, skipped) = layer_counts(out);
            let indexes: Vec<&str> = out["platforms"]
                .as_array()
                .map(|p| p.iter().filter_map(|x| x["index"].as_str()).collect())
                .unwrap_or_default();
            let mut line = format!(
                "{}: {} soci index {} ({built} layer(s) built, {reused} reused, {skipped} skipped)",
                d.reference,
                if *code == crate::exit::OK {
                    "ok,"
                } else {
                    "VERIFY FAILED,"
                },
                indexes.join(", ")
            );
            if let Some(p) = out.get("pushed") {
                let how = p["image_index"]["digest"]
                    .as_str()
                    .map(|d| format!("SOCI-enabled image {d}"))
                    .or_else(|| p["referrers"].as_str().map(str::to_string))
                    .unwrap_or_default();
                line.push_str(&format!(
                    "; pushed to {} ({how})",
                    p["destination"].as_str().unwrap_or("")
                ));
            }
            println!("{line}");
        }
        (Err(e), false) => println!("{}: FAILED: {}", d.reference, crate::describe(e)),
    }
}

/// The last line(s): how many images were indexed, which failed; the exit
/// code (1 if any failed, else 3 if a verify failed, else 0).
fn summarize(results: &[Done], total: usize, shard: Option<Shard>, json: bool) -> Result<u8> {
    let failed: Vec<&str> = results
        .iter()
        .filter(|d| d.result.is_err())
        .map(|d| d.reference.as_str())
        .collect();
    let mismatched: Vec<&str> = results
        .iter()
        .filter(|d| matches!(&d.result, Ok((c, _)) if *c != crate::exit::OK))
        .map(|d| d.reference.as_str())
        .collect();
    let indexed = results.len() - failed.len() - mismatched.len();
    let built: usize = results
        .iter()
        .filter_map(|d| d.result.as_ref().ok())
        .map(|(_, o)| layer_counts(o).0)
        .sum();
    let shard_text = shard.map(|s| format!("{}/{}", s.index, s.count));
    if json {
        println!(
            "{}",
            json!({"summary": {
                "images": results.len(),
                "listed": total,
                "shard": shard_text,
                "indexed": indexed,
                "layers_built": built,
                "failed": failed,
                "verify_failed": mismatched,
            }})
        );
    } else {
        println!(
            "{} image(s){}: {indexed} indexed, {} failed, {} verify mismatch(es); {built} layer(s) built",
            results.len(),
            shard_text
                .map(|s| format!(" (shard {s} of {total} listed)"))
                .unwrap_or_default(),
            failed.len(),
            mismatched.len()
        );
    }
    if !failed.is_empty() {
        eprintln!(
            "soci: {} of {} image(s) failed: {}",
            failed.len(),
            results.len(),
            failed.join(", ")
        );
        return Ok(crate::exit::ERROR);
    }
    if !mismatched.is_empty() {
        eprintln!(
            "soci: verify found a mismatch in {} image(s): {}",
            mismatched.len(),
            mismatched.join(", ")
        );
        return Ok(crate::exit::VERIFY_FAILED);
    }
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_skip_blank_lines_and_comments() {
        let text = "# images\n\nr.example/a:1\n  r.example/b:2  \n#r.example/c:3\n\n";
        assert_eq!(parse_list(text), ["r.example/a:1", "r.example/b:2"]);
    }

    /// The hash is FNV-1a 64 (the published test vectors), so a shard is the
    /// same on every machine.
    #[test]
    fn shards_are_fnv1a() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        for n in 1..=4 {
            assert!(shard_of("r.example/a:1", n) < n);
        }
    }
}
