//! Test support for soci-rs: a real registry on 127.0.0.1 (Debian's
//! `docker-registry`), skopeo helpers, and deterministic image fixtures (OCI
//! layouts, single- and multi-platform, and `docker save` archives).
//!
//! Nothing here is mocked: tests that need a registry fail (they are not
//! skipped) when `docker-registry` or `skopeo` is missing.
pub mod fixture;
pub mod hostile;
pub mod referrers;
pub mod registry;
pub mod skopeo;

pub use fixture::{
    make_docker_archive, make_docker_archive_oci, make_layered_layout, make_multiplatform_layout,
    make_oci_layout, make_oci_layout_opts, Blob, Fixture, FixtureImage,
};
pub use hostile::{Answer, HostileServer};
pub use referrers::ReferrersServer;
pub use registry::{Registry, RegistryConfig};
pub use skopeo::{skopeo, skopeo_copy, skopeo_copy_all, skopeo_inspect_raw};
