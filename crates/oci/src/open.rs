//! [`open_source`]: the one place that knows every kind of [`ImageSource`].
//!
//! It sits above the sources it picks from (registry, OCI layout, archives),
//! which themselves only know the trait in `source.rs`.
use crate::archive::DockerArchiveSource;
use crate::error::Result;
use crate::layout::OciLayoutSource;
use crate::oci_archive::OciArchiveSource;
use crate::reference::ImageRef;
use crate::registry::{RegistryOptions, RegistrySource};
use crate::source::ImageSource;

/// Open any [`ImageRef`] with the registry options used for registry references.
pub fn open_source(r: &ImageRef, opts: &RegistryOptions) -> Result<Box<dyn ImageSource>> {
    Ok(match r {
        ImageRef::Registry { .. } => Box::new(RegistrySource::new(r.clone(), opts)?),
        ImageRef::OciLayout { .. } => Box::new(OciLayoutSource::open(r.clone())?),
        ImageRef::DockerArchive { .. } => Box::new(DockerArchiveSource::open(r.clone())?),
        ImageRef::OciArchive { .. } => Box::new(OciArchiveSource::open(r.clone())?),
    })
}
