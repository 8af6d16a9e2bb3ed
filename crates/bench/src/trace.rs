//! Startup traces: the files a workload opens, in order, and the byte ranges it reads.
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One file the workload touched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceFile {
    /// Path inside the image, no leading slash, symlinks resolved.
    pub path: String,
    /// The file's size in the image (0 when unknown, e.g. a plain path list).
    #[serde(default)]
    pub size: u64,
    /// `[offset, length]` pairs read (read/pread) or mapped (mmap); sorted, merged.
    #[serde(default)]
    pub ranges: Vec<(u64, u64)>,
}

/// What one workload read at startup, replayed by the lazy start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Trace {
    /// The image the trace was recorded in.
    #[serde(default)]
    pub image: String,
    /// The workload's command line.
    #[serde(default)]
    pub command: Vec<String>,
    /// How to record the trace again.
    #[serde(default)]
    pub regenerate: String,
    /// The files, in the order first opened.
    pub files: Vec<TraceFile>,
}

impl Trace {
    /// A JSON trace (as `scripts/bench-fixtures.py --traces` writes) or a text file
    /// with one path per line (whole files, no ranges).
    pub fn load(path: &Path) -> Result<Trace> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read trace {}", path.display()))?;
        if text.trim_start().starts_with('{') {
            let mut t: Trace =
                serde_json::from_str(&text).with_context(|| format!("trace {}", path.display()))?;
            for f in &mut t.files {
                f.path = clean(&f.path);
            }
            return Ok(t);
        }
        Ok(Trace::from_paths(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        ))
    }

    /// A trace of whole files from a list of paths, each normalised with [`clean`].
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Trace {
        Trace {
            files: paths
                .into_iter()
                .map(|p| TraceFile {
                    path: clean(p),
                    size: 0,
                    ranges: Vec::new(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Whether any file carries byte ranges.
    pub fn has_ranges(&self) -> bool {
        self.files.iter().any(|f| !f.ranges.is_empty())
    }
}

/// `./a//b/` -> `a/b`.
pub fn clean(p: &str) -> String {
    soci_index::prefetch::clean_prefetch_path(p)
}
