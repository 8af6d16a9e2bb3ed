//! Reading from a registry: manifests, blobs (streamed, resumed with `Range`,
//! never read past their descriptor's size), blob ranges, HEAD, and the
//! referrers probe. Every answer is bounded in size and time.
use super::auth::Scope;
use super::bridge::{runtime, STREAM_CHANNEL_CHUNKS};
use super::retry::{next_chunk, read_limited, Failure, Try};
use super::{Conn, RegistryClient};
use crate::blob::require_sha256;
use crate::chunks::ChannelReader;
use crate::error::{Error, Result};
use crate::reference::is_sha256_digest;
use crate::spec::sniff_media_type;
use crate::spec::{self, Descriptor, MaybeDigest};
use bytes::Bytes;
use soci_digest::Digest;
use std::io::Read;
use std::ops::Range;

/// Manifest media types we ask registries for.
const ACCEPT_MANIFESTS: &[&str] = &[
    spec::MEDIA_TYPE_OCI_INDEX,
    spec::MEDIA_TYPE_OCI_MANIFEST,
    spec::MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    spec::MEDIA_TYPE_DOCKER_MANIFEST,
];

/// Largest manifest or index we read (refused from its `Content-Length`, or
/// when the body passes it, before it is held in memory). The distribution
/// spec asks registries to accept at least 4 MiB.
pub const MAX_MANIFEST_SIZE: u64 = 8 << 20;

/// Largest referrers API answer we read: an image index like a manifest,
/// under the same limit.
pub const MAX_REFERRERS_SIZE: u64 = MAX_MANIFEST_SIZE;

/// Most of an error answer's body we read (its start is quoted in the error).
pub const MAX_ERROR_BODY: u64 = 64 << 10;

/// Where downloaded bytes go.
pub(super) enum Sink<'a> {
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

/// What a blob download is for.
struct Want {
    /// Bytes of the blob wanted: all of it (`0..size`) or a range.
    range: Range<u64>,
    /// A range of a blob (the lazy reader), not the whole blob.
    partial: bool,
    /// Check the whole blob's digest.
    verify: bool,
}

impl RegistryClient {
    /// The manifest `reference` (tag or digest) of `repo`: descriptor (media type
    /// from the document, digest verified when `reference` is a digest) and raw
    /// bytes; `None` if the registry says it does not exist.
    pub fn get_manifest_raw(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Descriptor, Vec<u8>)>> {
        crate::reference::check_manifest_reference(reference)?;
        let registry = self.registry();
        match runtime().block_on(self.conn.get_manifest(repo, reference))? {
            Some((raw, digest)) => {
                let desc = Descriptor::of(sniff_media_type(&raw).unwrap_or_default(), &raw);
                if is_sha256_digest(reference) && desc.digest != reference {
                    return Err(Error::DigestMismatch {
                        what: format!("manifest {registry}/{repo}@{reference}"),
                        expected: reference.into(),
                        actual: desc.digest.to_string(),
                    });
                }
                if let Some(digest) = digest.filter(|d| is_sha256_digest(d)) {
                    if desc.digest != digest {
                        return Err(Error::DigestMismatch {
                            what: format!(
                                "manifest {registry}/{repo}:{reference} (Docker-Content-Digest)"
                            ),
                            expected: digest,
                            actual: desc.digest.to_string(),
                        });
                    }
                }
                Ok(Some((desc, raw)))
            }
            None => Ok(None),
        }
    }

    /// Whether blob `digest` exists in `repo` (HEAD).
    pub fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool> {
        require_sha256(digest)?;
        runtime().block_on(self.conn.blob_exists(repo, digest))
    }

    /// Stream blob `d` of `repo` through a bounded channel. The download is
    /// retried and resumed (see [`super::RetryPolicy`]), never reads past
    /// `d.size`, and its digest is checked: content that does not match ends
    /// the stream with an error, never EOF.
    pub fn open_blob(&self, repo: &str, d: &Descriptor) -> Result<Box<dyn Read + Send>> {
        self.open_blob_stream(repo, d, true)
    }

    /// [`Self::open_blob`] without the digest check, for readers that hash what
    /// they read themselves (the zTOC builder computes the blob digest together
    /// with the span digests; a second sha256 pass here cost 7% of the CPU of
    /// `soci create` from a registry). Retries, resume and length checks stay.
    pub fn open_blob_unverified(&self, repo: &str, d: &Descriptor) -> Result<Box<dyn Read + Send>> {
        self.open_blob_stream(repo, d, false)
    }

    fn open_blob_stream(
        &self,
        repo: &str,
        d: &Descriptor,
        verify: bool,
    ) -> Result<Box<dyn Read + Send>> {
        require_sha256(&d.digest)?;
        let size = u64::try_from(d.size).map_err(|_| Error::BadImage {
            image: format!("{}/{repo}", self.registry()),
            reason: format!("blob {} has a negative size {}", d.digest, d.size),
        })?;
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(STREAM_CHANNEL_CHUNKS);
        let conn = self.conn.clone();
        let (repo_owned, digest) = (repo.to_string(), d.digest.clone());
        runtime().spawn(async move {
            let want = Want {
                range: 0..size,
                partial: false,
                verify,
            };
            let res = conn
                .download(&repo_owned, &digest, want, Sink::Channel(&tx))
                .await;
            if let Err(e) = res {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        });
        // Fail fast (404, auth, an unreachable registry) before handing out a reader.
        let cur = match rx.blocking_recv() {
            None => Bytes::new(),
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(self.conn.err(format!("GET blob {repo}@{}", d.digest), e)),
        };
        Ok(Box::new(ChannelReader::starting_with(rx, cur)))
    }

    /// Bytes `range` of blob `digest` of `repo` (HTTP Range; a registry that
    /// ignores Range and sends the whole blob is handled too). Retried and
    /// resumed like [`Self::open_blob`].
    pub fn read_blob_range(
        &self,
        repo: &str,
        digest: &Digest,
        range: Range<u64>,
    ) -> Result<Vec<u8>> {
        require_sha256(digest)?;
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((range.end - range.start).min(64 << 20) as usize);
        let want = Want {
            range,
            partial: true,
            verify: false,
        };
        runtime().block_on(
            self.conn
                .download(repo, digest, want, Sink::Buffer(&mut out)),
        )?;
        Ok(out)
    }

    /// Probe `GET /v2/<repo>/referrers/<digest>`: `true` if the registry answers
    /// with an image index (it implements the referrers API), `false` on 404
    /// (and 400/405/501, which some registries use for unknown endpoints): then
    /// the `sha256-<hex>` fallback tag is the way to record referrers.
    pub fn referrers_api_supported(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self.referrers_api(repo, digest)?.is_some())
    }

    /// The referrers API's answer for `digest`: `Some(index)`, or `None` when
    /// the registry does not implement the API (see [`Self::referrers_api_supported`]).
    /// At most [`MAX_REFERRERS_SIZE`] bytes are read. Entries without a
    /// digest (Go's zero-value descriptor) are dropped, as oras-go does.
    pub fn referrers_api(&self, repo: &str, digest: &Digest) -> Result<Option<spec::Index>> {
        require_sha256(digest)?;
        let index = runtime().block_on(self.conn.referrers_api(repo, digest))?;
        Ok(index.map(spec::Index::<MaybeDigest>::into_known))
    }

    /// The manifests that refer to `digest` (their `subject`): from the
    /// referrers API when the registry has it, else from the distribution-spec
    /// fallback tag `sha256-<hex>` (an index), else none.
    pub fn referrers(&self, repo: &str, digest: &Digest) -> Result<Vec<Descriptor>> {
        if let Some(index) = self.referrers_api(repo, digest)? {
            return Ok(index.manifests);
        }
        let tag = format!("{}-{}", digest.algorithm(), digest.encoded());
        match self.get_manifest_raw(repo, &tag)? {
            None => Ok(Vec::new()),
            Some((_, raw)) => {
                let index: spec::Index<MaybeDigest> =
                    serde_json::from_slice(&raw).map_err(|e| {
                        Error::json(
                            format!(
                                "{}/{repo}:{tag} (referrers fallback index)",
                                self.registry()
                            ),
                            e,
                        )
                    })?;
                Ok(index.into_known().manifests)
            }
        }
    }
}

impl Conn {
    /// GET manifest `reference`: its bytes and Docker-Content-Digest, `None` on 404.
    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let url = &self.url(repo, &format!("manifests/{reference}"));
        let accept = &ACCEPT_MANIFESTS.join(", ");
        let ctx = &format!("GET manifest {repo}:{reference}");
        self.retrier(ctx)
            .run(|t| async move {
                let req = self.http.get(url).header(reqwest::header::ACCEPT, accept);
                let resp = self.send(&Scope::Pull(repo), &t, req).await?;
                match resp.status().as_u16() {
                    200 => {}
                    404 => return Ok(None),
                    _ => return Err(self.fatal_status(resp, ctx, &t).await),
                }
                let digest = resp
                    .headers()
                    .get("Docker-Content-Digest")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = read_limited(resp, &t, MAX_MANIFEST_SIZE, "the manifest", |m| {
                    self.err(ctx, m)
                })
                .await?;
                Ok(Some((body, digest)))
            })
            .await
    }

    /// HEAD blob `digest` in `repo`.
    async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let url = &self.url(repo, &format!("blobs/{digest}"));
        let ctx = &format!("HEAD blob {repo}@{digest}");
        self.retrier(ctx)
            .run(|t| async move {
                let resp = self
                    .send(&Scope::Pull(repo), &t, self.http.head(url))
                    .await?;
                match resp.status().as_u16() {
                    200 => Ok(true),
                    404 => Ok(false),
                    _ => Err(self.fatal_status(resp, ctx, &t).await),
                }
            })
            .await
    }

    async fn referrers_api(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<spec::Index<MaybeDigest>>> {
        let url = &self.url(repo, &format!("referrers/{digest}"));
        let ctx = &format!("GET {url}");
        self.retrier(ctx)
            .run(|t| async move {
                let req = self
                    .http
                    .get(url)
                    .header(reqwest::header::ACCEPT, spec::MEDIA_TYPE_OCI_INDEX);
                let resp = self.send(&Scope::Pull(repo), &t, req).await?;
                match resp.status().as_u16() {
                    200 => {}
                    400 | 404 | 405 | 501 => return Ok(None),
                    _ => return Err(self.fatal_status(resp, ctx, &t).await),
                }
                let body =
                    read_limited(resp, &t, MAX_REFERRERS_SIZE, "the referrers answer", |m| {
                        self.err(ctx, m)
                    })
                    .await?;
                let idx: std::result::Result<spec::Index<MaybeDigest>, _> =
                    serde_json::from_slice(&body);
                Ok(idx.ok().filter(|i| i.schema_version == 2))
            })
            .await
    }

    /// Download bytes `want.range` of blob `digest` (digest verified if
    /// `want.verify` and the whole blob is wanted), handing every chunk to
    /// `sink` (which returns `false` to stop early). Retries and resumes from
    /// the byte reached; never reads past the end of the range (for a whole
    /// blob: its descriptor's size, whatever the registry announces or sends).
    async fn download(
        &self,
        repo: &str,
        digest: &Digest,
        want: Want,
        sink: Sink<'_>,
    ) -> Result<()> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let Want {
            range,
            partial,
            verify,
        } = want;
        let ctx = if partial {
            format!(
                "GET blob {repo}@{digest} bytes {}..{}",
                range.start, range.end
            )
        } else {
            format!("GET blob {repo}@{digest}")
        };
        // In a mutex only so that each attempt's future can borrow it
        // mutably (a closure cannot lend its own captures to the future it
        // returns); the attempts run one after another, it is never contended.
        let dl = tokio::sync::Mutex::new(Download {
            range,
            partial,
            pos: 0,
            hasher: (verify && !partial).then(soci_digest::Sha256Hasher::new),
            sink,
        });
        let (url, ctx, dl_ref) = (&url, ctx.as_str(), &dl);
        self.retrier(ctx)
            .run(|t| async move {
                let dl = &mut *dl_ref.lock().await;
                match self.download_attempt(url, repo, ctx, dl, t).await {
                    // Say where the next attempt picks up, if this one delivered anything.
                    Err(Failure::Retry {
                        message,
                        retry_after,
                        fresh_token,
                    }) if dl.pos > 0 => Err(Failure::Retry {
                        message: format!("{message} (resuming from byte {})", dl.asked()),
                        retry_after,
                        fresh_token,
                    }),
                    done => done,
                }
            })
            .await?;
        self.check_download_digest(ctx, digest, dl.into_inner())
    }

    /// One attempt of [`Self::download`]: ask for the bytes from the one
    /// reached on, check where the answer starts, copy its body to the sink.
    async fn download_attempt(
        &self,
        url: &str,
        repo: &str,
        ctx: &str,
        dl: &mut Download<'_>,
        t: Try,
    ) -> std::result::Result<(), Failure> {
        let asked = dl.asked();
        let header = dl.range_header();
        let mut req = self.http.get(url);
        if let Some(h) = &header {
            req = req.header(reqwest::header::RANGE, h);
        }
        let resp = self.send(&Scope::Pull(repo), &t, req).await?;
        let (resp, start) = self.body_start(resp, header.is_some(), dl, ctx, &t).await?;
        if start > asked {
            return Err(Failure::Fatal(self.err(
                ctx,
                format!("asked for bytes from {asked}, the registry sent from {start}"),
            )));
        }
        self.copy_body(resp, &t, asked - start, dl, ctx).await
    }

    /// Where the body of a blob GET answer starts in the blob, from its
    /// status and `Content-Range`; a whole-blob answer whose `Content-Length`
    /// contradicts the descriptor's size is refused unread. `ranged`: we sent
    /// a `Range` header.
    async fn body_start(
        &self,
        resp: reqwest::Response,
        ranged: bool,
        dl: &Download<'_>,
        ctx: &str,
        t: &Try,
    ) -> std::result::Result<(reqwest::Response, u64), Failure> {
        let fatal = |m: &str| Failure::Fatal(self.err(ctx, m));
        let start = match resp.status().as_u16() {
            206 => match content_range(&resp) {
                Some((s, _)) => s,
                None if !ranged => 0,
                None => return Err(fatal("206 answer without a valid Content-Range")),
            },
            200 => {
                // The whole blob: a length that contradicts the descriptor is a lie.
                let len = dl.len();
                if let Some(l) = resp.content_length().filter(|l| !dl.partial && *l != len) {
                    return Err(Failure::Fatal(Error::SizeMismatch {
                        what: format!("{}: {ctx} (Content-Length)", self.registry),
                        expected: len,
                        actual: l,
                    }));
                }
                0
            }
            404 => return Err(fatal("blob not found (HTTP 404)")),
            _ => return Err(self.fatal_status(resp, ctx, t).await),
        };
        Ok((resp, start))
    }

    /// Copy `resp`'s body to the sink (the first `skip` bytes dropped: the
    /// registry started before the byte asked for), each chunk within the
    /// stall limit, never past the end of the range. A body that ends short
    /// is worth another attempt; one that runs past a whole blob's size is not.
    async fn copy_body(
        &self,
        mut resp: reqwest::Response,
        t: &Try,
        mut skip: u64,
        dl: &mut Download<'_>,
        ctx: &str,
    ) -> std::result::Result<(), Failure> {
        let len = dl.len();
        while let Some(mut b) = next_chunk(&mut resp, t, dl.pos).await? {
            if skip > 0 {
                let k = skip.min(b.len() as u64) as usize;
                let _ = b.split_to(k);
                skip -= k as u64;
            }
            let left = len - dl.pos;
            if b.len() as u64 > left {
                if dl.partial {
                    b.truncate(left as usize);
                } else {
                    return Err(Failure::Fatal(Error::SizeMismatch {
                        what: format!("{}: {ctx}", self.registry),
                        expected: len,
                        actual: dl.pos + b.len() as u64,
                    }));
                }
            }
            if !b.is_empty() {
                dl.pos += b.len() as u64;
                if let Some(h) = &mut dl.hasher {
                    h.update(&b);
                }
                if !dl.sink.put(b).await {
                    return Ok(()); // the reader went away
                }
            }
            if dl.partial && dl.pos == len {
                return Ok(());
            }
        }
        if dl.pos < len {
            return Err(Failure::retry(format!(
                "the body ended after {} of {len} bytes",
                dl.pos
            )));
        }
        Ok(())
    }

    /// After the last attempt: a whole blob read to its end must have the
    /// digest asked for (a download stopped early by its reader is not checked).
    fn check_download_digest(&self, ctx: &str, digest: &Digest, dl: Download<'_>) -> Result<()> {
        if dl.pos != dl.len() {
            return Ok(());
        }
        let Some(hasher) = dl.hasher else {
            return Ok(());
        };
        let actual = hasher.digest();
        if *digest != actual {
            return Err(Error::DigestMismatch {
                what: format!("{}: {ctx}", self.registry),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(())
    }
}

/// Where a blob download stands, carried from one attempt to the next.
struct Download<'a> {
    /// Bytes of the blob wanted.
    range: Range<u64>,
    /// A range of a blob, not the whole blob.
    partial: bool,
    /// Bytes delivered to `sink` so far.
    pos: u64,
    /// The whole blob's hash so far, when its digest is to be checked.
    hasher: Option<soci_digest::Sha256Hasher>,
    sink: Sink<'a>,
}

impl Download<'_> {
    fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    /// The blob offset the next attempt asks for.
    fn asked(&self) -> u64 {
        self.range.start + self.pos
    }

    /// The next attempt's `Range` header: none for a whole blob from its
    /// start, from the byte reached on when resuming one, and always the
    /// rest of the range for a partial read.
    fn range_header(&self) -> Option<String> {
        match (self.partial, self.pos) {
            (false, 0) => None,
            (false, p) => Some(format!("bytes={p}-")),
            (true, _) => Some(format!("bytes={}-{}", self.asked(), self.range.end - 1)),
        }
    }
}
