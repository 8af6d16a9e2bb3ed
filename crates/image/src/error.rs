//! soci-image's error: one variant per failure, naming the layer, digest or
//! image concerned, with the cause kept as its `source()` (so a caller that
//! prints the chain prints each cause once, and can still match on it).
use crate::model::LayerOutcome;
use soci_oci::spec::{Descriptor, Digest};

/// The result of soci-image's jobs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in an image job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create` found no layer to index (all skipped): the reference's message,
    /// why in a few words, and each layer's outcome so a caller can print the
    /// per-layer reasons as it does after a successful run.
    #[error("no ztocs created, all layers either skipped or produced errors: {why}")]
    NothingIndexed {
        /// Each layer with what happened to it.
        layers: Vec<(Descriptor, LayerOutcome)>,
        /// Why nothing was indexed, in a few words.
        why: String,
    },
    /// `span_size` was 0.
    #[error("the span size must be greater than 0")]
    ZeroSpanSize,
    /// A layer's media type is not an image layer's.
    #[error("{0}")]
    UnknownLayerType(String),
    /// `soci push` found no stored zTOC for a layer.
    #[error("the local store has no zTOC for layer {layer} at span size {span_size}: run `soci create` first")]
    NotStored {
        /// Digest of the layer.
        layer: Digest,
        /// The span size looked for.
        span_size: u64,
    },
    /// The source image could not be opened.
    #[error("cannot open image {image}")]
    OpenImage {
        /// The image reference.
        image: String,
        /// The underlying failure.
        #[source]
        source: soci_oci::Error,
    },
    /// The image reference could not be resolved to a manifest.
    #[error("cannot resolve {image}")]
    Resolve {
        /// The image reference.
        image: String,
        /// The underlying failure.
        #[source]
        source: soci_oci::Error,
    },
    /// A layer blob could not be read from the source.
    #[error("cannot read layer {layer}")]
    ReadLayer {
        /// Digest of the layer.
        layer: Digest,
        /// The underlying failure.
        #[source]
        source: soci_oci::Error,
    },
    /// A layer's zTOC could not be built (corrupt gzip, bad tar, a limit hit).
    #[error("cannot build the zTOC of layer {layer}")]
    BuildZtoc {
        /// Digest of the layer.
        layer: Digest,
        /// The underlying failure.
        #[source]
        source: soci_ztoc::build::BuildError,
    },
    /// Copying a layer to the destination while indexing it failed.
    #[error("cannot copy layer {layer} to the destination")]
    TeeLayer {
        /// Digest of the layer.
        layer: Digest,
        /// The underlying failure.
        #[source]
        source: Box<Error>,
    },
    /// A built zTOC could not be written to the local store.
    #[error("cannot store the zTOC of layer {layer}")]
    StoreZtoc {
        /// Digest of the layer.
        layer: Digest,
        /// The underlying failure.
        #[source]
        source: soci_index::Error,
    },
    /// A zTOC in the local store does not decode.
    #[error("stored zTOC {ztoc} is invalid")]
    InvalidStoredZtoc {
        /// Digest of the zTOC.
        ztoc: Digest,
        /// The underlying failure.
        #[source]
        source: soci_ztoc::codec::CodecError,
    },
    /// Recompressing an uncompressed layer to gzip failed.
    #[error("cannot compress layer {layer}")]
    Compress {
        /// Digest of the layer.
        layer: Digest,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// An archive layer whose bytes are not the ones its manifest names.
    #[error("{image}: layer {layer} does not match its digest/size: read {actual} ({size} bytes)")]
    LayerMismatch {
        /// The archive image.
        image: String,
        /// Digest the manifest names.
        layer: Digest,
        /// Digest of the bytes read.
        actual: String,
        /// Number of bytes read.
        size: u64,
    },
    /// The zTOC builder and the store saw different bytes for a recompressed layer.
    #[error("layer {layer}: the zTOC builder read {built}, the store wrote {stored}")]
    CompressedMismatch {
        /// Digest of the uncompressed source layer.
        layer: Digest,
        /// Digest of the gzip the zTOC was built from.
        built: Digest,
        /// Digest of the gzip written to the destination.
        stored: Digest,
    },
    /// An image manifest is not valid JSON of the expected shape.
    #[error("{image}: the image manifest does not parse")]
    BadManifest {
        /// The image reference.
        image: String,
        /// The underlying failure.
        #[source]
        source: serde_json::Error,
    },
    /// A blob could not be copied to the destination.
    #[error("cannot copy blob {digest}")]
    CopyBlob {
        /// Digest of the blob or manifest concerned.
        digest: Digest,
        /// The underlying failure.
        #[source]
        source: Box<Error>,
    },
    /// An image index is not valid JSON of the expected shape.
    #[error("cannot parse the image index")]
    BadImageIndex(#[source] serde_json::Error),
    /// A manifest could not be fetched from the source.
    #[error("cannot read manifest {digest}")]
    ReadManifest {
        /// Digest of the blob or manifest concerned.
        digest: Digest,
        /// The underlying failure.
        #[source]
        source: soci_oci::Error,
    },
    /// The rules of [`crate::publish::check_destination`].
    #[error("{0}")]
    BadDestination(String),
    /// `--push` or `soci push` without a destination, on an image not in a registry.
    #[error("{what} needs a registry image; for {image} give --dest DST")]
    NotInRegistry {
        /// The operation that needs a registry, e.g. `--push`.
        what: String,
        /// The image reference given.
        image: String,
    },
    /// Publishing the index (or the converted image) to the destination failed.
    #[error("cannot push to {dest}")]
    Push {
        /// The destination reference.
        dest: String,
        /// The underlying failure.
        #[source]
        source: Box<Error>,
    },
    /// Verifying the pushed index failed.
    #[error("cannot verify {image}")]
    Verify {
        /// The image reference.
        image: String,
        /// The underlying failure.
        #[source]
        source: Box<Error>,
    },
    /// An annotation that should hold a digest does not.
    #[error("{what} annotation")]
    BadAnnotation {
        /// Which annotation.
        what: String,
        /// The underlying failure.
        #[source]
        source: soci_oci::spec::InvalidDigest,
    },
    /// A SOCI index manifest could not be fetched.
    #[error("cannot fetch SOCI index {digest}")]
    FetchIndex {
        /// Digest of the blob or manifest concerned.
        digest: Digest,
        /// The underlying failure.
        #[source]
        source: soci_oci::Error,
    },
    /// What `soci push` found in the local store does not make an index to push.
    #[error("{0}")]
    Stored(String),
    /// A SOCI index could not be read from the local store.
    #[error("cannot read the stored SOCI index {digest}")]
    ReadStoredIndex {
        /// Digest of the blob or manifest concerned.
        digest: Digest,
        /// The underlying failure.
        #[source]
        source: soci_index::Error,
    },
    /// A SOCI index in the local store does not parse.
    #[error("the stored SOCI index {digest} is invalid")]
    InvalidStoredIndex {
        /// Digest of the blob or manifest concerned.
        digest: Digest,
        /// The underlying failure.
        #[source]
        source: soci_index::Error,
    },
    /// Lazy reads ([`crate::lazy`]): a zTOC entry that cannot be a file's.
    #[error("invalid zTOC entry {name:?}: {why}")]
    InvalidEntry {
        /// The entry's name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A size or offset does not fit this platform's `usize`.
    #[error("{what}")]
    TooLarge {
        /// What was too large, e.g. "range too large".
        what: &'static str,
        /// The underlying failure.
        #[source]
        source: std::num::TryFromIntError,
    },
    /// The source returned fewer bytes than the range asked for.
    #[error("the source returned {got} bytes for range {range:?}")]
    ShortRange {
        /// Bytes returned.
        got: usize,
        /// The compressed byte range asked for.
        range: std::ops::Range<u64>,
    },
    /// A file's byte range falls outside the spans fetched for it.
    #[error("the file's bytes are not in its spans")]
    NotInSpans,
    /// Spans the read needs were not in the span cache.
    #[error("spans missing from the cache")]
    SpansMissing,
    /// A requested range runs past the end of the uncompressed archive.
    #[error("range {offset}+{len} ends past the archive")]
    PastArchive {
        /// Start of the range in the uncompressed archive.
        offset: u64,
        /// Length of the range.
        len: u64,
    },
    /// An uncompressed layer ended before the range read from it.
    #[error("the layer ended after {got} of {size} bytes")]
    LayerEnded {
        /// Bytes read.
        got: usize,
        /// Bytes wanted.
        size: usize,
    },
    /// A layer ended in the middle of a file's contents.
    #[error("the layer ended after {got} of {size} bytes of {name:?}")]
    FileEnded {
        /// Bytes of the file read.
        got: usize,
        /// The file's size.
        size: usize,
        /// The file's name in the zTOC.
        name: String,
    },
    /// Inflating a file from its checkpoint failed.
    #[error("cannot inflate {name:?} from checkpoint {checkpoint}")]
    InflateFile {
        /// The file's name in the zTOC.
        name: String,
        /// Index of the checkpoint inflation resumed from.
        checkpoint: u64,
        /// The underlying failure.
        #[source]
        source: soci_ztoc::ZinfoError,
    },
    /// Inflating a span failed.
    #[error("cannot inflate span {span}")]
    InflateSpan {
        /// Index of the span.
        span: u64,
        /// The underlying failure.
        #[source]
        source: soci_ztoc::ZinfoError,
    },
    /// Reading a file out of a layer failed.
    #[error("cannot read {name:?}")]
    ReadEntry {
        /// The file's name in the zTOC.
        name: String,
        /// The underlying failure.
        #[source]
        source: Box<Error>,
    },
    /// A layer and its zTOC do not fit, or a fetched span does not match it.
    #[error(transparent)]
    SpanCheck(#[from] SpanCheckError),
    /// From soci-oci (registry, layout, archive).
    #[error(transparent)]
    Oci(#[from] soci_oci::Error),
    /// From soci-index (local store, index manifests).
    #[error(transparent)]
    Index(#[from] soci_index::Error),
    /// Corrupt compressed data.
    #[error(transparent)]
    Zinfo(#[from] soci_ztoc::ZinfoError),
    /// Local I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A zTOC could not be fetched or checked.
    #[error(transparent)]
    ZtocFetch(#[from] crate::ZtocFetchError),
    /// Other writers kept replacing the referrers fallback tag: our entry was
    /// still missing after the last write.
    #[error("the referrers fallback tag {tag} kept losing the entry of SOCI index {index} to other writers ({rounds} writes); run the push again")]
    FallbackTagContended {
        /// The fallback tag (`sha256-<hex>`).
        tag: String,
        /// The SOCI index whose entry was lost.
        index: String,
        /// Writes tried.
        rounds: u32,
    },
}

/// `e` and its causes joined by ": " (what anyhow's `{:#}` prints), for the
/// one-line problems of a verify report.
pub(crate) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A layer and its zTOC do not fit, or a fetched span is not what the zTOC says.
#[derive(Debug, thiserror::Error)]
pub enum SpanCheckError {
    #[error("span {span} of layer {layer} does not match the zTOC (sha256 {actual}, the zTOC says {expected}): the source returned altered bytes for range {range:?}")]
    /// A fetched span's bytes are not the ones the zTOC's span digest names.
    DigestMismatch {
        /// Digest of the layer.
        layer: soci_oci::spec::Digest,
        /// Index of the span.
        span: u64,
        /// The compressed byte range fetched.
        range: std::ops::Range<u64>,
        /// Span digest in the zTOC.
        expected: String,
        /// Digest of the bytes fetched.
        actual: String,
    },
    /// The zTOC's span digests do not cover its spans one to one.
    #[error("the zTOC has {digests} span digests for {spans} spans: it cannot vouch for the layer's bytes")]
    DigestCount {
        /// Span digests in the zTOC.
        digests: usize,
        /// Spans in its zinfo.
        spans: u64,
    },
    /// The zTOC was built from a blob of another size than the layer.
    #[error("the zTOC is for a {ztoc}-byte layer, but layer {layer} is {size} bytes")]
    LayerSize {
        /// Digest of the layer.
        layer: soci_oci::spec::Digest,
        /// Compressed size recorded in the zTOC.
        ztoc: i64,
        /// Size in the layer's descriptor.
        size: i64,
    },
}
