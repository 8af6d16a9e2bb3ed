//! Progress bars on stderr, only when stderr is a terminal and not `--quiet`.
use indicatif::{ProgressBar, ProgressStyle};
use soci_ztoc::build::{BuildProgress, BuildReporter};
use std::io::IsTerminal;

/// Whether progress should be drawn.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A per-layer bar: compressed bytes read, spans and files found so far.
pub struct LayerBar {
    bar: ProgressBar,
}

impl LayerBar {
    pub fn new(label: &str, total: Option<u64>, show: bool) -> Self {
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
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl BuildReporter for LayerBar {
    fn progress(&mut self, p: &BuildProgress) {
        self.bar.set_position(p.compressed_read);
        self.bar.set_message(format!("{} spans, {} files", p.spans, p.files));
    }
}
