//! `--record`: which files were read through the mount, in first-read order,
//! and which byte ranges of each. Written in the trace form that
//! `soci bench startup --trace` reads (crates/bench/src/trace.rs); the type
//! lives here so that the mount does not depend on the benchmark.
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// One file read: its path (no leading slash), size and the byte ranges read,
/// sorted and merged, as `[offset, length]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RecordedFile {
    /// Path in the image, without a leading slash.
    pub path: String,
    /// Size of the file.
    pub size: u64,
    /// Byte ranges read, `[offset, length]`, sorted and merged.
    pub ranges: Vec<(u64, u64)>,
}

/// The record file: `{"image":..,"command":[],"files":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Recording {
    /// The image mounted, as given.
    pub image: String,
    /// The command run (empty: the mount does not run one).
    pub command: Vec<String>,
    /// Files in first-read order.
    pub files: Vec<RecordedFile>,
}

/// Reads seen through the mount; cheap enough to keep always on.
#[derive(Debug, Default)]
pub struct ReadLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    order: Vec<u64>,
    files: HashMap<u64, RecordedFile>,
}

/// Sorts `ranges` and merges those that overlap or touch.
pub fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (off, len) in ranges {
        match out.last_mut() {
            Some((o, l)) if off <= *o + *l => *l = (*l).max(off + len - *o),
            _ => out.push((off, len)),
        }
    }
    out
}

impl ReadLog {
    /// Notes that `len` bytes at `offset` of inode `ino` (`path`, `size`) were read.
    pub fn note(&self, ino: u64, path: &str, size: u64, offset: u64, len: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        let f = inner.files.entry(ino).or_insert_with(|| {
            inner.order.push(ino);
            RecordedFile {
                path: path.to_string(),
                size,
                ranges: Vec::new(),
            }
        });
        f.ranges.push((offset, len));
        // Keep memory flat for files read in many small pieces.
        if f.ranges.len() > 256 {
            f.ranges = merge_ranges(std::mem::take(&mut f.ranges));
        }
    }

    /// The recording so far.
    pub fn recording(&self, image: &str) -> Recording {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Recording {
            image: image.to_string(),
            command: Vec::new(),
            files: g
                .order
                .iter()
                .map(|ino| {
                    let f = &g.files[ino];
                    RecordedFile {
                        path: f.path.clone(),
                        size: f.size,
                        ranges: merge_ranges(f.ranges.clone()),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_read_order_and_merges_ranges() {
        let log = ReadLog::default();
        log.note(5, "b", 100, 50, 10);
        log.note(3, "a", 10, 0, 4);
        log.note(5, "b", 100, 0, 20);
        log.note(5, "b", 100, 20, 5);
        log.note(5, "b", 100, 55, 10);
        let r = log.recording("img");
        assert_eq!(r.files.len(), 2);
        assert_eq!(r.files[0].path, "b");
        assert_eq!(r.files[0].ranges, vec![(0, 25), (50, 15)]);
        assert_eq!(r.files[1].ranges, vec![(0, 4)]);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""ranges":[[0,25],[50,15]]"#), "{json}");
    }
}
