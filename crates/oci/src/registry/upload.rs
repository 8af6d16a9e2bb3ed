//! Writing to a registry: blob uploads (whole, or streamed from a reader
//! through a bounded channel: one POST for the session, one PUT whose body is
//! streamed, as containerd does), cross-repository mounts, manifest PUTs.
//! A failed upload is started over with a new session: idempotent.
use super::auth::Scope;
use super::bridge::runtime;
use super::retry::{Failure, Try};
use super::{Conn, RegistryClient};
use crate::blob::require_sha256;
use crate::error::{Error, Result};
use crate::reference::is_sha256_digest;
use crate::spec::{self, Descriptor};
use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use soci_digest::Digest;
use std::io::Read;

/// 1 MiB chunks buffered between a blob's reader and its upload (uploads run
/// several at a time, see soci-image's publish).
const UPLOAD_CHANNEL_CHUNKS: usize = 4;

impl RegistryClient {
    /// Push `bytes` as blob `digest` into `repo`, unless it is already there.
    /// Returns `true` if it was uploaded.
    pub fn push_blob(&self, repo: &str, bytes: &[u8], digest: &Digest) -> Result<bool> {
        let actual = spec::sha256_digest(bytes);
        if *digest != actual {
            return Err(Error::DigestMismatch {
                what: format!("blob to push to {}/{repo}", self.registry()),
                expected: digest.to_string(),
                actual,
            });
        }
        if self.blob_exists(repo, digest)? {
            return Ok(false);
        }
        let bytes = &Bytes::copy_from_slice(bytes);
        let conn = &self.conn;
        runtime().block_on(conn.retrier(format!("push blob {repo}@{digest}")).run(
            |t| async move {
                let body = reqwest::Body::from(bytes.clone());
                conn.upload_once(repo, digest, bytes.len() as u64, body, t)
                    .await
            },
        ))?;
        Ok(true)
    }

    /// Upload the blob `d` from `reader` into `repo` without holding it in
    /// memory (one PUT whose body is fed through a bounded channel), unless it is
    /// already there. The bytes are hashed on the way: a reader that does not
    /// produce `d`'s digest and size fails the upload. Returns `true` if uploaded.
    /// One attempt: see [`Self::push_blob_stream_reopening`] for retries.
    pub fn push_blob_stream(&self, repo: &str, d: &Descriptor, reader: impl Read) -> Result<bool> {
        let mut reader = Some(reader);
        self.push_stream_attempts(repo, d, false, || {
            Ok(reader.take().expect("one attempt, one reader"))
        })
    }

    /// [`Self::push_blob_stream`], started over from a fresh reader (`open` is
    /// called per attempt) when the upload fails in a way worth retrying
    /// (connection reset, 408/429/5xx, a stall; see [`super::RetryPolicy`]). A
    /// reader error or content that does not match `d` is final.
    pub fn push_blob_stream_reopening<R: Read>(
        &self,
        repo: &str,
        d: &Descriptor,
        open: impl FnMut() -> Result<R>,
    ) -> Result<bool> {
        self.push_stream_attempts(repo, d, true, open)
    }

    fn push_stream_attempts<R: Read>(
        &self,
        repo: &str,
        d: &Descriptor,
        retry: bool,
        mut open: impl FnMut() -> Result<R>,
    ) -> Result<bool> {
        require_sha256(&d.digest)?;
        if self.blob_exists(repo, &d.digest)? {
            return Ok(false);
        }
        if d.size == 0 {
            let mut bytes = Vec::new();
            open()?
                .read_to_end(&mut bytes)
                .map_err(|e| self.conn.err(format!("reading blob {}", d.digest), e))?;
            return self.push_blob(repo, &bytes, &d.digest);
        }
        let what = format!("blob {} pushed to {}/{repo}", d.digest, self.registry());
        let what = what.as_str();
        self.conn.retrier(what).run_blocking(|t| {
            let reader = open().map_err(Failure::Fatal)?;
            match self.push_stream_once(repo, d, reader, what, t) {
                Err(Failure::Retry { message, .. }) if !retry => {
                    Err(Failure::Fatal(self.conn.err(what, message)))
                }
                done => done,
            }
        })?;
        Ok(true)
    }

    /// One streamed upload of `d` (a new upload session), fed from `reader`
    /// on this thread; every chunk handed over within the stall limit, the
    /// whole upload within the overall deadline.
    fn push_stream_once(
        &self,
        repo: &str,
        d: &Descriptor,
        reader: impl Read,
        what: &str,
        t: Try,
    ) -> std::result::Result<(), Failure> {
        let final_err = |m: String| Failure::Fatal(self.conn.err(what, m));
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(UPLOAD_CHANNEL_CHUNKS);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let conn = self.conn.clone();
        let (repo_owned, digest) = (repo.to_string(), d.digest.clone());
        let size = d.size as u64;
        let deadline = tokio::time::Instant::from_std(t.deadline);
        let upload = runtime().spawn(async move {
            let body = reqwest::Body::wrap_stream(stream);
            tokio::time::timeout_at(
                deadline,
                conn.upload_once(&repo_owned, &digest, size, body, t),
            )
            .await
        });

        // Feed the upload from this thread; a failed send means it already ended.
        let send = |item: std::io::Result<Bytes>| {
            runtime()
                .block_on(async { tokio::time::timeout(t.wait(), tx.send(item)).await })
                .map_err(|_| ())
                .and_then(|r| r.map_err(|_| ()))
        };
        // What was read is what was sent (the loop stops at the first send
        // that fails), so its digest and length are the upload's.
        let mut reader = soci_digest::Hashing::new(reader);
        let mut buf = vec![0u8; 1 << 20];
        let mut read_error = None;
        let mut upload_ended = false;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if send(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        upload_ended = true;
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = send(Err(std::io::Error::other(format!("reading {what}: {e}"))));
                    read_error = Some(e);
                    break;
                }
            }
        }
        let (actual, sent) = (reader.digest(), reader.size());
        // Content that does not match aborts the upload instead of committing it.
        let mismatch = d.digest != actual || sent != size;
        if read_error.is_none() && !upload_ended && mismatch {
            let _ = send(Err(std::io::Error::other(format!(
                "{what}: content does not match"
            ))));
        }
        drop(tx);
        let result = match runtime().block_on(upload) {
            Err(e) => return Err(final_err(e.to_string())),
            Ok(Err(_elapsed)) => Err(Failure::retry("the overall timeout was reached")),
            Ok(Ok(r)) => r,
        };
        if let Some(e) = read_error {
            return Err(final_err(format!("reading the blob: {e}")));
        }
        if upload_ended {
            // The upload stopped taking bytes: its own error says why.
            return match result {
                Err(f) => Err(f),
                Ok(()) => Err(final_err(
                    "the upload ended before the blob was sent".into(),
                )),
            };
        }
        if d.digest != actual {
            return Err(Failure::Fatal(Error::DigestMismatch {
                what: what.into(),
                expected: d.digest.to_string(),
                actual,
            }));
        }
        if sent != size {
            return Err(Failure::Fatal(Error::SizeMismatch {
                what: what.into(),
                expected: size,
                actual: sent,
            }));
        }
        result
    }

    /// Make blob `digest` available in `repo`: nothing if present, a
    /// cross-repository mount from `from_repo` if the registry allows, else an
    /// upload of `bytes`.
    pub fn mount_or_push(
        &self,
        repo: &str,
        from_repo: &str,
        bytes: &[u8],
        digest: &Digest,
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
    pub fn try_mount(&self, repo: &str, from_repo: &str, digest: &Digest) -> Result<bool> {
        require_sha256(digest)?;
        let conn = &self.conn;
        let mounted: Result<bool> = runtime().block_on(async {
            let mut url =
                conn.parse_url(&conn.url(repo, "blobs/uploads/"))
                    .map_err(|f| match f {
                        Failure::Fatal(e) => e,
                        Failure::Retry { message, .. } => conn.err("mount", message),
                    })?;
            url.query_pairs_mut()
                .append_pair("mount", digest.as_str())
                .append_pair("from", from_repo);
            let scope = &Scope::Push {
                repo,
                also_pull: Some(from_repo),
            };
            let url = &url;
            conn.retrier(format!("mount blob {digest} from {from_repo} into {repo}"))
                .run(|t| async move {
                    let resp = conn.send(scope, &t, conn.http.post(url.clone())).await?;
                    // 201: mounted; 202: an upload session instead (left to expire).
                    Ok(resp.status().as_u16() == 201)
                })
                .await
        });
        match mounted {
            Ok(true) => self.blob_exists(repo, digest),
            _ => Ok(false),
        }
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
        let digest = Digest::of(raw);
        if is_sha256_digest(reference) && digest != reference {
            return Err(Error::DigestMismatch {
                what: format!("manifest to push to {}/{repo}", self.registry()),
                expected: reference.into(),
                actual: digest.to_string(),
            });
        }
        crate::reference::check_manifest_reference(reference)?;
        let ct = reqwest::header::HeaderValue::from_str(media_type).map_err(|e| {
            Error::InvalidReference {
                input: media_type.into(),
                reason: format!("not a valid media type: {e}"),
            }
        })?;
        let conn = &self.conn;
        let url = &conn.url(repo, &format!("manifests/{reference}"));
        let body = &Bytes::copy_from_slice(raw);
        let ctx = &format!("PUT manifest {repo}:{reference}");
        let ct = &ct;
        runtime().block_on(conn.retrier(ctx).run(|t| async move {
            let req = conn
                .http
                .put(url)
                .header(CONTENT_TYPE, ct.clone())
                .body(body.clone());
            let resp = conn
                .send(
                    &Scope::Push {
                        repo,
                        also_pull: None,
                    },
                    &t,
                    req,
                )
                .await?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(conn.fatal_status(resp, ctx, &t).await)
            }
        }))?;
        Ok(Descriptor::new(media_type, digest, raw.len() as i64))
    }
}

impl Conn {
    fn parse_url(&self, u: &str) -> std::result::Result<reqwest::Url, Failure> {
        reqwest::Url::parse(u)
            .map_err(|e| Failure::Fatal(self.err("building a URL", format!("{u:?}: {e}"))))
    }

    /// One upload of `size` bytes of `body` as blob `digest`: a new session
    /// (POST), then one PUT of the whole body.
    async fn upload_once(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        body: reqwest::Body,
        t: Try,
    ) -> std::result::Result<(), Failure> {
        let scope = Scope::Push {
            repo,
            also_pull: None,
        };
        let ctx = format!("blob {digest} pushed to {}/{repo}", self.registry);
        let start = self.url(repo, "blobs/uploads/");
        let resp = self
            .send(&scope, &t, self.http.post(&start).header(CONTENT_LENGTH, 0))
            .await?;
        if resp.status().as_u16() != 202 {
            return Err(self
                .fatal_status(resp, &format!("{ctx}: starting the upload"), &t)
                .await);
        }
        let Some(location) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
            return Err(Failure::Fatal(
                self.err(&ctx, "the upload session has no Location"),
            ));
        };
        let mut url = self
            .parse_url(&start)?
            .join(location)
            .map_err(|e| Failure::Fatal(self.err(&ctx, format!("Location {location:?}: {e}"))))?;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let req = self
            .http
            .put(url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(body);
        let resp = self.send(&scope, &t, req).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.fatal_status(resp, &ctx, &t).await)
        }
    }
}
