//! Reading images: the [`ImageSource`] trait, implemented for registries,
//! OCI layouts and `docker save` archives, and [`select_manifests`], which
//! picks the platform image manifests SOCI indexes are built for.
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::spec::{self, Descriptor, Index, Manifest};
use soci_digest::Digest;
use std::io::Read;
use std::ops::Range;

/// Read access to one image. Implementations are cheap to share between threads.
///
/// All methods block. Call them from ordinary threads, not from inside a tokio
/// runtime: the registry implementation drives its own runtime and its
/// readers wait on a channel fed by it.
pub trait ImageSource: Send + Sync {
    /// The reference this source was opened with.
    fn reference(&self) -> &ImageRef;

    /// The tagged or digested root (an index/manifest list or a single manifest):
    /// its descriptor (media type, digest, size) and raw bytes, digest verified.
    fn resolve_root(&self) -> Result<(Descriptor, Vec<u8>)>;

    /// A small blob (manifest, config) read whole, size-limited to
    /// [`MAX_IN_MEMORY_BLOB`](crate::blob::MAX_IN_MEMORY_BLOB), digest verified.
    fn fetch_blob(&self, d: &Descriptor) -> Result<Vec<u8>>;

    /// A blob as a stream, without a temporary copy and with bounded memory.
    /// The digest is NOT verified here: the caller hashes what it reads.
    fn open_blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send>>;

    /// Bytes `range` of a blob (not verified: a range cannot be).
    fn read_blob_range(&self, d: &Descriptor, range: Range<u64>) -> Result<Vec<u8>>;

    /// A manifest or index by digest, verified (registries serve manifests on
    /// their own endpoint; layouts and archives keep them as blobs).
    fn fetch_manifest(&self, d: &Descriptor) -> Result<Vec<u8>> {
        self.fetch_blob(d)
    }

    /// The referrers of a manifest (registry: referrers API, else the
    /// `sha256-<hex>` fallback tag index); `None` where the source has no such thing.
    fn referrers(&self, _manifest_digest: &Digest) -> Result<Option<Vec<Descriptor>>> {
        Ok(None)
    }
}

/// One platform's image manifest, chosen by [`select_manifests`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    /// Descriptor of the image manifest, with `platform` set.
    pub descriptor: Descriptor,
    /// The decoded image manifest.
    pub manifest: Manifest,
    /// The manifest's bytes as stored (what `descriptor.digest` is the digest of).
    pub raw: Vec<u8>,
    /// The platform this manifest is built for, as Go `soci` records it on the
    /// SOCI index descriptor: the requested platform as given (after
    /// `os/arch[/variant]` parsing) for [`PlatformChoice::List`] and
    /// [`PlatformChoice::Host`], the index entry's platform for
    /// [`PlatformChoice::All`], and the normalised config platform for a
    /// single-manifest image. (`descriptor.platform` is the index entry's own.)
    pub platform: Platform,
}

/// Which platforms to build for (`--all-platforms`, `--platform`, or the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformChoice {
    /// Every platform of the image except `unknown` ones (attestations).
    All,
    /// These platforms, each of which must exist (duplicates dropped).
    List(Vec<Platform>),
    /// The host platform (containerd `DefaultSpec`).
    Host,
}

// Short names for the rules, which live in `spec` (the registry client uses them too).
use spec::{
    is_index_media_type as is_index_type, is_manifest_media_type as is_manifest_type,
    sniff_media_type,
};

fn parse_manifest(image: &ImageRef, d: &Descriptor, raw: &[u8]) -> Result<Manifest> {
    let m: Manifest = serde_json::from_slice(raw)
        .map_err(|e| Error::json(format!("{image}: manifest {}", d.digest), e))?;
    if m.schema_version != 2 {
        return Err(Error::bad_image(
            image,
            format!(
                "manifest {}: schemaVersion {} is not supported",
                d.digest, m.schema_version
            ),
        ));
    }
    Ok(m)
}

/// The platform recorded in an image config (`os`, `architecture`, `variant`,
/// `os.version`, `os.features`).
pub(crate) fn config_platform(source: &dyn ImageSource, manifest: &Manifest) -> Result<Platform> {
    let raw = source.fetch_blob(&manifest.config)?;
    let p: Platform = serde_json::from_slice(&raw).map_err(|e| {
        Error::json(
            format!("{}: config {}", source.reference(), manifest.config.digest),
            e,
        )
    })?;
    Ok(p)
}

/// Choose the image manifests to index (docs/format.md §4.4):
/// a single-manifest image is used whatever the choice, with its platform read
/// from its config; for an index/manifest list, `All` takes every child whose
/// platform is not `unknown` (deduplicated, index order), `List`/`Host` take for
/// each wanted platform the first child that matches it strictly (containerd
/// `OnlyStrict`), failing with the list of available platforms when none does.
pub fn select_manifests(
    source: &dyn ImageSource,
    choice: &PlatformChoice,
) -> Result<Vec<ImageManifest>> {
    let image = source.reference();
    let (root, raw) = source.resolve_root()?;
    let mt = if root.media_type.is_empty() {
        sniff_media_type(&raw).unwrap_or_default()
    } else {
        root.media_type.clone()
    };
    if is_manifest_type(&mt) {
        return Ok(vec![single_manifest(source, &root, mt, raw)?]);
    }
    if !is_index_type(&mt) {
        return Err(Error::bad_image(
            image,
            format!("root {} has unsupported media type {mt:?}", root.digest),
        ));
    }
    let index: Index = serde_json::from_slice(&raw)
        .map_err(|e| Error::json(format!("{image}: index {}", root.digest), e))?;
    let children = index_children(source, &index)?;
    choose_children(image, &children, choice)?
        .into_iter()
        .map(|(d, entry_platform, platform)| fetch_chosen(source, d, entry_platform, platform))
        .collect()
}

/// A single-manifest root, with its platform read from its config.
fn single_manifest(
    source: &dyn ImageSource,
    root: &Descriptor,
    media_type: String,
    raw: Vec<u8>,
) -> Result<ImageManifest> {
    let manifest = parse_manifest(source.reference(), root, &raw)?;
    let platform = config_platform(source, &manifest)?.normalize();
    let descriptor = Descriptor {
        platform: Some(platform.clone()),
        ..Descriptor::new(media_type, root.digest.clone(), root.size)
    };
    Ok(ImageManifest {
        descriptor,
        manifest,
        raw,
        platform,
    })
}

/// The image manifests an index lists, with their platform (read from the
/// config when the index has none); nested indexes and artifacts are left out.
fn index_children(source: &dyn ImageSource, index: &Index) -> Result<Vec<(Descriptor, Platform)>> {
    let image = source.reference();
    let mut children: Vec<(Descriptor, Platform)> = Vec::new();
    for d in &index.manifests {
        if !d.media_type.is_empty() && !is_manifest_type(&d.media_type) {
            continue; // nested indexes, artifacts
        }
        let platform = match &d.platform {
            Some(p) => p.clone(),
            None => {
                let raw = source.fetch_blob(d)?;
                let m = parse_manifest(image, d, &raw)?;
                config_platform(source, &m)?
            }
        };
        children.push((d.clone(), platform));
    }
    Ok(children)
}

/// Applies `choice` to an index's children: (index entry, its platform, build
/// platform) for each chosen one, or the platforms available when a wanted one
/// is missing.
fn choose_children(
    image: &ImageRef,
    children: &[(Descriptor, Platform)],
    choice: &PlatformChoice,
) -> Result<Vec<(Descriptor, Platform, Platform)>> {
    let available = || {
        // Each platform once: a SOCI-enabled index repeats its images'
        // platforms on their SOCI index entries; attestations (unknown/unknown)
        // are not images to choose.
        let mut v: Vec<String> = Vec::new();
        for (_, p) in children.iter().filter(|(_, p)| !p.is_unknown()) {
            let p = p.to_string();
            if !v.contains(&p) {
                v.push(p);
            }
        }
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };

    let mut chosen: Vec<(Descriptor, Platform, Platform)> = Vec::new();
    match choice {
        PlatformChoice::All => {
            for (d, p) in children {
                if p.is_unknown() || chosen.iter().any(|(_, q, _)| q.matches_strict(p)) {
                    continue;
                }
                chosen.push((d.clone(), p.clone(), p.clone()));
            }
            if chosen.is_empty() {
                return Err(Error::PlatformNotFound {
                    image: image.to_string(),
                    wanted: "any".into(),
                    available: available(),
                });
            }
        }
        PlatformChoice::List(_) | PlatformChoice::Host => {
            let wanted = match choice {
                PlatformChoice::List(l) => l.clone(),
                _ => vec![Platform::host()],
            };
            let mut seen: Vec<Platform> = Vec::new();
            for w in wanted {
                if seen.iter().any(|s| s.matches_strict(&w)) {
                    continue;
                }
                seen.push(w.clone());
                let Some((d, p)) = children.iter().find(|(_, p)| w.matches_strict(p)) else {
                    return Err(Error::PlatformNotFound {
                        image: image.to_string(),
                        wanted: w.to_string(),
                        available: available(),
                    });
                };
                chosen.push((d.clone(), p.clone(), w));
            }
        }
    }
    Ok(chosen)
}

/// Fetches a chosen child manifest; its descriptor gets a media type (sniffed
/// when the index has none) and its index entry's platform.
fn fetch_chosen(
    source: &dyn ImageSource,
    mut d: Descriptor,
    entry_platform: Platform,
    platform: Platform,
) -> Result<ImageManifest> {
    let raw = source.fetch_blob(&d)?;
    let manifest = parse_manifest(source.reference(), &d, &raw)?;
    if d.media_type.is_empty() {
        d.media_type =
            sniff_media_type(&raw).unwrap_or_else(|| spec::MEDIA_TYPE_OCI_MANIFEST.into());
    }
    d.platform.get_or_insert(entry_platform);
    Ok(ImageManifest {
        descriptor: d,
        manifest,
        raw,
        platform,
    })
}
