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
use soci_oci::spec::Digest;
use std::io::Read;
use std::sync::{Condvar, Mutex};

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

/// Images started beyond `--max-images` that may wait at once for a layer
/// another image is building. Each costs a thread or two, blocked; the bound
/// keeps a list of thousands of images on one base from starting them all.
const MAX_WAITING_IMAGES: usize = 64;

/// A counting semaphore: `take` blocks until one of `n` is free.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    fn take(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }

    fn give(&self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.freed.notify_one();
    }
}

/// One image's reporter: forwards to the shared bars, and manages the
/// image's slot. The image needs one while it builds a layer. While a layer
/// of it waits for another image's build of that layer (the base) and none
/// of its layers builds, it gives the slot back, so the next image starts
/// and builds its own layers instead of queueing behind the base. After the
/// wait it goes on without a slot unless it builds again: what is left is
/// reusing the stored zTOC and writing (and pushing) the index, waiting on
/// the disk and the network rather than a core, so the images that waited
/// for one base finish together instead of two at a time.
struct Parking<'a> {
    inner: &'a ImageProgress,
    slots: &'a Slots,
    state: Mutex<SlotState>,
    /// One slot taken at a time by this image's workers.
    taking: Mutex<()>,
}

#[derive(Default)]
struct SlotState {
    /// Whether this image holds a slot (it starts with one).
    holds: bool,
    /// Its layers waiting for another image's build.
    waiting: usize,
    /// Its layers being built.
    building: std::collections::HashSet<Digest>,
}

impl<'a> Parking<'a> {
    fn new(inner: &'a ImageProgress, slots: &'a Slots) -> Self {
        Parking {
            inner,
            slots,
            state: Mutex::new(SlotState {
                holds: true,
                ..SlotState::default()
            }),
            taking: Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the slot back if held and `now` says so.
    fn give_if(&self, now: impl FnOnce(&SlotState) -> bool) {
        let give = {
            let mut s = self.state();
            let give = s.holds && now(&s);
            if give {
                s.holds = false;
            }
            give
        };
        if give {
            self.slots.give();
        }
    }

    /// At the end of the image: its slot, if it holds one, goes back.
    fn end(&self) {
        self.give_if(|_| true);
    }
}

impl soci_image::Reporter for Parking<'_> {
    fn layer_start(&self, d: &Digest, size: u64) {
        {
            let _one = self.taking.lock().unwrap_or_else(|e| e.into_inner());
            let need = {
                let mut s = self.state();
                s.building.insert(d.clone());
                !s.holds
            };
            if need {
                self.slots.take();
                self.state().holds = true;
            }
        }
        self.inner.layer_start(d, size);
    }
    fn layer_progress(&self, d: &Digest, p: &soci_ztoc::build::BuildProgress) {
        self.inner.layer_progress(d, p);
    }
    fn layer_done(&self, d: &Digest, outcome: &str) {
        self.give_if(|s| s.waiting > 0 && s.building.len() == 1 && s.building.contains(d));
        self.state().building.remove(d);
        self.inner.layer_done(d, outcome);
    }
    fn message(&self, line: &str) {
        self.inner.message(line);
    }
    fn copy_progress(&self, d: &Digest, sent: u64, size: u64) {
        self.inner.copy_progress(d, sent, size);
    }
    fn copy_done(&self, d: &Digest) {
        self.inner.copy_done(d);
    }
    fn layer_uploaded(&self, d: &Digest, bytes: u64) {
        self.inner.layer_uploaded(d, bytes);
    }
    fn layer_wait(&self, _: &Digest) {
        self.state().waiting += 1;
        self.give_if(|s| s.building.is_empty());
    }
    fn layer_wait_over(&self, _: &Digest) {
        self.state().waiting -= 1;
    }
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
    let results: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    // `max_images` slots bound the images building layers. An image whose
    // layer waits for another image's build of it (the base) gives its slot
    // back meanwhile, so the next image starts and builds its own layers
    // instead of queueing behind the base (see `Parking`). Images started
    // without a slot are bounded too (their threads).
    let slots = Slots::new(max_images.max(1));
    let started = Slots::new(max_images.max(1) + MAX_WAITING_IMAGES);
    std::thread::scope(|s| {
        for reference in &chosen {
            started.take();
            slots.take();
            let (slots, started, results, progress) = (&slots, &started, &results, &progress);
            let (a, opts) = (&a, &opts);
            s.spawn(move || {
                let parking = Parking::new(progress, slots);
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
                    &parking,
                );
                parking.end();
                let done = Done {
                    reference: reference.clone(),
                    result,
                };
                // As each image ends, so a long run shows progress on stdout.
                print_done(&done, global.json);
                results.lock().unwrap_or_else(|e| e.into_inner()).push(done);
                started.give();
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
    use soci_image::Reporter as _;

    #[test]
    fn lists_skip_blank_lines_and_comments() {
        let text = "# images\n\nr.example/a:1\n  r.example/b:2  \n#r.example/c:3\n\n";
        assert_eq!(parse_list(text), ["r.example/a:1", "r.example/b:2"]);
    }

    /// With one slot, an image whose layer waits for another image's build
    /// while none of its layers builds gives its slot to the next image (the
    /// old run kept it: the next image queued behind the wait), and takes
    /// one again only to build a layer.
    #[test]
    fn a_waiting_image_lends_its_slot() {
        let slots = Slots::new(1);
        let bars = ImageProgress::new(true, false);
        let parked = Parking::new(&bars, &slots);
        let (base, top) = (Digest::of(b"many base"), Digest::of(b"many top"));
        slots.take(); // the first image's slot
        parked.layer_start(&top, 1);
        parked.layer_wait(&base); // its top still builds: it keeps the slot
        assert_eq!(*slots.free.lock().unwrap(), 0);
        parked.layer_done(&top, "built"); // now it only waits
        assert_eq!(*slots.free.lock().unwrap(), 1);
        slots.take(); // the next image starts: would block forever before
        parked.layer_wait_over(&base); // reusing needs no slot
        parked.layer_done(&base, "reused");
        let building = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                parked.layer_start(&top, 1); // a build needs one
                building.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!building.load(std::sync::atomic::Ordering::SeqCst));
            slots.give(); // the next image ends
        });
        assert!(building.load(std::sync::atomic::Ordering::SeqCst));
        parked.end();
        parked.end(); // only what it holds is given
        assert_eq!(*slots.free.lock().unwrap(), 1);
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
