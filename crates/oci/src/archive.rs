//! `docker save` archives read in place as an [`ImageSource`].
//!
//! The tar holds `manifest.json` (`[{"Config":…,"RepoTags":[…],"Layers":[…]}]`),
//! the config file and uncompressed layer tars (older Docker: `<id>/layer.tar`,
//! duplicates as symlinks; Docker 25+: an OCI layout's `blobs/sha256/<hex>`).
//! There is no manifest in the archive, so we synthesise a Docker schema2
//! manifest; blobs are served by seeking to the tar entry's data, nothing is
//! extracted. Layer digests of the old form are the config's diff_ids for plain
//! tar layers (readers check them as they stream); a compressed layer of the
//! old form is hashed once when the source is opened.
use crate::blob::{check_small, verify_blob, MAX_IN_MEMORY_BLOB};
use crate::error::{Error, Result};
use crate::fsio::clean_rooted_path as clean;
use crate::layout::{file_len, read_range_from};
use crate::reference::ImageRef;
use crate::source::ImageSource;
use crate::spec::{self, Descriptor, Manifest};
use soci_digest::Digest;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
enum Entry {
    File { offset: u64, size: u64 },
    Link(String),
}

#[derive(serde::Deserialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// A `docker save` tarball opened as an image source.
pub struct DockerArchiveSource {
    reference: ImageRef,
    file: PathBuf,
    /// digest → (offset of the data in the archive, size)
    blobs: HashMap<Digest, (u64, u64)>,
    manifest_desc: Descriptor,
    manifest_raw: Vec<u8>,
}

/// Walks the tar once and records where each regular file's data starts;
/// symlinks and hard links are kept as the (cleaned) name they point to.
fn index_entries(path: &Path) -> Result<HashMap<String, Entry>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut ar = tar::Archive::new(f);
    let iter = ar.entries_with_seek().map_err(|e| Error::io(path, e))?;
    for e in iter {
        let e = e.map_err(|e| Error::io(path, e))?;
        let name = clean(&String::from_utf8_lossy(&e.path_bytes()));
        let kind = e.header().entry_type();
        if kind.is_file() {
            entries.insert(
                name,
                Entry::File {
                    offset: e.raw_file_position(),
                    size: e.size(),
                },
            );
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = e
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let target = if kind.is_symlink() && !target.starts_with('/') {
                match name.rsplit_once('/') {
                    Some((dir, _)) => clean(&format!("{dir}/{target}")),
                    None => clean(&target),
                }
            } else {
                clean(&target)
            };
            entries.insert(name, Entry::Link(target));
        }
    }
    Ok(entries)
}

/// Follows links (at most 16, so a cycle ends) to the data of `name`:
/// (offset in the archive, size).
fn locate_entry(
    entries: &HashMap<String, Entry>,
    reference: &ImageRef,
    name: &str,
) -> Result<(u64, u64)> {
    let bad = |reason: String| Error::bad_image(reference, reason);
    let mut n = clean(name);
    for _ in 0..16 {
        match entries.get(&n) {
            Some(Entry::File { offset, size }) => return Ok((*offset, *size)),
            Some(Entry::Link(t)) => n = t.clone(),
            None => return Err(bad(format!("archive has no file {name:?}"))),
        }
    }
    Err(bad(format!("too many links resolving {name:?}")))
}

/// Picks the image named by `docker-archive:FILE:NAME:TAG` (matched against
/// RepoTags, with or without the `docker.io/` prefixes), or the only one.
fn choose_image<'a>(
    images: &'a [ArchiveManifest],
    image: &Option<String>,
    reference: &ImageRef,
) -> Result<&'a ArchiveManifest> {
    let tags_of = |m: &ArchiveManifest| m.repo_tags.clone().unwrap_or_default();
    let all_tags = || {
        let t: Vec<String> = images.iter().flat_map(tags_of).collect();
        if t.is_empty() {
            "none".to_string()
        } else {
            t.join(", ")
        }
    };
    let chosen = match image {
        Some(want) => images.iter().find(|m| {
            tags_of(m).iter().any(|t| {
                t == want
                    || format!("docker.io/library/{t}") == *want
                    || format!("docker.io/{t}") == *want
            })
        }),
        None if images.len() == 1 => images.first(),
        None => None,
    };
    chosen.ok_or_else(|| {
        Error::bad_image(
            reference,
            match image {
                Some(w) => format!("no image tagged {w:?}; RepoTags: {}", all_tags()),
                None => format!("archive holds {} images, say which with docker-archive:FILE:NAME:TAG; RepoTags: {}", images.len(), all_tags()),
            },
        )
    })
}

/// The config's `rootfs.diff_ids`, or nothing when they are missing, malformed
/// or do not match the layer count (then every layer is hashed instead).
fn diff_ids_of(config_raw: &[u8], layer_count: usize) -> Vec<String> {
    serde_json::from_slice::<serde_json::Value>(config_raw)
        .ok()
        .and_then(|c| {
            c["rootfs"]["diff_ids"].as_array().map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str())
                    .filter(|d| crate::reference::is_sha256_digest(d))
                    .map(String::from)
                    .collect()
            })
        })
        .filter(|d: &Vec<String>| d.len() == layer_count)
        .unwrap_or_default()
}

/// Describes one layer stored at `off..off+size`: its media type from the
/// first bytes, its digest from the entry name, the diff_id, or by hashing.
fn layer_descriptor(
    path: &Path,
    name: &str,
    (off, size): (u64, u64),
    diff_id: Option<&String>,
) -> Result<Descriptor> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    f.seek(SeekFrom::Start(off))
        .map_err(|e| Error::io(path, e))?;
    let mut magic = Vec::new();
    (&mut f)
        .take(size.min(4))
        .read_to_end(&mut magic)
        .map_err(|e| Error::io(path, e))?;
    let media_type = if magic.starts_with(&[0x1f, 0x8b]) {
        spec::MEDIA_TYPE_DOCKER_LAYER_GZIP
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        spec::MEDIA_TYPE_OCI_LAYER_ZSTD
    } else {
        spec::MEDIA_TYPE_DOCKER_LAYER_TAR
    };
    // Docker 25+ names layers by digest; trust it (readers verify as
    // they stream), as the diff_id of a plain tar layer. Else the layer
    // is hashed here.
    let named = clean(name)
        .strip_prefix("blobs/sha256/")
        .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok())
        .filter(Digest::is_sha256)
        .or_else(|| {
            (media_type == spec::MEDIA_TYPE_DOCKER_LAYER_TAR)
                .then(|| diff_id.and_then(|d| Digest::parse(d).ok()))
                .flatten()
        });
    let digest = match named {
        Some(d) => d,
        None => {
            f.seek(SeekFrom::Start(off))
                .map_err(|e| Error::io(path, e))?;
            let mut h = soci_digest::Hashing::new(f.take(size));
            std::io::copy(&mut h, &mut std::io::sink()).map_err(|e| Error::io(path, e))?;
            h.digest_value()
        }
    };
    Ok(Descriptor::new(media_type, digest, size as i64))
}

/// The Docker schema2 manifest the archive does not contain, in Go's JSON
/// encoding, and its descriptor.
fn synthesise_manifest(config: Descriptor, layers: Vec<Descriptor>) -> (Descriptor, Vec<u8>) {
    let manifest = Manifest {
        schema_version: 2,
        media_type: spec::MEDIA_TYPE_DOCKER_MANIFEST.into(),
        config,
        layers,
        artifact_type: String::new(),
        subject: None,
        annotations: Default::default(),
    };
    let manifest_raw = spec::to_go_json(&manifest);
    let manifest_desc = Descriptor::of(spec::MEDIA_TYPE_DOCKER_MANIFEST, &manifest_raw);
    (manifest_desc, manifest_raw)
}

impl DockerArchiveSource {
    /// Index the archive's entries, read `manifest.json`, pick the image and
    /// synthesise its manifest.
    pub fn open(reference: ImageRef) -> Result<Self> {
        let ImageRef::DockerArchive { file, image } = &reference else {
            return Err(Error::invalid_reference(
                &reference,
                "not a docker-archive: reference",
            ));
        };
        let (path, image) = (file.clone(), image.clone());
        let entries = index_entries(&path)?;
        let bad = |reason: String| Error::bad_image(&reference, reason);
        let locate = |name: &str| locate_entry(&entries, &reference, name);

        let mut file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut read_small = |name: &str| -> Result<Vec<u8>> {
            let (off, size) = locate(name)?;
            if size > MAX_IN_MEMORY_BLOB {
                return Err(bad(format!("{name} is {size} bytes, too large")));
            }
            let len = file_len(&file, &path)?;
            read_range_from(
                &mut file,
                &path,
                off,
                len.saturating_sub(off),
                0..size,
                &reference,
                name,
            )
        };
        let mj = read_small("manifest.json")
            .map_err(|_| bad("no manifest.json: not a `docker save` archive".into()))?;
        let images: Vec<ArchiveManifest> = serde_json::from_slice(&mj)
            .map_err(|e| Error::json(format!("{reference}: manifest.json"), e))?;
        let chosen = choose_image(&images, &image, &reference)?;

        let config_raw = read_small(&chosen.config)?;
        let config_digest = Digest::of(&config_raw);
        let mut blobs = HashMap::new();
        blobs.insert(config_digest.clone(), locate(&chosen.config)?);

        // An uncompressed layer's digest is its diff_id, which the config lists
        // in layer order: no need to read the layers to name them.
        let diff_ids = diff_ids_of(&config_raw, chosen.layers.len());

        let mut layers = Vec::new();
        for (i, l) in chosen.layers.iter().enumerate() {
            let at = locate(l)?;
            let layer = layer_descriptor(&path, l, at, diff_ids.get(i))?;
            blobs.insert(layer.digest.clone(), at);
            layers.push(layer);
        }

        let config = Descriptor::new(
            spec::MEDIA_TYPE_DOCKER_CONFIG,
            config_digest,
            config_raw.len() as i64,
        );
        let (manifest_desc, manifest_raw) = synthesise_manifest(config, layers);
        Ok(DockerArchiveSource {
            reference,
            file: path,
            blobs,
            manifest_desc,
            manifest_raw,
        })
    }

    /// The synthesised schema2 manifest (also served by `fetch_blob`).
    pub fn manifest(&self) -> (&Descriptor, &[u8]) {
        (&self.manifest_desc, &self.manifest_raw)
    }

    fn locate(&self, d: &Descriptor) -> Result<(u64, u64)> {
        self.blobs
            .get(&d.digest)
            .copied()
            .ok_or_else(|| Error::BlobNotFound {
                image: self.reference.to_string(),
                digest: d.digest.to_string(),
            })
    }

    fn open_at(&self, off: u64) -> Result<File> {
        let mut f = File::open(&self.file).map_err(|e| Error::io(&self.file, e))?;
        f.seek(SeekFrom::Start(off))
            .map_err(|e| Error::io(&self.file, e))?;
        Ok(f)
    }

    /// The `docker save` archive file read.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

impl ImageSource for DockerArchiveSource {
    fn reference(&self) -> &ImageRef {
        &self.reference
    }

    fn resolve_root(&self) -> Result<(Descriptor, Vec<u8>)> {
        Ok((self.manifest_desc.clone(), self.manifest_raw.clone()))
    }

    fn fetch_blob(&self, d: &Descriptor) -> Result<Vec<u8>> {
        if d.digest == self.manifest_desc.digest {
            return Ok(self.manifest_raw.clone());
        }
        check_small(&self.reference, d)?;
        let (off, size) = self.locate(d)?;
        if size > MAX_IN_MEMORY_BLOB {
            return Err(Error::BlobTooLarge {
                image: self.reference.to_string(),
                digest: d.digest.to_string(),
                size,
                limit: MAX_IN_MEMORY_BLOB,
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.open_at(off)?
            .take(size)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(&self.file, e))?;
        verify_blob(&format!("{}: blob", self.reference), d, &buf)?;
        Ok(buf)
    }

    fn open_blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send>> {
        if d.digest == self.manifest_desc.digest {
            return Ok(Box::new(std::io::Cursor::new(self.manifest_raw.clone())));
        }
        let (off, size) = self.locate(d)?;
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 16,
            self.open_at(off)?.take(size),
        )))
    }

    fn read_blob_range(&self, d: &Descriptor, range: Range<u64>) -> Result<Vec<u8>> {
        let (off, size) = self.locate(d)?;
        let mut f = File::open(&self.file).map_err(|e| Error::io(&self.file, e))?;
        read_range_from(
            &mut f,
            &self.file,
            off,
            size,
            range,
            &self.reference,
            d.digest.as_str(),
        )
    }
}
