//! Checks shared by every [`ImageSource`](crate::ImageSource) that reads blobs
//! whole (registry, OCI layout, archives): the in-memory size limit, digest
//! and size verification, and a streaming sha256.
//!
//! They live apart from `source.rs` so that the sources can use them without
//! importing the module that opens them.
use crate::error::{Error, Result};
use crate::reference::ImageRef;
use crate::spec::{self, Descriptor};
use std::io::Read;

/// Blobs read whole into memory (manifests, configs) may not be larger than this.
pub(crate) const MAX_IN_MEMORY_BLOB: u64 = 16 << 20;

/// Streaming sha256 of what passes through.
pub(crate) fn sha256_hex_of(mut r: impl Read) -> std::io::Result<(String, u64)> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((format!("sha256:{}", hex::encode(h.finalize())), n))
}

/// Check `bytes` against descriptor `d` (digest and, when known, size).
pub(crate) fn verify_blob(what: &str, d: &Descriptor, bytes: &[u8]) -> Result<()> {
    if !crate::reference::is_sha256_digest(&d.digest) {
        return Err(Error::UnsupportedDigest {
            digest: d.digest.clone(),
        });
    }
    let actual = spec::sha256_digest(bytes);
    if actual != d.digest {
        return Err(Error::DigestMismatch {
            what: what.into(),
            expected: d.digest.clone(),
            actual,
        });
    }
    if d.size > 0 && d.size as u64 != bytes.len() as u64 {
        return Err(Error::SizeMismatch {
            what: what.into(),
            expected: d.size as u64,
            actual: bytes.len() as u64,
        });
    }
    Ok(())
}

/// Refuse a blob too large to read whole into memory.
pub(crate) fn check_small(image: &ImageRef, d: &Descriptor) -> Result<()> {
    if d.size as u64 > MAX_IN_MEMORY_BLOB {
        return Err(Error::BlobTooLarge {
            image: image.to_string(),
            digest: d.digest.clone(),
            size: d.size as u64,
            limit: MAX_IN_MEMORY_BLOB,
        });
    }
    Ok(())
}
