//! soci-image: SOCI for whole images.
//!
//! Joins the other crates into the jobs the CLI offers: [`create`] builds the zTOCs
//! of an image's layers (in parallel, one pass each, reusing zTOCs from the local
//! store) and its SOCI index; [`publish`] puts the result next to the image (a
//! registry or an OCI layout), blobs first and the tag last; [`verify`] proves an
//! index matches its image by reading every layer once.
//!
//! Libraries never draw on the terminal: progress goes through [`Reporter`].
pub mod create;
pub mod layers;
pub mod lazy;
pub mod publish;
pub mod recompress;
pub mod verify;

pub use create::{create, CreateOptions, Created, LayerOutcome, PlatformIndexBuilt};
pub use publish::{publish, PublishResult};
pub use verify::{verify, LayerReport, VerifyReport};

use soci_ztoc::build::BuildProgress;

/// Progress callbacks from the image jobs; called from worker threads.
pub trait Reporter: Sync {
    /// A layer starts being read (`size` compressed bytes).
    fn layer_start(&self, _layer_digest: &str, _size: u64) {}
    /// Bytes read so far for a layer.
    fn layer_progress(&self, _layer_digest: &str, _p: &BuildProgress) {}
    /// A layer is done.
    fn layer_done(&self, _layer_digest: &str, _outcome: &str) {}
    /// A free-form line for the user (what the reference prints).
    fn message(&self, _line: &str) {}
}

/// A reporter that ignores everything.
pub struct Silent;
impl Reporter for Silent {}
