//! soci-ztoc: the zTOC of a layer — model, Go-compatible tar walk, flatbuffers
//! codec, and the one-pass builder that joins the checkpoint engine and the tar walk.
//!
//! ```no_run
//! use soci_ztoc::build::{build_ztoc, BuildOptions, LayerCompression, NoProgress};
//! let blob = std::fs::File::open("layer.tar.gz").unwrap();
//! let built = build_ztoc(blob, &BuildOptions::new(LayerCompression::Gzip), &mut NoProgress).unwrap();
//! let bytes = soci_ztoc::codec::encode(&built.ztoc);
//! # let _ = bytes;
//! ```
pub mod build;
pub mod codec;
pub mod extract;
mod gotime;
pub mod model;
pub mod tar_walk;
mod twin_sha;
pub use gotime::civil_from_days;
pub use model::*;
// The zinfo types that this crate's API hands out (`Ztoc::zinfo`, the `Zinfo`
// variants of `BuildError` and `ExtractError`), so a user needs no second crate.
pub use soci_zinfo::{Checkpoint, GzipZinfo, TarZinfo, Zinfo, ZinfoError};
