//! The span cache shared by every FUSE thread and the background fetcher.
//!
//! A span is fetched by range (`soci_image::lazy::fetch_checked_spans`: every
//! span checked against its zTOC digest) and inflated from its checkpoint once
//! (`lazy::span_data`); its uncompressed bytes are kept in memory (least
//! recently used first out, bounded) and written to the disk cache (bounded by
//! `--cache-size`, least recently used first out). Concurrent reads of one span
//! wait for the one fetch in flight.
use crate::image::LayerData;
use soci_oci::error_chain;
use soci_oci::source::ImageSource;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Read-aheads in flight at once, at most.
const MAX_READ_AHEADS: usize = 2;

/// Contiguous runs `(first, last)` of span ids in `keys` (sorted by id, one layer).
fn runs(keys: &[SpanKey]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for k in keys {
        match out.last_mut() {
            Some((_, b)) if *b + 1 == k.1 => *b = k.1,
            _ => out.push((k.1, k.1)),
        }
    }
    out
}

/// A span of a layer: (layer index, span id).
pub type SpanKey = (usize, u64);

/// A span's bytes, or why it could not be had (shared by every waiter).
type SpanResult = Result<Arc<Vec<u8>>, String>;

/// What the mount fetched and served.
#[derive(Debug, Default)]
pub struct Counters {
    /// Compressed bytes fetched by range.
    pub bytes_fetched: AtomicU64,
    /// Spans fetched.
    pub spans_fetched: AtomicU64,
    /// Range requests made.
    pub requests: AtomicU64,
    /// Span reads answered from memory.
    pub memory_hits: AtomicU64,
    /// Span reads answered from the disk cache.
    pub disk_hits: AtomicU64,
    /// Fetches that failed.
    pub errors: AtomicU64,
}

/// A fetch in flight; readers of the same span wait on it.
#[derive(Default)]
struct Slot {
    done: Mutex<Option<Result<Arc<Vec<u8>>, String>>>,
    cv: Condvar,
}

/// Least-recently-used bookkeeping of sizes by key.
struct Lru<K> {
    map: HashMap<K, (u64, u64)>,
    order: BTreeMap<u64, K>,
    bytes: u64,
    tick: u64,
}

impl<K> Default for Lru<K> {
    fn default() -> Self {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            bytes: 0,
            tick: 0,
        }
    }
}

impl<K: Clone + Eq + std::hash::Hash> Lru<K> {
    /// Marks `key` used (inserting it with `size` bytes); returns the keys to
    /// evict to stay within `limit`.
    fn touch(&mut self, key: K, size: u64, limit: u64) -> Vec<K> {
        self.tick += 1;
        if let Some((t, s)) = self.map.insert(key.clone(), (self.tick, size)) {
            self.order.remove(&t);
            self.bytes -= s;
        }
        self.order.insert(self.tick, key);
        self.bytes += size;
        let mut out = Vec::new();
        while self.bytes > limit && self.order.len() > 1 {
            let (&t, k) = self.order.iter().next().expect("non-empty");
            let k = k.clone();
            self.order.remove(&t);
            if let Some((_, s)) = self.map.remove(&k) {
                self.bytes -= s;
            }
            out.push(k);
        }
        out
    }
}

struct Memory {
    lru: Lru<SpanKey>,
    data: HashMap<SpanKey, Arc<Vec<u8>>>,
}

/// The span cache of one mount.
pub struct SpanCache {
    source: Arc<dyn ImageSource>,
    layers: Arc<Vec<LayerData>>,
    memory: Mutex<Memory>,
    memory_limit: u64,
    inflight: Mutex<HashMap<SpanKey, Arc<Slot>>>,
    disk_dir: PathBuf,
    /// Span files in `disk_dir` by name, this image's and others' (the
    /// directory may be shared): the bound applies to all of them.
    disk: Mutex<Lru<String>>,
    disk_limit: u64,
    /// Spans after a demand miss fetched in the background (0: none).
    read_ahead: u64,
    /// Read-aheads running.
    ahead_running: std::sync::atomic::AtomicUsize,
    /// Fetches a read is waiting for, running.
    demand: std::sync::atomic::AtomicUsize,
    /// Set at unmount: nothing more is written to the disk cache and no
    /// read-ahead starts (a fetch still running must not leave the cache
    /// directory over its bound after the mount has gone).
    closed: std::sync::atomic::AtomicBool,
    /// What was fetched and served.
    pub counters: Counters,
}

impl SpanCache {
    /// A cache over `layers` of `source`: at most `memory_limit` bytes of
    /// spans in memory, `disk_limit` in `disk_dir`.
    pub fn new(
        source: Arc<dyn ImageSource>,
        layers: Arc<Vec<LayerData>>,
        memory_limit: u64,
        disk_dir: PathBuf,
        disk_limit: u64,
    ) -> Self {
        // What earlier mounts left, oldest first (by modification time).
        let mut old: Vec<(std::time::SystemTime, String, u64)> = std::fs::read_dir(&disk_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let m = e.metadata().ok()?;
                if name.ends_with(".part") {
                    let _ = std::fs::remove_file(e.path());
                    return None;
                }
                Some((m.modified().ok()?, name, m.len()))
            })
            .collect();
        old.sort();
        let mut disk = Lru::default();
        for (_, name, size) in old {
            for k in disk.touch(name, size, disk_limit) {
                let _ = std::fs::remove_file(disk_dir.join(k));
            }
        }
        SpanCache {
            source,
            layers,
            memory: Mutex::new(Memory {
                lru: Lru::default(),
                data: HashMap::new(),
            }),
            memory_limit,
            inflight: Mutex::new(HashMap::new()),
            disk_dir,
            disk: Mutex::new(disk),
            disk_limit,
            read_ahead: 0,
            ahead_running: Default::default(),
            demand: Default::default(),
            closed: Default::default(),
            counters: Counters::default(),
        }
    }

    /// After a read had to wait for span `s` to be fetched, fetch spans
    /// `s+1 ..= s+n` of the layer in the background (0: never). See
    /// [`Self::read`].
    pub fn with_read_ahead(mut self, n: u64) -> Self {
        self.read_ahead = n;
        self
    }

    /// The layers served.
    pub fn layers(&self) -> &[LayerData] {
        &self.layers
    }

    /// The disk cache's file name of a span: the zTOC names the span's bytes
    /// whatever image they belong to.
    fn disk_name(&self, key: SpanKey) -> Option<String> {
        match &self.layers[key.0] {
            LayerData::Lazy { ztoc_digest, .. } => {
                Some(format!("{}-{}", ztoc_digest.encoded(), key.1))
            }
            LayerData::Local { .. } => None,
        }
    }

    fn in_memory(&self, key: SpanKey) -> Option<Arc<Vec<u8>>> {
        let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let data = m.data.get(&key).cloned()?;
        m.lru.touch(key, data.len() as u64, self.memory_limit);
        Some(data)
    }

    fn remember(&self, key: SpanKey, data: &Arc<Vec<u8>>) {
        let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let evict = m.lru.touch(key, data.len() as u64, self.memory_limit);
        m.data.insert(key, data.clone());
        for k in evict {
            m.data.remove(&k);
        }
    }

    fn on_disk(&self, key: SpanKey) -> Option<Arc<Vec<u8>>> {
        let name = self.disk_name(key)?;
        let size = {
            let d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
            d.map.get(&name)?.1
        };
        let bytes = std::fs::read(self.disk_dir.join(&name)).ok()?;
        if bytes.len() as u64 != size {
            return None;
        }
        let mut d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        d.touch(name, size, self.disk_limit);
        Some(Arc::new(bytes))
    }

    /// Appends bytes `from..to` of span `key` to `out` if the span is cached,
    /// without loading the whole span: from memory, else straight from its
    /// disk cache file (a read of a few pages should not cost reading and
    /// allocating a 4 MiB span; on a mount whose spans are all on disk that
    /// was most of its CPU time). False if it is not cached (or vanished).
    pub fn read_cached(&self, key: SpanKey, from: u64, to: u64, out: &mut Vec<u8>) -> bool {
        if let Some(d) = self.in_memory(key) {
            self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            let (a, b) = (from as usize, (to as usize).min(d.len()));
            if a < b {
                out.extend_from_slice(&d[a..b]);
            }
            return true;
        }
        let Some(name) = self.disk_name(key) else {
            return false;
        };
        let size = {
            let d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
            match d.map.get(&name) {
                Some(&(_, size)) => size,
                None => return false,
            }
        };
        let to = to.min(size);
        let Ok(file) = std::fs::File::open(self.disk_dir.join(&name)) else {
            return false;
        };
        if from < to {
            let at = out.len();
            out.resize(at + (to - from) as usize, 0);
            if std::os::unix::fs::FileExt::read_exact_at(&file, &mut out[at..], from).is_err() {
                out.truncate(at);
                return false;
            }
        }
        self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
        let evict = {
            let mut d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
            d.touch(name, size, self.disk_limit)
        };
        for k in evict {
            let _ = std::fs::remove_file(self.disk_dir.join(k));
        }
        true
    }

    /// Stops writing to the disk cache and starting read-aheads, then waits
    /// (up to `wait`) for the read-aheads running to end.
    pub fn close(&self, wait: std::time::Duration) {
        self.closed.store(true, Ordering::Release);
        let deadline = std::time::Instant::now() + wait;
        while self.ahead_running.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Best effort: a span that cannot be written is simply not cached on disk.
    fn to_disk(&self, key: SpanKey, data: &[u8]) {
        let Some(name) = self.disk_name(key) else {
            return;
        };
        if data.len() as u64 > self.disk_limit || self.closed.load(Ordering::Acquire) {
            return;
        }
        let path = self.disk_dir.join(&name);
        let tmp = path.with_extension("part");
        if std::fs::write(&tmp, data).is_err() || std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        let evict = {
            let mut d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
            d.touch(name, data.len() as u64, self.disk_limit)
        };
        for k in evict {
            let _ = std::fs::remove_file(self.disk_dir.join(k));
        }
    }

    /// Whether span `key` is cached (memory or disk).
    pub fn has(&self, key: SpanKey) -> bool {
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .data
            .contains_key(&key)
            || self.disk_name(key).is_some_and(|n| {
                self.disk
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .map
                    .contains_key(&n)
            })
    }

    /// The uncompressed bytes of span `key`, fetched if not cached.
    pub fn get(&self, key: SpanKey) -> Result<Arc<Vec<u8>>, String> {
        loop {
            if let Some(d) = self.in_memory(key) {
                self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(d);
            }
            if self.claim(&[key]).pop().is_some() {
                return self
                    .load_run(key.0, key.1, key.1)
                    .pop()
                    .map(|(_, r)| r)
                    .unwrap_or_else(|| Err("span not loaded".into()));
            }
            let slot = self.slot(key);
            if let Some(slot) = slot {
                let mut g = slot.done.lock().unwrap_or_else(|p| p.into_inner());
                while g.is_none() {
                    g = slot.cv.wait(g).unwrap_or_else(|p| p.into_inner());
                }
                return g.clone().expect("set");
            }
            // Completed and already evicted between the two looks: look again.
        }
    }

    /// The in-flight fetch of `key`, if there is one (its waiters keep their
    /// own `Arc`).
    fn slot(&self, key: SpanKey) -> Option<Arc<Slot>> {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }

    /// Appends bytes `from..to` of span `(layer, sp)` to `out`: from the
    /// cache, else fetched (spans `sp..=last` that are missing too, the rest
    /// of the read, are fetched with it in one request). After a fetch, the
    /// next spans of the layer are fetched in the background (`read_ahead`):
    /// the process that read is computing now, the link would sit idle, and
    /// the files a program reads next mostly lie further on in the same layer
    /// (a package's modules are stored together).
    pub fn read(
        self: &Arc<Self>,
        layer: usize,
        sp: u64,
        last: u64,
        from: u64,
        to: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let key = (layer, sp);
        if self.read_cached(key, from, to, out) {
            return Ok(());
        }
        let wanted: Vec<SpanKey> = (sp..=last)
            .map(|s| (layer, s))
            .filter(|k| *k == key || !self.has(*k))
            .collect();
        let claimed = self.claim(&wanted);
        let fetched_here = claimed.first() == Some(&key);
        self.demand.fetch_add(1, Ordering::AcqRel);
        // This read's own span as loaded here (its error too: a failed fetch
        // is not tried a second time, with a second retry budget, by `get`).
        let mut mine = None;
        for (a, b) in runs(&claimed) {
            for (s, r) in self.load_run(layer, a, b) {
                if s == sp {
                    mine = Some(r);
                }
            }
        }
        let span = mine.unwrap_or_else(|| self.get(key));
        self.demand.fetch_sub(1, Ordering::AcqRel);
        let span = span?;
        let to = to.min(span.len() as u64);
        if from < to {
            out.extend_from_slice(&span[from as usize..to as usize]);
        }
        if fetched_here {
            let end = claimed.last().map_or(sp, |k| k.1);
            self.start_read_ahead(layer, end + 1);
        }
        Ok(())
    }

    /// Whether a read is waiting for a span to come in right now.
    pub fn demand_in_flight(&self) -> bool {
        self.demand.load(Ordering::Acquire) > 0
    }

    /// Fetches spans `first..first+read_ahead` of `layer` on a thread of its
    /// own, unless as many read-aheads as FUSE could want (2) already run.
    fn start_read_ahead(self: &Arc<Self>, layer: usize, first: u64) {
        if self.read_ahead == 0 || self.closed.load(Ordering::Acquire) {
            return;
        }
        let running = &self.ahead_running;
        if running.fetch_add(1, Ordering::AcqRel) >= MAX_READ_AHEADS {
            running.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let me = self.clone();
        let last = first + self.read_ahead - 1;
        let started = std::thread::Builder::new()
            .name("soci-read-ahead".into())
            .spawn(move || {
                me.prefetch(layer, first, last);
                me.ahead_running.fetch_sub(1, Ordering::AcqRel);
            });
        if started.is_err() {
            running.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Claims the fetch of every key of `keys` that is not in memory nor in
    /// flight; returns those claimed. The claimer must call [`Self::load_run`].
    fn claim(&self, keys: &[SpanKey]) -> Vec<SpanKey> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for &k in keys {
            if m.data.contains_key(&k) || inflight.contains_key(&k) {
                continue;
            }
            inflight.insert(k, Arc::new(Slot::default()));
            out.push(k);
        }
        out
    }

    fn complete(&self, key: SpanKey, r: Result<Arc<Vec<u8>>, String>) {
        if let Ok(d) = &r {
            self.remember(key, d);
        }
        let slot = self.slot(key);
        if let Some(slot) = slot {
            *slot.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            slot.cv.notify_all();
        }
        // Waiters hold their own Arc of the slot; new readers find the memory copy.
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// Loads spans `first..=last` of `layer`, all claimed by the caller: from
    /// the disk cache where there, the rest in one range request.
    fn load_run(&self, layer: usize, first: u64, last: u64) -> Vec<(u64, SpanResult)> {
        let mut done = Vec::new();
        let mut missing = Vec::new();
        for sp in first..=last {
            match self.on_disk((layer, sp)) {
                Some(d) => {
                    self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                    self.complete((layer, sp), Ok(d.clone()));
                    done.push((sp, Ok(d)));
                }
                None => missing.push(sp),
            }
        }
        let (Some(&a), Some(&b)) = (missing.first(), missing.last()) else {
            return done;
        };
        // Spans found on disk in the middle are fetched again rather than
        // splitting the request: one round trip matters more.
        let r = self.fetch(layer, a, b);
        match r {
            Ok(spans) => {
                for (sp, data) in spans {
                    if missing.contains(&sp) {
                        self.to_disk((layer, sp), &data);
                        let data = Arc::new(data);
                        self.complete((layer, sp), Ok(data.clone()));
                        done.push((sp, Ok(data)));
                    }
                }
            }
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                for sp in missing {
                    self.complete((layer, sp), Err(e.clone()));
                    done.push((sp, Err(e.clone())));
                }
            }
        }
        done
    }

    /// Fetches and inflates spans `a..=b` of `layer`.
    fn fetch(&self, layer: usize, a: u64, b: u64) -> Result<Vec<(u64, Vec<u8>)>, String> {
        let LayerData::Lazy {
            desc, ztoc, zinfo, ..
        } = &self.layers[layer]
        else {
            return Err("layer has no zTOC".into());
        };
        let (start, bytes) =
            soci_image::lazy::fetch_checked_spans(&*self.source, desc, ztoc, zinfo, a, b)
                .map_err(|e| error_chain(&e))?;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.counters
            .spans_fetched
            .fetch_add(b - a + 1, Ordering::Relaxed);
        let blob_size = desc.size.max(0) as u64;
        let mut out = Vec::new();
        for sp in a..=b {
            let r = zinfo.span_compressed_range(sp, blob_size);
            let piece = &bytes[(r.start - start) as usize..(r.end - start) as usize];
            let data =
                soci_image::lazy::span_data(ztoc, zinfo, sp, piece).map_err(|e| error_chain(&e))?;
            out.push((sp, data));
        }
        Ok(out)
    }

    /// Fetches spans `first..=last` of `layer` (those not cached nor in
    /// flight), each contiguous run in one request: the background fetcher's
    /// and the read-ahead's call (they size the batches).
    pub fn prefetch(&self, layer: usize, first: u64, last: u64) {
        let n = match &self.layers[layer] {
            LayerData::Lazy { zinfo, .. } => zinfo.num_spans(),
            LayerData::Local { .. } => return,
        };
        if n == 0 || first >= n {
            return;
        }
        let wanted: Vec<SpanKey> = (first..=last.min(n - 1))
            .map(|s| (layer, s))
            .filter(|k| !self.has(*k))
            .collect();
        for (a, b) in runs(&self.claim(&wanted)) {
            self.load_run(layer, a, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_least_recently_used_first_within_the_bound() {
        let mut l: Lru<u32> = Lru::default();
        assert!(l.touch(1, 40, 100).is_empty());
        assert!(l.touch(2, 40, 100).is_empty());
        // 1 used again: 2 is now the oldest.
        assert!(l.touch(1, 40, 100).is_empty());
        assert_eq!(l.touch(3, 40, 100), vec![2]);
        assert_eq!(l.bytes, 80);
        // One entry larger than the bound stays alone.
        assert_eq!(l.touch(4, 500, 100), vec![1, 3]);
        assert_eq!(l.bytes, 500);
    }
}
