//! soci-image's error: one variant per failure, naming the layer, digest or
//! image concerned, with the cause kept as its `source()` (so a caller that
//! prints the chain prints each cause once, and can still match on it).
use crate::create::LayerOutcome;
use soci_oci::spec::Descriptor;

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
        layers: Vec<(Descriptor, LayerOutcome)>,
        why: String,
    },
    #[error("the span size must be greater than 0")]
    ZeroSpanSize,
    /// A layer's media type is not an image layer's.
    #[error("{0}")]
    UnknownLayerType(String),
    /// `soci push` found no stored zTOC for a layer.
    #[error("the local store has no zTOC for layer {layer} at span size {span_size}: run `soci create` first")]
    NotStored { layer: String, span_size: u64 },
    #[error("cannot open image {image}")]
    OpenImage {
        image: String,
        #[source]
        source: soci_oci::Error,
    },
    #[error("cannot resolve {image}")]
    Resolve {
        image: String,
        #[source]
        source: soci_oci::Error,
    },
    #[error("cannot read layer {layer}")]
    ReadLayer {
        layer: String,
        #[source]
        source: soci_oci::Error,
    },
    #[error("cannot build the zTOC of layer {layer}")]
    BuildZtoc {
        layer: String,
        #[source]
        source: soci_ztoc::build::BuildError,
    },
    #[error("cannot copy layer {layer} to the destination")]
    TeeLayer {
        layer: String,
        #[source]
        source: Box<Error>,
    },
    #[error("cannot store the zTOC of layer {layer}")]
    StoreZtoc {
        layer: String,
        #[source]
        source: soci_index::Error,
    },
    #[error("stored zTOC {ztoc} is invalid")]
    InvalidStoredZtoc {
        ztoc: String,
        #[source]
        source: soci_ztoc::codec::CodecError,
    },
    #[error("cannot compress layer {layer}")]
    Compress {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    /// An archive layer whose bytes are not the ones its manifest names.
    #[error("{image}: layer {layer} does not match its digest/size: read {actual} ({size} bytes)")]
    LayerMismatch {
        image: String,
        layer: String,
        actual: String,
        size: u64,
    },
    #[error("layer {layer}: the zTOC builder read {built}, the store wrote {stored}")]
    CompressedMismatch {
        layer: String,
        built: String,
        stored: String,
    },
    #[error("{image}: the image manifest does not parse")]
    BadManifest {
        image: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot copy blob {digest}")]
    CopyBlob {
        digest: String,
        #[source]
        source: Box<Error>,
    },
    #[error("cannot parse the image index")]
    BadImageIndex(#[source] serde_json::Error),
    #[error("cannot read manifest {digest}")]
    ReadManifest {
        digest: String,
        #[source]
        source: soci_oci::Error,
    },
    /// The rules of [`crate::publish::check_destination`].
    #[error("{0}")]
    BadDestination(String),
    /// `--push` or `soci push` without a destination, on an image not in a registry.
    #[error("{what} needs a registry image; for {image} give --dest DST")]
    NotInRegistry { what: String, image: String },
    #[error("cannot push to {dest}")]
    Push {
        dest: String,
        #[source]
        source: Box<Error>,
    },
    #[error("cannot verify {image}")]
    Verify {
        image: String,
        #[source]
        source: Box<Error>,
    },
    #[error("{what} annotation")]
    BadAnnotation {
        what: String,
        #[source]
        source: soci_oci::spec::InvalidDigest,
    },
    #[error("cannot fetch SOCI index {digest}")]
    FetchIndex {
        digest: String,
        #[source]
        source: soci_oci::Error,
    },
    /// What `soci push` found in the local store does not make an index to push.
    #[error("{0}")]
    Stored(String),
    #[error("cannot read the stored SOCI index {digest}")]
    ReadStoredIndex {
        digest: String,
        #[source]
        source: soci_index::Error,
    },
    #[error("the stored SOCI index {digest} is invalid")]
    InvalidStoredIndex {
        digest: String,
        #[source]
        source: soci_index::Error,
    },
    /// Lazy reads ([`crate::lazy`]): a zTOC entry that cannot be a file's.
    #[error("invalid zTOC entry {name:?}: {why}")]
    InvalidEntry { name: String, why: &'static str },
    #[error("{what}")]
    TooLarge {
        what: &'static str,
        #[source]
        source: std::num::TryFromIntError,
    },
    #[error("the source returned {got} bytes for range {range:?}")]
    ShortRange {
        got: usize,
        range: std::ops::Range<u64>,
    },
    #[error("the file's bytes are not in its spans")]
    NotInSpans,
    #[error("spans missing from the cache")]
    SpansMissing,
    #[error("range {offset}+{len} ends past the archive")]
    PastArchive { offset: u64, len: u64 },
    #[error("the layer ended after {got} of {size} bytes")]
    LayerEnded { got: usize, size: usize },
    #[error("the layer ended after {got} of {size} bytes of {name:?}")]
    FileEnded {
        got: usize,
        size: usize,
        name: String,
    },
    #[error("cannot inflate {name:?} from checkpoint {checkpoint}")]
    InflateFile {
        name: String,
        checkpoint: u64,
        #[source]
        source: soci_ztoc::ZinfoError,
    },
    #[error("cannot inflate span {span}")]
    InflateSpan {
        span: u64,
        #[source]
        source: soci_ztoc::ZinfoError,
    },
    #[error("cannot read {name:?}")]
    ReadEntry {
        name: String,
        #[source]
        source: Box<Error>,
    },
    #[error(transparent)]
    SpanCheck(#[from] crate::lazy::SpanCheckError),
    #[error(transparent)]
    Oci(#[from] soci_oci::Error),
    #[error(transparent)]
    Index(#[from] soci_index::Error),
    #[error(transparent)]
    Zinfo(#[from] soci_ztoc::ZinfoError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    ZtocFetch(#[from] crate::ZtocFetchError),
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
