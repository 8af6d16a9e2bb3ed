//! Opening an image for mounting: the platform manifest, its SOCI index (found
//! as `verify` finds it), the zTOCs of the indexed layers, and a local copy of
//! every layer without one (fetched whole, digest-checked, unpacked to a tar
//! file and walked for its file table).
use crate::error::{Error, Result};
use crate::tree::Tree;
use soci_index::manifest::parse_index_manifest;
use soci_index::prefetch::PrefetchArtifact;
use soci_index::store::Store;
use soci_oci::source::{select_manifests, ImageSource, PlatformChoice};
use soci_oci::spec::Descriptor;
use soci_ztoc::{codec, TocEntry, Zinfo, Ztoc};
use std::io::{Read, Write};
use std::path::Path;

/// How one layer's bytes are served.
pub enum LayerData {
    /// Lazily, span by span, through its zTOC.
    Lazy {
        /// The layer.
        desc: Descriptor,
        /// Digest of its zTOC (names the spans in the disk cache).
        ztoc_digest: soci_digest::Digest,
        /// The zTOC.
        ztoc: Box<Ztoc>,
        /// Its decoded zinfo.
        zinfo: Box<Zinfo>,
        /// Spans its prefetch artifact lists, fetched first.
        prefetch: Vec<(u64, u64)>,
    },
    /// From a local copy of the whole uncompressed tar.
    Local {
        /// The layer.
        desc: Descriptor,
        /// The uncompressed tar.
        file: std::fs::File,
    },
}

impl LayerData {
    /// The layer's descriptor.
    pub fn desc(&self) -> &Descriptor {
        match self {
            LayerData::Lazy { desc, .. } | LayerData::Local { desc, .. } => desc,
        }
    }
}

/// An image ready to mount: its layers and the merged tree.
pub struct MountImage {
    /// Digest of the platform image manifest.
    pub manifest_digest: soci_digest::Digest,
    /// Digest of the SOCI index used.
    pub index_digest: soci_digest::Digest,
    /// Where the index was found.
    pub found_via: String,
    /// The layers, lowest first.
    pub layers: Vec<LayerData>,
    /// The merged tree.
    pub tree: Tree,
    /// Compressed bytes fetched to open it (whole layers without a zTOC).
    pub bytes_fetched: u64,
    /// Bytes of the SOCI index, its zTOCs and prefetch artifacts read.
    pub index_bytes: u64,
    /// Layers fetched whole.
    pub layers_fetched_whole: u64,
}

/// How a layer without a zTOC is compressed.
#[derive(Clone, Copy)]
enum Compression {
    Gzip,
    Zstd,
    None,
}

fn compression(media_type: &str) -> Option<Compression> {
    if media_type.ends_with("gzip") {
        Some(Compression::Gzip)
    } else if media_type.ends_with("zstd") {
        Some(Compression::Zstd)
    } else if media_type.ends_with(".tar") || media_type.ends_with("tar") {
        Some(Compression::None)
    } else {
        None
    }
}

/// Opens `source` for mounting. `local_dir` receives the local copies of the
/// layers without a zTOC.
pub fn open_image(
    source: &dyn ImageSource,
    store: Option<&Store>,
    platforms: &PlatformChoice,
    local_dir: &Path,
) -> Result<MountImage> {
    let images = select_manifests(source, platforms)?;
    let img = match images.as_slice() {
        [one] => one,
        [] => return Err(Error::NoPlatform),
        many => return Err(Error::ManyPlatforms(many.len())),
    };
    let found = soci_image::verify::find_soci_index(source, store, img)?
        .ok_or_else(|| Error::NoIndex(img.descriptor.digest.clone()))?;
    let actual = soci_oci::spec::sha256_digest(&found.bytes);
    if actual != found.digest {
        return Err(Error::IndexDigest {
            digest: found.digest.clone(),
            actual,
        });
    }
    let parsed = parse_index_manifest(&found.bytes).map_err(Error::Index)?;
    let ztoc_store = if found.from_store { store } else { None };
    let layer_of = |d: &Descriptor| {
        d.annotations
            .get(soci_index::ANNOTATION_IMAGE_LAYER_DIGEST)
            .cloned()
            .unwrap_or_default()
    };
    let mut out = MountImage {
        manifest_digest: img.descriptor.digest.clone(),
        index_digest: found.digest.clone(),
        found_via: found.via.clone(),
        layers: Vec::new(),
        tree: Tree::new(),
        bytes_fetched: 0,
        index_bytes: found.bytes.len() as u64,
        layers_fetched_whole: 0,
    };
    for (i, layer) in img.manifest.layers.iter().enumerate() {
        let zdesc = parsed.ztocs().find(|z| layer_of(z) == layer.digest);
        let (data, entries, xattrs) = match zdesc {
            Some(zdesc) => {
                let bytes = soci_image::verify::read_index_ztoc(source, ztoc_store, zdesc)?;
                out.index_bytes += bytes.len() as u64;
                let mut ztoc = codec::decode(&bytes).map_err(|e| Error::Ztoc {
                    digest: zdesc.digest.clone(),
                    why: e.to_string(),
                })?;
                let zinfo = ztoc.zinfo().map_err(|e| Error::Ztoc {
                    digest: zdesc.digest.clone(),
                    why: e.to_string(),
                })?;
                let xattrs = zdesc
                    .annotations
                    .get(soci_index::ANNOTATION_DISABLE_XATTRS)
                    .map(String::as_str)
                    != Some("true");
                let mut prefetch = Vec::new();
                for p in parsed.prefetches().filter(|p| layer_of(p) == layer.digest) {
                    let blob = source.fetch_blob(p)?;
                    out.index_bytes += blob.len() as u64;
                    if soci_oci::spec::sha256_digest(&blob) != p.digest {
                        return Err(Error::Prefetch(p.digest.clone()));
                    }
                    let art = PrefetchArtifact::from_json(&blob).map_err(Error::Index)?;
                    prefetch.extend(
                        art.prefetch_spans
                            .iter()
                            .map(|s| (s.start_span, s.end_span)),
                    );
                }
                // The file table goes into the tree; the mount reads only the
                // zTOC's sizes and checkpoints after this.
                let entries = std::mem::take(&mut ztoc.toc.entries);
                (
                    LayerData::Lazy {
                        desc: layer.clone(),
                        ztoc_digest: zdesc.digest.clone(),
                        ztoc: Box::new(ztoc),
                        zinfo: Box::new(zinfo),
                        prefetch,
                    },
                    entries,
                    xattrs,
                )
            }
            None => {
                let (file, entries) = fetch_whole(source, layer, local_dir)?;
                out.bytes_fetched += layer.size.max(0) as u64;
                out.layers_fetched_whole += 1;
                (
                    LayerData::Local {
                        desc: layer.clone(),
                        file,
                    },
                    entries,
                    true,
                )
            }
        };
        out.tree.apply_layer(i, &entries, xattrs);
        out.layers.push(data);
    }
    out.tree.finish();
    Ok(out)
}

/// Downloads `layer` whole, checks its digest and size, and unpacks it into a
/// tar file in `dir` (unlinked at once: it lives as long as the mount), walking
/// the tar for its file table on the way.
fn fetch_whole(
    source: &dyn ImageSource,
    layer: &Descriptor,
    dir: &Path,
) -> Result<(std::fs::File, Vec<TocEntry>)> {
    let kind = compression(&layer.media_type)
        .ok_or_else(|| Error::MediaType(layer.media_type.clone(), layer.digest.clone()))?;
    let blob = source.open_blob(layer)?;
    let mut hashing = soci_digest::Hashing::new(blob.take(layer.size.max(0) as u64 + 1));
    let local = |e: std::io::Error| Error::Local {
        layer: layer.digest.clone(),
        source: e,
    };
    let mut file = tempfile::tempfile_in(dir).map_err(local)?;
    let mut walker = soci_ztoc::tar_walk::TarWalker::new();
    {
        let mut reader: Box<dyn Read + '_> = match kind {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut hashing)),
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::new(&mut hashing).map_err(local)?)
            }
            Compression::None => Box::new(&mut hashing),
        };
        let mut buf = vec![0u8; 256 << 10];
        let mut w = std::io::BufWriter::new(&mut file);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Layer {
                        layer: layer.digest.clone(),
                        why: e.to_string(),
                    })
                }
            };
            w.write_all(&buf[..n]).map_err(local)?;
            walker.feed(&buf[..n]).map_err(|e| Error::Layer {
                layer: layer.digest.clone(),
                why: e.to_string(),
            })?;
        }
        w.flush().map_err(local)?;
    }
    // Whatever the decompressor left unread still counts for the digest.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| Error::Layer {
        layer: layer.digest.clone(),
        why: e.to_string(),
    })?;
    if hashing.digest() != layer.digest || hashing.size() != layer.size.max(0) as u64 {
        return Err(Error::Layer {
            layer: layer.digest.clone(),
            why: format!(
                "the bytes fetched ({} bytes, {}) are not the layer the manifest names ({} bytes)",
                hashing.size(),
                hashing.digest(),
                layer.size
            ),
        });
    }
    walker.finish().map_err(|e| Error::Layer {
        layer: layer.digest.clone(),
        why: e.to_string(),
    })?;
    Ok((file, walker.take_entries()))
}
