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
//! - It does not retry, resume or bound manifest sizes: manifest and blob
//!   downloads are our own requests ([`Fetcher`]), with the token from its
//!   `auth`.
//!
//! Downloads (manifests, blobs, blob ranges) are retried on transport errors
//! (refused or reset connections, truncated bodies), on 408/429/5xx answers
//! (honouring `Retry-After`) and on stalls, with exponential backoff; a blob
//! download resumes with `Range` from the byte reached. A digest mismatch is
//! never retried. See [`RetryPolicy`] and `docs/reliability.md`.
use crate::error::{Error, Result};
use crate::reference::{is_sha256_digest, ImageRef};
use crate::source::{check_small, sniff_media_type, verify_blob, ImageSource};
use crate::spec::{self, Descriptor};
use bytes::Bytes;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Manifest media types we ask registries for.
const ACCEPT_MANIFESTS: &[&str] = &[
    spec::MEDIA_TYPE_OCI_INDEX,
    spec::MEDIA_TYPE_OCI_MANIFEST,
    spec::MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    spec::MEDIA_TYPE_DOCKER_MANIFEST,
];

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest manifest or index we read (refused from its `Content-Length`, or
/// when the body passes it, before it is held in memory). The distribution
/// spec asks registries to accept at least 4 MiB.
pub const MAX_MANIFEST_SIZE: u64 = 8 << 20;

/// Retries and timeouts of registry downloads. Defaults, overridable with
/// environment variables (seconds may be fractional):
/// - `SOCI_REGISTRY_RETRIES` (5): retries after the first attempt;
/// - `SOCI_REGISTRY_STALL_TIMEOUT` (120 s): longest wait for a response or
///   for the next bytes of a body;
/// - `SOCI_REGISTRY_TIMEOUT` (3600 s): overall limit for one download,
///   retries included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    /// First backoff delay; doubled per retry up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` we wait for (longer ones are cut to this).
    pub max_retry_after: Duration,
    pub stall_timeout: Duration,
    pub total_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(120),
            total_timeout: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The defaults with the `SOCI_REGISTRY_*` environment overrides.
    pub fn from_env() -> Self {
        let secs = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v > 0.0)
                .map(Duration::from_secs_f64)
        };
        let mut p = RetryPolicy::default();
        if let Some(n) = std::env::var("SOCI_REGISTRY_RETRIES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
        {
            p.retries = n;
        }
        if let Some(d) = secs("SOCI_REGISTRY_STALL_TIMEOUT") {
            p.stall_timeout = d;
        }
        if let Some(d) = secs("SOCI_REGISTRY_TIMEOUT") {
            p.total_timeout = d;
        }
        p
    }

    fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.max_retry_after),
            None => self
                .base_delay
                .saturating_mul(1u32 << retry.min(16))
                .min(self.max_delay),
        }
    }
}

/// Chunks buffered between the download task and the reader.
const STREAM_CHANNEL_CHUNKS: usize = 16;

/// 1 MiB chunks buffered between a blob's reader and its upload (uploads run
/// several at a time, see soci-image's publish).
const UPLOAD_CHANNEL_CHUNKS: usize = 4;

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

/// The credentials Docker would use for `registry`: `config.json`'s
/// `credHelpers` entry for the host, else its `auths` entry, else its
/// `credsStore` (helpers are the `docker-credential-NAME` programs on `PATH`,
/// asked with `get`). Nothing configured, or a helper that does not know the
/// host, means anonymous; a helper that cannot be run or answers nonsense is
/// an error, not a silent anonymous pull that fails later with a 401.
fn docker_config_auth(registry: &str) -> Result<RegistryAuth> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let key = if registry == "docker.io" || registry == "index.docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    let config_path = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"));
    let config = config_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.docker/config.json".into());
    // The helper the config names for this server (for error messages).
    let helper_name = || -> String {
        let v: serde_json::Value = config_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let name = v["credHelpers"][key]
            .as_str()
            .or(v["credsStore"].as_str())
            .unwrap_or("NAME");
        format!("docker-credential-{name}")
    };
    let fail = |message: String| {
        Err(Error::Registry {
            registry: registry.into(),
            context: format!("credentials from {config}"),
            message,
        })
    };
    match docker_credential::get_credential(key) {
        Ok(DockerCredential::UsernamePassword(u, p)) => Ok(RegistryAuth::Basic(u, p)),
        Ok(DockerCredential::IdentityToken(t)) => Ok(RegistryAuth::Bearer(t)),
        Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => {
            Ok(RegistryAuth::Anonymous)
        }
        // The helper's standard answer for a server it holds nothing for.
        Err(E::HelperFailure { stdout, stderr, .. })
            if stdout.contains("credentials not found")
                || stderr.contains("credentials not found") =>
        {
            Ok(RegistryAuth::Anonymous)
        }
        Err(E::HelperFailure {
            helper,
            stdout,
            stderr,
        }) => fail(format!(
            "credential helper `{helper} get` failed: {}",
            format!("{} {}", stdout.trim(), stderr.trim()).trim()
        )),
        Err(E::HelperCommunicationError) => fail(format!(
            "cannot run the credential helper it names (credsStore/credHelpers): \
             is {} on PATH?",
            helper_name()
        )),
        Err(e) => fail(e.to_string()),
    }
}

/// A connection to one registry host with one credential set.
pub struct RegistryClient {
    registry: String,
    client: Client,
    /// Chunked-mode client, for the empty blob only (see `with_policy`).
    empty_blob_client: Client,
    auth: RegistryAuth,
    http: reqwest::Client,
    plain_http: bool,
    fetcher: Fetcher,
}

fn reg_err(registry: &str, context: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Registry {
        registry: registry.into(),
        context: context.into(),
        message: e.to_string(),
    }
}

impl RegistryClient {
    /// Connect (lazily: no request is made) to `registry` (`host[:port]`),
    /// with the retry policy of [`RetryPolicy::from_env`].
    pub fn new(registry: &str, opts: &RegistryOptions) -> Result<Arc<Self>> {
        Self::with_policy(registry, opts, RetryPolicy::from_env())
    }

    /// [`Self::new`] with an explicit retry policy.
    pub fn with_policy(
        registry: &str,
        opts: &RegistryOptions,
        policy: RetryPolicy,
    ) -> Result<Arc<Self>> {
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(policy.stall_timeout);
        let mut ca_pem = None;
        if let Some(ca) = &opts.tls_ca {
            let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| reg_err(registry, format!("TLS CA {}", ca.display()), e))?;
            http = http.add_root_certificate(cert);
            ca_pem = Some(pem);
        }
        let make_client = |monolithic: bool| {
            let config = ClientConfig {
                protocol: if opts.plain_http {
                    ClientProtocol::Http
                } else {
                    ClientProtocol::Https
                },
                // A stalled connection must end in an error, not a hung build.
                connect_timeout: Some(CONNECT_TIMEOUT),
                read_timeout: Some(policy.stall_timeout),
                use_monolithic_push: monolithic,
                extra_root_certificates: ca_pem
                    .iter()
                    .map(|pem| Certificate {
                        encoding: CertificateEncoding::Pem,
                        data: pem.clone(),
                    })
                    .collect(),
                ..Default::default()
            };
            Client::try_from(config).map_err(|e| reg_err(registry, "creating the client", e))
        };
        // Blob uploads: one PUT per blob after the session POST, its body
        // streamed (what containerd does). oci-client's chunked mode sends a
        // PATCH, and waits for its answer, per stream item: 714 round trips
        // for the 714 MB benchmark image, 1.3x skopeo's copy time.
        let client = make_client(true)?;
        // oci-client refuses a monolithic upload of nothing; the empty blob
        // goes through a chunked session with no chunks.
        let empty_blob_client = make_client(false)?;
        let http = http
            .build()
            .map_err(|e| reg_err(registry, "creating the HTTP client", e))?;
        let auth = match &opts.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::DockerConfig => docker_config_auth(registry)?,
        };
        let fetcher = Fetcher {
            registry: registry.into(),
            client: client.clone(),
            auth: auth.clone(),
            http: http.clone(),
            scheme: if opts.plain_http { "http" } else { "https" },
            policy,
            tokens: Default::default(),
        };
        let this = RegistryClient {
            registry: registry.into(),
            client,
            empty_blob_client,
            auth,
            http,
            plain_http: opts.plain_http,
            fetcher,
        };
        let host = this.oci_ref("x", None, None).resolve_registry().to_string();
        runtime().block_on(this.client.store_auth_if_needed(&host, &this.auth));
        runtime().block_on(
            this.empty_blob_client
                .store_auth_if_needed(&host, &this.auth),
        );
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
        match runtime().block_on(self.fetcher.get_manifest(&r, reference))? {
            Some((raw, digest)) => {
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
                if let Some(digest) = digest.filter(|d| is_sha256_digest(d)) {
                    if digest != desc.digest {
                        return Err(Error::DigestMismatch {
                            what: format!(
                                "manifest {}/{repo}:{reference} (Docker-Content-Digest)",
                                self.registry
                            ),
                            expected: digest,
                            actual: desc.digest,
                        });
                    }
                }
                Ok(Some((desc, raw)))
            }
            None => Ok(None),
        }
    }

    /// Whether blob `digest` exists in `repo` (HEAD).
    pub fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let r = self.oci_ref(repo, None, None);
        self.retrying(|| runtime().block_on(self.client.blob_exists(&r, digest)))
            .map_err(|e| reg_err(&self.registry, format!("HEAD blob {repo}@{digest}"), e))
    }

    /// Runs an idempotent oci-client request again on transient failures
    /// (transport errors, 408/429/5xx), with the download backoff.
    fn retrying<T>(
        &self,
        mut op: impl FnMut() -> std::result::Result<T, OciDistributionError>,
    ) -> std::result::Result<T, OciDistributionError> {
        let policy = &self.fetcher.policy;
        let mut retry = 0;
        loop {
            match op() {
                Err(e) if retry < policy.retries && oci_retryable(&e) => {
                    std::thread::sleep(policy.backoff(retry, None));
                    retry += 1;
                }
                r => return r,
            }
        }
    }

    /// Stream blob `digest` of `repo` through a bounded channel. The download
    /// is retried and resumed (see [`RetryPolicy`]) and its digest checked:
    /// content that does not match ends the stream with an error, never EOF.
    pub fn open_blob(&self, repo: &str, digest: &str) -> Result<Box<dyn Read + Send>> {
        self.open_blob_stream(repo, digest, true)
    }

    /// [`Self::open_blob`] without the digest check, for readers that hash what
    /// they read themselves (the zTOC builder computes the blob digest together
    /// with the span digests; a second sha256 pass here cost 7% of the CPU of
    /// `soci create` from a registry). Retries, resume and length checks stay.
    pub fn open_blob_unverified(&self, repo: &str, digest: &str) -> Result<Box<dyn Read + Send>> {
        self.open_blob_stream(repo, digest, false)
    }

    fn open_blob_stream(
        &self,
        repo: &str,
        digest: &str,
        verify: bool,
    ) -> Result<Box<dyn Read + Send>> {
        if !is_sha256_digest(digest) {
            return Err(Error::UnsupportedDigest {
                digest: digest.into(),
            });
        }
        let r = self.oci_ref(repo, None, None);
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(STREAM_CHANNEL_CHUNKS);
        let fetcher = self.fetcher.clone();
        let d = digest.to_string();
        runtime().spawn(async move {
            let res = fetcher
                .download(&r, &d, None, verify, Sink::Channel(&tx))
                .await;
            if let Err(e) = res {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        });
        // Fail fast (404, auth, an unreachable registry) before handing out a reader.
        let cur = match rx.blocking_recv() {
            None => Bytes::new(),
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                return Err(reg_err(
                    &self.registry,
                    format!("GET blob {repo}@{digest}"),
                    e,
                ))
            }
        };
        Ok(Box::new(ChannelReader { rx, cur }))
    }

    /// Bytes `range` of blob `digest` of `repo` (HTTP Range; a registry that
    /// ignores Range and sends the whole blob is handled too). Retried and
    /// resumed like [`Self::open_blob`].
    pub fn read_blob_range(&self, repo: &str, digest: &str, range: Range<u64>) -> Result<Vec<u8>> {
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let r = self.oci_ref(repo, None, None);
        let mut out = Vec::with_capacity((range.end - range.start).min(64 << 20) as usize);
        runtime().block_on(self.fetcher.download(
            &r,
            digest,
            Some(range),
            false,
            Sink::Buffer(&mut out),
        ))?;
        Ok(out)
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
        // A failed upload is started over (a new upload session): idempotent.
        let client = if bytes.is_empty() {
            &self.empty_blob_client
        } else {
            &self.client
        };
        self.retrying(|| {
            runtime().block_on(client.push_blob(&r, Bytes::copy_from_slice(bytes), digest))
        })
        .map_err(|e| reg_err(&self.registry, format!("push blob {repo}@{digest}"), e))?;
        Ok(true)
    }

    /// Upload the blob `d` from `reader` into `repo` without holding it in
    /// memory (one PUT whose body is fed through a bounded channel), unless it is
    /// already there. The bytes are hashed on the way: a reader that does not
    /// produce `d`'s digest and size fails the upload. Returns `true` if uploaded.
    /// One attempt: see [`Self::push_blob_stream_reopening`] for retries.
    pub fn push_blob_stream(&self, repo: &str, d: &Descriptor, reader: impl Read) -> Result<bool> {
        let mut reader = Some(reader);
        self.push_stream_attempts(repo, d, 0, || {
            Ok(reader.take().expect("one attempt, one reader"))
        })
    }

    /// [`Self::push_blob_stream`], started over from a fresh reader (`open` is
    /// called per attempt) when the upload fails in a way worth retrying
    /// (connection reset, 408/429/5xx; see [`RetryPolicy`]). A reader error or
    /// content that does not match `d` is final.
    pub fn push_blob_stream_reopening<R: Read>(
        &self,
        repo: &str,
        d: &Descriptor,
        open: impl FnMut() -> Result<R>,
    ) -> Result<bool> {
        self.push_stream_attempts(repo, d, self.fetcher.policy.retries, open)
    }

    fn push_stream_attempts<R: Read>(
        &self,
        repo: &str,
        d: &Descriptor,
        retries: u32,
        mut open: impl FnMut() -> Result<R>,
    ) -> Result<bool> {
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
            open()?
                .read_to_end(&mut bytes)
                .map_err(|e| reg_err(&self.registry, format!("reading blob {}", d.digest), e))?;
            return self.push_blob(repo, &bytes, &d.digest);
        }
        let mut retry = 0;
        loop {
            match self.push_stream_once(repo, d, open()?) {
                Ok(()) => return Ok(true),
                Err(Attempt::Retryable(_)) if retry < retries => {
                    std::thread::sleep(self.fetcher.policy.backoff(retry, None));
                    retry += 1;
                }
                Err(Attempt::Retryable(e) | Attempt::Final(e)) => return Err(e),
            }
        }
    }

    /// One streamed upload of `d` (a new upload session).
    fn push_stream_once(
        &self,
        repo: &str,
        d: &Descriptor,
        mut reader: impl Read,
    ) -> std::result::Result<(), Attempt> {
        use sha2::Digest as _;
        let what = format!("blob {} pushed to {}/{repo}", d.digest, self.registry);
        let final_err = |e: Error| Attempt::Final(e);
        let upload_err = |e: OciDistributionError| {
            let retry = oci_retryable(&e);
            let err = reg_err(&self.registry, &what, e);
            if retry {
                Attempt::Retryable(err)
            } else {
                Attempt::Final(err)
            }
        };
        let (tx, rx) =
            tokio::sync::mpsc::channel::<oci_client::errors::Result<Bytes>>(UPLOAD_CHANNEL_CHUNKS);
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
        let mut upload_ended = false;
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
                        upload_ended = true;
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
        let mismatch = actual != d.digest || sent != size;
        if read_error.is_none() && !upload_ended && mismatch {
            let _ = tx.blocking_send(Err(OciDistributionError::GenericError(Some(format!(
                "{what}: content does not match"
            )))));
        }
        drop(tx);
        let result = runtime()
            .block_on(upload)
            .map_err(|e| final_err(reg_err(&self.registry, &what, e)))?;
        if let Some(e) = read_error {
            return Err(final_err(reg_err(
                &self.registry,
                &what,
                format!("reading the blob: {e}"),
            )));
        }
        if upload_ended {
            // The upload stopped taking bytes: its own error says why.
            return match result {
                Err(e) => Err(upload_err(e)),
                Ok(_) => Err(final_err(reg_err(
                    &self.registry,
                    &what,
                    "the upload ended before the blob was sent",
                ))),
            };
        }
        if actual != d.digest {
            return Err(final_err(Error::DigestMismatch {
                what,
                expected: d.digest.clone(),
                actual,
            }));
        }
        if sent != size {
            return Err(final_err(Error::SizeMismatch {
                what,
                expected: size,
                actual: sent,
            }));
        }
        result.map(|_| ()).map_err(upload_err)
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
        if self.try_mount(repo, from_repo, digest)? {
            return Ok(());
        }
        self.push_blob(repo, bytes, digest).map(|_| ())
    }

    /// Ask the registry to mount blob `digest` of `from_repo` into `repo`
    /// (cross-repository blob mount: nothing is transferred). `true` if the
    /// blob is in `repo` afterwards; a refused or failed mount is `false`, for
    /// the caller to upload instead.
    pub fn try_mount(&self, repo: &str, from_repo: &str, digest: &str) -> Result<bool> {
        let r = self.oci_ref(repo, None, None);
        let src = self.oci_ref(from_repo, None, None);
        if runtime()
            .block_on(self.client.mount_blob(&r, &src, digest))
            .is_err()
        {
            return Ok(false);
        }
        self.blob_exists(repo, digest)
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
        self.retrying(|| {
            runtime().block_on(self.client.push_manifest_raw(&r, raw.to_vec(), ct.clone()))
        })
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

/// Why one attempt of a download failed.
enum Failure {
    /// Worth another attempt (transport error, 408/429/5xx, stall, short body).
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 404.
    NotFound,
    /// Final: retrying cannot help (4xx, digest mismatch, too large).
    Fatal(Error),
}

/// Whether an oci-client error is worth another attempt.
/// How one upload attempt failed.
enum Attempt {
    /// Worth starting over (see [`oci_retryable`]).
    Retryable(Error),
    Final(Error),
}

fn oci_retryable(e: &OciDistributionError) -> bool {
    const STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];
    match e {
        OciDistributionError::RequestError(e) => match e.status() {
            Some(s) => STATUSES.contains(&s.as_u16()),
            None => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
        },
        OciDistributionError::ServerError { code, .. } => STATUSES.contains(code),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| matches!(x.code, oci_client::errors::OciErrorCode::Toomanyrequests)),
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// `e` and its sources on one line ("error sending request: connection reset").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get(reqwest::header::RETRY_AFTER)?;
    parse_retry_after(v.to_str().ok()?, std::time::SystemTime::now())
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP date (a date
/// already past means "now"). Anything else: `None`, our own backoff applies.
fn parse_retry_after(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL if known).
fn content_range(resp: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let v = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, _) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Where downloaded bytes go.
enum Sink<'a> {
    Channel(&'a tokio::sync::mpsc::Sender<std::io::Result<Bytes>>),
    Buffer(&'a mut Vec<u8>),
}

impl Sink<'_> {
    /// `false` when the receiving end has gone.
    async fn put(&mut self, b: Bytes) -> bool {
        match self {
            Sink::Channel(tx) => tx.send(Ok(b)).await.is_ok(),
            Sink::Buffer(v) => {
                v.extend_from_slice(&b);
                true
            }
        }
    }
}

/// Our own GETs of manifests and blobs, with retries, resume and timeouts.
#[derive(Clone)]
struct Fetcher {
    registry: String,
    client: Client,
    auth: RegistryAuth,
    http: reqwest::Client,
    scheme: &'static str,
    policy: RetryPolicy,
    /// Bearer tokens per repository, briefly cached (`auth` costs two requests).
    tokens: TokenCache,
}

/// Bearer token (if any) and when it was obtained, per repository.
type TokenCache =
    Arc<tokio::sync::Mutex<std::collections::HashMap<String, (Option<String>, Instant)>>>;

const TOKEN_TTL: Duration = Duration::from_secs(50);

impl Fetcher {
    async fn token(
        &self,
        r: &Reference,
        fresh: bool,
    ) -> std::result::Result<Option<String>, String> {
        let key = r.repository().to_string();
        if !fresh {
            if let Some((t, at)) = self.tokens.lock().await.get(&key) {
                if at.elapsed() < TOKEN_TTL {
                    return Ok(t.clone());
                }
            }
        }
        let t = self
            .client
            .auth(r, &self.auth, RegistryOperation::Pull)
            .await
            .map_err(|e| format!("authentication: {}", error_chain(&e)))?;
        self.tokens
            .lock()
            .await
            .insert(key, (t.clone(), Instant::now()));
        Ok(t)
    }

    /// One GET; `Ok` only for 200/206.
    async fn get_once(
        &self,
        r: &Reference,
        url: &str,
        accept: Option<&str>,
        range: Option<String>,
        deadline: Instant,
        fresh_token: bool,
    ) -> std::result::Result<reqwest::Response, Failure> {
        let token = self
            .token(r, fresh_token)
            .await
            .map_err(|message| Failure::Retry {
                message,
                retry_after: None,
            })?;
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(reqwest::header::ACCEPT, a);
        }
        if let Some(range) = range {
            req = req.header(reqwest::header::RANGE, range);
        }
        req = match (&token, &self.auth) {
            (Some(t), _) => req.bearer_auth(t),
            (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
            (None, RegistryAuth::Bearer(t)) => req.bearer_auth(t),
            (None, RegistryAuth::Anonymous) => req,
        };
        let wait = self.wait_limit(deadline);
        let resp = match tokio::time::timeout(wait, req.send()).await {
            Err(_) => {
                return Err(Failure::Retry {
                    message: format!("no response within {:.1?} (stalled)", wait),
                    retry_after: None,
                })
            }
            Ok(Err(e)) => {
                return Err(Failure::Retry {
                    message: if e.is_timeout() {
                        format!(
                            "no response within {:.1?} (stalled): {}",
                            wait,
                            error_chain(&e)
                        )
                    } else {
                        error_chain(&e)
                    },
                    retry_after: None,
                })
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status().as_u16();
        match status {
            200 | 206 => Ok(resp),
            404 => Err(Failure::NotFound),
            408 | 429 | 500 | 502 | 503 | 504 => Err(Failure::Retry {
                message: format!("HTTP {}", resp.status()),
                retry_after: retry_after(&resp),
            }),
            401 if !fresh_token => Err(Failure::Retry {
                message: format!("HTTP {}", resp.status()),
                retry_after: Some(Duration::ZERO),
            }),
            _ => {
                let s = resp.status();
                let body = tokio::time::timeout(Duration::from_secs(5), resp.bytes())
                    .await
                    .ok()
                    .and_then(|b| b.ok())
                    .map(|b| {
                        String::from_utf8_lossy(&b[..b.len().min(300)])
                            .trim()
                            .to_string()
                    })
                    .unwrap_or_default();
                Err(Failure::Fatal(reg_err(
                    &self.registry,
                    format!("GET {url}"),
                    if body.is_empty() {
                        format!("HTTP {s}")
                    } else {
                        format!("HTTP {s}: {body}")
                    },
                )))
            }
        }
    }

    /// How long we may wait for the next thing: the stall timeout, cut by the deadline.
    fn wait_limit(&self, deadline: Instant) -> Duration {
        self.policy
            .stall_timeout
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1))
    }

    /// After failure number `retry` (1-based): sleep and return `Ok` to try
    /// again, or the final error.
    async fn before_retry(
        &self,
        ctx: &str,
        retry: u32,
        message: &str,
        retry_after: Option<Duration>,
        deadline: Instant,
        started: Instant,
    ) -> Result<()> {
        if retry > self.policy.retries {
            return Err(reg_err(
                &self.registry,
                ctx,
                format!("{message} (gave up after {retry} attempts)"),
            ));
        }
        let delay = self.policy.backoff(retry - 1, retry_after);
        if Instant::now() + delay >= deadline {
            return Err(reg_err(
                &self.registry,
                ctx,
                format!(
                    "{message} (gave up: the overall timeout of {:.1?} was reached after {retry} attempts in {:.1?})",
                    self.policy.total_timeout,
                    started.elapsed()
                ),
            ));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// GET manifest `reference`: its bytes and Docker-Content-Digest, `None` on 404.
    async fn get_manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let url = format!(
            "{}://{}/v2/{}/manifests/{reference}",
            self.scheme,
            r.resolve_registry(),
            r.repository()
        );
        let ctx = format!("GET manifest {}:{reference}", r.repository());
        let accept = ACCEPT_MANIFESTS.join(", ");
        let started = Instant::now();
        let deadline = started + self.policy.total_timeout;
        let mut retry = 0u32;
        let mut fresh = false;
        loop {
            let failure = match self
                .get_once(r, &url, Some(&accept), None, deadline, fresh)
                .await
            {
                Err(f) => f,
                Ok(mut resp) => {
                    let len = resp.content_length();
                    if let Some(len) = len.filter(|l| *l > MAX_MANIFEST_SIZE) {
                        return Err(reg_err(
                            &self.registry,
                            &ctx,
                            format!("the manifest is {len} bytes, more than the {MAX_MANIFEST_SIZE}-byte limit; not read"),
                        ));
                    }
                    let digest = resp
                        .headers()
                        .get("Docker-Content-Digest")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let mut body = Vec::with_capacity(len.unwrap_or(0) as usize);
                    let failure = loop {
                        match tokio::time::timeout(self.wait_limit(deadline), resp.chunk()).await {
                            Err(_) => {
                                break Some(format!(
                                    "no data for {:.1?} after {} bytes (stalled)",
                                    self.wait_limit(deadline),
                                    body.len()
                                ))
                            }
                            Ok(Err(e)) if e.is_timeout() => {
                                break Some(format!(
                                    "no data for {:.1?} after {} bytes (stalled): {}",
                                    self.policy.stall_timeout,
                                    body.len(),
                                    error_chain(&e)
                                ))
                            }
                            Ok(Err(e)) => break Some(error_chain(&e)),
                            Ok(Ok(None)) => break None,
                            Ok(Ok(Some(b))) => {
                                if (body.len() + b.len()) as u64 > MAX_MANIFEST_SIZE {
                                    return Err(reg_err(
                                        &self.registry,
                                        &ctx,
                                        format!("the manifest is more than the {MAX_MANIFEST_SIZE}-byte limit; not read"),
                                    ));
                                }
                                body.extend_from_slice(&b);
                            }
                        }
                    };
                    match failure {
                        None if len.is_none_or(|l| l == body.len() as u64) => {
                            return Ok(Some((body, digest)))
                        }
                        None => Failure::Retry {
                            message: format!(
                                "the body ended after {} of {} bytes",
                                body.len(),
                                len.unwrap_or(0)
                            ),
                            retry_after: None,
                        },
                        Some(message) => Failure::Retry {
                            message,
                            retry_after: None,
                        },
                    }
                }
            };
            match failure {
                Failure::NotFound => return Ok(None),
                Failure::Fatal(e) => return Err(e),
                Failure::Retry {
                    message,
                    retry_after,
                } => {
                    retry += 1;
                    fresh = message.starts_with("HTTP 401");
                    self.before_retry(&ctx, retry, &message, retry_after, deadline, started)
                        .await?;
                }
            }
        }
    }

    /// Download blob `digest` (whole when `range` is None, digest verified if
    /// `verify`; else bytes `range`, length checked), handing every chunk to
    /// `sink` (which returns `false` to stop early). Retries and resumes from
    /// the byte reached.
    async fn download(
        &self,
        r: &Reference,
        digest: &str,
        range: Option<Range<u64>>,
        verify: bool,
        mut sink: Sink<'_>,
    ) -> Result<()> {
        let verify = verify && range.is_none();
        use sha2::Digest as _;
        if !is_sha256_digest(digest) {
            return Err(Error::UnsupportedDigest {
                digest: digest.into(),
            });
        }
        let url = format!(
            "{}://{}/v2/{}/blobs/{digest}",
            self.scheme,
            r.resolve_registry(),
            r.repository()
        );
        let ctx = match &range {
            None => format!("GET blob {}@{digest}", r.repository()),
            Some(rg) => format!(
                "GET blob {}@{digest} bytes {}..{}",
                r.repository(),
                rg.start,
                rg.end
            ),
        };
        let (base, mut want) = match &range {
            None => (0u64, None),
            Some(rg) => (rg.start, Some(rg.end - rg.start)),
        };
        let mut hasher = sha2::Sha256::new();
        let mut pos = 0u64; // bytes delivered to `sink`
        let started = Instant::now();
        let deadline = started + self.policy.total_timeout;
        let mut retry = 0u32;
        let mut fresh = false;
        loop {
            let header = match (&range, pos) {
                (None, 0) => None,
                (None, p) => Some(format!("bytes={p}-")),
                (Some(rg), p) => Some(format!("bytes={}-{}", rg.start + p, rg.end - 1)),
            };
            let asked = base + pos;
            let failure = match self
                .get_once(r, &url, None, header.clone(), deadline, fresh)
                .await
            {
                Err(f) => f,
                Ok(mut resp) => {
                    // Where this body starts in the blob, and the blob size if told.
                    let (start, total) = if resp.status().as_u16() == 206 {
                        match content_range(&resp) {
                            Some((s, t)) => (s, t),
                            None if header.is_none() => (0, None),
                            None => {
                                return Err(reg_err(
                                    &self.registry,
                                    &ctx,
                                    "206 answer without a valid Content-Range",
                                ))
                            }
                        }
                    } else {
                        (0, resp.content_length())
                    };
                    if start > asked {
                        return Err(reg_err(
                            &self.registry,
                            &ctx,
                            format!("asked for bytes from {asked}, the registry sent from {start}"),
                        ));
                    }
                    if want.is_none() {
                        want = total;
                    }
                    let mut skip = asked - start;
                    let failure = loop {
                        match tokio::time::timeout(self.wait_limit(deadline), resp.chunk()).await {
                            Err(_) => {
                                break Some(format!(
                                    "no data for {:.1?} after {pos} bytes (stalled)",
                                    self.wait_limit(deadline)
                                ))
                            }
                            Ok(Err(e)) if e.is_timeout() => {
                                break Some(format!(
                                    "no data for {:.1?} after {pos} bytes (stalled): {}",
                                    self.policy.stall_timeout,
                                    error_chain(&e)
                                ))
                            }
                            Ok(Err(e)) => break Some(error_chain(&e)),
                            Ok(Ok(None)) => break None,
                            Ok(Ok(Some(mut b))) => {
                                if skip > 0 {
                                    let k = skip.min(b.len() as u64) as usize;
                                    let _ = b.split_to(k);
                                    skip -= k as u64;
                                }
                                if let Some(w) = want {
                                    let left = w.saturating_sub(pos);
                                    if b.len() as u64 > left {
                                        if range.is_some() {
                                            b.truncate(left as usize);
                                        } else {
                                            return Err(reg_err(
                                                &self.registry,
                                                &ctx,
                                                format!("the registry sent more than the {w} bytes it announced"),
                                            ));
                                        }
                                    }
                                }
                                if b.is_empty() {
                                    if range.is_some() && want == Some(pos) {
                                        break None;
                                    }
                                    continue;
                                }
                                pos += b.len() as u64;
                                if verify {
                                    hasher.update(&b);
                                }
                                if !sink.put(b).await {
                                    return Ok(()); // the reader went away
                                }
                                if range.is_some() && want == Some(pos) {
                                    break None;
                                }
                            }
                        }
                    };
                    match failure {
                        Some(message) => Failure::Retry {
                            message,
                            retry_after: None,
                        },
                        None => match want {
                            Some(w) if pos < w => Failure::Retry {
                                message: format!("the body ended after {pos} of {w} bytes"),
                                retry_after: None,
                            },
                            _ => {
                                if verify {
                                    let actual =
                                        format!("sha256:{}", hex::encode(hasher.finalize()));
                                    if actual != digest {
                                        return Err(Error::DigestMismatch {
                                            what: format!("{}: {ctx}", self.registry),
                                            expected: digest.into(),
                                            actual,
                                        });
                                    }
                                }
                                return Ok(());
                            }
                        },
                    }
                }
            };
            match failure {
                Failure::NotFound => {
                    return Err(reg_err(&self.registry, &ctx, "blob not found (HTTP 404)"))
                }
                Failure::Fatal(e) => return Err(e),
                Failure::Retry {
                    message,
                    retry_after,
                } => {
                    retry += 1;
                    fresh = message.starts_with("HTTP 401");
                    let message = if pos > 0 {
                        format!("{message} (resuming from byte {})", base + pos)
                    } else {
                        message
                    };
                    self.before_retry(&ctx, retry, &message, retry_after, deadline, started)
                        .await?;
                }
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
        // The trait's readers hash what they read (see `ImageSource::open_blob`).
        self.client
            .open_blob_unverified(&self.repository, &d.digest)
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

    /// See [`RegistryClient::push_blob_stream_reopening`].
    pub fn push_blob_stream_reopening<R: Read>(
        &self,
        repo: &str,
        d: &Descriptor,
        open: impl FnMut() -> Result<R>,
    ) -> Result<bool> {
        self.client.push_blob_stream_reopening(repo, d, open)
    }

    /// See [`RegistryClient::try_mount`].
    pub fn try_mount(&self, repo: &str, from_repo: &str, digest: &str) -> Result<bool> {
        self.client.try_mount(repo, from_repo, digest)
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

#[cfg(test)]
mod tests {
    use super::parse_retry_after;
    use std::time::{Duration, SystemTime};

    #[test]
    fn retry_after_seconds_and_dates() {
        // 2015-10-21 07:28:00 UTC
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms HTTP still allows.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:05 2015", now),
            Some(Duration::from_secs(5))
        );
        // Past dates mean now; garbage means "use our backoff".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
