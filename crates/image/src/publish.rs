//! Putting a created SOCI index next to its image: a registry or an OCI layout.
//!
//! Order matters for anyone watching the destination: blobs first (image blobs
//! when the image is copied, zTOCs, prefetch artifacts, the `{}` config), then
//! manifests by digest (SOCI indexes, rewritten image manifests), and the tag — or
//! the referrers fallback tag for v1 — last. An interrupted push leaves at most
//! unreferenced blobs, never a tag pointing at something incomplete.
use crate::create::{Created, LayerTee};
use crate::error::{Error, Result};
use crate::pool::parallel_by;
use crate::Reporter;
use soci_index::convert::{convert, ConvertInput};
use soci_index::fallback::{fallback_entry, fallback_tag, merge_fallback_index};
use soci_index::manifest::IndexVersion;
use soci_index::store::Store;
use soci_index::{EMPTY_CONFIG_CONTENT, EMPTY_CONFIG_DIGEST};
use soci_oci::layout::OciLayoutWriter;
use soci_oci::oci_archive::OciArchiveWriter;
use soci_oci::reference::ImageRef;
use soci_oci::registry::{RegistryClient, RegistryOptions};
use soci_oci::source::ImageSource;
use soci_oci::spec::{self, Descriptor, Digest};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What [`publish`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublishResult {
    /// Where the result went (`HOST/REPO:TAG` or `oci:DIR:TAG`).
    pub destination: String,
    /// For v2: the SOCI-enabled image index now tagged at the destination.
    pub image_index: Option<Descriptor>,
    /// The SOCI index manifests pushed.
    pub soci_indexes: Vec<Digest>,
    /// Blobs uploaded to the destination (already present ones not counted).
    pub blobs_uploaded: usize,
    /// Blobs mounted from the source repository (same registry) instead.
    pub blobs_mounted: usize,
    /// v1: how the index is discoverable (`referrers API` or `fallback tag sha256-…`).
    pub referrers: Option<String>,
}

/// A place blobs and manifests can be put (from several threads at once).
trait ImageSink: Sync {
    fn has_blob(&self, digest: &Digest) -> Result<bool>;
    fn put_blob(&self, d: &Descriptor, bytes: &[u8]) -> Result<()>;
    /// Streams `d` from what `open` returns; `open` may be called again to
    /// start a failed upload over.
    fn put_blob_stream<'a>(
        &self,
        d: &Descriptor,
        open: &dyn Fn() -> soci_oci::Result<BlobReader<'a>>,
    ) -> Result<()>;
    /// By digest when `tag` is None.
    fn put_manifest(&self, tag: Option<&str>, raw: &[u8], media_type: &str) -> Result<Descriptor>;
    /// Makes `d` appear without copying it, when the sink can take it from
    /// `from` directly (a registry mounting a blob of another repository).
    fn try_mount(&self, _d: &Descriptor, _from: &ImageRef) -> Result<bool> {
        Ok(false)
    }
    /// Called once everything is put, tag included (an archive is packed here).
    fn finish(&self) -> Result<()> {
        Ok(())
    }
    /// The registry client and repository behind this sink, if it is one: a v1
    /// publish asks it about referrers instead of opening a second client
    /// (which would run the credential helper again).
    fn registry(&self) -> Option<(&RegistryClient, &str)> {
        None
    }
    /// The registry client behind this sink, shared (see [`Destination::registry_source`]).
    fn client(&self) -> Option<std::sync::Arc<RegistryClient>> {
        None
    }
}

struct RegistrySink {
    target: std::sync::Arc<RegistryClient>,
    registry: String,
    repo: String,
}

impl ImageSink for RegistrySink {
    fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(self.target.blob_exists(&self.repo, digest)?)
    }
    fn put_blob(&self, d: &Descriptor, bytes: &[u8]) -> Result<()> {
        self.target.push_blob(&self.repo, bytes, &d.digest)?;
        Ok(())
    }
    fn put_blob_stream<'a>(
        &self,
        d: &Descriptor,
        open: &dyn Fn() -> soci_oci::Result<BlobReader<'a>>,
    ) -> Result<()> {
        // Streamed (bounded memory, whatever the layer's size), hashed on the
        // way: a source that does not give `d`'s bytes fails the upload. An
        // upload that fails in a transient way starts over from a new stream.
        self.target
            .push_blob_stream_reopening(&self.repo, d, open)?;
        Ok(())
    }
    fn try_mount(&self, d: &Descriptor, from: &ImageRef) -> Result<bool> {
        match from {
            ImageRef::Registry {
                registry,
                repository,
                ..
            } if *registry == self.registry && *repository != self.repo => {
                Ok(self.target.try_mount(&self.repo, repository, &d.digest)?)
            }
            _ => Ok(false),
        }
    }
    fn put_manifest(&self, tag: Option<&str>, raw: &[u8], media_type: &str) -> Result<Descriptor> {
        let digest = spec::sha256_digest(raw);
        Ok(self
            .target
            .push_manifest(&self.repo, tag.unwrap_or(&digest), raw, media_type)?)
    }
    fn registry(&self) -> Option<(&RegistryClient, &str)> {
        Some((&*self.target, &self.repo))
    }
    fn client(&self) -> Option<std::sync::Arc<RegistryClient>> {
        Some(self.target.clone())
    }
}

impl ImageSink for OciLayoutWriter {
    fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(OciLayoutWriter::has_blob(self, digest)?)
    }
    fn put_blob(&self, d: &Descriptor, bytes: &[u8]) -> Result<()> {
        self.put_blob_from_reader(d, bytes)?;
        Ok(())
    }
    fn put_blob_stream<'a>(
        &self,
        d: &Descriptor,
        open: &dyn Fn() -> soci_oci::Result<BlobReader<'a>>,
    ) -> Result<()> {
        self.put_blob_from_reader(d, open()?)?;
        Ok(())
    }
    fn put_manifest(&self, tag: Option<&str>, raw: &[u8], media_type: &str) -> Result<Descriptor> {
        Ok(OciLayoutWriter::put_manifest(self, tag, raw, media_type)?)
    }
}

impl ImageSink for OciArchiveWriter {
    fn has_blob(&self, digest: &Digest) -> Result<bool> {
        ImageSink::has_blob(self.layout(), digest)
    }
    fn put_blob(&self, d: &Descriptor, bytes: &[u8]) -> Result<()> {
        ImageSink::put_blob(self.layout(), d, bytes)
    }
    fn put_blob_stream<'a>(
        &self,
        d: &Descriptor,
        open: &dyn Fn() -> soci_oci::Result<BlobReader<'a>>,
    ) -> Result<()> {
        ImageSink::put_blob_stream(self.layout(), d, open)
    }
    fn put_manifest(&self, tag: Option<&str>, raw: &[u8], media_type: &str) -> Result<Descriptor> {
        ImageSink::put_manifest(self.layout(), tag, raw, media_type)
    }
    fn finish(&self) -> Result<()> {
        Ok(OciArchiveWriter::finish(self)?)
    }
}

/// Blob copies in flight at once unless the caller says otherwise
/// (`--max-concurrent-uploads`; docker's default for uploads is 5): a copy
/// waits mostly on the network, so this is not tied to `--jobs` (CPU).
pub const COPY_JOBS: usize = 4;

/// Blobs put at a destination, by how.
#[derive(Debug, Default, Clone, Copy)]
struct Copied {
    uploaded: usize,
    mounted: usize,
}

impl Copied {
    fn add(&mut self, other: Copied) {
        self.uploaded += other.uploaded;
        self.mounted += other.mounted;
    }
}

/// [`copy_blob`] for each distinct blob of `blobs`, `jobs` at a time,
/// biggest first.
fn copy_blobs(
    sink: &dyn ImageSink,
    source: &dyn ImageSource,
    blobs: &[&Descriptor],
    jobs: usize,
    reporter: &dyn Reporter,
) -> Result<Copied> {
    let mut distinct: Vec<&Descriptor> = Vec::with_capacity(blobs.len());
    for d in blobs {
        if !distinct.iter().any(|x| x.digest == d.digest) {
            distinct.push(d);
        }
    }
    let done = parallel_by(
        &distinct,
        jobs,
        |d| d.size.max(0) as u64,
        |d| copy_blob(sink, source, d, reporter),
    )?;
    let mut total = Copied::default();
    for c in done {
        total.add(c);
    }
    Ok(total)
}

/// Puts the source's blob `d` at the sink unless it is there: mounted from the
/// source repository when the sink is on the same registry, else streamed.
fn copy_blob(
    sink: &dyn ImageSink,
    source: &dyn ImageSource,
    d: &Descriptor,
    reporter: &dyn Reporter,
) -> Result<Copied> {
    if sink.has_blob(&d.digest)? {
        return Ok(Copied::default());
    }
    if sink.try_mount(d, source.reference())? {
        reporter.message(&format!(
            "mounted blob {} from {}",
            d.digest,
            source.reference()
        ));
        return Ok(Copied {
            uploaded: 0,
            mounted: 1,
        });
    }
    // The reporter shows the copy (a bar, or a line without a terminal).
    let size = d.size.max(0) as u64;
    let copied = sink
        .put_blob_stream(d, &|| {
            reporter.copy_progress(&d.digest, 0, size);
            Ok(Box::new(CopyProgress {
                inner: source.open_blob(d)?,
                reporter,
                digest: &d.digest,
                size,
                sent: 0,
                shown: 0,
            }))
        })
        .map_err(|e| Error::CopyBlob {
            digest: d.digest.clone(),
            source: Box::new(e),
        });
    reporter.copy_done(&d.digest);
    copied.map(|()| Copied {
        uploaded: 1,
        mounted: 0,
    })
}

/// Reports the bytes read from a blob being copied (every MiB or so).
struct CopyProgress<'a> {
    inner: BlobReader<'a>,
    reporter: &'a dyn Reporter,
    digest: &'a Digest,
    size: u64,
    sent: u64,
    shown: u64,
}

impl Read for CopyProgress<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        if self.sent - self.shown >= 1 << 20 || (n == 0 && self.sent != self.shown) {
            self.shown = self.sent;
            self.reporter
                .copy_progress(self.digest, self.sent, self.size);
        }
        Ok(n)
    }
}

/// A blob being copied from the source.
type BlobReader<'a> = Box<dyn Read + Send + 'a>;

fn blob_desc(digest: &Digest, size: u64, media_type: &str) -> Descriptor {
    Descriptor::new(media_type, digest.clone(), size as i64)
}

/// Copies what the image needs at the destination (config and layer blobs of the
/// chosen manifests, the manifests themselves) unless already there.
fn copy_image(
    sink: &dyn ImageSink,
    source: &dyn ImageSource,
    created: &Created,
    jobs: usize,
    reporter: &dyn Reporter,
) -> Result<Copied> {
    let blobs: Vec<&Descriptor> = created
        .platforms
        .iter()
        .flat_map(|p| std::iter::once(&p.image.manifest.config).chain(&p.image.manifest.layers))
        .collect();
    let copied = copy_blobs(sink, source, &blobs, jobs, reporter)?;
    // Every blob is there before the first manifest that refers to it.
    for p in &created.platforms {
        sink.put_manifest(None, &p.image.raw, &p.image.descriptor.media_type)?;
    }
    Ok(copied)
}

/// Pushes the SOCI artifacts (zTOCs, prefetch artifacts, `{}` config, index
/// manifests) from the store to the sink. A zTOC taken from a SOCI index in
/// another repository of the same registry is mounted from there, not sent.
fn put_soci_artifacts(sink: &dyn ImageSink, store: &Store, created: &Created) -> Result<Copied> {
    let mut copied = Copied::default();
    let empty_config = Digest::parse(EMPTY_CONFIG_DIGEST).expect("a constant sha256 digest");
    let cached_in: HashMap<&Digest, ImageRef> = created
        .layers
        .iter()
        .filter_map(|(_, o)| match o {
            crate::LayerOutcome::Fetched { ztoc, from } => from
                .parse::<ImageRef>()
                .ok()
                .map(|r| (&ztoc.ztoc_digest, r)),
            _ => None,
        })
        .collect();
    let mut blobs: Vec<Descriptor> = vec![blob_desc(
        &empty_config,
        EMPTY_CONFIG_CONTENT.len() as u64,
        "application/json",
    )];
    for p in &created.platforms {
        for z in &p.ztocs {
            blobs.push(blob_desc(
                &z.ztoc_digest,
                z.ztoc_size,
                soci_index::SOCI_LAYER_MEDIA_TYPE,
            ));
        }
        for f in &p.prefetches {
            blobs.push(blob_desc(
                &f.digest,
                f.size,
                soci_index::SOCI_PREFETCH_MEDIA_TYPE,
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for d in blobs {
        if !seen.insert(d.digest.clone()) || sink.has_blob(&d.digest)? {
            continue;
        }
        if let Some(from) = cached_in.get(&d.digest) {
            if sink.try_mount(&d, from)? {
                copied.mounted += 1;
                continue;
            }
        }
        let bytes = if d.digest == EMPTY_CONFIG_DIGEST {
            EMPTY_CONFIG_CONTENT.to_vec()
        } else {
            store.get_blob(&d.digest)?
        };
        sink.put_blob(&d, &bytes)?;
        copied.uploaded += 1;
    }
    for p in &created.platforms {
        sink.put_manifest(None, &p.index.bytes, spec::MEDIA_TYPE_OCI_MANIFEST)?;
    }
    Ok(copied)
}

/// Where `publish` puts things, and the tag it sets last (none for a
/// registry reference by digest).
type OpenSink = (Box<dyn ImageSink + Send>, Option<String>);

fn open_sink(
    dest: &ImageRef,
    version: IndexVersion,
    registry_opts: &RegistryOptions,
) -> Result<OpenSink> {
    check_destination(dest, version)?;
    Ok(match dest {
        ImageRef::Registry {
            registry,
            repository,
            tag,
            ..
        } => {
            let target = RegistryClient::new(registry, registry_opts)?;
            (
                Box::new(RegistrySink {
                    target,
                    registry: registry.clone(),
                    repo: repository.clone(),
                }),
                tag.clone(),
            )
        }
        ImageRef::OciLayout { dir, tag } => {
            let w = OciLayoutWriter::create(dir.clone())?;
            (
                Box::new(w),
                Some(tag.clone().unwrap_or_else(|| "latest".to_string())),
            )
        }
        ImageRef::OciArchive { file, tag } => {
            let w = OciArchiveWriter::create(file.clone())?;
            (
                Box::new(w),
                Some(tag.clone().unwrap_or_else(|| "latest".to_string())),
            )
        }
        ImageRef::DockerArchive { .. } => unreachable!("check_destination refuses it"),
    })
}

/// The one place that says where an index of `version` can be published:
/// v1 is found through referrers, so only a registry; v2 moves a tag, so a
/// registry reference must name a tag and no digest (v1 only adds referrers,
/// so `--push` on `HOST/REPO@DIGEST` is fine); nothing is written into a
/// docker archive. [`crate::job::CreateJob::new`] checks it before anything
/// is built; [`publish_to`] checks it again for callers that skip the job.
pub fn check_destination(dest: &ImageRef, version: IndexVersion) -> Result<()> {
    match (dest, version) {
        (ImageRef::Registry { .. }, IndexVersion::V1) => Ok(()),
        (_, IndexVersion::V1) => Err(Error::BadDestination(format!(
            "a v1 SOCI index can only be pushed to a registry (it is found through referrers), not {dest}"
        ))),
        (ImageRef::Registry { tag, digest, .. }, IndexVersion::V2)
            if tag.is_none() || digest.is_some() =>
        {
            Err(Error::BadDestination(
                "the destination image must be a tagged ref of the form \"registry/repository:tag\""
                    .into(),
            ))
        }
        (ImageRef::DockerArchive { .. }, _) => Err(Error::BadDestination(
            "cannot write to a docker-archive destination: use a registry, oci:DIR or oci-archive:FILE"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// The destination of `create --dest`/`--push`, opened on first use. As a
/// [`LayerTee`] it takes each layer the zTOC builder reads, so the layer is
/// copied in the same pass (unless the destination has it or mounts it).
pub struct Destination<'a> {
    source: &'a dyn ImageSource,
    dest: &'a ImageRef,
    version: IndexVersion,
    registry_opts: &'a RegistryOptions,
    opened: std::sync::OnceLock<OpenSink>,
    /// Blob copies in flight at once.
    copy_jobs: usize,
    /// Layers put there while `create` read them.
    teed_uploaded: AtomicUsize,
    teed_mounted: AtomicUsize,
    /// An OCI layout directory this run creates (the outermost directory that
    /// did not exist), removed again if nothing gets published: a failed
    /// run must not leave a layout with layers and an empty index.json.
    created_dir: std::sync::OnceLock<Option<PathBuf>>,
    /// Set once the image is published.
    published: std::sync::atomic::AtomicBool,
}

impl Drop for Destination<'_> {
    fn drop(&mut self) {
        if self.published.load(Ordering::Acquire) {
            return;
        }
        if let Some(Some(dir)) = self.created_dir.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The outermost of `dir` and its ancestors that does not exist (what
/// creating `dir` would make), if any.
fn outermost_missing(dir: &Path) -> Option<PathBuf> {
    let mut missing = None;
    let mut cur = dir;
    while !cur.as_os_str().is_empty() && !cur.exists() {
        missing = Some(cur.to_path_buf());
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    missing
}

impl<'a> Destination<'a> {
    /// Where `create` writes for `dest`; nothing is opened until the first write.
    pub fn new(
        source: &'a dyn ImageSource,
        dest: &'a ImageRef,
        version: IndexVersion,
        registry_opts: &'a RegistryOptions,
    ) -> Self {
        Destination {
            source,
            dest,
            version,
            registry_opts,
            opened: std::sync::OnceLock::new(),
            copy_jobs: COPY_JOBS,
            teed_uploaded: AtomicUsize::new(0),
            teed_mounted: AtomicUsize::new(0),
            created_dir: std::sync::OnceLock::new(),
            published: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Copies at most `n` blobs at once (at least 1).
    pub fn with_copy_jobs(mut self, n: usize) -> Self {
        self.copy_jobs = n.max(1);
        self
    }

    /// The destination as an image to read (its current SOCI index, for the
    /// zTOC cache), through the client publishing will use: one challenge
    /// and one run of the credential helper. `None` unless it is a registry.
    pub(crate) fn registry_source(&self) -> Result<Option<Box<dyn ImageSource>>> {
        if !matches!(self.dest, ImageRef::Registry { .. }) {
            return Ok(None);
        }
        let Some(client) = self.opened()?.0.client() else {
            return Ok(None);
        };
        let source = soci_oci::registry::RegistrySource::with_client(self.dest.clone(), client)?;
        Ok(Some(Box::new(source)))
    }

    fn opened(&self) -> Result<&OpenSink> {
        if let Some(o) = self.opened.get() {
            return Ok(o);
        }
        if let ImageRef::OciLayout { dir, .. } = self.dest {
            let _ = self.created_dir.set(outermost_missing(dir));
        }
        let o = open_sink(self.dest, self.version, self.registry_opts)?;
        let _ = self.opened.set(o);
        Ok(self.opened.get().expect("just set"))
    }
}

impl LayerTee for Destination<'_> {
    fn wants(&self, layer: &Descriptor) -> Result<bool> {
        let sink = &self.opened()?.0;
        if sink.has_blob(&layer.digest)? {
            return Ok(false);
        }
        if sink.try_mount(layer, self.source.reference())? {
            self.teed_mounted.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }
    fn take(&self, layer: &Descriptor, bytes: Box<dyn Read + Send + '_>) -> Result<()> {
        let sink = &self.opened()?.0;
        // The first attempt uploads what the builder reads; a retried upload
        // reads the layer again from the source.
        let first = std::sync::Mutex::new(Some(bytes));
        sink.put_blob_stream(layer, &|| match first.lock().expect("tee lock").take() {
            Some(b) => Ok(b),
            None => self.source.open_blob(layer),
        })?;
        self.teed_uploaded.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Puts `created` at `dest`: for v2 the SOCI-enabled image index (docs/format.md
/// §7) tagged at `dest`; for v1 the index manifests with their `subject`,
/// discoverable through the referrers API or the fallback tag (§8).
pub fn publish(
    created: &Created,
    source: &dyn ImageSource,
    store: &Store,
    dest: &ImageRef,
    version: IndexVersion,
    registry_opts: &RegistryOptions,
    reporter: &dyn Reporter,
) -> Result<PublishResult> {
    publish_to(
        created,
        store,
        &Destination::new(source, dest, version, registry_opts),
        reporter,
    )
}

/// [`publish`] to a [`Destination`] (which may already hold layers copied
/// while `create` read them).
pub fn publish_to(
    created: &Created,
    store: &Store,
    destination: &Destination<'_>,
    reporter: &dyn Reporter,
) -> Result<PublishResult> {
    let (source, dest, version) = (destination.source, destination.dest, destination.version);
    let (sink, _) = destination.opened()?;
    let sink: &dyn ImageSink = &**sink;
    let jobs = destination.copy_jobs;
    let mut copied = copy_image(sink, source, created, jobs, reporter)?;
    copied.add(Copied {
        uploaded: destination.teed_uploaded.load(Ordering::Relaxed),
        mounted: destination.teed_mounted.load(Ordering::Relaxed),
    });
    copied.add(put_soci_artifacts(sink, store, created)?);
    let soci_indexes: Vec<Digest> = created
        .platforms
        .iter()
        .map(|p| p.index.descriptor.digest.clone())
        .collect();

    let (image_index, referrers) = match version {
        IndexVersion::V2 => (
            Some(publish_v2(created, destination, &mut copied, reporter)?),
            None,
        ),
        IndexVersion::V1 => (
            None,
            Some(publish_v1(created, destination, &mut copied, reporter)?),
        ),
    };
    destination.published.store(true, Ordering::Release);
    Ok(PublishResult {
        destination: dest.to_string(),
        image_index,
        soci_indexes,
        blobs_uploaded: copied.uploaded,
        blobs_mounted: copied.mounted,
        referrers,
    })
}

/// The v2 end of [`publish_to`]: rewrites the image manifests with the SOCI
/// index link and tags the SOCI-enabled image index at the destination.
/// Returns that index's descriptor.
fn publish_v2(
    created: &Created,
    destination: &Destination<'_>,
    copied: &mut Copied,
    reporter: &dyn Reporter,
) -> Result<Descriptor> {
    let source = destination.source;
    let (sink, tag) = destination.opened()?;
    let sink: &dyn ImageSink = &**sink;
    let tag = tag
        .clone()
        .expect("open_sink refuses a v2 destination without a tag");
    let jobs = destination.copy_jobs;
    let (root, manifests, indexes) = crate::model::convert_parts(&created.root, &created.platforms);
    // Children of the source index that we did not index must exist at
    // the destination too: copy those the source has.
    copy_untouched_children(sink, source, created, &manifests, copied, jobs, reporter)?;
    let out = convert(&ConvertInput {
        root,
        root_bytes: &created.root_bytes,
        manifests: &manifests,
        indexes: &indexes,
    })?;
    for m in &out.manifests {
        sink.put_manifest(None, &m.bytes, spec::MEDIA_TYPE_OCI_MANIFEST)?;
    }
    let desc = sink.put_manifest(Some(&tag), &out.index_bytes, spec::MEDIA_TYPE_OCI_INDEX)?;
    sink.finish()?;
    Ok(desc)
}

/// The v1 end of [`publish_to`]: makes each index manifest discoverable from
/// its subject (the referrers API, else the fallback tag), then, when the image
/// was copied elsewhere, tags it there. Returns how the indexes are found.
fn publish_v1(
    created: &Created,
    destination: &Destination<'_>,
    copied: &mut Copied,
    reporter: &dyn Reporter,
) -> Result<String> {
    let (source, dest) = (destination.source, destination.dest);
    let (sink, tag) = destination.opened()?;
    let sink: &dyn ImageSink = &**sink;
    let jobs = destination.copy_jobs;
    let (target, repository) = sink
        .registry()
        .expect("check_destination allows v1 only to a registry");
    let mut how = Vec::new();
    for p in &created.platforms {
        let subject = &p.image.descriptor.digest;
        if target.referrers_api_supported(repository, subject)? {
            how.push("referrers API".to_string());
            continue;
        }
        let ftag = fallback_tag(subject)?;
        let entry = fallback_entry(&p.index.descriptor, &p.index.manifest);
        put_fallback_entry(target, repository, &ftag, &entry, FALLBACK_SETTLE)?;
        how.push(format!("fallback tag {ftag}"));
    }
    how.dedup();
    // Copied elsewhere (`--dest`): the destination tag names the image,
    // last, once its referrers are in place (with `--push` it already does).
    if let Some(tag) = tag.as_deref().filter(|_| dest != source.reference()) {
        let chosen: HashMap<Digest, Vec<u8>> = created
            .platforms
            .iter()
            .map(|p| (p.image.descriptor.digest.clone(), Vec::new()))
            .collect();
        copy_untouched_children(sink, source, created, &chosen, copied, jobs, reporter)?;
        sink.put_manifest(Some(tag), &created.root_bytes, &created.root.media_type)?;
    }
    Ok(how.join(", "))
}

/// Rounds of "write the fallback tag, wait, read it back" before giving up.
pub const FALLBACK_ROUNDS: u32 = 5;

/// How long a v1 publish waits after writing the fallback tag before reading
/// it back: longer than another writer's read-merge-write (two requests), so
/// a writer that read the tag before our write has written by then.
pub const FALLBACK_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Adds `entry` to the fallback tag `ftag` and makes sure it stays there.
///
/// The registry has no compare-and-swap on tags: two processes indexing two
/// images of one subject (or pushing two indexes of one image) each read the
/// tag, merge their entry and write, and the later write drops the earlier
/// one's entry. So after writing, wait `settle` (plus a jitter, so that two
/// writers do not stay in step), read the tag again and, when our entry is
/// missing, merge it into what is there now and write again; at most
/// [`FALLBACK_ROUNDS`] writes. What is still racy is in docs/scale.md.
fn put_fallback_entry(
    target: &RegistryClient,
    repository: &str,
    ftag: &str,
    entry: &Descriptor,
    settle: std::time::Duration,
) -> Result<()> {
    let mut existing = target.get_manifest_raw(repository, ftag)?;
    for round in 0..FALLBACK_ROUNDS {
        if round > 0
            && existing
                .as_ref()
                .is_some_and(|(_, b)| soci_index::fallback::fallback_has_entry(b, entry))
        {
            return Ok(());
        }
        let merged =
            merge_fallback_index(existing.as_ref().map(|(_, b)| b.as_slice()), entry.clone())?;
        target.push_manifest(repository, ftag, &merged, spec::MEDIA_TYPE_OCI_INDEX)?;
        std::thread::sleep(settle + jitter(settle));
        existing = target.get_manifest_raw(repository, ftag)?;
    }
    if existing
        .as_ref()
        .is_some_and(|(_, b)| soci_index::fallback::fallback_has_entry(b, entry))
    {
        return Ok(());
    }
    Err(Error::FallbackTagContended {
        tag: ftag.to_string(),
        index: entry.digest.to_string(),
        rounds: FALLBACK_ROUNDS,
    })
}

/// A pseudo-random part of `max`, different per process and call (no
/// randomness crate for one sleep).
fn jitter(max: std::time::Duration) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    max.mul_f64((h.finish() % 1000) as f64 / 1000.0)
}

use spec::is_index_media_type as is_index;

/// For a multi-platform source, the index entries we did not convert stay in the
/// new index as they are, so the destination needs them (and their blobs).
fn copy_untouched_children(
    sink: &dyn ImageSink,
    source: &dyn ImageSource,
    created: &Created,
    converted: &HashMap<Digest, Vec<u8>>,
    copied: &mut Copied,
    jobs: usize,
    reporter: &dyn Reporter,
) -> Result<()> {
    if !is_index(&created.root.media_type) {
        return Ok(());
    }
    let index: spec::Index =
        serde_json::from_slice(&created.root_bytes).map_err(Error::BadImageIndex)?;
    for child in &index.manifests {
        if converted.contains_key(&child.digest) {
            continue;
        }
        let raw = source
            .fetch_blob(child)
            .map_err(|source| Error::ReadManifest {
                digest: child.digest.clone(),
                source,
            })?;
        if let Ok(m) = serde_json::from_slice::<spec::Manifest>(&raw) {
            // Every descriptor of a parsed manifest has a digest (see `Descriptor`).
            let blobs: Vec<&Descriptor> = std::iter::once(&m.config).chain(&m.layers).collect();
            copied.add(copy_blobs(sink, source, &blobs, jobs, reporter)?);
        }
        sink.put_manifest(None, &raw, &child.media_type)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(u64, u64)>>);
    impl Reporter for Seen {
        fn copy_progress(&self, _digest: &Digest, sent: u64, size: u64) {
            self.0.lock().unwrap().push((sent, size));
        }
    }

    #[test]
    fn copy_progress_reports_every_mib_and_the_end() {
        let size = 3 * (1 << 20) + 5;
        let seen = Seen::default();
        let mut r = CopyProgress {
            inner: Box::new(std::io::Cursor::new(vec![7u8; size])),
            reporter: &seen,
            digest: &Digest::of(b"x"),
            size: size as u64,
            sent: 0,
            shown: 0,
        };
        let mut out = Vec::new();
        // Small reads, so that the MiB steps are crossed inside reads.
        let mut buf = [0u8; 100_000];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out.len(), size);
        drop(r);
        let seen = seen.0.into_inner().unwrap();
        assert_eq!(seen.last(), Some(&(size as u64, size as u64)));
        assert_eq!(seen.len(), 3, "{seen:?}"); // 1.1 MB, 2.2 MB, then the end
        assert!(seen
            .windows(2)
            .all(|w| w[1].0 - w[0].0 >= 1 << 20 || w[1].0 == size as u64));
    }
}
