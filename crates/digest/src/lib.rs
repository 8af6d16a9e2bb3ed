//! soci-digest: the one place that computes OCI content digests.
//!
//! Both the zTOC crate (the digest of an encoded zTOC) and the OCI crate
//! (blobs, manifests) need `sha256:<hex>` digests, and neither depends on the
//! other; this small crate below both keeps one implementation of the digest
//! of a byte slice ([`sha256_digest`]), of a stream ([`Hashing`], which hashes
//! what is read from or written through it) and of chunks handed over one by
//! one ([`Sha256Hasher`]).
//!
//! ```
//! use std::io::Read;
//! let mut r = soci_digest::Hashing::new(&b"abc"[..]);
//! std::io::copy(&mut r, &mut std::io::sink()).unwrap();
//! assert_eq!(r.digest(), soci_digest::sha256_digest(b"abc"));
//! assert_eq!(r.size(), 3);
//! ```
use sha2::Digest as _;
use std::io::{self, Read, Write};

/// `"sha256:<hex>"` of `bytes`: the OCI digest of a blob held in memory.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format_sha256(&sha2::Sha256::digest(bytes))
}

/// `"sha256:<hex>"` and length of everything `r` yields, read to its end.
pub fn sha256_digest_of_reader(r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Hashing::new(r);
    io::copy(&mut h, &mut io::sink())?;
    Ok((h.digest(), h.size()))
}

/// The hex part of `digest` when it is `sha256:` and 64 lower-case hex digits
/// (the only digests this project computes and verifies), else `None`.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    digest.strip_prefix("sha256:").filter(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// Whether `digest` is `sha256:` and 64 lower-case hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    sha256_hex(digest).is_some()
}

fn format_sha256(sum: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sum))
}

/// A running sha256 over chunks handed to it, for code that holds chunks
/// rather than a reader or writer (an async download loop).
#[derive(Clone, Default)]
pub struct Sha256Hasher {
    inner: sha2::Sha256,
    size: u64,
}

impl Sha256Hasher {
    /// A hasher that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` to what has been hashed.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// `"sha256:<hex>"` of everything hashed so far (more may follow).
    pub fn digest(&self) -> String {
        format_sha256(&self.inner.clone().finalize())
    }

    /// Bytes hashed so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// A reader or writer that computes the sha256 and the length of what passes
/// through it: the bytes a read returns, or the bytes the inner writer took.
pub struct Hashing<T> {
    inner: T,
    hasher: Sha256Hasher,
}

impl<T> Hashing<T> {
    /// Hashes what is read from or written to `inner`.
    pub fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: Sha256Hasher::new(),
        }
    }

    /// `"sha256:<hex>"` of the bytes read or written so far.
    pub fn digest(&self) -> String {
        self.hasher.digest()
    }

    /// Bytes read or written so far.
    pub fn size(&self) -> u64 {
        self.hasher.size()
    }

    /// The inner reader or writer.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The inner reader or writer (what is done through this is not hashed).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Gives back the inner reader or writer.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // sha256 of "abc", FIPS 180-2 appendix B.1.
    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn every_way_gives_the_same_digest() {
        assert_eq!(sha256_digest(b"abc"), ABC);
        assert_eq!(
            sha256_digest_of_reader(&b"abc"[..]).unwrap(),
            (ABC.to_string(), 3)
        );

        let mut w = Hashing::new(Vec::new());
        w.write_all(b"a").unwrap();
        w.write_all(b"bc").unwrap();
        assert_eq!((w.digest(), w.size()), (ABC.to_string(), 3));
        assert_eq!(w.into_inner(), b"abc");

        let mut h = Sha256Hasher::new();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!((h.digest(), h.size()), (ABC.to_string(), 3));
    }

    #[test]
    fn only_lower_case_sha256_of_the_right_length_is_well_formed() {
        assert_eq!(sha256_hex(ABC), Some(&ABC["sha256:".len()..]));
        for bad in [
            ABC.replace("sha256:", "sha512:"),
            ABC.to_uppercase(),
            ABC[..ABC.len() - 1].to_string(),
            format!("{ABC}0"),
            format!("sha256:{}/../etc", &ABC[7..60]),
            ABC[7..].to_string(),
        ] {
            assert!(!is_sha256_digest(&bad), "{bad}");
        }
    }

    /// A writer that takes at most two bytes a call.
    struct Short(Vec<u8>);
    impl Write for Short {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(2);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_short_write_hashes_only_what_the_writer_took() {
        let mut w = Hashing::new(Short(Vec::new()));
        assert_eq!(w.write(b"abc").unwrap(), 2);
        w.write_all(b"c").unwrap();
        assert_eq!(w.digest(), ABC);
        assert_eq!(w.into_inner().0, b"abc");
    }
}
