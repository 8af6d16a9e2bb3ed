//! One entry point for `create`, `convert` and `create --dest`/`--push`:
//! [`CreateJob`]. Front ends map their flags to a job, run it and print its
//! [`CreateReport`]; they do not assemble the steps themselves.
//!
//! The plan, in order:
//! 1. the source's tag is resolved once ([`PinnedSource`]): every later step
//!    (layers, the store's record, publishing, verifying) uses that digest,
//!    even if the tag moves meanwhile;
//! 2. a docker archive going somewhere has its plain-tar layers compressed
//!    first ([`crate::recompress`]): what lands at the destination is
//!    compressed, so that form is the one indexed;
//! 3. unless `force` or `--no-cache`: when the destination already has what
//!    this run would publish (same layers, options, index), the job stops
//!    there, having read manifests only
//!    ([`crate::cache::RegistryCache::already_indexed`]);
//! 4. the zTOCs and SOCI indexes are built into the local store: each layer's
//!    zTOC is taken from the store, else from a SOCI index of the source, the
//!    destination or a `--cache-from` image ([`crate::cache`]), else built,
//!    the layer read being copied to the destination in the same pass
//!    ([`crate::publish::Destination`] as the [`crate::create::LayerTee`]);
//! 5. with `verify`, what was built is checked against the image before
//!    anything is published (a failure stops the job there);
//! 6. the index is published ([`publish_to`]);
//! 7. after a verified publish, the destination is verified the way a runtime
//!    finds the index, skipping the zTOCs step 5 already checked.
use crate::cache::{AlreadyIndexed, RegistryCache};
use crate::create::{create_with, CreateOptions, Created, LayerTee};
use crate::error::{Error, Result};
use crate::publish::{check_destination, publish_to, Destination, PublishResult};
use crate::stored::{existing_indexes, stored_created, version_of, StoredChoice};
use crate::verify::{known_good, verify_created, verify_with, VerifyReport};
use crate::{PinnedSource, Reporter};
use soci_index::manifest::IndexVersion;
use soci_index::store::Store;
use soci_oci::reference::ImageRef;
use soci_oci::registry::RegistryOptions;
use soci_oci::spec::Digest;
use soci_oci::{open_source, source::ImageSource};
use std::collections::HashMap;

/// Where a [`CreateJob`] puts the index it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Only the local store (`soci create`).
    Store,
    /// Next to the source image itself, which must be in a registry (`--push`).
    InPlace,
    /// At this image (`--dest`, `soci convert`).
    To(ImageRef),
}

/// The source itself as the destination (`what`: the flag or command asking),
/// which only a registry image can be.
fn in_place(source: &ImageRef, what: &str) -> Result<ImageRef> {
    match source {
        ImageRef::Registry { .. } => Ok(source.clone()),
        _ => Err(Error::NotInRegistry {
            what: what.to_string(),
            image: source.to_string(),
        }),
    }
}

/// Opens `image` as a source.
fn open_image(image: &ImageRef, registry: &RegistryOptions) -> Result<Box<dyn ImageSource>> {
    open_source(image, registry).map_err(|source| Error::OpenImage {
        image: image.to_string(),
        source,
    })
}

/// A create (and maybe publish) job, its destination already checked.
#[derive(Debug, Clone)]
pub struct CreateJob {
    source: ImageRef,
    dest: Option<ImageRef>,
    opts: CreateOptions,
    registry: RegistryOptions,
    verify: bool,
}

/// What a [`CreateJob`] did.
#[derive(Debug)]
pub struct CreateReport {
    /// The indexes built, and what happened to each layer.
    pub created: Created,
    /// With `verify`: the check of what was built, before publishing. When it
    /// failed, nothing was published and the job stopped there.
    pub verified: Option<VerifyReport>,
    /// Where the index went, when there is a destination.
    pub published: Option<PublishResult>,
    /// With `verify` and a destination: the check of the published index, as
    /// a runtime finds it there.
    pub verified_at_destination: Option<VerifyReport>,
    /// A step after the build that failed (publishing, or verifying at the
    /// destination): everything above happened, the rest did not.
    pub failure: Option<Error>,
    /// The destination already had what this run would publish: nothing was
    /// built or published (`created` is what it has, its zTOCs not fetched).
    pub already_indexed: Option<AlreadyIndexed>,
    /// Problems with the zTOC cache (an image that could not be read, a zTOC
    /// refused); each time the layer was built instead.
    pub cache_warnings: Vec<String>,
}

impl CreateJob {
    /// A job indexing `source` for `target`, refusing now a destination that
    /// cannot take an index of `opts.index_version` (see
    /// [`check_destination`]), before anything is read or built.
    pub fn new(source: ImageRef, target: Target, opts: CreateOptions) -> Result<Self> {
        let dest = match target {
            Target::Store => None,
            Target::To(d) => Some(d),
            Target::InPlace => Some(in_place(&source, "--push")?),
        };
        if let Some(d) = &dest {
            check_destination(d, opts.index_version)?;
        }
        Ok(CreateJob {
            source,
            dest,
            opts,
            registry: RegistryOptions::default(),
            verify: false,
        })
    }

    /// How registries (source and destination) are reached.
    pub fn registry_options(mut self, registry: RegistryOptions) -> Self {
        self.registry = registry;
        self
    }

    /// Verify what is built before publishing it, and after publishing verify
    /// it again at the destination.
    pub fn verify(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }

    /// The destination, if the job publishes.
    pub fn destination(&self) -> Option<&ImageRef> {
        self.dest.as_ref()
    }

    /// Runs the plan (see the module docs) with the local store `store`.
    /// Build progress goes to `reporter`, verification progress to
    /// `verify_reporter` (a front end may meter the build alone). An error
    /// means nothing was built; a later step's failure is in
    /// [`CreateReport::failure`], next to what was done before it.
    pub fn run(
        &self,
        store: &Store,
        reporter: &dyn Reporter,
        verify_reporter: &dyn Reporter,
    ) -> Result<CreateReport> {
        let (src, opts) = (&self.source, &self.opts);
        let opened = open_image(src, &self.registry)?;
        let pinned = PinnedSource::new(&*opened).map_err(|source| Error::Resolve {
            image: src.to_string(),
            source,
        })?;
        let recompressed;
        let mut prebuilt = HashMap::new();
        let source: &dyn ImageSource = if matches!(src, ImageRef::DockerArchive { .. })
            && self.dest.is_some()
        {
            reporter.message(
                "compressing the archive's layers (gzip -6, deterministic) into the local store, building their zTOCs on the way",
            );
            recompressed = crate::recompress::recompress(&pinned, store, opts, reporter)?;
            prebuilt = recompressed.prebuilt().clone();
            &recompressed
        } else {
            &pinned
        };
        // Opened on first use, by the tee or by publishing: one registry
        // client (and one run of the credential helper) for the whole job.
        let destination = self
            .dest
            .as_ref()
            .map(|d| Destination::new(source, d, opts.index_version, &self.registry));
        let tee = destination.as_ref().map(|d| d as &dyn LayerTee);
        let cache = if opts.registry_cache && !opts.force && !opts.require_stored {
            // A registry destination is read through the client publishing uses.
            let dest_source = match &destination {
                Some(d) => d.registry_source()?,
                None => None,
            };
            Some(RegistryCache::new(
                &pinned,
                self.dest.as_ref(),
                dest_source,
                &opts.cache_from,
                &self.registry,
            ))
        } else {
            None
        };
        // Only a registry destination: round trips are what the no-op saves
        // (publishing to a local layout is cheap, and also cleans up the
        // temporaries of killed writers there). Verifying needs the layers
        // read anyway; a docker archive's layers are known (compressed) only
        // once recompressed.
        let may_skip = !self.verify
            && !matches!(src, ImageRef::DockerArchive { .. })
            && matches!(self.dest, Some(ImageRef::Registry { .. }));
        if let (Some(cache), true) = (&cache, may_skip) {
            if let Some((created, already)) = cache.already_indexed(source, opts)? {
                return Ok(CreateReport {
                    created,
                    verified: None,
                    published: None,
                    verified_at_destination: None,
                    failure: None,
                    already_indexed: Some(already),
                    cache_warnings: cache.warnings(),
                });
            }
        }
        let created = create_with(
            source,
            store,
            opts,
            reporter,
            &prebuilt,
            tee,
            cache.as_ref(),
        )?;
        let mut report = CreateReport {
            created,
            verified: None,
            published: None,
            verified_at_destination: None,
            failure: None,
            already_indexed: None,
            cache_warnings: cache.as_ref().map(|c| c.warnings()).unwrap_or_default(),
        };
        // The zTOCs are read from the local store that holds them.
        let mut checked = None;
        if self.verify {
            let v = verify_created(source, store, &report.created, opts.jobs, verify_reporter);
            let ok = v.ok;
            checked = Some(known_good(&v));
            report.verified = Some(v);
            if !ok {
                return Ok(report);
            }
        }
        let (Some(dest), Some(destination)) = (&self.dest, &destination) else {
            return Ok(report);
        };
        match publish_to(&report.created, store, destination, reporter).map_err(|e| Error::Push {
            dest: dest.to_string(),
            source: Box::new(e),
        }) {
            Ok(p) => report.published = Some(p),
            Err(e) => {
                report.failure = Some(e);
                return Ok(report);
            }
        }
        if let Some(checked) = &checked {
            let at_dest = open_image(dest, &self.registry).and_then(|d| {
                verify_with(
                    &*d,
                    Some(store),
                    &opts.platforms,
                    opts.jobs,
                    verify_reporter,
                    checked,
                )
                .map_err(|e| Error::Verify {
                    image: dest.to_string(),
                    source: Box::new(e),
                })
            });
            match at_dest {
                Ok(v) => report.verified_at_destination = Some(v),
                Err(e) => report.failure = Some(e),
            }
        }
        Ok(report)
    }
}

/// A `soci push` job: publishes the SOCI index(es) `create` left in the local
/// store for an image, never rebuilding anything (see [`crate::stored`]).
#[derive(Debug, Clone)]
pub struct PushJob {
    source: ImageRef,
    dest: ImageRef,
    choice: StoredChoice,
    registry: RegistryOptions,
    jobs: usize,
    copy_jobs: usize,
    look_for_existing: bool,
}

/// What a [`PushJob`] is about to publish, shown to its caller before
/// anything is pushed.
#[derive(Debug)]
pub struct PushPlan<'a> {
    /// The stored indexes (one per platform) and their zTOCs.
    pub created: &'a Created,
    /// Their version (all the same).
    pub version: IndexVersion,
    /// SOCI indexes the destination already has for these image manifests
    /// (looked for only when asked, see [`PushJob::look_for_existing`]).
    pub existing: Vec<Digest>,
}

impl PushJob {
    /// A job pushing the stored index of `source` to `target` ([`Target::Store`]
    /// means in place, as [`Target::InPlace`]). The destination's rules that
    /// depend on the index version are checked once the index is found.
    pub fn new(source: ImageRef, target: Target) -> Result<Self> {
        let dest = match target {
            Target::To(d) => d,
            Target::InPlace | Target::Store => in_place(&source, "push")?,
        };
        Ok(PushJob {
            source,
            dest,
            choice: StoredChoice::default(),
            registry: RegistryOptions::default(),
            jobs: 1,
            copy_jobs: crate::publish::COPY_JOBS,
            look_for_existing: false,
        })
    }

    /// Which stored index to push (default: the newest for every platform).
    pub fn choice(mut self, choice: StoredChoice) -> Self {
        self.choice = choice;
        self
    }

    /// How registries (source and destination) are reached.
    pub fn registry_options(mut self, registry: RegistryOptions) -> Self {
        self.registry = registry;
        self
    }

    /// Layers compressed at the same time (a docker archive's, see
    /// [`PushJob::run`]).
    pub fn jobs(mut self, n: usize) -> Self {
        self.jobs = n.max(1);
        self
    }

    /// Blob copies in flight at once.
    pub fn copy_jobs(mut self, n: usize) -> Self {
        self.copy_jobs = n.max(1);
        self
    }

    /// Whether to read the destination for the SOCI indexes it already has
    /// ([`PushPlan::existing`]).
    pub fn look_for_existing(mut self, yes: bool) -> Self {
        self.look_for_existing = yes;
        self
    }

    /// The destination.
    pub fn destination(&self) -> &ImageRef {
        &self.dest
    }

    /// Finds the stored index(es), checks the destination can take their
    /// version, asks `proceed` (with the plan) whether to go on, and if so
    /// publishes. `None`: `proceed` said no, nothing was pushed.
    pub fn run(
        &self,
        store: &Store,
        reporter: &dyn Reporter,
        proceed: &mut dyn FnMut(&PushPlan<'_>) -> bool,
    ) -> Result<Option<PublishResult>> {
        let (src, dest) = (&self.source, &self.dest);
        let opened = open_image(src, &self.registry)?;
        // A docker archive's layers are plain tars: `create --dest` indexed
        // their deterministic gzip form, so push that form (compressed again,
        // same bytes; no zTOC is built).
        let recompressed;
        let source: &dyn ImageSource = if matches!(src, ImageRef::DockerArchive { .. }) {
            let opts = CreateOptions {
                require_stored: true,
                jobs: self.jobs,
                ..Default::default()
            };
            reporter
                .message("compressing the archive's layers (gzip -6, deterministic) as create did");
            recompressed = crate::recompress::recompress(&*opened, store, &opts, reporter)?;
            &recompressed
        } else {
            &*opened
        };
        let created = stored_created(source, store, &self.choice)?;
        let version = version_of(&created)
            .ok_or_else(|| Error::Stored("the stored SOCI index has no version".into()))?;
        check_destination(dest, version)?;
        // What the destination already has (a new tag or repository: nothing).
        let existing = if self.look_for_existing {
            open_source(dest, &self.registry)
                .map(|d| existing_indexes(&*d, &created))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let plan = PushPlan {
            created: &created,
            version,
            existing,
        };
        if !proceed(&plan) {
            return Ok(None);
        }
        let destination =
            Destination::new(source, dest, version, &self.registry).with_copy_jobs(self.copy_jobs);
        publish_to(&created, store, &destination, reporter)
            .map_err(|e| Error::Push {
                dest: dest.to_string(),
                source: Box::new(e),
            })
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use soci_oci::spec;

    fn job(source: &str, target: Target, version: IndexVersion) -> Result<CreateJob> {
        let opts = CreateOptions {
            index_version: version,
            ..Default::default()
        };
        CreateJob::new(source.parse().unwrap(), target, opts)
    }

    fn to(r: &str) -> Target {
        Target::To(r.parse().unwrap())
    }

    #[test]
    fn destinations_are_checked_before_anything_runs() {
        use IndexVersion::{V1, V2};
        let err = |r: Result<CreateJob>| r.unwrap_err().to_string();
        assert!(err(job("oci:/nowhere", Target::InPlace, V2)).contains("--push needs a registry"));
        let by_digest = "localhost:5000/a@sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert!(err(job("oci:/nowhere", to(by_digest), V2)).contains("tagged ref"));
        assert!(err(job(
            "oci:/nowhere",
            to("localhost:5000/a:t@sha256:0000000000000000000000000000000000000000000000000000000000000000"),
            V2
        ))
        .contains("tagged ref"));
        assert!(
            err(job("oci:/nowhere", to("oci:/out"), V1)).contains("only be pushed to a registry")
        );
        assert!(err(job("oci:/nowhere", to("docker-archive:/x.tar"), V2))
            .contains("docker-archive destination"));
        // Allowed: v1 by digest (it only adds referrers), v2 to a tag or layout.
        assert!(job("oci:/nowhere", to(by_digest), V1).is_ok());
        assert!(job("oci:/nowhere", to("localhost:5000/a:t"), V2).is_ok());
        assert!(job("oci:/nowhere", to("oci:/out:t"), V2).is_ok());
        let in_place = job("localhost:5000/a:t", Target::InPlace, V2).unwrap();
        assert_eq!(
            in_place.destination(),
            Some(&"localhost:5000/a:t".parse().unwrap())
        );
        assert_eq!(
            job("oci:/nowhere", Target::Store, V2)
                .unwrap()
                .destination(),
            None
        );
    }

    /// A v1 publish asks the destination about referrers with the client the
    /// copy used: one client, so one `GET /v2/` challenge and one run of the
    /// credential helper (it used to open a second client for referrers).
    #[test]
    fn a_v1_publish_uses_one_registry_client() {
        use soci_oci::registry::Credentials;
        use soci_testkit::hostile::{Answer, HostileServer};
        let work = tempfile::tempdir().unwrap();
        let fx = soci_testkit::fixture::make_oci_layout(&work.path().join("image"), "t");
        let store = Store::open(work.path().join("store")).unwrap();
        // A registry that has every blob, takes every manifest and has the
        // referrers API: enough for a v1 publish.
        let server = HostileServer::start();
        server.on("HEAD", "/blobs/", usize::MAX, Answer::status(200, &[], ""));
        server.on(
            "PUT",
            "/manifests/",
            usize::MAX,
            Answer::status(201, &[], ""),
        );
        server.on(
            "GET",
            "/referrers/",
            usize::MAX,
            Answer::status(
                200,
                &[("Content-Type", spec::MEDIA_TYPE_OCI_INDEX)],
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
                    spec::MEDIA_TYPE_OCI_INDEX
                ),
            ),
        );
        let opts = CreateOptions {
            index_version: IndexVersion::V1,
            min_layer_size: 0,
            platforms: soci_oci::source::PlatformChoice::All,
            jobs: 1,
            ..Default::default()
        };
        let dest = format!("{}/r:t", server.host());
        let report = CreateJob::new(fx.oci_ref().parse().unwrap(), to(&dest), opts)
            .unwrap()
            .registry_options(RegistryOptions {
                credentials: Credentials::Anonymous,
                plain_http: true,
                ..Default::default()
            })
            .run(&store, &crate::Silent, &crate::Silent)
            .unwrap();
        if let Some(e) = &report.failure {
            panic!("{e:#}");
        }
        let published = report.published.expect("published");
        assert_eq!(published.referrers.as_deref(), Some("referrers API"));
        let challenges = server
            .log()
            .iter()
            .filter(|s| s.method == "GET" && s.path == "/v2/")
            .count();
        assert_eq!(
            challenges,
            1,
            "{:?}",
            server
                .log()
                .iter()
                .map(|s| format!("{} {}", s.method, s.path))
                .collect::<Vec<_>>()
        );
    }

    /// Nothing to index is a variant a front end matches on (to print each
    /// layer's reason), not an error hidden inside another.
    #[test]
    fn nothing_indexed_is_matchable_and_names_every_layer() {
        let work = tempfile::tempdir().unwrap();
        let fx = soci_testkit::fixture::make_oci_layout(&work.path().join("image"), "t");
        let store = Store::open(work.path().join("store")).unwrap();
        let opts = CreateOptions {
            min_layer_size: u64::MAX,
            platforms: soci_oci::source::PlatformChoice::All,
            jobs: 1,
            ..Default::default()
        };
        let err = CreateJob::new(fx.oci_ref().parse().unwrap(), Target::Store, opts)
            .unwrap()
            .run(&store, &crate::Silent, &crate::Silent)
            .unwrap_err();
        let Error::NothingIndexed { layers, .. } = &err else {
            panic!("{err}");
        };
        let expected: usize = {
            let mut all: Vec<&str> = fx
                .images
                .iter()
                .flat_map(|i| i.layers.iter().map(|l| l.digest.as_str()))
                .collect();
            all.sort();
            all.dedup();
            all.len()
        };
        assert_eq!(layers.len(), expected);
        assert!(layers
            .iter()
            .all(|(_, o)| matches!(o, crate::LayerOutcome::Skipped { .. })));
        assert!(err
            .to_string()
            .starts_with("no ztocs created, all layers either skipped or produced errors: "));
    }
}
