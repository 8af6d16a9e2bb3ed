//! The zTOC data model: what a SOCI zTOC says about one layer.
//!
//! Field names follow the flatbuffers schema of the reference (`ztoc/fbs/ztoc.fbs`).
//! Byte strings (`name`, `linkname`, `uname`, `gname`, PAX records) are kept as raw
//! bytes: Go strings are byte strings and tar names need not be UTF-8, so anything
//! lossy here would change the zTOC digest.

/// `Ztoc.version` written by the reference and by us.
pub const ZTOC_VERSION: &str = "0.9";

/// Key prefix of the PAX records that carry extended attributes.
const XATTR_PAX_PREFIX: &[u8] = b"SCHILY.xattr.";

/// A whole zTOC: the table of contents of one layer plus its zinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ztoc {
    /// zTOC format version, e.g. `0.9`.
    pub version: String,
    /// Names the tool that built it; part of the encoded bytes and so of the digest.
    pub build_tool_identifier: String,
    /// Size of the layer blob as stored in the registry (compressed bytes).
    pub compressed_archive_size: i64,
    /// Tar position at which Go's `archive/tar` reported end of archive.
    pub uncompressed_archive_size: i64,
    /// The file table.
    pub toc: Toc,
    /// Span geometry and checkpoints for random access.
    pub compression_info: CompressionInfo,
}

/// The file table: one entry per tar entry, in archive order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toc {
    /// The entries, in the order they appear in the tar.
    pub entries: Vec<TocEntry>,
}

/// One tar entry (`FileMetadata` in the schema).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TocEntry {
    /// Raw name as Go's `archive/tar` reports it (no normalisation).
    pub name: Vec<u8>,
    /// One of the seven types we build; whatever the blob says when we decode.
    pub entry_type: EntryType,
    /// Offset of the entry's data in the uncompressed tar (just after its headers).
    pub uncompressed_offset: i64,
    /// The header's (or PAX) `size`, verbatim.
    pub uncompressed_size: i64,
    /// Target of a symlink or hardlink, raw; empty for other types.
    pub linkname: Vec<u8>,
    /// Permission and mode bits from the header, verbatim.
    pub mode: i64,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Owner user name, raw.
    pub uname: Vec<u8>,
    /// Owner group name, raw.
    pub gname: Vec<u8>,
    /// Go `time.Time.MarshalText` of the modification time, in UTC (`...Z`); empty
    /// when Go would fail to marshal it (year outside 0..=9999).
    pub mod_time: String,
    /// Major number of a character or block device; 0 otherwise.
    pub devmajor: i64,
    /// Minor number of a character or block device; 0 otherwise.
    pub devminor: i64,
    /// All PAX records of the entry, sorted by key (bytewise), as the reference writes
    /// them into the `xattrs` vector.
    pub pax_records: Vec<(Vec<u8>, Vec<u8>)>,
}

impl TocEntry {
    /// The name for display (lossy UTF-8).
    pub fn name_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// Extended attributes proper: the `SCHILY.xattr.*` PAX records, prefix stripped.
    pub fn xattrs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pax_records
            .iter()
            .filter(|(k, _)| k.starts_with(XATTR_PAX_PREFIX))
            .map(|(k, v)| (&k[XATTR_PAX_PREFIX.len()..], v.as_slice()))
    }

    /// Whether the entry has at least one extended attribute (a `SCHILY.xattr.*`
    /// PAX record): what the `--optimizations xattr` rule looks at.
    pub fn has_xattrs(&self) -> bool {
        self.xattrs().next().is_some()
    }
}

/// The type of a tar entry, as the zTOC names it (the `type` string of the
/// schema's `FileMetadata`, which the reference fills from Go's tar typeflag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// `reg`: a regular file (typeflag `0`, or NUL in old tars).
    Reg,
    /// `hardlink` (typeflag `1`): `linkname` names the file it shares data with.
    Hardlink,
    /// `symlink` (typeflag `2`).
    Symlink,
    /// `char`: a character device (typeflag `3`).
    Char,
    /// `block`: a block device (typeflag `4`).
    Block,
    /// `dir` (typeflag `5`).
    Dir,
    /// `fifo` (typeflag `6`).
    Fifo,
    /// A name this version does not know, kept verbatim so that a decoded zTOC
    /// encodes back to the same bytes (the empty string included).
    Other(String),
}

impl EntryType {
    /// The name written into the zTOC.
    pub fn as_str(&self) -> &str {
        match self {
            EntryType::Reg => "reg",
            EntryType::Hardlink => "hardlink",
            EntryType::Symlink => "symlink",
            EntryType::Char => "char",
            EntryType::Block => "block",
            EntryType::Dir => "dir",
            EntryType::Fifo => "fifo",
            EntryType::Other(s) => s,
        }
    }
}

impl From<&str> for EntryType {
    fn from(s: &str) -> Self {
        match s {
            "reg" => EntryType::Reg,
            "hardlink" => EntryType::Hardlink,
            "symlink" => EntryType::Symlink,
            "char" => EntryType::Char,
            "block" => EntryType::Block,
            "dir" => EntryType::Dir,
            "fifo" => EntryType::Fifo,
            other => EntryType::Other(other.to_string()),
        }
    }
}

impl From<String> for EntryType {
    fn from(s: String) -> Self {
        EntryType::from(s.as_str())
    }
}

/// An entry built by hand starts with no type at all (the empty string), as a
/// zeroed `FileMetadata` would.
impl Default for EntryType {
    fn default() -> Self {
        EntryType::Other(String::new())
    }
}

impl std::fmt::Display for EntryType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares the name as written in the zTOC (handy where the name comes from
/// outside, e.g. JSON or a test's expectation).
impl PartialEq<&str> for EntryType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// `CompressionAlgorithm` enum of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionAlgorithm {
    /// Gzip layer; `checkpoints` holds deflate checkpoints (the schema's 1).
    #[default]
    Gzip,
    /// Uncompressed tar layer; `checkpoints` holds a tar zinfo (the schema's 2).
    Uncompressed,
    /// A value this version does not know (kept so decode/encode round-trips).
    Other(i8),
}

impl CompressionAlgorithm {
    pub(crate) fn to_i8(self) -> i8 {
        match self {
            CompressionAlgorithm::Gzip => 1,
            CompressionAlgorithm::Uncompressed => 2,
            CompressionAlgorithm::Other(v) => v,
        }
    }
    pub(crate) fn from_i8(v: i8) -> Self {
        match v {
            1 => CompressionAlgorithm::Gzip,
            2 => CompressionAlgorithm::Uncompressed,
            v => CompressionAlgorithm::Other(v),
        }
    }
    /// Lower-case name as the reference prints it.
    pub fn name(self) -> String {
        match self {
            CompressionAlgorithm::Gzip => "gzip".into(),
            CompressionAlgorithm::Uncompressed => "uncompressed".into(),
            CompressionAlgorithm::Other(v) => format!("unknown({v})"),
        }
    }
}

/// The zinfo part of a zTOC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompressionInfo {
    /// How the layer is compressed, which decides how `checkpoints` is read.
    pub compression_algorithm: CompressionAlgorithm,
    /// Index of the last span (number of spans minus one).
    pub max_span_id: i32,
    /// `sha256:<hex>` of the compressed bytes of each span.
    pub span_digests: Vec<String>,
    /// The zinfo blob: gzip checkpoints (v2/v1 layout) or a tar zinfo flatbuffer.
    pub checkpoints: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::EntryType;

    #[test]
    fn entry_type_names_round_trip() {
        for name in ["reg", "hardlink", "symlink", "char", "block", "dir", "fifo"] {
            let t = EntryType::from(name);
            assert!(!matches!(t, EntryType::Other(_)), "{name} is a known type");
            assert_eq!(t.as_str(), name);
        }
        // Unknown names (and none at all) are kept as written, so a decoded
        // zTOC encodes back to the same bytes.
        for name in ["", "sparse", "REG"] {
            assert_eq!(EntryType::from(name), EntryType::Other(name.into()));
            assert_eq!(EntryType::from(name).as_str(), name);
        }
        assert_eq!(EntryType::default().as_str(), "");
    }
}
