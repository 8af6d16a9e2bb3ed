//! soci-oci: everything about OCI images that SOCI needs, and nothing about zTOCs.
pub mod spec;
