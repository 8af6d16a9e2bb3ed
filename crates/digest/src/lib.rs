//! soci-digest: the one place that computes OCI content digests.
//!
//! Both the zTOC crate (the digest of an encoded zTOC) and the OCI crate
//! (blobs, manifests) need `sha256:<hex>` digests, and neither depends on the
//! other; this small crate below both keeps one implementation of the digest
//! of a byte slice ([`sha256_digest`]), of a stream ([`Hashing`], which hashes
//! what is read from or written through it) and of chunks handed over one by
//! one ([`Sha256Hasher`]), and the one parser of digests that arrive as text
//! ([`Digest`]).
//!
//! ```
//! use std::io::Read;
//! let mut r = soci_digest::Hashing::new(&b"abc"[..]);
//! std::io::copy(&mut r, &mut std::io::sink()).unwrap();
//! assert_eq!(r.digest(), soci_digest::sha256_digest(b"abc"));
//! assert_eq!(r.size(), 3);
//! ```
use sha2::Digest as _;
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

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

/// Whether `digest` is `sha256:` and 64 lower-case hex digits (the only
/// digests this project computes and verifies); [`Digest::parse`] decides.
pub fn is_sha256_digest(digest: &str) -> bool {
    check(digest).is_ok() && digest.starts_with("sha256:")
}

fn format_sha256(sum: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sum))
}

/// A content digest, `algorithm:encoded`, checked once when it is parsed.
///
/// Every value of this type passed the OCI image-spec grammar
/// (`[a-z0-9]+([+._-][a-z0-9]+)*` `:` `[a-zA-Z0-9=_-]+`), and for the
/// registered algorithms the encoded part is lowercase hex of the right
/// length (sha256: 64, sha512: 128). So it holds no control character, space,
/// `/` or `..` component, and code that prints it or joins it into a path
/// needs no check of its own.
///
/// It is kept as the text it was parsed from: serde writes it back as that
/// same string, so JSON that holds digests keeps its exact bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    text: String,
    /// Byte offset of the `:` in `text`.
    colon: usize,
}

/// A digest that is not `algorithm:encoded` as the OCI image spec defines it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {shown}: {why}")]
pub struct InvalidDigest {
    /// The digest, escaped (`{:?}`) and shortened: it is untrusted text.
    pub shown: String,
    /// Which rule it breaks.
    pub why: &'static str,
}

/// `d` escaped and cut to a length fit for one error line.
pub fn escape_untrusted(d: &str) -> String {
    const MAX: usize = 100;
    let mut cut: String = d.chars().take(MAX).collect();
    if cut.len() < d.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

impl Digest {
    /// Parses `d` (see the type's rules); the error names the digest, escaped.
    pub fn parse(d: &str) -> Result<Digest, InvalidDigest> {
        let colon = check(d).map_err(|why| InvalidDigest {
            shown: escape_untrusted(d),
            why,
        })?;
        Ok(Digest {
            text: d.to_string(),
            colon,
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_sha256_text(sha256_digest(bytes))
    }

    /// Wraps text this crate formatted itself (`sha256:` and 64 hex digits).
    fn from_sha256_text(text: String) -> Digest {
        debug_assert!(is_sha256_digest(&text));
        Digest {
            text,
            colon: "sha256".len(),
        }
    }

    /// The whole digest, `algorithm:encoded`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part before the `:` (`sha256`).
    pub fn algorithm(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The part after the `:`; for sha256 and sha512 lowercase hex, and in
    /// every case safe as one file-name component.
    pub fn encoded(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// Whether the algorithm is sha256 (the only one this project computes).
    pub fn is_sha256(&self) -> bool {
        self.algorithm() == "sha256"
    }

    /// The hex of a sha256 digest, `None` for any other algorithm.
    pub fn hex(&self) -> Option<&str> {
        self.is_sha256().then(|| self.encoded())
    }

    /// The digest as an owned string.
    pub fn into_string(self) -> String {
        self.text
    }
}

/// The grammar check; on success the offset of the `:`.
fn check(d: &str) -> Result<usize, &'static str> {
    let Some((alg, enc)) = d.split_once(':') else {
        return Err("not algorithm:hex");
    };
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !alg_ok {
        return Err("invalid algorithm");
    }
    if enc.is_empty()
        || !enc
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'=' | b'_' | b'-'))
    {
        return Err("invalid encoded part");
    }
    let lower_hex = |n: usize| {
        enc.len() == n
            && enc
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    };
    match alg {
        "sha256" if !lower_hex(64) => Err("a sha256 digest is 64 lowercase hex digits"),
        "sha512" if !lower_hex(128) => Err("a sha512 digest is 128 lowercase hex digits"),
        _ => Ok(alg.len()),
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl TryFrom<&str> for Digest {
    type Error = InvalidDigest;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Digest::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let colon = check(&s).map_err(|why| InvalidDigest {
            shown: escape_untrusted(&s),
            why,
        })?;
        Ok(Digest { text: s, colon })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({:?})", self.text)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.text == other
    }
}

// The mirror images, so a comparison reads either way round.
impl PartialEq<Digest> for str {
    fn eq(&self, other: &Digest) -> bool {
        self == other.text
    }
}

impl PartialEq<Digest> for &str {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.text
    }
}

impl PartialEq<Digest> for String {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.text
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.text
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let s = String::deserialize(de)?;
        Digest::try_from(s).map_err(serde::de::Error::custom)
    }
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

    /// [`Sha256Hasher::digest`] as a [`Digest`].
    pub fn digest_value(&self) -> Digest {
        Digest::from_sha256_text(self.digest())
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

    /// [`Hashing::digest`] as a [`Digest`].
    pub fn digest_value(&self) -> Digest {
        self.hasher.digest_value()
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
        assert!(is_sha256_digest(ABC));
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

    #[test]
    fn a_digest_is_parsed_once_and_written_back_unchanged() {
        let d: Digest = ABC.parse().unwrap();
        assert_eq!(d, Digest::of(b"abc"));
        assert_eq!(d.to_string(), ABC);
        assert_eq!(d.as_str(), ABC);
        assert_eq!(d.algorithm(), "sha256");
        assert!(d.is_sha256());
        assert_eq!(d.hex(), Some(&ABC[7..]));
        assert_eq!(Digest::try_from(ABC).unwrap(), d);

        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);

        let r = Hashing::new(&b"abc"[..]);
        let mut r = r;
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.digest_value(), d);

        let long = format!("sha512:{}", "0".repeat(128));
        let d512 = Digest::parse(&long).unwrap();
        assert!(!d512.is_sha256());
        assert_eq!(d512.hex(), None);
        assert_eq!(d512.encoded(), "0".repeat(128));
        // Unregistered algorithms follow only the grammar.
        let other = "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8";
        assert_eq!(
            Digest::parse(other).unwrap().algorithm(),
            "multihash+base58"
        );
    }

    #[test]
    fn a_digest_that_breaks_the_grammar_is_refused_by_every_entry_point() {
        for (bad, why) in [
            ("", "not algorithm:hex"),
            ("sha256", "not algorithm:hex"),
            (":abc", "invalid algorithm"),
            ("SHA256:abc", "invalid algorithm"),
            ("sha256+:abc", "invalid algorithm"),
            ("sha256:", "invalid encoded part"),
            ("x:../../etc/passwd", "invalid encoded part"),
            ("x:a/b", "invalid encoded part"),
            ("x:a b", "invalid encoded part"),
            ("x:a\n", "invalid encoded part"),
            ("sha256:abc", "a sha256 digest is 64 lowercase hex digits"),
            ("sha512:abc", "a sha512 digest is 128 lowercase hex digits"),
        ] {
            let e = Digest::parse(bad).unwrap_err();
            assert_eq!(e.why, why, "{bad:?}");
            assert_eq!(e.shown, format!("{bad:?}"));
            assert_eq!(bad.parse::<Digest>().unwrap_err(), e);
            assert_eq!(Digest::try_from(bad.to_string()).unwrap_err(), e);
            let json = serde_json::to_string(bad).unwrap();
            let se = serde_json::from_str::<Digest>(&json)
                .unwrap_err()
                .to_string();
            assert!(se.contains(why), "{se}");
        }
        let upper = ABC.to_uppercase().replacen("SHA256", "sha256", 1);
        assert!(Digest::parse(&upper).is_err());
        // Untrusted text is escaped and cut in the message.
        let e = Digest::parse(&format!("x:\u{1b}[1m{}", "a".repeat(500))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("\\u{1b}"), "{msg}");
        assert!(msg.len() < 200, "{msg}");
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
