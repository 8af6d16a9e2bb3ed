//! soci-oci: everything about OCI images that SOCI needs, and nothing about zTOCs.
//!
//! - [`ImageRef`]: where an image is (`docker://…`, `oci:DIR[:TAG]`,
//!   `oci-archive:FILE[:TAG]`, `docker-archive:FILE`).
//! - [`Platform`]: containerd-compatible parsing, normalisation and strict matching.
//! - [`ImageSource`]: read an image's root, small blobs, streamed layers and byte
//!   ranges, from a registry ([`RegistrySource`]), an OCI layout
//!   ([`OciLayoutSource`]) or a `docker save` archive ([`DockerArchiveSource`]);
//!   [`open_source`] picks the right one.
//! - [`select_manifests`]: the platform image manifests to build SOCI indexes for.
//! - Writing: [`RegistryClient`] (blobs, byte-exact manifests, referrers probe)
//!   and [`OciLayoutWriter`] (atomic blobs and `index.json`).
//! - [`spec`]: OCI JSON types serialised exactly like Go.
//!
//! ```no_run
//! use soci_oci::{open_source, select_manifests, ImageRef, PlatformChoice, RegistryOptions};
//! let r: ImageRef = "oci:/tmp/layout:v1".parse()?;
//! let src = open_source(&r, &RegistryOptions::default())?;
//! for m in select_manifests(&*src, &PlatformChoice::All)? {
//!     for layer in &m.manifest.layers {
//!         let mut stream = src.open_blob(layer)?;
//!         std::io::copy(&mut stream, &mut std::io::sink()).unwrap();
//!     }
//! }
//! # Ok::<(), soci_oci::Error>(())
//! ```
pub mod archive;
mod blob;
pub mod chunks;
pub mod error;
pub mod fsio;
pub mod layout;
pub mod oci_archive;
mod open;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod source;
pub mod spec;

pub use archive::DockerArchiveSource;
pub use blob::parse_sha256;
pub use chunks::ChannelReader;
pub use error::{error_chain, Error, Result};
pub use layout::{OciLayoutSource, OciLayoutWriter};
pub use oci_archive::{OciArchiveSource, OciArchiveWriter};
pub use open::open_source;
pub use platform::Platform;
pub use reference::ImageRef;
pub use registry::{Credentials, RegistryClient, RegistryOptions, RegistrySource};
pub use soci_digest::Digest;
pub use source::{select_manifests, ImageManifest, ImageSource, PlatformChoice};
pub use spec::ANNOTATION_REF_NAME;
