//! Pushes: blobs (whole or streamed), cross-repository mounts, manifests.
use super::bridge::runtime;
use super::retry::oci_retryable;
use super::{reg_err, RegistryClient};
use crate::error::{Error, Result};
use crate::reference::is_sha256_digest;
use crate::spec::{self, Descriptor};
use bytes::Bytes;
use oci_client::errors::OciDistributionError;
use std::io::Read;

/// 1 MiB chunks buffered between a blob's reader and its upload (uploads run
/// several at a time, see soci-image's publish).
const UPLOAD_CHANNEL_CHUNKS: usize = 4;

/// How one upload attempt failed.
/// How one upload attempt failed.
enum Attempt {
    /// Worth starting over (see [`oci_retryable`]).
    Retryable(Error),
    Final(Error),
}

impl RegistryClient {
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
        self.client_auth();
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
        self.client_auth();
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
}
