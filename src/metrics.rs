//! Per-layer timings and bytes moved, for the `--json` result of `create`,
//! `convert` and `push` (so a CI pipeline can chart them).
//!
//! [`Metered`] sits between the image jobs and the progress display: it
//! forwards every callback and keeps, per blob, the bytes read from the source,
//! the bytes sent to the destination and how long its zTOC build took.
use serde_json::{json, Value};
use soci_image::Reporter;
use soci_oci::spec::Digest;
use soci_ztoc::build::BuildProgress;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
struct Blob {
    /// Bytes read from the source by the zTOC build.
    build_read: u64,
    build_start: Option<Instant>,
    build_seconds: Option<f64>,
    /// Bytes sent to the destination by finished copy attempts (a restarted
    /// upload sends its bytes again; all of them count as moved).
    copied: u64,
    /// Bytes of the copy attempt in progress.
    attempt: u64,
    copy_start: Option<Instant>,
    copy_seconds: Option<f64>,
    /// Sent in the build's pass (the layer tee).
    teed: u64,
}

pub(crate) struct Metered<'a> {
    inner: &'a dyn Reporter,
    start: Instant,
    blobs: Mutex<HashMap<String, Blob>>,
}

impl<'a> Metered<'a> {
    pub(crate) fn new(inner: &'a dyn Reporter) -> Self {
        Metered {
            inner,
            start: Instant::now(),
            blobs: Mutex::new(HashMap::new()),
        }
    }

    fn with(&self, digest: &str, f: impl FnOnce(&mut Blob)) {
        let mut m = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(digest.to_string()).or_default());
    }

    /// Adds `downloaded_bytes`, `uploaded_bytes`, `build_seconds` and
    /// `copy_seconds` to each entry of `out["layers"]`, and totals under
    /// `out["transfer"]`.
    pub(crate) fn annotate(&self, out: &mut Value) {
        let m = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        // A copy reads what it sends, so copied bytes are read bytes too.
        let read = |b: &Blob| b.build_read + b.copied;
        let sent = |b: &Blob| b.teed + b.copied;
        if let Some(layers) = out.get_mut("layers").and_then(Value::as_array_mut) {
            for l in layers {
                let b = l
                    .get("digest")
                    .and_then(Value::as_str)
                    .and_then(|d| m.get(d));
                let (r, s, build, copy) = match b {
                    Some(b) => (read(b), sent(b), b.build_seconds, b.copy_seconds),
                    None => (0, 0, None, None),
                };
                l["downloaded_bytes"] = json!(r);
                l["uploaded_bytes"] = json!(s);
                l["build_seconds"] = json!(build);
                l["copy_seconds"] = json!(copy);
            }
        }
        out["transfer"] = json!({
            "seconds": self.start.elapsed().as_secs_f64(),
            "downloaded_bytes": m.values().map(read).sum::<u64>(),
            "uploaded_bytes": m.values().map(sent).sum::<u64>(),
            "build_seconds": m.values().filter_map(|b| b.build_seconds).sum::<f64>(),
        });
    }
}

impl Reporter for Metered<'_> {
    fn layer_start(&self, d: &Digest, size: u64) {
        self.with(d.as_str(), |b| b.build_start = Some(Instant::now()));
        self.inner.layer_start(d, size);
    }
    fn layer_progress(&self, d: &Digest, p: &BuildProgress) {
        self.with(d.as_str(), |b| {
            b.build_read = b.build_read.max(p.compressed_read)
        });
        self.inner.layer_progress(d, p);
    }
    fn layer_done(&self, d: &Digest, outcome: &str) {
        self.with(d.as_str(), |b| {
            b.build_seconds = b.build_start.map(|s| s.elapsed().as_secs_f64());
        });
        self.inner.layer_done(d, outcome);
    }
    fn message(&self, line: &str) {
        self.inner.message(line);
    }
    fn copy_progress(&self, d: &Digest, sent: u64, size: u64) {
        self.with(d.as_str(), |b| {
            b.copy_start.get_or_insert_with(Instant::now);
            if sent < b.attempt {
                // A new attempt: the last one's bytes were moved all the same.
                b.copied += b.attempt;
            }
            b.attempt = sent;
        });
        self.inner.copy_progress(d, sent, size);
    }
    fn copy_done(&self, d: &Digest) {
        self.with(d.as_str(), |b| {
            b.copied += std::mem::take(&mut b.attempt);
            b.copy_seconds = b.copy_start.map(|s| s.elapsed().as_secs_f64());
        });
        self.inner.copy_done(d);
    }
    fn layer_uploaded(&self, d: &Digest, bytes: u64) {
        self.with(d.as_str(), |b| b.teed += bytes);
        self.inner.layer_uploaded(d, bytes);
    }
    fn layer_wait(&self, d: &Digest) {
        self.inner.layer_wait(d);
    }
    fn layer_wait_over(&self, d: &Digest) {
        self.inner.layer_wait_over(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_restarted_copies_and_teed_layers() {
        let m = Metered::new(&soci_image::Silent);
        let dg = |c: char| Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap();
        let (a, b, c) = (&dg('a'), &dg('b'), &dg('c'));
        let p = |n| BuildProgress {
            compressed_read: n,
            uncompressed: 0,
            spans: 0,
            files: 0,
        };
        m.layer_start(a, 100);
        m.layer_progress(a, &p(60));
        m.layer_progress(a, &p(100));
        m.layer_done(a, "built");
        m.layer_uploaded(a, 100);
        // "b" is copied: 30 bytes, restart, 50 bytes.
        m.copy_progress(b, 0, 50);
        m.copy_progress(b, 30, 50);
        m.copy_progress(b, 0, 50);
        m.copy_progress(b, 50, 50);
        m.copy_done(b);
        let mut out = json!({"layers": [{"digest": a}, {"digest": b}, {"digest": c}]});
        m.annotate(&mut out);
        let l = &out["layers"];
        assert_eq!(l[0]["downloaded_bytes"], 100);
        assert_eq!(l[0]["uploaded_bytes"], 100);
        assert!(l[0]["build_seconds"].as_f64().is_some());
        assert_eq!(l[1]["uploaded_bytes"], 80);
        assert_eq!(l[1]["downloaded_bytes"], 80);
        assert!(l[1]["build_seconds"].is_null());
        assert_eq!(l[2]["uploaded_bytes"], 0);
        assert_eq!(out["transfer"]["uploaded_bytes"], 180);
        assert_eq!(out["transfer"]["downloaded_bytes"], 180);
    }
}
