//! `soci mount`: real FUSE mounts of a fixture image (3 gzip layers and a
//! zstd top layer without a zTOC; whiteouts, an opaque directory, hardlinks,
//! symlinks, devices, xattrs; 64 KiB spans) served from a real registry (v2
//! and v1 indexes) and from an OCI layout, checked against the merged tree
//! that `fixture.py` computes on its own. Needs /dev/fuse and fusermount3 (package
//! fuse3); a test prints why and returns when /dev/fuse is missing.
mod faults;
pub(crate) mod harness;
mod memory;
mod reads;
mod tree;
