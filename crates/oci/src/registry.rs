//! Registries, through `oci-client` (rustls), behind a synchronous API.
//!
//! One process-wide tokio runtime drives all requests; callers are plain
//! threads that block on it. Blob streams are downloaded by a task on that
//! runtime and handed over through a bounded channel, so reading a layer keeps
//! at most a few chunks in memory and nothing on disk.
//!
//! oci-client traps handled here:
//! - `Client::new` silently falls back to a default configuration when the
//!   configuration is bad (e.g. an unreadable CA): we use `Client::try_from`.
//! - A `Client` keeps the first credentials it saw per registry, and the blob
//!   calls (`pull_blob_stream*`, `push_blob`, `mount_blob`, `blob_exists`) use
//!   only stored credentials: we create one client per credential set and
//!   store the credentials before any call.
//! - It does not expose the `OCI-Subject` header nor a way to tell the
//!   referrers API from its tag fallback: the probe is our own request.
use crate::error::{Error, Result};
use crate::reference::{is_sha256_digest, ImageRef};
use crate::source::{check_small, sniff_media_type, verify_blob, ImageSource};
use crate::spec::{self, Descriptor};
use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Manifest media types we ask registries for.
const ACCEPT_MANIFESTS: &[&str] = &[
    spec::MEDIA_TYPE_OCI_INDEX,
    spec::MEDIA_TYPE_OCI_MANIFEST,
    spec::MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    spec::MEDIA_TYPE_DOCKER_MANIFEST,
];

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest silence while reading a response body.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Chunks buffered between the download task and the reader.
const STREAM_CHANNEL_CHUNKS: usize = 16;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("soci-oci-registry")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    })
}

/// Who we are to the registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials.
    Anonymous,
    /// `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`) `auths`
    /// entry for the registry host; anonymous when there is none.
    #[default]
    DockerConfig,
    /// Explicit user name and password (`-u user:password`).
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::DockerConfig => write!(f, "DockerConfig"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
        }
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    pub credentials: Credentials,
    /// Speak plain HTTP (`--plain-http`), e.g. to a local test registry.
    pub plain_http: bool,
    /// An extra trusted root certificate (PEM file), e.g. a private CA.
    pub tls_ca: Option<PathBuf>,
}

/// A connection to one registry host with one credential set.
pub struct RegistryClient {
    registry: String,
    client: Client,
    auth: RegistryAuth,
    http: reqwest::Client,
    plain_http: bool,
}

fn reg_err(registry: &str, context: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Registry {
        registry: registry.into(),
        context: context.into(),
        message: e.to_string(),
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(
                x.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::NameUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

impl RegistryClient {
    /// Connect (lazily: no request is made) to `registry` (`host[:port]`).
    pub fn new(registry: &str, opts: &RegistryOptions) -> Result<Arc<Self>> {
        let mut config = ClientConfig {
            protocol: if opts.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            // A stalled connection must end in an error, not a hung build.
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..Default::default()
        };
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT);
        if let Some(ca) = &opts.tls_ca {
            let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| reg_err(registry, format!("TLS CA {}", ca.display()), e))?;
            http = http.add_root_certificate(cert);
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem,
            });
        }
        let client =
            Client::try_from(config).map_err(|e| reg_err(registry, "creating the client", e))?;
        let http = http
            .build()
            .map_err(|e| reg_err(registry, "creating the HTTP client", e))?;
        let auth = match &opts.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::DockerConfig => {
                let key = if registry == "docker.io" || registry == "index.docker.io" {
                    "https://index.docker.io/v1/"
                } else {
                    registry
                };
                match docker_credential::get_credential(key) {
                    Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) => {
                        RegistryAuth::Basic(u, p)
                    }
                    Ok(docker_credential::DockerCredential::IdentityToken(t)) => {
                        RegistryAuth::Bearer(t)
                    }
                    Err(_) => RegistryAuth::Anonymous,
                }
            }
        };
        let this = RegistryClient {
            registry: registry.into(),
            client,
            auth,
            http,
            plain_http: opts.plain_http,
        };
        let host = this.oci_ref("x", None, None).resolve_registry().to_string();
        runtime().block_on(this.client.store_auth_if_needed(&host, &this.auth));
        Ok(Arc::new(this))
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn oci_ref(&self, repo: &str, tag: Option<&str>, digest: Option<&str>) -> Reference {
        match (tag, digest) {
            (Some(t), Some(d)) => Reference::with_tag_and_digest(
                self.registry.clone(),
                repo.into(),
                t.into(),
                d.into(),
            ),
            (_, Some(d)) => Reference::with_digest(self.registry.clone(), repo.into(), d.into()),
            (Some(t), None) => Reference::with_tag(self.registry.clone(), repo.into(), t.into()),
            (None, None) => {
                Reference::with_tag(self.registry.clone(), repo.into(), "latest".into())
            }
        }
    }

    fn tag_or_digest_ref(&self, repo: &str, reference: &str) -> Result<Reference> {
        if is_sha256_digest(reference) {
            Ok(self.oci_ref(repo, None, Some(reference)))
        } else if crate::reference::is_tag(reference) {
            Ok(self.oci_ref(repo, Some(reference), None))
        } else {
            Err(Error::InvalidReference {
                input: reference.into(),
                reason: "neither a tag nor a sha256 digest".into(),
            })
        }
    }

    /// The manifest `reference` (tag or digest) of `repo`: descriptor (media type
    /// from the document, digest verified when `reference` is a digest) and raw
    /// bytes; `None` if the registry says it does not exist.
    pub fn get_manifest_raw(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Descriptor, Vec<u8>)>> {
        let r = self.tag_or_digest_ref(repo, reference)?;
        match runtime().block_on(
            self.client
                .pull_manifest_raw(&r, &self.auth, ACCEPT_MANIFESTS),
        ) {
            Ok((body, digest)) => {
                let raw = body.to_vec();
                let desc = Descriptor {
                    media_type: sniff_media_type(&raw).unwrap_or_default(),
                    digest: spec::sha256_digest(&raw),
                    size: raw.len() as i64,
                    ..Default::default()
                };
                if is_sha256_digest(reference) && desc.digest != reference {
                    return Err(Error::DigestMismatch {
                        what: format!("manifest {}/{repo}@{reference}", self.registry),
                        expected: reference.into(),
                        actual: desc.digest,
                    });
                }
                if digest != desc.digest && is_sha256_digest(&digest) {
                    return Err(Error::DigestMismatch {
                        what: format!(
                            "manifest {}/{repo}:{reference} (Docker-Content-Digest)",
                            self.registry
                        ),
                        expected: digest,
                        actual: desc.digest,
                    });
                }
                Ok(Some((desc, raw)))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(reg_err(
                &self.registry,
                format!("GET manifest {repo}:{reference}"),
                e,
            )),
        }
    }

    /// Whether blob `digest` exists in `repo` (HEAD).
    pub fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let r = self.oci_ref(repo, None, None);
        runtime()
            .block_on(self.client.blob_exists(&r, digest))
            .map_err(|e| reg_err(&self.registry, format!("HEAD blob {repo}@{digest}"), e))
    }

    /// Stream blob `digest` of `repo` through a bounded channel.
    pub fn open_blob(&self, repo: &str, digest: &str) -> Result<Box<dyn Read + Send>> {
        let r = self.oci_ref(repo, None, None);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(STREAM_CHANNEL_CHUNKS);
        let client = self.client.clone();
        let digest = digest.to_string();
        let what = format!("{}/{repo}@{digest}", self.registry);
        // Fail fast (404, auth) before handing out a reader.
        let stream = runtime()
            .block_on(client.pull_blob_stream(&r, digest.as_str()))
            .map_err(|e| reg_err(&self.registry, format!("GET blob {repo}@{digest}"), e))?;
        runtime().spawn(async move {
            let mut stream = stream;
            while let Some(chunk) = stream.next().await {
                let failed = chunk.is_err();
                let chunk = chunk.map_err(|e| std::io::Error::other(format!("{what}: {e}")));
                if tx.send(chunk).await.is_err() || failed {
                    break; // reader dropped, or error delivered
                }
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            cur: Bytes::new(),
        }))
    }

    /// Bytes `range` of blob `digest` of `repo` (HTTP Range; a registry that
    /// ignores Range and sends the whole blob is handled too).
    pub fn read_blob_range(&self, repo: &str, digest: &str, range: Range<u64>) -> Result<Vec<u8>> {
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let r = self.oci_ref(repo, None, None);
        let len = range.end - range.start;
        let ctx = || {
            format!(
                "GET blob {repo}@{digest} bytes {}..{}",
                range.start, range.end
            )
        };
        runtime().block_on(async {
            let resp = self
                .client
                .pull_blob_stream_partial(&r, digest, range.start, Some(len))
                .await
                .map_err(|e| reg_err(&self.registry, ctx(), e))?;
            let (mut stream, mut skip) = match resp {
                BlobResponse::Partial(s) => (s, 0u64),
                BlobResponse::Full(s) => (s, range.start),
            };
            let mut out = Vec::with_capacity(len as usize);
            while let Some(chunk) = stream.next().await {
                let mut chunk = chunk.map_err(|e| reg_err(&self.registry, ctx(), e))?;
                if skip > 0 {
                    let k = skip.min(chunk.len() as u64) as usize;
                    let _ = chunk.split_to(k);
                    skip -= k as u64;
                }
                let want = (len - out.len() as u64) as usize;
                out.extend_from_slice(&chunk[..chunk.len().min(want)]);
                if out.len() as u64 == len {
                    break;
                }
            }
            if (out.len() as u64) < len {
                return Err(reg_err(
                    &self.registry,
                    ctx(),
                    format!("short read: got {} of {len} bytes", out.len()),
                ));
            }
            Ok(out)
        })
    }

    /// Push `bytes` as blob `digest` into `repo`, unless it is already there.
    /// Returns `true` if it was uploaded.
    pub fn push_blob(&self, repo: &str, bytes: &[u8], digest: &str) -> Result<bool> {
        let actual = spec::sha256_digest(bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob to push to {}/{repo}", self.registry),
                expected: digest.into(),
                actual,
            });
        }
        if self.blob_exists(repo, digest)? {
            return Ok(false);
        }
        let r = self.oci_ref(repo, None, None);
        runtime()
            .block_on(
                self.client
                    .push_blob(&r, Bytes::copy_from_slice(bytes), digest),
            )
            .map_err(|e| reg_err(&self.registry, format!("push blob {repo}@{digest}"), e))?;
        Ok(true)
    }

    /// Upload the blob `d` from `reader` into `repo` without holding it in
    /// memory (chunked upload fed through a bounded channel), unless it is
    /// already there. The bytes are hashed on the way: a reader that does not
    /// produce `d`'s digest and size fails the upload. Returns `true` if uploaded.
    pub fn push_blob_stream(
        &self,
        repo: &str,
        d: &Descriptor,
        mut reader: impl Read,
    ) -> Result<bool> {
        use sha2::Digest as _;
        if !is_sha256_digest(&d.digest) {
            return Err(Error::UnsupportedDigest {
                digest: d.digest.clone(),
            });
        }
        if self.blob_exists(repo, &d.digest)? {
            return Ok(false);
        }
        if d.size == 0 {
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| reg_err(&self.registry, format!("reading blob {}", d.digest), e))?;
            return self.push_blob(repo, &bytes, &d.digest);
        }
        let what = format!("blob {} pushed to {}/{repo}", d.digest, self.registry);
        let (tx, rx) =
            tokio::sync::mpsc::channel::<oci_client::errors::Result<Bytes>>(STREAM_CHANNEL_CHUNKS);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let client = self.client.clone();
        let r = self.oci_ref(repo, None, None);
        let digest = d.digest.clone();
        let size = d.size as u64;
        let upload = runtime().spawn(async move {
            client
                .push_blob_stream(&r, stream, &digest, Some(size))
                .await
        });

        // Feed the upload from this thread; a failed send means it already ended.
        let mut hasher = sha2::Sha256::new();
        let mut sent = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        let mut read_error = None;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    sent += n as u64;
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(OciDistributionError::GenericError(Some(
                        format!("reading {what}: {e}"),
                    ))));
                    read_error = Some(e);
                    break;
                }
            }
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        // Content that does not match aborts the upload instead of committing it.
        if read_error.is_none() && (actual != d.digest || sent != size) {
            let _ = tx.blocking_send(Err(OciDistributionError::GenericError(Some(format!(
                "{what}: content does not match"
            )))));
        }
        drop(tx);
        let result = runtime()
            .block_on(upload)
            .map_err(|e| reg_err(&self.registry, &what, e))?;
        if let Some(e) = read_error {
            return Err(reg_err(
                &self.registry,
                &what,
                format!("reading the blob: {e}"),
            ));
        }
        if actual != d.digest {
            return Err(Error::DigestMismatch {
                what,
                expected: d.digest.clone(),
                actual,
            });
        }
        if sent != size {
            return Err(Error::SizeMismatch {
                what,
                expected: size,
                actual: sent,
            });
        }
        result.map_err(|e| reg_err(&self.registry, &what, e))?;
        Ok(true)
    }

    /// Make blob `digest` available in `repo`: nothing if present, a
    /// cross-repository mount from `from_repo` if the registry allows, else an
    /// upload of `bytes`.
    pub fn mount_or_push(
        &self,
        repo: &str,
        from_repo: &str,
        bytes: &[u8],
        digest: &str,
    ) -> Result<()> {
        if self.blob_exists(repo, digest)? {
            return Ok(());
        }
        let r = self.oci_ref(repo, None, None);
        let src = self.oci_ref(from_repo, None, None);
        if runtime()
            .block_on(self.client.mount_blob(&r, &src, digest))
            .is_ok()
            && self.blob_exists(repo, digest)?
        {
            return Ok(());
        }
        self.push_blob(repo, bytes, digest).map(|_| ())
    }

    /// PUT `raw` as manifest `reference` (tag or digest) of `repo`, byte-exact,
    /// with Content-Type `media_type`. Returns its descriptor.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        raw: &[u8],
        media_type: &str,
    ) -> Result<Descriptor> {
        let digest = spec::sha256_digest(raw);
        if is_sha256_digest(reference) && reference != digest {
            return Err(Error::DigestMismatch {
                what: format!("manifest to push to {}/{repo}", self.registry),
                expected: reference.into(),
                actual: digest,
            });
        }
        let r = self.tag_or_digest_ref(repo, reference)?;
        let ct = reqwest::header::HeaderValue::from_str(media_type).map_err(|e| {
            Error::InvalidReference {
                input: media_type.into(),
                reason: format!("not a valid media type: {e}"),
            }
        })?;
        runtime()
            .block_on(self.client.push_manifest_raw(&r, raw.to_vec(), ct))
            .map_err(|e| {
                reg_err(
                    &self.registry,
                    format!("PUT manifest {repo}:{reference}"),
                    e,
                )
            })?;
        Ok(Descriptor {
            media_type: media_type.into(),
            digest,
            size: raw.len() as i64,
            ..Default::default()
        })
    }

    /// Probe `GET /v2/<repo>/referrers/<digest>`: `true` if the registry answers
    /// with an image index (it implements the referrers API), `false` on 404
    /// (and 400/405/501, which some registries use for unknown endpoints): then
    /// the `sha256-<hex>` fallback tag is the way to record referrers.
    pub fn referrers_api_supported(&self, repo: &str, digest: &str) -> Result<bool> {
        Ok(self.referrers_api(repo, digest)?.is_some())
    }

    /// The referrers API's answer for `digest`: `Some(index)`, or `None` when
    /// the registry does not implement the API (see [`Self::referrers_api_supported`]).
    pub fn referrers_api(&self, repo: &str, digest: &str) -> Result<Option<spec::Index>> {
        if !is_sha256_digest(digest) {
            return Err(Error::UnsupportedDigest {
                digest: digest.into(),
            });
        }
        let r = self.oci_ref(repo, None, Some(digest));
        let scheme = if self.plain_http { "http" } else { "https" };
        let url = format!(
            "{scheme}://{}/v2/{repo}/referrers/{digest}",
            r.resolve_registry()
        );
        let ctx = format!("GET {url}");
        runtime().block_on(async {
            let token = self
                .client
                .auth(&r, &self.auth, RegistryOperation::Pull)
                .await
                .map_err(|e| reg_err(&self.registry, &ctx, e))?;
            let mut req = self
                .http
                .get(&url)
                .header(reqwest::header::ACCEPT, spec::MEDIA_TYPE_OCI_INDEX);
            req = match (&token, &self.auth) {
                (Some(t), _) => req.bearer_auth(t),
                (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
                (None, RegistryAuth::Bearer(t)) => req.bearer_auth(t),
                (None, RegistryAuth::Anonymous) => req,
            };
            let resp = req
                .send()
                .await
                .map_err(|e| reg_err(&self.registry, &ctx, e))?;
            match resp.status().as_u16() {
                200 => {
                    let body = resp
                        .bytes()
                        .await
                        .map_err(|e| reg_err(&self.registry, &ctx, e))?;
                    let idx: std::result::Result<spec::Index, _> = serde_json::from_slice(&body);
                    Ok(idx.ok().filter(|i| i.schema_version == 2))
                }
                400 | 404 | 405 | 501 => Ok(None),
                s => Err(reg_err(&self.registry, &ctx, format!("HTTP {s}"))),
            }
        })
    }

    /// The manifests that refer to `digest` (their `subject`): from the
    /// referrers API when the registry has it, else from the distribution-spec
    /// fallback tag `sha256-<hex>` (an index), else none.
    pub fn referrers(&self, repo: &str, digest: &str) -> Result<Vec<Descriptor>> {
        if let Some(index) = self.referrers_api(repo, digest)? {
            return Ok(index.manifests);
        }
        let tag = digest.replacen(':', "-", 1);
        match self.get_manifest_raw(repo, &tag)? {
            None => Ok(Vec::new()),
            Some((_, raw)) => {
                let index: spec::Index = serde_json::from_slice(&raw).map_err(|e| {
                    Error::json(
                        format!("{}/{repo}:{tag} (referrers fallback index)", self.registry),
                        e,
                    )
                })?;
                Ok(index.manifests)
            }
        }
    }
}

struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.cur = b,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// An image in a registry, read as an [`ImageSource`].
pub struct RegistrySource {
    reference: ImageRef,
    repository: String,
    client: Arc<RegistryClient>,
}

impl RegistrySource {
    pub fn new(reference: ImageRef, opts: &RegistryOptions) -> Result<Self> {
        let ImageRef::Registry { registry, .. } = &reference else {
            return Err(Error::InvalidReference {
                input: reference.to_string(),
                reason: "not a registry reference".into(),
            });
        };
        let client = RegistryClient::new(registry, opts)?;
        Self::with_client(reference, client)
    }

    /// Share a client (and its token cache) between sources of the same registry.
    pub fn with_client(reference: ImageRef, client: Arc<RegistryClient>) -> Result<Self> {
        let ImageRef::Registry { repository, .. } = &reference else {
            return Err(Error::InvalidReference {
                input: reference.to_string(),
                reason: "not a registry reference".into(),
            });
        };
        Ok(RegistrySource {
            repository: repository.clone(),
            reference,
            client,
        })
    }

    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }
}

impl ImageSource for RegistrySource {
    fn reference(&self) -> &ImageRef {
        &self.reference
    }

    fn resolve_root(&self) -> Result<(Descriptor, Vec<u8>)> {
        let ImageRef::Registry { tag, digest, .. } = &self.reference else {
            unreachable!("checked in new")
        };
        let wanted = digest.as_deref().or(tag.as_deref()).unwrap_or("latest");
        match self.client.get_manifest_raw(&self.repository, wanted)? {
            Some(found) => Ok(found),
            None => Err(Error::bad_image(
                &self.reference,
                "manifest not found in the registry",
            )),
        }
    }

    fn fetch_blob(&self, d: &Descriptor) -> Result<Vec<u8>> {
        check_small(&self.reference, d)?;
        let bytes = if crate::source::is_index_type(&d.media_type)
            || crate::source::is_manifest_type(&d.media_type)
        {
            match self.client.get_manifest_raw(&self.repository, &d.digest)? {
                Some((_, raw)) => raw,
                None => {
                    return Err(Error::BlobNotFound {
                        image: self.reference.to_string(),
                        digest: d.digest.clone(),
                    })
                }
            }
        } else {
            let mut buf = Vec::new();
            self.open_blob(d)?
                .take(crate::source::MAX_IN_MEMORY_BLOB + 1)
                .read_to_end(&mut buf)
                .map_err(|e| {
                    reg_err(self.client.registry(), format!("GET blob {}", d.digest), e)
                })?;
            buf
        };
        verify_blob(&format!("{}: blob", self.reference), d, &bytes)?;
        Ok(bytes)
    }

    fn fetch_manifest(&self, d: &Descriptor) -> Result<Vec<u8>> {
        check_small(&self.reference, d)?;
        match self.client.get_manifest_raw(&self.repository, &d.digest)? {
            Some((_, raw)) => {
                verify_blob(&format!("{}: manifest", self.reference), d, &raw)?;
                Ok(raw)
            }
            None => Err(Error::BlobNotFound {
                image: self.reference.to_string(),
                digest: d.digest.clone(),
            }),
        }
    }

    fn referrers(&self, manifest_digest: &str) -> Result<Option<Vec<Descriptor>>> {
        self.client
            .referrers(&self.repository, manifest_digest)
            .map(Some)
    }

    fn open_blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send>> {
        self.client.open_blob(&self.repository, &d.digest)
    }

    fn read_blob_range(&self, d: &Descriptor, range: Range<u64>) -> Result<Vec<u8>> {
        self.client
            .read_blob_range(&self.repository, &d.digest, range)
    }
}

/// The push side: a registry we write blobs and manifests to. Methods take the
/// repository, so one target serves every repository of the host.
pub struct RegistryTarget {
    client: Arc<RegistryClient>,
}

impl RegistryTarget {
    pub fn new(registry: &str, opts: &RegistryOptions) -> Result<Self> {
        Ok(RegistryTarget {
            client: RegistryClient::new(registry, opts)?,
        })
    }

    pub fn with_client(client: Arc<RegistryClient>) -> Self {
        RegistryTarget { client }
    }

    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }

    /// See [`RegistryClient::push_blob`].
    pub fn push_blob(&self, repo: &str, bytes: &[u8], digest: &str) -> Result<bool> {
        self.client.push_blob(repo, bytes, digest)
    }

    /// See [`RegistryClient::push_blob_stream`].
    pub fn push_blob_stream(&self, repo: &str, d: &Descriptor, reader: impl Read) -> Result<bool> {
        self.client.push_blob_stream(repo, d, reader)
    }

    /// See [`RegistryClient::mount_or_push`].
    pub fn mount_or_push(
        &self,
        repo: &str,
        from_repo: &str,
        bytes: &[u8],
        digest: &str,
    ) -> Result<()> {
        self.client.mount_or_push(repo, from_repo, bytes, digest)
    }

    /// See [`RegistryClient::push_manifest`].
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        raw: &[u8],
        media_type: &str,
    ) -> Result<Descriptor> {
        self.client.push_manifest(repo, reference, raw, media_type)
    }

    /// See [`RegistryClient::referrers_api_supported`].
    pub fn referrers_api_supported(&self, repo: &str, digest: &str) -> Result<bool> {
        self.client.referrers_api_supported(repo, digest)
    }

    /// See [`RegistryClient::get_manifest_raw`].
    pub fn get_manifest_raw(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Descriptor, Vec<u8>)>> {
        self.client.get_manifest_raw(repo, reference)
    }

    /// See [`RegistryClient::referrers`].
    pub fn referrers(&self, repo: &str, digest: &str) -> Result<Vec<Descriptor>> {
        self.client.referrers(repo, digest)
    }

    /// See [`RegistryClient::blob_exists`].
    pub fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        self.client.blob_exists(repo, digest)
    }
}
