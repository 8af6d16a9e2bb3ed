//! Fuzz targets of soci-rs; see `targets.rs` and `fuzz/README.md`.
pub mod targets;
