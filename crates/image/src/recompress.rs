//! `docker save` archives store layers as plain tars, so the image a registry
//! receives from `docker push` (gzip layers) has other layer digests than the
//! archive. To index what will actually land in the registry, the layers are
//! compressed here, deterministically (gzip level 6, no name, mtime 0, flate2 on
//! zlib-rs), into the local store, and the image is served from there with an
//! OCI manifest pointing at the compressed layers. The config (and so the
//! image's diff_ids, which name the *uncompressed* layers) is unchanged.
//!
//! One pass per layer, layers in parallel (`--jobs`): the tar is read once from
//! the archive (its digest checked against the archive's manifest), compressed,
//! and the compressed bytes go both to the store and, through a bounded channel,
//! to a zTOC builder on its own thread. `create` then finds those zTOCs in
//! [`RecompressedImage::prebuilt`] instead of reading the layers again.
//!
//! ```text
//!  archive tar ──sha256──> gzip -6 ──┬──> store blob (temp file, renamed at the end)
//!                                    └──chunks──> build_ztoc (own thread) ──> zTOC
//! ```
use crate::create::{store_built, CreateOptions, LayerOutcome};
use crate::error::{Error, Result};
use crate::layers::{plan_layer, LayerPlan};
use crate::pool::parallel_by;
use crate::tee::{CopyStopped, OnHangup, QueueReader, Tee};
use crate::{HashingReader, LayerProgress, Reporter};
use flate2::{Compression, GzBuilder};
use soci_index::store::Store;
use soci_oci::reference::ImageRef;
use soci_oci::source::ImageSource;
use soci_oci::spec::{self, Descriptor, Digest, Manifest};
use soci_ztoc::build::{build_ztoc, BuildOptions, LayerCompression};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::sync::mpsc;

/// An image whose uncompressed layers were compressed into the store.
pub struct RecompressedImage<'a> {
    inner: &'a dyn ImageSource,
    store: &'a Store,
    manifest: Descriptor,
    manifest_raw: Vec<u8>,
    /// (compressed layer in the store, original layer) pairs.
    layers: Vec<(Descriptor, Descriptor)>,
    /// zTOCs built while compressing, by compressed layer digest.
    prebuilt: HashMap<Digest, LayerOutcome>,
}

/// Compressed chunks handed from the compressor to the builder.
const PIPE_CHUNK: usize = 256 * 1024;
const PIPE_DEPTH: usize = 8;

/// Compresses every uncompressed layer of `inner`'s (single) image manifest into
/// `store` and returns an image that serves the compressed form. Unless
/// `opts.require_stored` (`soci push`: use only what is stored), the zTOC of
/// every compressed layer that `create` would index is built on the way.
pub fn recompress<'a>(
    inner: &'a dyn ImageSource,
    store: &'a Store,
    opts: &CreateOptions,
    reporter: &dyn Reporter,
) -> Result<RecompressedImage<'a>> {
    let (root, raw) = inner.resolve_root()?;
    let mut manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|source| Error::BadManifest {
            image: inner.reference().to_string(),
            source,
        })?;
    let done = parallel_by(
        &manifest.layers,
        opts.jobs,
        |l| l.size.max(0) as u64,
        |l| {
            let compressible = l.media_type == spec::MEDIA_TYPE_DOCKER_LAYER_TAR
                || l.media_type == spec::MEDIA_TYPE_OCI_LAYER_TAR;
            if !compressible {
                return Ok(None);
            }
            compress_layer(inner, store, l, opts, reporter).map(Some)
        },
    )?;
    let mut layers = Vec::new();
    let mut prebuilt = HashMap::new();
    for (l, done) in manifest.layers.iter_mut().zip(done) {
        let original = l.clone();
        match done {
            Some((compressed, outcome)) => {
                *l = compressed;
                if let Some(o) = outcome {
                    prebuilt.insert(l.digest.clone(), o);
                }
            }
            None if l.media_type == spec::MEDIA_TYPE_DOCKER_LAYER_GZIP => {
                l.media_type = spec::MEDIA_TYPE_OCI_LAYER_GZIP.into();
            }
            None => {}
        }
        layers.push((l.clone(), original));
    }
    manifest.media_type = spec::MEDIA_TYPE_OCI_MANIFEST.into();
    manifest.config.media_type = spec::MEDIA_TYPE_OCI_CONFIG.into();
    let manifest_raw = spec::to_go_json(&manifest);
    let desc = Descriptor {
        platform: root.platform.clone(),
        ..Descriptor::new(
            spec::MEDIA_TYPE_OCI_MANIFEST,
            Digest::of(&manifest_raw),
            manifest_raw.len() as i64,
        )
    };
    Ok(RecompressedImage {
        inner,
        store,
        manifest: desc,
        manifest_raw,
        layers,
        prebuilt,
    })
}

/// The store's blob writer, its write errors naming its file ("No space left
/// on device" alone does not say where).
struct BlobFile(soci_index::store::BlobWriter);

impl Write for BlobFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf).map_err(|e| {
            std::io::Error::new(e.kind(), format!("{}: {e}", self.0.temp_path().display()))
        })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Compresses one tar layer into the store, building its zTOC on the way.
/// Returns the compressed layer's descriptor and, if it was built, the outcome.
fn compress_layer(
    inner: &dyn ImageSource,
    store: &Store,
    l: &Descriptor,
    opts: &CreateOptions,
    reporter: &dyn Reporter,
) -> Result<(Descriptor, Option<LayerOutcome>)> {
    let reader = inner.open_blob(l).map_err(|source| Error::ReadLayer {
        layer: l.digest.clone(),
        source,
    })?;
    // Hashed on the way, to check the archive's layer digest (its diff_id).
    let mut reader = HashingReader::new(reader);
    reporter.layer_start(&l.digest, l.size.max(0) as u64);
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(PIPE_DEPTH);
    let build = !opts.require_stored;
    let mut bo = BuildOptions::new(LayerCompression::Gzip);
    bo.span_size = opts.span_size;
    bo.build_tool_identifier = opts.build_tool_identifier.clone();
    bo.max_uncompressed_size = opts.max_uncompressed_size;
    bo.max_files = opts.max_files;
    let (compressed, built) = std::thread::scope(|s| {
        let builder = build.then(|| {
            let rx = QueueReader::new(rx);
            let bo = &bo;
            let digest = &l.digest;
            // The bar's total is the tar's size: report tar bytes.
            let mut progress = LayerProgress {
                reporter,
                digest,
                tar_bytes: true,
            };
            s.spawn(move || build_ztoc(rx, bo, &mut progress))
        });
        // Writes to the store blob and hands the same bytes to the builder; a
        // builder that hung up stopped on an error, which is the one to report.
        let tee = Tee::new(
            BlobFile(store.blob_writer()?),
            build.then_some(tx),
            OnHangup::Fail("the zTOC builder stopped"),
        );
        let out = std::io::BufWriter::with_capacity(PIPE_CHUNK, tee);
        let mut gz = GzBuilder::new().mtime(0).write(out, Compression::new(6));
        let copied = std::io::copy(&mut reader, &mut gz).and_then(|_| gz.try_finish());
        let tee = gz
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()));
        // Ending the channel lets the builder see the end of the blob.
        let (blob, copied) = match (copied, tee) {
            (Ok(_), Ok(tee)) => (Some(tee.into_inner().0), Ok(())),
            (Err(e), _) | (_, Err(e)) => (None, Err(e)),
        };
        let built = builder.map(|b| b.join().expect("the zTOC builder does not panic"));
        if let Err(e) = copied {
            // A builder error explains a stopped pipe better than the pipe does;
            // any other failure (reading the archive, writing the store) stopped
            // the builder's input, and is the one to report.
            let pipe_stopped = e.get_ref().is_some_and(|x| x.is::<CopyStopped>());
            if let (true, Some(Err(be))) = (pipe_stopped, built) {
                return Err(Error::BuildZtoc {
                    layer: l.digest.clone(),
                    source: be,
                });
            }
            return Err(Error::Compress {
                layer: l.digest.clone(),
                source: e,
            });
        }
        let blob = blob.expect("present when compression succeeded");
        let actual = reader.digest();
        if actual != l.digest || (l.size > 0 && reader.size() != l.size as u64) {
            return Err(Error::LayerMismatch {
                image: inner.reference().to_string(),
                layer: l.digest.clone(),
                actual,
                size: reader.size(),
            });
        }
        let blob = blob.commit()?;
        Ok::<_, Error>((blob, built))
    })?;
    let desc = Descriptor::new(
        spec::MEDIA_TYPE_OCI_LAYER_GZIP,
        compressed.digest.clone(),
        compressed.size as i64,
    );
    let Some(built) = built else {
        return Ok((desc, None));
    };
    let built = built.map_err(|source| Error::BuildZtoc {
        layer: l.digest.clone(),
        source,
    })?;
    if built.blob_digest != desc.digest {
        return Err(Error::CompressedMismatch {
            layer: l.digest.clone(),
            built: built.blob_digest,
            stored: desc.digest,
        });
    }
    // Only what `create` would index (size, media type) is recorded.
    let outcome = match plan_layer(&desc, opts.min_layer_size) {
        Ok(LayerPlan::Index(_)) => Some(store_built(store, &desc, &built, opts)?),
        _ => None,
    };
    reporter.layer_done(
        &l.digest,
        &format!("layer {} compressed -> {}", l.digest, desc.digest),
    );
    Ok((desc, outcome))
}

impl RecompressedImage<'_> {
    /// The compressed layer stored for `d`, if `d` is one we made.
    fn stored(&self, d: &Descriptor) -> bool {
        self.layers
            .iter()
            .any(|(c, o)| c.digest == d.digest && c.digest != o.digest)
    }
    /// The zTOCs built while compressing, for [`crate::create::create_with`].
    pub fn prebuilt(&self) -> &HashMap<Digest, LayerOutcome> {
        &self.prebuilt
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
