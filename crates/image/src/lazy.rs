//! The lazy reader: one file of a layer, fetching only the spans that hold it.
//!
//! Span lookup in the zTOC, one ranged read of the compressed bytes from the span
//! start to the end of the last span needed, then decompression resumed from the
//! checkpoint at the start of the first span. Used by `ztoc get-file --image`,
//! the startup benchmark and (later) a FUSE mount.
use anyhow::{bail, Context, Result};
use soci_oci::source::ImageSource;
use soci_oci::spec::Descriptor;
use soci_zinfo::Zinfo;
use soci_ztoc::{TocEntry, Ztoc};

/// What a lazy read cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchStats {
    pub requests: u64,
    /// Compressed bytes fetched.
    pub bytes: u64,
    /// Spans those bytes covered.
    pub spans: u64,
}

/// The compressed byte range holding `[offset, offset+len)` of the uncompressed
/// stream, and the first span of it.
pub fn span_range(zinfo: &Zinfo, blob_size: u64, offset: u64, len: u64) -> (u64, u64, std::ops::Range<u64>) {
    let first = zinfo.span_of(offset);
    let last = zinfo.span_of(offset + len.max(1) - 1).min(zinfo.num_spans().saturating_sub(1));
    let start = zinfo.span_compressed_range(first, blob_size).start;
    let end = zinfo.span_compressed_range(last, blob_size).end;
    (first, last, start..end)
}

/// Reads a regular file's data from `layer` through its zTOC.
pub fn read_entry(source: &dyn ImageSource, layer: &Descriptor, ztoc: &Ztoc, zinfo: &Zinfo, entry: &TocEntry) -> Result<(Vec<u8>, FetchStats)> {
    if entry.uncompressed_offset < 0 || entry.uncompressed_size < 0 {
        bail!("invalid zTOC entry {:?}: negative offset or size", entry.name_lossy());
    }
    let (off, len) = (entry.uncompressed_offset as u64, entry.uncompressed_size as u64);
    if len == 0 {
        return Ok((Vec::new(), FetchStats::default()));
    }
    if off + len > ztoc.uncompressed_archive_size.max(0) as u64 {
        bail!("invalid zTOC entry {:?}: data ends past the archive", entry.name_lossy());
    }
    let size = usize::try_from(len).context("file too large")?;
    let blob_size = layer.size.max(0) as u64;
    match zinfo {
        Zinfo::Tar(_) => {
            let data = source.read_blob_range(layer, off..off + len)?;
            if data.len() != size {
                bail!("the registry returned {} bytes for a {size}-byte range", data.len());
            }
            Ok((data, FetchStats { requests: 1, bytes: len, spans: zinfo.span_of(off + len - 1) - zinfo.span_of(off) + 1 }))
        }
        Zinfo::Gzip(gz) => {
            let (first, last, range) = span_range(zinfo, blob_size, off, len);
            let compressed = source.read_blob_range(layer, range.clone())?;
            if compressed.len() as u64 != range.end - range.start {
                bail!("the source returned {} bytes for range {range:?}", compressed.len());
            }
            let cp = &gz.checkpoints[first as usize];
            let mut out = vec![0u8; size];
            let n = soci_zinfo::extract_from_checkpoint(cp, &compressed, off - cp.uncompressed_offset, &mut out)
                .with_context(|| format!("cannot inflate {:?} from checkpoint {first}", entry.name_lossy()))?;
            if n != size {
                bail!("the layer ended after {n} of {size} bytes of {:?}", entry.name_lossy());
            }
            Ok((out, FetchStats { requests: 1, bytes: range.end - range.start, spans: last - first + 1 }))
        }
    }
}
