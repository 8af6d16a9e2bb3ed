//! Progress bars on stderr, only when stderr is a terminal and not `--quiet`.
use indicatif::{ProgressBar, ProgressStyle};
use soci_oci::spec::Digest;
use soci_ztoc::build::{BuildProgress, BuildReporter};
use std::io::IsTerminal;

/// Whether progress should be drawn.
pub(crate) fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A per-layer bar: compressed bytes read, spans and files found so far.
pub(crate) struct LayerBar {
    bar: ProgressBar,
}

impl LayerBar {
    pub(crate) fn new(label: &str, total: Option<u64>, show: bool) -> Self {
        let bar = if !show {
            ProgressBar::hidden()
        } else if let Some(t) = total {
            ProgressBar::new(t)
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        LayerBar { bar }
    }
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl BuildReporter for LayerBar {
    fn progress(&mut self, p: &BuildProgress) {
        self.bar.set_position(p.compressed_read);
        self.bar
            .set_message(format!("{} spans, {} files", p.spans, p.files));
    }
}

/// Progress of whole-image jobs: one bar per layer being read, on stderr.
pub(crate) struct ImageProgress {
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<std::collections::HashMap<String, ProgressBar>>,
    show: bool,
    /// Print free-form messages (the reference's lines) on stderr.
    chatty: bool,
}

impl ImageProgress {
    pub(crate) fn new(quiet: bool, json: bool) -> Self {
        let show = enabled(quiet);
        let multi = indicatif::MultiProgress::new();
        if !show {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        ImageProgress {
            multi,
            bars: Default::default(),
            show,
            chatty: !quiet && !json,
        }
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

impl ImageProgress {
    /// A new bar for `key`, labelled `prefix` (replacing one with the same key).
    fn add_bar(&self, key: String, prefix: String, size: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:25}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(prefix);
        if let Some(old) = self
            .bars
            .lock()
            .expect("progress lock")
            .insert(key, bar.clone())
        {
            old.finish_and_clear();
            self.multi.remove(&old);
        }
        bar
    }

    fn remove_bar(&self, key: &str) {
        if let Some(bar) = self.bars.lock().expect("progress lock").remove(key) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

/// Bars of blob copies are keyed apart from the layer bars of the same digest.
fn copy_key(digest: &str) -> String {
    format!("copy {digest}")
}

impl soci_image::Reporter for ImageProgress {
    fn layer_start(&self, layer_digest: &Digest, size: u64) {
        if self.show {
            self.add_bar(
                layer_digest.to_string(),
                short(layer_digest.as_str()).to_string(),
                size,
            );
        }
    }
    fn layer_progress(&self, layer_digest: &Digest, p: &BuildProgress) {
        if let Some(bar) = self
            .bars
            .lock()
            .expect("progress lock")
            .get(layer_digest.as_str())
        {
            bar.set_position(p.compressed_read);
            bar.set_message(format!("{} spans, {} files", p.spans, p.files));
        }
    }
    fn layer_done(&self, layer_digest: &Digest, _outcome: &str) {
        // The outcome is a result: the command prints it once, on stdout, at
        // the end; printed here too it appeared twice on a terminal.
        self.remove_bar(layer_digest.as_str());
    }
    fn copy_progress(&self, digest: &Digest, sent: u64, size: u64) {
        if !self.show {
            // Without bars, one line per copy (and per restarted copy) says
            // what a long step is doing; with bars, the bar says it.
            if sent == 0 && self.chatty {
                eprintln!("copying blob {digest}");
            }
            return;
        }
        let key = copy_key(digest.as_str());
        let bar = self.bars.lock().expect("progress lock").get(&key).cloned();
        let bar = match bar {
            // A restarted upload begins again from 0.
            Some(bar) if sent >= bar.position() => bar,
            _ => self.add_bar(key, format!("copy {}", short(digest.as_str())), size),
        };
        bar.set_position(sent);
    }
    fn copy_done(&self, digest: &Digest) {
        self.remove_bar(&copy_key(digest.as_str()));
    }
    fn message(&self, line: &str) {
        if !self.chatty {
            return;
        }
        if self.show {
            let _ = self.multi.println(line);
        } else {
            // A hidden MultiProgress drops println: without a terminal (CI logs)
            // these few lines still say what a long step is doing.
            eprintln!("{line}");
        }
    }
}
