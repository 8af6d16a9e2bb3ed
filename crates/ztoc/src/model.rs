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
    pub version: String,
    pub build_tool_identifier: String,
    /// Size of the layer blob as stored in the registry (compressed bytes).
    pub compressed_archive_size: i64,
    /// Tar position at which Go's `archive/tar` reported end of archive.
    pub uncompressed_archive_size: i64,
    pub toc: Toc,
    pub compression_info: CompressionInfo,
}

/// The file table: one entry per tar entry, in archive order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toc {
    pub entries: Vec<TocEntry>,
}

/// One tar entry (`FileMetadata` in the schema).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TocEntry {
    /// Raw name as Go's `archive/tar` reports it (no normalisation).
    pub name: Vec<u8>,
    /// `reg`, `dir`, `symlink`, `hardlink`, `char`, `block` or `fifo` when we build;
    /// whatever the blob says when we decode.
    pub entry_type: String,
    /// Offset of the entry's data in the uncompressed tar (just after its headers).
    pub uncompressed_offset: i64,
    /// The header's (or PAX) `size`, verbatim.
    pub uncompressed_size: i64,
    pub linkname: Vec<u8>,
    pub mode: i64,
    pub uid: u32,
    pub gid: u32,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// Go `time.Time.MarshalText` of the modification time, in UTC (`...Z`); empty
    /// when Go would fail to marshal it (year outside 0..=9999).
    pub mod_time: String,
    pub devmajor: i64,
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

    /// Offset of the tar header that precedes this entry's data, as readers of the
    /// zTOC derive it (not stored in the blob).
    pub fn is_regular(&self) -> bool {
        self.entry_type == "reg"
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

/// `CompressionAlgorithm` enum of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionAlgorithm {
    #[default]
    Gzip,
    Uncompressed,
    /// A value this version does not know (kept so decode/encode round-trips).
    Other(i8),
}

impl CompressionAlgorithm {
    pub fn to_i8(self) -> i8 {
        match self {
            CompressionAlgorithm::Gzip => 1,
            CompressionAlgorithm::Uncompressed => 2,
            CompressionAlgorithm::Other(v) => v,
        }
    }
    pub fn from_i8(v: i8) -> Self {
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
    pub compression_algorithm: CompressionAlgorithm,
    pub max_span_id: i32,
    /// `sha256:<hex>` of the compressed bytes of each span.
    pub span_digests: Vec<String>,
    /// The zinfo blob: gzip checkpoints (v2/v1 layout) or a tar zinfo flatbuffer.
    pub checkpoints: Vec<u8>,
}
