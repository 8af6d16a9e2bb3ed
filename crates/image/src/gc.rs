//! `soci gc REPO`: SOCI artifacts left behind in a repository by images that
//! are gone (a lifecycle rule or a user deleted the image manifest, not its
//! referrers).
//!
//! What is covered:
//! - v1 SOCI indexes recorded in a referrers fallback tag (`sha256-<hex>`,
//!   docs/format.md §8.2) whose subject (`sha256:<hex>`) the repository no
//!   longer has: the index manifests are listed and, with `delete`, deleted,
//!   and the fallback tag is rewritten without their entries (deleted when
//!   nothing else is left in it; entries of other tools, e.g. signatures,
//!   stay).
//! - Not v2: a v2 SOCI index is a manifest inside the SOCI-enabled image
//!   index, so it is referenced by its image and goes with it; once the image
//!   index is gone, the registry's own garbage collection of untagged
//!   manifests removes it with the image's other manifests.
//! - Not v1 indexes found only through the referrers API: a registry lists
//!   referrers by subject digest, and a deleted subject's digest appears in no
//!   tag, so there is nothing to start from (such registries clean up
//!   referrers of deleted subjects themselves, or through their lifecycle
//!   rules).
//!
//! Order, as in publishing: the fallback tag is rewritten (or deleted) first,
//! then the index manifests are deleted, so an interrupted gc leaves at most
//! unreferenced manifests, never a tag listing a missing one.
use crate::error::Result;
use soci_index::fallback::remove_fallback_entries;
use soci_oci::registry::RegistryClient;
use soci_oci::spec::{self, Digest, Index, MaybeDigest};

/// A SOCI index whose image is gone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadIndex {
    /// The SOCI index manifest.
    pub digest: Digest,
    /// The image manifest it indexed (no longer in the repository).
    pub subject: Digest,
    /// The fallback tag that listed it.
    pub fallback_tag: String,
    /// Deleted (with `delete`; false in a dry run).
    pub deleted: bool,
}

/// What gc does (or, in a dry run, would do) to one fallback tag.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FallbackChange {
    /// The tag, `sha256-<hex>`.
    pub tag: String,
    /// `delete` (only dead SOCI entries were in it) or `rewrite` (other
    /// entries stay).
    pub action: String,
    /// Entries dropped.
    pub dropped: usize,
    /// Entries kept (other tools' referrers of the gone image).
    pub kept: usize,
    /// Done (with `delete`; false in a dry run).
    pub done: bool,
}

/// What [`gc`] found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GcReport {
    /// `HOST/REPO`.
    pub repository: String,
    /// Whether anything was deleted (false: a dry run).
    pub delete: bool,
    /// Tags in the repository.
    pub tags: usize,
    /// Fallback tags looked at.
    pub fallback_tags: usize,
    /// SOCI indexes whose image is still there (left alone).
    pub live_indexes: usize,
    /// SOCI indexes whose image is gone.
    pub dead_indexes: Vec<DeadIndex>,
    /// Fallback tags to rewrite or delete.
    pub fallback_changes: Vec<FallbackChange>,
    /// Fallback tags not looked into, and why (not an index).
    pub skipped: Vec<(String, String)>,
}

/// The subject of a referrers fallback tag (`sha256-` and 64 lowercase hex):
/// `sha256:<hex>`; `None` for any other tag.
fn fallback_subject(tag: &str) -> Option<Digest> {
    // Digest::parse refuses anything but 64 lowercase hex digits.
    let hex = tag.strip_prefix("sha256-")?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Whether an entry of a fallback index is a SOCI index.
fn is_soci_index(d: &spec::Descriptor<MaybeDigest>) -> bool {
    d.artifact_type == soci_index::SOCI_INDEX_ARTIFACT_TYPE_V1
        || d.artifact_type == soci_index::SOCI_INDEX_ARTIFACT_TYPE_V2
}

/// Looks through `repo` (on `client`'s registry) for SOCI indexes whose image
/// is gone (see the module docs) and, with `delete`, removes them.
pub fn gc(client: &RegistryClient, repo: &str, delete: bool) -> Result<GcReport> {
    let tags = client.list_tags(repo)?;
    let mut report = GcReport {
        repository: format!("{}/{repo}", client.registry()),
        delete,
        tags: tags.len(),
        fallback_tags: 0,
        live_indexes: 0,
        dead_indexes: Vec::new(),
        fallback_changes: Vec::new(),
        skipped: Vec::new(),
    };
    for tag in &tags {
        let Some(subject) = fallback_subject(tag) else {
            continue;
        };
        report.fallback_tags += 1;
        // Gone since listed: nothing to do.
        let Some((desc, bytes)) = client.get_manifest_raw(repo, tag)? else {
            continue;
        };
        // Entries without a digest (Go's zero descriptor) are kept as read.
        let index = match serde_json::from_slice::<Index<MaybeDigest>>(&bytes) {
            Ok(i) if spec::is_index_media_type(&i.media_type) || i.media_type.is_empty() => i,
            _ => {
                report
                    .skipped
                    .push((tag.clone(), "not an image index".to_string()));
                continue;
            }
        };
        let dead: Vec<Digest> = index
            .manifests
            .iter()
            .filter(|d| is_soci_index(d))
            .filter_map(|d| d.digest.0.clone())
            .collect();
        if dead.is_empty() {
            continue;
        }
        if client.get_manifest_raw(repo, subject.as_str())?.is_some() {
            report.live_indexes += dead.len();
            continue;
        }
        let rewritten = remove_fallback_entries(&bytes, &dead)?;
        let mut change = FallbackChange {
            tag: tag.clone(),
            action: if rewritten.is_some() {
                "rewrite"
            } else {
                "delete"
            }
            .to_string(),
            dropped: dead.len(),
            kept: index.manifests.len() - dead.len(),
            done: false,
        };
        if delete {
            match &rewritten {
                Some(b) => {
                    client.push_manifest(repo, tag, b, spec::MEDIA_TYPE_OCI_INDEX)?;
                }
                None => {
                    client.delete_manifest(repo, &desc.digest)?;
                }
            }
            change.done = true;
        }
        report.fallback_changes.push(change);
        for digest in dead {
            let deleted = delete && {
                // Already gone counts as deleted: what gc wants is its absence.
                client.delete_manifest(repo, &digest)?;
                true
            };
            report.dead_indexes.push(DeadIndex {
                digest,
                subject: subject.clone(),
                fallback_tag: tag.clone(),
                deleted,
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags_are_recognised() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(
            fallback_subject(&format!("sha256-{hex}")),
            Some(Digest::parse(&format!("sha256:{hex}")).unwrap())
        );
        assert_eq!(fallback_subject("sha256-abc"), None);
        assert_eq!(
            fallback_subject(&format!("sha256-{}", hex.to_uppercase())),
            None
        );
        assert_eq!(fallback_subject("latest"), None);
    }
}
