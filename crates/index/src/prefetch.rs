//! Prefetch artifacts (`application/vnd.amazon.soci.prefetch.v1+json`) and the planning
//! rules (docs/format.md §6.2) that turn `--prefetch-file` paths into span ranges per layer.
//!
//! Free of zTOC types: callers pass each indexed layer's raw entry names, offsets,
//! sizes and an offset→span lookup.
use crate::error::{Error, Result};
use crate::PREFETCH_ARTIFACT_VERSION;
use serde::{Deserialize, Serialize};
use soci_digest::Digest;
use std::collections::BTreeMap;

/// One span range `[start_span, end_span]` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct PrefetchSpan {
    /// First span id of the range.
    pub start_span: u64,
    /// Last span id of the range (included).
    pub end_span: u64,
    /// Omitted from JSON when 0 (Go `omitempty`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The prefetch artifact blob: `{"version":"1.0","prefetch_spans":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefetchArtifact {
    /// Format version of the artifact; "1.0" is the only one supported.
    pub version: String,
    /// Go: `[]PrefetchSpan json:"prefetch_spans"` (never nil when built).
    #[serde(default)]
    pub prefetch_spans: Vec<PrefetchSpan>,
}

impl PrefetchArtifact {
    /// A version 1.0 artifact listing `prefetch_spans`.
    pub fn new(prefetch_spans: Vec<PrefetchSpan>) -> Self {
        PrefetchArtifact {
            version: PREFETCH_ARTIFACT_VERSION.to_string(),
            prefetch_spans,
        }
    }

    /// Go-JSON bytes; an empty artifact is an error (as in the reference).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        if self.prefetch_spans.is_empty() {
            return Err(Error::EmptyPrefetchArtifact);
        }
        Ok(soci_oci::spec::to_go_json(self))
    }

    /// Parse, requiring version "1.0" and at least one span.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let a: PrefetchArtifact =
            serde_json::from_slice(bytes).map_err(|e| Error::json("prefetch artifact", e))?;
        if a.version != PREFETCH_ARTIFACT_VERSION {
            return Err(Error::UnsupportedPrefetchVersion(a.version));
        }
        if a.prefetch_spans.is_empty() {
            return Err(Error::EmptyPrefetchArtifact);
        }
        Ok(a)
    }

    /// Number of spans covered (sum of `end - start + 1`).
    pub fn total_spans(&self) -> u64 {
        self.prefetch_spans
            .iter()
            .map(|s| s.end_span.saturating_sub(s.start_span) + 1)
            .sum()
    }
}

/// One indexed layer as seen by the planner.
pub struct PrefetchLayer<'a> {
    /// Digest of the image layer.
    pub layer_digest: &'a Digest,
    /// (raw entry name, uncompressed data offset, size), ztoc order.
    pub files: &'a [(&'a [u8], u64, u64)],
    /// Uncompressed offset → span id of this layer.
    pub span_of: &'a dyn Fn(u64) -> u64,
}

/// The prefetch artifact to create for one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPrefetch {
    /// Digest of the image layer the artifact is for.
    pub layer_digest: Digest,
    /// The span ranges to prefetch from that layer.
    pub artifact: PrefetchArtifact,
}

/// Result of [`plan_prefetch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefetchPlan {
    /// In layer order (the order of the `layers` argument); layers without hits omitted.
    pub layers: Vec<LayerPrefetch>,
    /// Cleaned paths found in no layer (the reference logs
    /// `prefetch file <p> not found in any layer` as a warning and goes on).
    pub not_found: Vec<String>,
}

/// `--prefetch-file` / `--prefetch-files-json` values: trimmed, empties dropped.
pub fn trim_prefetch_paths<S: AsRef<str>>(paths: &[S]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.as_ref().trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Go `strings.TrimPrefix(filepath.Clean("/"+p), "/")`: lexical cleaning of `.`,
/// `..` and repeated slashes, rooted, leading slash removed.
pub fn clean_prefetch_path(path: &str) -> String {
    soci_oci::fsio::clean_rooted_path(path)
}

/// Sort by (start, end) and merge ranges that overlap or touch
/// (`next.start <= cur.end + 1`), as the reference `normalizePrefetchSpans`.
pub fn normalize_prefetch_spans(mut spans: Vec<PrefetchSpan>) -> Vec<PrefetchSpan> {
    if spans.is_empty() {
        return spans;
    }
    spans.sort_by_key(|s| (s.start_span, s.end_span));
    let mut merged = Vec::with_capacity(spans.len());
    let mut cur = spans[0];
    for s in spans.into_iter().skip(1) {
        if s.start_span <= cur.end_span.saturating_add(1) {
            if s.end_span > cur.end_span {
                cur.end_span = s.end_span;
            }
        } else {
            merged.push(cur);
            cur = s;
        }
    }
    merged.push(cur);
    merged
}

/// Plan prefetch artifacts (docs/format.md §6.2): each path is cleaned and compared exactly
/// with raw entry names, searching `layers` (image order, indexed layers only) from the top
/// layer down; the first hit contributes `[span(off), span(off+size)]` to that layer.
/// Per layer, ranges are sorted and merged.
pub fn plan_prefetch<S: AsRef<str>>(paths: &[S], layers: &[PrefetchLayer<'_>]) -> PrefetchPlan {
    // Keyed by layer digest like the reference (an image listing the same layer twice
    // gets the artifact at each occurrence).
    let mut per_layer: BTreeMap<&Digest, Vec<PrefetchSpan>> = BTreeMap::new();
    let mut not_found = Vec::new();
    for path in paths {
        let cleaned = clean_prefetch_path(path.as_ref());
        let mut found = false;
        'layers: for layer in layers.iter().rev() {
            for (name, off, size) in layer.files {
                if *name == cleaned.as_bytes() {
                    let start = (layer.span_of)(*off);
                    let end = (layer.span_of)(off.saturating_add(*size)).max(start);
                    per_layer
                        .entry(layer.layer_digest)
                        .or_default()
                        .push(PrefetchSpan {
                            start_span: start,
                            end_span: end,
                            priority: 0,
                        });
                    found = true;
                    break 'layers;
                }
            }
        }
        if !found {
            not_found.push(cleaned);
        }
    }
    let layers = layers
        .iter()
        .filter_map(|l| {
            let spans = per_layer.get(l.layer_digest)?;
            Some(LayerPrefetch {
                layer_digest: l.layer_digest.clone(),
                artifact: PrefetchArtifact::new(normalize_prefetch_spans(spans.clone())),
            })
        })
        .collect();
    PrefetchPlan { layers, not_found }
}
