//! The data of a create run: its options, what happened to each layer, and
//! the indexes built. Kept apart from the pipeline (`create.rs`) so that the
//! zTOC cache, publishing, the error type and the stored-index lookup use
//! these types without importing the pipeline, which uses them in turn.
use soci_index::convert::PlatformIndex;
use soci_index::manifest::{
    build_index_manifest, BuiltIndex, IndexVersion, PrefetchRecord, ZtocRecord,
};
use soci_index::prefetch::PrefetchRequest;
use soci_oci::source::{ImageManifest, PlatformChoice};
use soci_oci::spec::{Descriptor, Digest, Platform};
use std::collections::HashMap;

/// Default [`CreateOptions::min_layer_size`]: layers under 10 MiB (compressed)
/// get no zTOC, as in the reference; a layer of exactly this size is indexed.
pub const DEFAULT_MIN_LAYER_SIZE: u64 = 10 << 20;

/// What to build, as the `create`/`convert` flags say.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// `--span-size`: uncompressed bytes per span.
    pub span_size: u64,
    /// `--min-layer-size`: smaller layers get no zTOC (pulled in full).
    pub min_layer_size: u64,
    /// `--optimizations xattr`.
    pub xattr_optimization: bool,
    /// `--prefetch-file` and `--prefetch-files-json` paths: whole files
    /// (docs/format.md §6.2, the Go CLI's rule).
    pub prefetch_paths: Vec<String>,
    /// Files from a recorded trace (`--prefetch-files-json` in the trace
    /// form), each with the byte ranges read: only the spans holding those
    /// are prefetched. Planned after `prefetch_paths`.
    pub prefetch_requests: Vec<PrefetchRequest>,
    /// Rebuild zTOCs even when the store (or a registry) has them, and
    /// publish even when the destination is already indexed.
    pub force: bool,
    /// SOCI index v1 (referrers) or v2 (image index).
    pub index_version: IndexVersion,
    /// Layers built at the same time.
    pub jobs: usize,
    /// Written into every zTOC, so part of their digests.
    pub build_tool_identifier: String,
    /// `--platform` / `--all-platforms`: which images of an index get a SOCI index.
    pub platforms: PlatformChoice,
    /// Only use zTOCs already in the store (`soci push`): a missing one is an error.
    pub require_stored: bool,
    /// Per-layer limits against gzip bombs (see `BuildOptions`).
    pub max_uncompressed_size: u64,
    /// Per-layer limit on tar entries (see `BuildOptions`).
    pub max_files: u64,
    /// Reuse zTOCs from the SOCI indexes of the source, the destination and
    /// `cache_from` (see [`crate::cache`]), and take an already indexed
    /// destination for a no-op; `--no-cache` turns it off.
    pub registry_cache: bool,
    /// `--cache-from`: more images whose SOCI indexes may hold the zTOCs.
    pub cache_from: Vec<soci_oci::ImageRef>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            span_size: soci_ztoc::build::DEFAULT_SPAN_SIZE,
            min_layer_size: DEFAULT_MIN_LAYER_SIZE,
            xattr_optimization: false,
            prefetch_paths: Vec::new(),
            prefetch_requests: Vec::new(),
            force: false,
            index_version: IndexVersion::V2,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            build_tool_identifier: soci_ztoc::build::DEFAULT_BUILD_TOOL_IDENTIFIER.to_string(),
            platforms: PlatformChoice::Host,
            require_stored: false,
            max_uncompressed_size: soci_ztoc::build::DEFAULT_MAX_UNCOMPRESSED_SIZE,
            max_files: soci_ztoc::build::DEFAULT_MAX_FILES,
            registry_cache: true,
            cache_from: Vec::new(),
        }
    }
}

impl CreateOptions {
    /// Whether any prefetch artifact is asked for (by path or by recorded ranges).
    pub fn has_prefetch(&self) -> bool {
        !self.prefetch_paths.is_empty() || !self.prefetch_requests.is_empty()
    }

    /// Everything to prefetch, in order: the paths as whole files, then the
    /// recorded requests.
    pub(crate) fn all_prefetch_requests(&self) -> Vec<PrefetchRequest> {
        self.prefetch_paths
            .iter()
            .map(|p| PrefetchRequest::whole(p.as_str()))
            .chain(self.prefetch_requests.iter().cloned())
            .collect()
    }
}

/// What happened to one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerOutcome {
    /// A zTOC was built and stored.
    Built {
        /// The stored zTOC.
        ztoc: ZtocRecord,
        /// Tar entries in the layer.
        files: usize,
        /// Spans (checkpoints) in the zTOC.
        spans: usize,
    },
    /// The store already had a zTOC for this layer and span size.
    Reused {
        /// The stored zTOC.
        ztoc: ZtocRecord,
    },
    /// A registry had it: found in a SOCI index of `from`, checked, and put
    /// in the store (see [`crate::cache`]).
    Fetched {
        /// The zTOC, now stored.
        ztoc: ZtocRecord,
        /// The image whose SOCI index listed it.
        from: String,
    },
    /// No zTOC: the layer is below min-layer-size or its compression is unsupported.
    Skipped {
        /// The reference's message for the layer.
        reason: String,
    },
}

impl LayerOutcome {
    /// The layer's zTOC, unless it was skipped.
    pub fn ztoc(&self) -> Option<&ZtocRecord> {
        match self {
            LayerOutcome::Built { ztoc, .. }
            | LayerOutcome::Reused { ztoc }
            | LayerOutcome::Fetched { ztoc, .. } => Some(ztoc),
            LayerOutcome::Skipped { .. } => None,
        }
    }
    /// The reference's line for this layer.
    pub fn line(&self, layer: &Digest) -> String {
        match self {
            LayerOutcome::Built { ztoc, .. } => {
                format!("layer {layer} -> ztoc {}", ztoc.ztoc_digest)
            }
            LayerOutcome::Reused { ztoc } => format!(
                "layer {layer} -> ztoc {} (already exists)",
                ztoc.ztoc_digest
            ),
            LayerOutcome::Fetched { ztoc, from } => format!(
                "layer {layer} -> ztoc {} (reused from {from})",
                ztoc.ztoc_digest
            ),
            LayerOutcome::Skipped { reason } => reason.clone(),
        }
    }
}

/// The SOCI index built for one platform image manifest.
#[derive(Debug, Clone)]
pub struct PlatformIndexBuilt {
    /// The image manifest indexed.
    pub image: ImageManifest,
    /// Its SOCI index manifest.
    pub index: BuiltIndex,
    /// The zTOCs the index lists.
    pub ztocs: Vec<ZtocRecord>,
    /// The prefetch artifacts the index lists.
    pub prefetches: Vec<PrefetchRecord>,
}

impl PlatformIndexBuilt {
    /// The SOCI index manifest of `img` listing `ztocs` and `prefetches` (v1
    /// names the image manifest as its subject, v2 does not). Building and the
    /// already-indexed prediction (cache.rs) must make the same bytes, so both
    /// call this; storing it is the caller's business.
    pub(crate) fn build(
        img: ImageManifest,
        ztocs: Vec<ZtocRecord>,
        prefetches: Vec<PrefetchRecord>,
        opts: &CreateOptions,
    ) -> soci_index::Result<PlatformIndexBuilt> {
        let subject = match opts.index_version {
            IndexVersion::V1 => Some(img.descriptor.clone()),
            IndexVersion::V2 => None,
        };
        let index = build_index_manifest(
            opts.index_version,
            &ztocs,
            &prefetches,
            subject,
            &opts.build_tool_identifier,
        )?;
        Ok(PlatformIndexBuilt {
            image: img,
            index,
            ztocs,
            prefetches,
        })
    }
}

/// The result of [`create`](crate::create::create).
#[derive(Debug, Clone)]
pub struct Created {
    /// The image's root (index or manifest) as resolved.
    pub root: Descriptor,
    /// The root's bytes, as fetched.
    pub root_bytes: Vec<u8>,
    /// One entry per platform that got an index.
    pub platforms: Vec<PlatformIndexBuilt>,
    /// Platforms left without an index because none of their layers was indexed.
    pub skipped_platforms: Vec<(Platform, String)>,
    /// Every distinct layer of the chosen platforms, in image order, with its fate.
    pub layers: Vec<(Descriptor, LayerOutcome)>,
    /// Prefetch paths found in no layer.
    pub prefetch_not_found: Vec<String>,
}

/// The store's reuse key: what, besides layer digest and span size, makes two
/// zTOCs of a layer differ. The build tool identifier is in the zTOC's bytes.
pub(crate) fn options_key(opts: &CreateOptions) -> String {
    format!("tool={}", opts.build_tool_identifier)
}

/// What `convert` takes for these platforms: the root (a single manifest's
/// platform put on its entry), the image manifests by digest and the SOCI
/// index of each. Publishing and the already-indexed prediction (cache.rs)
/// must agree on it, so both call this.
pub(crate) fn convert_parts(
    root: &Descriptor,
    platforms: &[PlatformIndexBuilt],
) -> (Descriptor, HashMap<Digest, Vec<u8>>, Vec<PlatformIndex>) {
    let manifests = platforms
        .iter()
        .map(|p| (p.image.descriptor.digest.clone(), p.image.raw.clone()))
        .collect();
    let indexes = platforms
        .iter()
        .map(|p| PlatformIndex {
            image_manifest_digest: p.image.descriptor.digest.clone(),
            platform: p.image.platform.clone(),
            index_digest: p.index.descriptor.digest.clone(),
            index_size: p.index.bytes.len() as u64,
        })
        .collect();
    let mut root = root.clone();
    if !soci_oci::spec::is_index_media_type(&root.media_type) {
        root.platform = platforms.first().map(|p| p.image.platform.clone());
    }
    (root, manifests, indexes)
}
