//! Checks shared by every [`ImageSource`](crate::ImageSource) that reads blobs
//! whole (registry, OCI layout, archives): the in-memory size limit, digest
//! and size verification.
//!
//! They live apart from `source.rs` so that the sources can use them without
//! importing the module that opens them.
use crate::error::{Error, Result};
use crate::reference::ImageRef;
use crate::spec::{self, Descriptor};
use soci_digest::Digest;

/// Parses a digest that arrives as text (a descriptor, a flag, a registry
/// answer) into a sha256 [`Digest`], the only algorithm blobs are verified and
/// stored with: a malformed digest is [`Error::InvalidDigest`], a well-formed
/// one of another algorithm [`Error::UnsupportedDigest`].
pub fn parse_sha256(digest: &str) -> Result<Digest> {
    let d = Digest::parse(digest).map_err(Error::InvalidDigest)?;
    if !d.is_sha256() {
        return Err(Error::UnsupportedDigest {
            digest: digest.into(),
        });
    }
    Ok(d)
}

/// Refuses a digest of another algorithm than sha256 ([`Error::UnsupportedDigest`]):
/// the [`Digest`] of a descriptor or caller is well-formed, but sha256 is the
/// only algorithm blobs are verified, fetched and stored with.
pub(crate) fn require_sha256(d: &Digest) -> Result<()> {
    if d.is_sha256() {
        Ok(())
    } else {
        Err(Error::UnsupportedDigest {
            digest: d.to_string(),
        })
    }
}

/// Blobs read whole into memory (manifests, configs) may not be larger than this.
pub(crate) const MAX_IN_MEMORY_BLOB: u64 = 16 << 20;

/// Check `bytes` against descriptor `d` (digest and, when known, size).
pub(crate) fn verify_blob(what: &str, d: &Descriptor, bytes: &[u8]) -> Result<()> {
    require_sha256(&d.digest)?;
    let actual = spec::sha256_digest(bytes);
    if d.digest != actual {
        return Err(Error::DigestMismatch {
            what: what.into(),
            expected: d.digest.to_string(),
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
            digest: d.digest.to_string(),
            size: d.size as u64,
            limit: MAX_IN_MEMORY_BLOB,
        });
    }
    Ok(())
}
