//! Reading files back out of a layer through its zTOC.
use crate::model::{CompressionAlgorithm, EntryType, TocEntry, Ztoc};
use soci_zinfo::{GzipZinfo, TarZinfo, Zinfo, ZinfoError};
use std::io::{Read, Seek, SeekFrom};

/// Deflate's largest expansion (1032:1), rounded up.
const MAX_DEFLATE_RATIO: u64 = 1040;

/// Why a file could not be read out of a layer through its zTOC.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// No entry has that name.
    #[error("no file named {0:?} in the zTOC")]
    NotFound(String),
    /// The entry has no contents of its own (a directory, symlink, device...).
    #[error("{name:?} is a {kind}, not a regular file")]
    NotRegular {
        /// Entry name as in the zTOC.
        name: String,
        /// Its tar entry type, e.g. `dir`.
        kind: String,
    },
    /// A hardlink whose target is missing from the zTOC.
    #[error("hardlink {name:?} points to {target:?}, which is not in the zTOC")]
    DanglingHardlink {
        /// The hardlink's name.
        name: String,
        /// The name it links to.
        target: String,
    },
    /// The entry's offsets or size do not fit the layer (a corrupt zTOC).
    #[error("the zTOC's entry for {name:?} is invalid: {why}")]
    BadEntry {
        /// Entry name as in the zTOC.
        name: String,
        /// Which bound it breaks.
        why: String,
    },
    /// The zTOC names a compression algorithm this crate cannot read.
    #[error("unsupported compression algorithm {0} in the zTOC")]
    UnsupportedAlgorithm(String),
    /// The zinfo blob or the compressed data is corrupt.
    #[error("{0}")]
    Zinfo(#[from] ZinfoError),
    /// Reading the layer failed.
    #[error("reading the layer failed: {0}")]
    Io(#[from] std::io::Error),
    /// The layer given is not the blob the zTOC was built from.
    #[error("the layer is {actual} bytes but the zTOC was built from a {expected}-byte blob")]
    WrongLayerSize {
        /// Size recorded in the zTOC.
        expected: i64,
        /// Size of the layer given.
        actual: u64,
    },
}

impl Ztoc {
    /// Decodes the zinfo blob (`checkpoints`) according to the compression algorithm.
    pub fn zinfo(&self) -> Result<Zinfo, ZinfoError> {
        let blob = &self.compression_info.checkpoints;
        match self.compression_info.compression_algorithm {
            CompressionAlgorithm::Gzip => Ok(Zinfo::Gzip(GzipZinfo::from_blob(blob)?)),
            CompressionAlgorithm::Uncompressed => Ok(Zinfo::Tar(TarZinfo::from_blob(blob)?)),
            CompressionAlgorithm::Other(v) => Err(ZinfoError::InvalidArgument(format!(
                "unsupported compression algorithm {v}"
            ))),
        }
    }

    /// Finds an entry by its exact raw name; a hardlink resolves to its target.
    pub fn find_regular(&self, name: &[u8]) -> Result<&TocEntry, ExtractError> {
        let lossy = || String::from_utf8_lossy(name).into_owned();
        let entry = self
            .toc
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ExtractError::NotFound(lossy()))?;
        let entry = if entry.entry_type == EntryType::Hardlink {
            self.toc
                .entries
                .iter()
                .find(|e| e.name == entry.linkname)
                .ok_or_else(|| ExtractError::DanglingHardlink {
                    name: lossy(),
                    target: String::from_utf8_lossy(&entry.linkname).into_owned(),
                })?
        } else {
            entry
        };
        if entry.entry_type != EntryType::Reg {
            return Err(ExtractError::NotRegular {
                name: lossy(),
                kind: entry.entry_type.to_string(),
            });
        }
        Ok(entry)
    }

    /// Reads `entry`'s data from the layer blob: for gzip, decompression starts at
    /// the checkpoint of the span holding the first byte, so only the spans that
    /// hold the file are read and inflated.
    pub fn extract_entry<R: Read + Seek>(
        &self,
        zinfo: &Zinfo,
        entry: &TocEntry,
        blob: &mut R,
    ) -> Result<Vec<u8>, ExtractError> {
        let name = || entry.name_lossy().into_owned();
        if entry.uncompressed_offset < 0 || entry.uncompressed_size < 0 {
            return Err(ExtractError::BadEntry {
                name: name(),
                why: "negative offset or size".into(),
            });
        }
        let (off, len) = (
            entry.uncompressed_offset as u64,
            entry.uncompressed_size as u64,
        );
        if off
            .checked_add(len)
            .is_none_or(|end| end > self.uncompressed_archive_size.max(0) as u64)
        {
            return Err(ExtractError::BadEntry {
                name: name(),
                why: format!(
                    "data [{off}, +{len}) ends past the archive's {} bytes",
                    self.uncompressed_archive_size
                ),
            });
        }
        let len = usize::try_from(len).map_err(|_| ExtractError::BadEntry {
            name: name(),
            why: "too large".into(),
        })?;
        // Bound the output buffer by what the blob can hold before allocating it:
        // a corrupt zTOC must not make us allocate its claimed size.
        let blob_len = blob.seek(SeekFrom::End(0))?;
        let most = match zinfo {
            Zinfo::Tar(_) => blob_len.saturating_sub(off),
            // Deflate expands at most ~1032:1.
            Zinfo::Gzip(_) => blob_len.saturating_mul(MAX_DEFLATE_RATIO),
        };
        if len as u64 > most {
            return Err(ExtractError::BadEntry {
                name: name(),
                why: format!("data [{off}, +{len}) cannot come from a {blob_len}-byte layer"),
            });
        }
        match zinfo {
            Zinfo::Gzip(gz) => {
                let data = soci_zinfo::extract_range(gz, blob, off, len)?;
                if data.len() != len {
                    return Err(ExtractError::BadEntry {
                        name: name(),
                        why: format!("the layer ended after {} of {len} bytes", data.len()),
                    });
                }
                Ok(data)
            }
            Zinfo::Tar(_) => {
                blob.seek(SeekFrom::Start(off))?;
                let mut data = vec![0u8; len];
                blob.read_exact(&mut data)?;
                Ok(data)
            }
        }
    }
}
