//! Prefetch artifacts (`application/vnd.amazon.soci.prefetch.v1+json`) and the planning
//! rules (docs/format.md §6.2) that turn `--prefetch-file` paths (and the byte ranges
//! of a recorded trace) into span ranges per layer.
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

/// One file to prefetch: a path and, when a recorded trace says which parts of the
/// file were read, those byte ranges (docs/format.md §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchRequest {
    /// The path as given (cleaned by the planner).
    pub path: String,
    /// `(offset, length)` byte ranges of the file that were read. `None` or an
    /// empty list: the whole file (the Go CLI's rule).
    pub ranges: Option<Vec<(u64, u64)>>,
    /// The path is a file's name in the image's tree as a mount shows it (a
    /// `--record` trace), not a raw zTOC name: it also matches an entry stored
    /// as `./path` (layers made with `tar -C DIR .`). The Go CLI's rule, for
    /// paths given as such, matches raw names only.
    pub recorded: bool,
}

impl PrefetchRequest {
    /// The whole file at `path` (the Go CLI's rule).
    pub fn whole(path: impl Into<String>) -> Self {
        PrefetchRequest {
            path: path.into(),
            ranges: None,
            recorded: false,
        }
    }

    /// A file of a recorded trace, with the byte ranges read (`None` or empty:
    /// the whole file).
    pub fn recorded(path: impl Into<String>, ranges: Option<Vec<(u64, u64)>>) -> Self {
        PrefetchRequest {
            path: path.into(),
            ranges,
            recorded: true,
        }
    }
}

/// Plan prefetch artifacts (docs/format.md §6.2): each path is cleaned and compared exactly
/// with raw entry names, searching `layers` (image order, indexed layers only) from the top
/// layer down; the first hit contributes `[span(off), span(off+size)]` to that layer.
/// Per layer, ranges are sorted and merged.
pub fn plan_prefetch<S: AsRef<str>>(paths: &[S], layers: &[PrefetchLayer<'_>]) -> PrefetchPlan {
    let requests: Vec<PrefetchRequest> = paths
        .iter()
        .map(|p| PrefetchRequest::whole(p.as_ref()))
        .collect();
    plan_prefetch_requests(&requests, layers)
}

/// [`plan_prefetch`] for requests that may carry byte ranges: a file found at data
/// offset `o` with ranges gets, for each range `[off, off+len)` clipped to the file's
/// size and not empty, `[span(o+off), span(o+off+len-1)]` instead of the whole file's
/// spans. A request without ranges is planned exactly as [`plan_prefetch`] plans a path.
pub fn plan_prefetch_requests(
    requests: &[PrefetchRequest],
    layers: &[PrefetchLayer<'_>],
) -> PrefetchPlan {
    // Keyed by layer digest like the reference (an image listing the same layer twice
    // gets the artifact at each occurrence).
    let mut per_layer: BTreeMap<&Digest, Vec<PrefetchSpan>> = BTreeMap::new();
    let mut not_found = Vec::new();
    for req in requests {
        let cleaned = clean_prefetch_path(&req.path);
        let mut found = false;
        'layers: for layer in layers.iter().rev() {
            for (name, off, size) in layer.files {
                let hit = *name == cleaned.as_bytes()
                    || (req.recorded && name.strip_prefix(b"./") == Some(cleaned.as_bytes()));
                if hit {
                    let spans = file_spans(req.ranges.as_deref(), *off, *size, layer.span_of);
                    // Ranges that all clip away leave nothing to fetch; an empty
                    // list must not reach the artifact (one without spans is invalid).
                    if !spans.is_empty() {
                        per_layer
                            .entry(layer.layer_digest)
                            .or_default()
                            .extend(spans);
                    }
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

/// The span ranges of one file at data offset `off` with `size` bytes.
fn file_spans(
    ranges: Option<&[(u64, u64)]>,
    off: u64,
    size: u64,
    span_of: &dyn Fn(u64) -> u64,
) -> Vec<PrefetchSpan> {
    let span = |start: u64, end: u64| PrefetchSpan {
        start_span: start,
        end_span: end.max(start),
        priority: 0,
    };
    match ranges {
        Some(ranges) if !ranges.is_empty() => ranges
            .iter()
            .filter_map(|&(r_off, r_len)| {
                let end = r_off.saturating_add(r_len).min(size);
                (r_off < end).then(|| {
                    span(
                        span_of(off.saturating_add(r_off)),
                        span_of(off.saturating_add(end - 1)),
                    )
                })
            })
            .collect(),
        // Go's rule: the end is span(o + s), not span(o + s - 1), kept so that
        // path-only input gives the reference's bytes.
        _ => vec![span(span_of(off), span_of(off.saturating_add(size)))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spans of 10 bytes.
    fn by_ten(off: u64) -> u64 {
        off / 10
    }

    fn dg(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn s(a: u64, b: u64) -> PrefetchSpan {
        PrefetchSpan {
            start_span: a,
            end_span: b,
            priority: 0,
        }
    }

    fn ranged(path: &str, ranges: &[(u64, u64)]) -> PrefetchRequest {
        PrefetchRequest::recorded(path, Some(ranges.to_vec()))
    }

    /// "big" holds bytes 15..55 of the layer: spans 1..=5 (whole-file rule: span(55) = 5).
    const FILES: &[(&[u8], u64, u64)] = &[(b"big", 15, 40), (b"small", 70, 5), (b"ten", 80, 10)];

    /// The spans planned for `requests` in a one-layer image holding [`FILES`].
    fn plan(requests: &[PrefetchRequest]) -> (Vec<PrefetchSpan>, Vec<String>) {
        let d = dg('a');
        let f = by_ten;
        let p = plan_prefetch_requests(
            requests,
            &[PrefetchLayer {
                layer_digest: &d,
                files: FILES,
                span_of: &f,
            }],
        );
        let spans = p
            .layers
            .first()
            .map(|l| l.artifact.prefetch_spans.clone())
            .unwrap_or_default();
        (spans, p.not_found)
    }

    #[test]
    fn ranges_select_the_spans_holding_them() {
        // Bytes 15+20 .. 15+24 = 35..38: span 3 only, not the file's 1..=5.
        assert_eq!(plan(&[ranged("big", &[(20, 4)])]).0, vec![s(3, 3)]);
        // A range crossing a span boundary: bytes 18..21 are in spans 1 and 2.
        assert_eq!(plan(&[ranged("/big", &[(3, 4)])]).0, vec![s(1, 2)]);
        // Several ranges: each adds its spans; distant ones stay apart, then sort + merge.
        assert_eq!(
            plan(&[ranged("big", &[(37, 1), (0, 3)])]).0,
            vec![s(1, 1), s(5, 5)]
        );
        assert_eq!(
            plan(&[ranged("big", &[(20, 1), (0, 3), (10, 1)])]).0,
            vec![s(1, 3)]
        );
        // One byte at the end of a span: that span, not the next (`len - 1`).
        assert_eq!(plan(&[ranged("big", &[(0, 5)])]).0, vec![s(1, 1)]);
    }

    #[test]
    fn ranges_are_clipped_to_the_file() {
        // Past the end: clipped to bytes 45..55, spans 4..=5 (not span(15+100)).
        assert_eq!(plan(&[ranged("big", &[(30, 100)])]).0, vec![s(4, 5)]);
        assert_eq!(plan(&[ranged("big", &[(30, u64::MAX)])]).0, vec![s(4, 5)]);
        // Starting at or past the end, or empty: nothing; the file is still found,
        // and a layer with nothing to fetch gets no artifact.
        let (spans, not_found) = plan(&[ranged("big", &[(40, 5), (99, 1), (3, 0)])]);
        assert_eq!(spans, vec![]);
        assert!(not_found.is_empty());
        // The clipped-away ranges add nothing next to a kept one.
        assert_eq!(
            plan(&[ranged("big", &[(40, 5), (3, 0), (25, 2)])]).0,
            vec![s(4, 4)]
        );
    }

    #[test]
    fn no_ranges_is_the_whole_file() {
        let whole = plan(&[PrefetchRequest::whole("big")]).0;
        assert_eq!(whole, vec![s(1, 5)]);
        assert_eq!(plan(&[ranged("big", &[])]).0, whole);
        // The whole-file rule ends at span(o + s): "ten" (80..90) gets 8..=9, while
        // a range over all its bytes gets 8..=8.
        assert_eq!(plan(&[PrefetchRequest::whole("ten")]).0, vec![s(8, 9)]);
        assert_eq!(plan(&[ranged("ten", &[(0, 10)])]).0, vec![s(8, 8)]);
        // Ranged and whole files mix in one layer.
        assert_eq!(
            plan(&[ranged("big", &[(0, 1)]), PrefetchRequest::whole("small")]).0,
            vec![s(1, 1), s(7, 7)]
        );
        // Lookup is unchanged: a ranged path found nowhere is reported.
        assert_eq!(
            plan(&[ranged("nope", &[(0, 1)])]).1,
            vec!["nope".to_string()]
        );
    }

    #[test]
    fn paths_plan_as_whole_file_requests() {
        let (bottom, top) = (dg('b'), dg('c'));
        let bottom_files: Vec<(&[u8], u64, u64)> =
            vec![(b"a", 15, 10), (b"b", 30, 10), (b"shadowed", 0, 1)];
        let top_files: Vec<(&[u8], u64, u64)> = vec![(b"shadowed", 40, 20), (b"z", 0, 9)];
        let f = by_ten;
        let layers = [
            PrefetchLayer {
                layer_digest: &bottom,
                files: &bottom_files,
                span_of: &f,
            },
            PrefetchLayer {
                layer_digest: &top,
                files: &top_files,
                span_of: &f,
            },
        ];
        let paths = ["/b", "a", "shadowed", "./z", "missing"];
        let requests: Vec<PrefetchRequest> =
            paths.iter().map(|p| PrefetchRequest::whole(*p)).collect();
        let by_paths = plan_prefetch(&paths, &layers);
        assert_eq!(plan_prefetch_requests(&requests, &layers), by_paths);
        assert_eq!(by_paths.layers.len(), 2);
        assert_eq!(by_paths.layers[0].artifact.prefetch_spans, vec![s(1, 4)]);
        assert_eq!(
            by_paths.layers[1].artifact.prefetch_spans,
            vec![s(0, 0), s(4, 6)]
        );
        // A ranged request for the shadowed path reads the top layer's copy.
        let p = plan_prefetch_requests(&[ranged("shadowed", &[(15, 1)])], &layers);
        assert_eq!(p.layers.len(), 1);
        assert_eq!(p.layers[0].layer_digest, top);
        assert_eq!(p.layers[0].artifact.prefetch_spans, vec![s(5, 5)]);
    }

    #[test]
    fn a_recorded_path_also_matches_a_dot_slash_name_a_given_path_does_not() {
        let digest = Digest::of(b"layer");
        let files: Vec<(&[u8], u64, u64)> = vec![(b"./etc/passwd", 0, 10), (b"usr/x", 10, 10)];
        let span_of = |off: u64| off / 10;
        let layers = [PrefetchLayer {
            layer_digest: &digest,
            files: &files,
            span_of: &span_of,
        }];
        let go = plan_prefetch_requests(&[PrefetchRequest::whole("/etc/passwd")], &layers);
        assert!(go.layers.is_empty());
        assert_eq!(go.not_found, vec!["etc/passwd".to_string()]);
        let rec = plan_prefetch_requests(
            &[
                PrefetchRequest::recorded("etc/passwd", None),
                PrefetchRequest::recorded("usr/x", Some(vec![(0, 1)])),
            ],
            &layers,
        );
        assert!(rec.not_found.is_empty(), "{rec:?}");
        assert_eq!(
            rec.layers[0].artifact.prefetch_spans,
            vec![PrefetchSpan {
                start_span: 0,
                end_span: 1,
                priority: 0
            }]
        );
    }
}
