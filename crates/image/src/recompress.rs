//! `docker save` archives store layers as plain tars, so the image a registry
//! receives from `docker push` (gzip layers) has other layer digests than the
//! archive. To index what will actually land in the registry, the layers are
//! compressed here, deterministically (gzip level 6, no name, mtime 0, flate2 on
//! zlib-rs), into the local store, and the image is served from there with an
//! OCI manifest pointing at the compressed layers. The config (and so the
//! image's diff_ids, which name the *uncompressed* layers) is unchanged.
use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};
use soci_index::store::Store;
use soci_oci::reference::ImageRef;
use soci_oci::source::ImageSource;
use soci_oci::spec::{self, Descriptor, Manifest};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

/// An image whose uncompressed layers were compressed into the store.
pub struct RecompressedImage<'a> {
    inner: &'a dyn ImageSource,
    store: &'a Store,
    manifest: Descriptor,
    manifest_raw: Vec<u8>,
    /// (compressed layer in the store, original layer) pairs.
    layers: Vec<(Descriptor, Descriptor)>,
}

/// Compresses every uncompressed layer of `inner`'s (single) image manifest into
/// `store` and returns an image that serves the compressed form.
pub fn recompress<'a>(
    inner: &'a dyn ImageSource,
    store: &'a Store,
) -> Result<RecompressedImage<'a>> {
    let (root, raw) = inner.resolve_root()?;
    let mut manifest: Manifest = serde_json::from_slice(&raw)
        .with_context(|| format!("{}: the image manifest does not parse", inner.reference()))?;
    let mut layers = Vec::new();
    for l in manifest.layers.iter_mut() {
        let compressible = l.media_type == spec::MEDIA_TYPE_DOCKER_LAYER_TAR
            || l.media_type == spec::MEDIA_TYPE_OCI_LAYER_TAR;
        let original = l.clone();
        if compressible {
            let mut reader = inner
                .open_blob(l)
                .with_context(|| format!("cannot read layer {}", l.digest))?;
            let writer = store.blob_writer()?;
            let mut gz = GzBuilder::new().mtime(0).write(writer, Compression::new(6));
            std::io::copy(&mut reader, &mut gz)
                .with_context(|| format!("cannot compress layer {}", l.digest))?;
            let blob = gz.finish()?.commit()?;
            *l = Descriptor {
                media_type: spec::MEDIA_TYPE_OCI_LAYER_GZIP.into(),
                digest: blob.digest,
                size: blob.size as i64,
                ..Default::default()
            };
        } else if l.media_type == spec::MEDIA_TYPE_DOCKER_LAYER_GZIP {
            l.media_type = spec::MEDIA_TYPE_OCI_LAYER_GZIP.into();
        }
        layers.push((l.clone(), original));
    }
    manifest.media_type = spec::MEDIA_TYPE_OCI_MANIFEST.into();
    manifest.config.media_type = spec::MEDIA_TYPE_OCI_CONFIG.into();
    let manifest_raw = spec::to_go_json(&manifest);
    let desc = Descriptor {
        media_type: spec::MEDIA_TYPE_OCI_MANIFEST.into(),
        digest: spec::sha256_digest(&manifest_raw),
        size: manifest_raw.len() as i64,
        platform: root.platform.clone(),
        ..Default::default()
    };
    Ok(RecompressedImage {
        inner,
        store,
        manifest: desc,
        manifest_raw,
        layers,
    })
}

impl RecompressedImage<'_> {
    /// The compressed layer stored for `d`, if `d` is one we made.
    fn stored(&self, d: &Descriptor) -> bool {
        self.layers
            .iter()
            .any(|(c, o)| c.digest == d.digest && c.digest != o.digest)
    }
    fn store_err(&self, e: impl std::fmt::Display) -> soci_oci::Error {
        soci_oci::Error::Io {
            path: self.store.dir().to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        }
    }
    /// The original descriptor behind `d` (for blobs passed through).
    fn original(&self, d: &Descriptor) -> Descriptor {
        self.layers
            .iter()
            .find(|(c, _)| c.digest == d.digest)
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| d.clone())
    }
}

impl ImageSource for RecompressedImage<'_> {
    fn reference(&self) -> &ImageRef {
        self.inner.reference()
    }
    fn resolve_root(&self) -> soci_oci::Result<(Descriptor, Vec<u8>)> {
        Ok((self.manifest.clone(), self.manifest_raw.clone()))
    }
    fn fetch_blob(&self, d: &Descriptor) -> soci_oci::Result<Vec<u8>> {
        if d.digest == self.manifest.digest {
            return Ok(self.manifest_raw.clone());
        }
        if self.stored(d) {
            return self
                .store
                .get_blob(&d.digest)
                .map_err(|e| self.store_err(e));
        }
        let mut o = self.original(d);
        o.media_type = d.media_type.clone();
        self.inner.fetch_blob(&o)
    }
    fn open_blob(&self, d: &Descriptor) -> soci_oci::Result<Box<dyn Read + Send>> {
        if self.stored(d) {
            let f = self
                .store
                .open_blob(&d.digest)
                .map_err(|e| self.store_err(e))?;
            return Ok(Box::new(f));
        }
        self.inner.open_blob(&self.original(d))
    }
    fn read_blob_range(&self, d: &Descriptor, range: Range<u64>) -> soci_oci::Result<Vec<u8>> {
        if self.stored(d) {
            let mut f = self
                .store
                .open_blob(&d.digest)
                .map_err(|e| self.store_err(e))?;
            let mut buf = Vec::new();
            f.seek(SeekFrom::Start(range.start))
                .and_then(|_| f.take(range.end - range.start).read_to_end(&mut buf))
                .map_err(|e| self.store_err(e))?;
            return Ok(buf);
        }
        self.inner.read_blob_range(&self.original(d), range)
    }
}
