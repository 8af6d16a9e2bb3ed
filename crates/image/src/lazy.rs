//! The lazy reader: one file of a layer, fetching only the spans that hold it.
//!
//! Span lookup in the zTOC, one ranged read of the compressed bytes from the span
//! start to the end of the last span needed, then decompression resumed from the
//! checkpoint at the start of the first span. Used by `ztoc get-file --image`,
//! the startup benchmark and the FUSE mount (`soci-mount`, through
//! [`fetch_checked_spans`] and [`span_data`], under its own concurrent cache).
//!
//! A range answer cannot be checked against the layer digest, so every span
//! fetched is checked against the zTOC's digest of that span (sha256 of its
//! compressed bytes) before anything is inflated or returned: a registry (or
//! anything on the way) that alters a range makes the read fail, never return
//! altered file content. The zTOC itself is trusted only once checked against
//! the digest its SOCI index (or the store) names it by.
use crate::error::{Error, Result};
use soci_oci::source::ImageSource;
use soci_oci::spec::Descriptor;
use soci_zinfo::Zinfo;
use soci_ztoc::{TocEntry, Ztoc};

pub use crate::error::SpanCheckError;

/// Whether `layer` is the blob `ztoc` describes (as far as sizes tell) and the
/// zTOC has a digest for every span.
pub(crate) fn check_layout(
    layer: &Descriptor,
    ztoc: &Ztoc,
    zinfo: &Zinfo,
) -> Result<(), SpanCheckError> {
    if layer.size != ztoc.compressed_archive_size {
        return Err(SpanCheckError::LayerSize {
            layer: layer.digest.clone(),
            ztoc: ztoc.compressed_archive_size,
            size: layer.size,
        });
    }
    let digests = ztoc.compression_info.span_digests.len();
    if digests as u64 != zinfo.num_spans() || digests == 0 {
        return Err(SpanCheckError::DigestCount {
            digests,
            spans: zinfo.num_spans(),
        });
    }
    Ok(())
}

/// Checks spans `first..=last`, whose compressed bytes are `data` starting at
/// blob offset `start`, against the zTOC's span digests.
pub(crate) fn check_spans(
    layer: &Descriptor,
    ztoc: &Ztoc,
    zinfo: &Zinfo,
    first: u64,
    last: u64,
    start: u64,
    data: &[u8],
) -> Result<(), SpanCheckError> {
    let blob_size = layer.size.max(0) as u64;
    for span in first..=last {
        let range = zinfo.span_compressed_range(span, blob_size);
        let bytes = range
            .start
            .checked_sub(start)
            .and_then(|a| Some(a as usize..(range.end.checked_sub(start)?) as usize))
            .and_then(|r| data.get(r));
        let actual = match bytes {
            Some(b) => soci_oci::spec::sha256_digest(b),
            None => "(not fetched)".to_string(),
        };
        let expected = &ztoc.compression_info.span_digests[span as usize];
        if actual != *expected {
            return Err(SpanCheckError::DigestMismatch {
                layer: layer.digest.clone(),
                span,
                range,
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(())
}

/// What a lazy read cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchStats {
    /// Range requests made.
    pub requests: u64,
    /// Compressed bytes fetched.
    pub bytes: u64,
    /// Spans those bytes covered.
    pub spans: u64,
}

/// The compressed byte range holding `[offset, offset+len)` of the uncompressed
/// stream, and the first span of it.
pub(crate) fn span_range(
    zinfo: &Zinfo,
    blob_size: u64,
    offset: u64,
    len: u64,
) -> (u64, u64, std::ops::Range<u64>) {
    let first = zinfo.span_of(offset);
    let last = zinfo
        .span_of(offset + len.max(1) - 1)
        .min(zinfo.num_spans().saturating_sub(1));
    let start = zinfo.span_compressed_range(first, blob_size).start;
    let end = zinfo.span_compressed_range(last, blob_size).end;
    (first, last, start..end)
}

/// Reads a regular file's data from `layer` through its zTOC.
pub fn read_entry(
    source: &dyn ImageSource,
    layer: &Descriptor,
    ztoc: &Ztoc,
    zinfo: &Zinfo,
    entry: &TocEntry,
) -> Result<(Vec<u8>, FetchStats)> {
    if entry.uncompressed_offset < 0 || entry.uncompressed_size < 0 {
        return Err(Error::InvalidEntry {
            name: entry.name_lossy().to_string(),
            why: "negative offset or size",
        });
    }
    let (off, len) = (
        entry.uncompressed_offset as u64,
        entry.uncompressed_size as u64,
    );
    if len == 0 {
        return Ok((Vec::new(), FetchStats::default()));
    }
    if off + len > ztoc.uncompressed_archive_size.max(0) as u64 {
        return Err(Error::InvalidEntry {
            name: entry.name_lossy().to_string(),
            why: "data ends past the archive",
        });
    }
    let size = usize::try_from(len).map_err(|source| Error::TooLarge {
        what: "file too large",
        source,
    })?;
    let blob_size = layer.size.max(0) as u64;
    check_layout(layer, ztoc, zinfo)?;
    // Whole spans are fetched (for a tar layer too), so that each can be
    // checked against its digest.
    let (first, last, range) = span_range(zinfo, blob_size, off, len);
    let compressed = source.read_blob_range(layer, range.clone())?;
    if compressed.len() as u64 != range.end - range.start {
        return Err(Error::ShortRange {
            got: compressed.len(),
            range,
        });
    }
    check_spans(layer, ztoc, zinfo, first, last, range.start, &compressed)?;
    match zinfo {
        Zinfo::Tar(_) => {
            let at = (off - range.start) as usize;
            let data = compressed
                .get(at..at + size)
                .ok_or(Error::NotInSpans)?
                .to_vec();
            Ok((
                data,
                FetchStats {
                    requests: 1,
                    bytes: range.end - range.start,
                    spans: last - first + 1,
                },
            ))
        }
        Zinfo::Gzip(gz) => {
            let cp = &gz.checkpoints[first as usize];
            let mut out = vec![0u8; size];
            let n = soci_zinfo::extract_from_checkpoint(
                cp,
                &compressed,
                off - cp.uncompressed_offset,
                &mut out,
            )
            .map_err(|source| Error::InflateFile {
                name: entry.name_lossy().to_string(),
                checkpoint: first,
                source,
            })?;
            if n != size {
                return Err(Error::FileEnded {
                    got: n,
                    size,
                    name: entry.name_lossy().to_string(),
                });
            }
            Ok((
                out,
                FetchStats {
                    requests: 1,
                    bytes: range.end - range.start,
                    spans: last - first + 1,
                },
            ))
        }
    }
}

/// How [`SpanReader`] fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Range requests in flight at once.
    pub parallel: usize,
    /// Merge span runs separated by at most this many unneeded spans into one
    /// request (0: only adjacent spans are merged).
    pub merge_gap_spans: u64,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            parallel: 8,
            merge_gap_spans: 0,
        }
    }
}

/// Sorted, deduplicated span ids as runs `[first, last]` (inclusive), merging runs
/// separated by at most `gap` missing spans.
pub(crate) fn merge_span_runs(spans: &[u64], gap: u64) -> Vec<(u64, u64)> {
    let mut s: Vec<u64> = spans.to_vec();
    s.sort_unstable();
    s.dedup();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for x in s {
        match runs.last_mut() {
            Some((_, last)) if x <= *last + 1 + gap => *last = x,
            _ => runs.push((x, x)),
        }
    }
    runs
}

/// The spans of a layer that hold `[offset, offset+len)` of its uncompressed stream.
pub fn spans_of_range(zinfo: &Zinfo, offset: u64, len: u64) -> std::ops::Range<u64> {
    let n = zinfo.num_spans();
    if n == 0 {
        return 0..0;
    }
    let first = zinfo.span_of(offset).min(n - 1);
    let last = zinfo.span_of(offset + len.max(1) - 1).min(n - 1);
    first..last + 1
}

/// Lazy reads of many files of one layer through a span cache: spans are fetched
/// once (adjacent missing spans merged into one HTTP range request, several
/// requests in parallel) and every read decompresses from its checkpoint.
/// [`read_entry`] is the one-shot form.
pub struct SpanReader<'a> {
    source: &'a dyn ImageSource,
    layer: &'a Descriptor,
    ztoc: &'a Ztoc,
    zinfo: &'a Zinfo,
    opts: BatchOptions,
    /// Compressed bytes fetched, by start offset (ranges may overlap by a byte).
    pieces: std::collections::BTreeMap<u64, Vec<u8>>,
    have: std::collections::BTreeSet<u64>,
    /// Inflated spans (gzip): each span is decompressed once from its checkpoint,
    /// however many files it holds.
    inflated: std::collections::HashMap<u64, Vec<u8>>,
    /// What the reads so far cost.
    pub stats: FetchStats,
}

impl<'a> SpanReader<'a> {
    /// A reader of `layer` through its zTOC; fetches nothing until asked.
    pub fn new(
        source: &'a dyn ImageSource,
        layer: &'a Descriptor,
        ztoc: &'a Ztoc,
        zinfo: &'a Zinfo,
        opts: BatchOptions,
    ) -> Self {
        SpanReader {
            source,
            layer,
            ztoc,
            zinfo,
            opts,
            pieces: Default::default(),
            have: Default::default(),
            inflated: Default::default(),
            stats: FetchStats::default(),
        }
    }

    fn blob_size(&self) -> u64 {
        self.layer.size.max(0) as u64
    }

    /// Fetch every span of `spans` not yet cached: merged runs, `parallel` at a time.
    pub(crate) fn fetch_spans(&mut self, spans: &[u64]) -> Result<()> {
        let missing: Vec<u64> = spans
            .iter()
            .copied()
            .filter(|s| !self.have.contains(s) && *s < self.zinfo.num_spans())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        check_layout(self.layer, self.ztoc, self.zinfo)?;
        let runs = merge_span_runs(&missing, self.opts.merge_gap_spans);
        // One checked range request per run (the mount's cache uses the same
        // call): nothing unchecked enters the cache.
        let fetch = |&(a, b): &(u64, u64)| {
            fetch_checked_spans(self.source, self.layer, self.ztoc, self.zinfo, a, b)
        };
        let parallel = self.opts.parallel.max(1);
        // (blob offset, checked compressed bytes) of each run.
        type Fetched = Result<(u64, Vec<u8>)>;
        let results: Vec<Fetched> = if runs.len() == 1 || parallel == 1 {
            runs.iter().map(fetch).collect()
        } else {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let slots: Vec<std::sync::Mutex<Option<Fetched>>> =
                runs.iter().map(|_| std::sync::Mutex::new(None)).collect();
            std::thread::scope(|sc| {
                for _ in 0..parallel.min(runs.len()) {
                    sc.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= runs.len() {
                            break;
                        }
                        let r = fetch(&runs[i]);
                        *slots[i].lock().unwrap() = Some(r);
                    });
                }
            });
            slots
                .into_iter()
                .map(|m| m.into_inner().unwrap().expect("every slot filled"))
                .collect()
        };
        for ((a, b), r) in runs.into_iter().zip(results) {
            let (start, data) = r?;
            self.stats.requests += 1;
            self.stats.bytes += data.len() as u64;
            self.stats.spans += b - a + 1;
            self.have.extend(a..=b);
            self.pieces.insert(start, data);
        }
        Ok(())
    }

    /// The cached compressed bytes `range` (assembled from pieces), if all there.
    fn cached(&self, range: std::ops::Range<u64>) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        let mut pos = range.start;
        while pos < range.end {
            let (&start, piece) = self.pieces.range(..=pos).next_back()?;
            let end = start + piece.len() as u64;
            if end <= pos {
                // a later piece may start at pos+0 only if it was inserted; try the exact one
                return None;
            }
            let take_end = end.min(range.end);
            out.extend_from_slice(&piece[(pos - start) as usize..(take_end - start) as usize]);
            pos = take_end;
        }
        Some(out)
    }

    /// Bytes `[offset, offset+len)` of the layer's uncompressed stream, fetching
    /// the spans that hold them if they are not cached.
    pub fn read_range(&mut self, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        if offset + len > self.ztoc.uncompressed_archive_size.max(0) as u64 {
            return Err(Error::PastArchive { offset, len });
        }
        let spans: Vec<u64> = spans_of_range(self.zinfo, offset, len).collect();
        self.fetch_spans(&spans)?;
        let size = usize::try_from(len).map_err(|source| Error::TooLarge {
            what: "range too large",
            source,
        })?;
        match self.zinfo {
            Zinfo::Tar(_) => self.cached(offset..offset + len).ok_or(Error::SpansMissing),
            Zinfo::Gzip(_) => {
                let total = self.ztoc.uncompressed_archive_size.max(0) as u64;
                let mut out = Vec::with_capacity(size);
                for &sp in &spans {
                    self.inflate_span(sp)?;
                    let data = &self.inflated[&sp];
                    let ustart = self.zinfo.span_uncompressed_range(sp, total).start;
                    let from = offset.max(ustart) - ustart;
                    let to =
                        ((offset + len).min(ustart + data.len() as u64)).saturating_sub(ustart);
                    if from < to {
                        out.extend_from_slice(&data[from as usize..to as usize]);
                    }
                }
                if out.len() != size {
                    return Err(Error::LayerEnded {
                        got: out.len(),
                        size,
                    });
                }
                Ok(out)
            }
        }
    }

    /// Inflates span `sp` (fetched already) into the cache, once.
    fn inflate_span(&mut self, sp: u64) -> Result<()> {
        if !matches!(self.zinfo, Zinfo::Gzip(_)) || self.inflated.contains_key(&sp) {
            return Ok(());
        }
        let crange = self.zinfo.span_compressed_range(sp, self.blob_size());
        let compressed = self.cached(crange).ok_or(Error::SpansMissing)?;
        let buf = span_data(self.ztoc, self.zinfo, sp, &compressed)?;
        self.inflated.insert(sp, buf);
        Ok(())
    }

    /// Fetches `spans` (as [`Self::fetch_spans`]) and inflates them now, e.g. on a
    /// prefetch thread, so later reads only copy.
    pub fn prefetch_spans(&mut self, spans: &[u64]) -> Result<()> {
        self.fetch_spans(spans)?;
        for &sp in spans {
            if sp < self.zinfo.num_spans() {
                self.inflate_span(sp)?;
            }
        }
        Ok(())
    }

    /// A regular file's data.
    pub fn read_entry(&mut self, entry: &TocEntry) -> Result<Vec<u8>> {
        if entry.uncompressed_offset < 0 || entry.uncompressed_size < 0 {
            return Err(Error::InvalidEntry {
                name: entry.name_lossy().to_string(),
                why: "negative offset or size",
            });
        }
        self.read_range(
            entry.uncompressed_offset as u64,
            entry.uncompressed_size as u64,
        )
        .map_err(|e| Error::ReadEntry {
            name: entry.name_lossy().to_string(),
            source: Box::new(e),
        })
    }

    /// The spans holding a regular file's data.
    pub fn entry_spans(&self, entry: &TocEntry) -> Vec<u64> {
        if entry.uncompressed_size <= 0 {
            return Vec::new();
        }
        spans_of_range(
            self.zinfo,
            entry.uncompressed_offset.max(0) as u64,
            entry.uncompressed_size as u64,
        )
        .collect()
    }
}

/// Fetches the compressed bytes of spans `first..=last` of `layer` in one range
/// request and checks every span against the zTOC's span digests: what a
/// concurrent span cache (the FUSE mount) builds on. Returns the blob offset
/// the bytes start at, and the bytes.
pub fn fetch_checked_spans(
    source: &dyn ImageSource,
    layer: &Descriptor,
    ztoc: &Ztoc,
    zinfo: &Zinfo,
    first: u64,
    last: u64,
) -> Result<(u64, Vec<u8>)> {
    check_layout(layer, ztoc, zinfo)?;
    let blob_size = layer.size.max(0) as u64;
    let range = zinfo.span_compressed_range(first, blob_size).start
        ..zinfo.span_compressed_range(last, blob_size).end;
    let data = source.read_blob_range(layer, range.clone())?;
    if data.len() as u64 != range.end - range.start {
        return Err(Error::ShortRange {
            got: data.len(),
            range,
        });
    }
    check_spans(layer, ztoc, zinfo, first, last, range.start, &data)?;
    Ok((range.start, data))
}

/// The uncompressed bytes of span `sp`, from `compressed`: exactly the span's
/// compressed range (`Zinfo::span_compressed_range`), checked already. A gzip
/// span is inflated from its checkpoint; a tar span is its own data.
pub fn span_data(ztoc: &Ztoc, zinfo: &Zinfo, sp: u64, compressed: &[u8]) -> Result<Vec<u8>> {
    let Zinfo::Gzip(gz) = zinfo else {
        return Ok(compressed.to_vec());
    };
    let total = ztoc.uncompressed_archive_size.max(0) as u64;
    let urange = zinfo.span_uncompressed_range(sp, total);
    let cp = gz.checkpoints.get(sp as usize).ok_or(Error::SpansMissing)?;
    let mut buf = vec![0u8; (urange.end - urange.start) as usize];
    let n = soci_zinfo::extract_from_checkpoint(cp, compressed, 0, &mut buf)
        .map_err(|source| Error::InflateSpan { span: sp, source })?;
    buf.truncate(n);
    Ok(buf)
}

/// Reads many files of one layer: all their spans first (merged, in parallel),
/// then each file from the cache. Data in the order of `entries`.
pub fn read_entries(
    source: &dyn ImageSource,
    layer: &Descriptor,
    ztoc: &Ztoc,
    zinfo: &Zinfo,
    entries: &[&TocEntry],
    opts: BatchOptions,
) -> Result<(Vec<Vec<u8>>, FetchStats)> {
    let mut r = SpanReader::new(source, layer, ztoc, zinfo, opts);
    let spans: Vec<u64> = entries.iter().flat_map(|e| r.entry_spans(e)).collect();
    r.fetch_spans(&spans)?;
    let data = entries
        .iter()
        .map(|e| r.read_entry(e))
        .collect::<Result<Vec<_>>>()?;
    Ok((data, r.stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_adjacent_and_gapped_runs() {
        assert_eq!(
            merge_span_runs(&[5, 1, 2, 3, 3, 9], 0),
            vec![(1, 3), (5, 5), (9, 9)]
        );
        assert_eq!(merge_span_runs(&[5, 1, 2, 3, 9], 1), vec![(1, 5), (9, 9)]);
        assert_eq!(merge_span_runs(&[], 0), vec![]);
    }
}
