//! An image in a registry as an [`ImageSource`].
use super::{reg_err, RegistryClient, RegistryOptions};
use crate::blob::{check_small, verify_blob, MAX_IN_MEMORY_BLOB};
use crate::error::{Error, Result};
use crate::reference::ImageRef;
use crate::source::ImageSource;
use crate::spec::Descriptor;
use soci_digest::Digest;
use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

/// An image in a registry, read as an [`ImageSource`].
pub struct RegistrySource {
    reference: ImageRef,
    repository: String,
    client: Arc<RegistryClient>,
}

impl RegistrySource {
    /// A source for the registry image `reference`, with a client of its own
    /// built from `opts`; fails if `reference` is not a registry reference.
    pub fn new(reference: ImageRef, opts: &RegistryOptions) -> Result<Self> {
        let ImageRef::Registry { registry, .. } = &reference else {
            return Err(Error::invalid_reference(
                &reference,
                "not a registry reference",
            ));
        };
        let client = RegistryClient::new(registry, opts)?;
        Self::with_client(reference, client)
    }

    /// Share a client (and its token cache) between sources of the same registry.
    pub fn with_client(reference: ImageRef, client: Arc<RegistryClient>) -> Result<Self> {
        let ImageRef::Registry { repository, .. } = &reference else {
            return Err(Error::invalid_reference(
                &reference,
                "not a registry reference",
            ));
        };
        Ok(RegistrySource {
            repository: repository.clone(),
            reference,
            client,
        })
    }

    /// The registry client this source reads through.
    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }
}

impl ImageSource for RegistrySource {
    fn reference(&self) -> &ImageRef {
        &self.reference
    }

    fn resolve_root(&self) -> Result<(Descriptor, Vec<u8>)> {
        let ImageRef::Registry { tag, digest, .. } = &self.reference else {
            unreachable!("checked in new")
        };
        let wanted = digest.as_deref().or(tag.as_deref()).unwrap_or("latest");
        match self.client.get_manifest_raw(&self.repository, wanted)? {
            Some(found) => Ok(found),
            None => Err(Error::bad_image(
                &self.reference,
                "manifest not found in the registry",
            )),
        }
    }

    fn fetch_blob(&self, d: &Descriptor) -> Result<Vec<u8>> {
        check_small(&self.reference, d)?;
        let bytes = if crate::spec::is_index_media_type(&d.media_type)
            || crate::spec::is_manifest_media_type(&d.media_type)
        {
            match self
                .client
                .get_manifest_raw(&self.repository, d.digest.as_str())?
            {
                Some((_, raw)) => raw,
                None => {
                    return Err(Error::BlobNotFound {
                        image: self.reference.to_string(),
                        digest: d.digest.to_string(),
                    })
                }
            }
        } else {
            let mut buf = Vec::new();
            self.open_blob(d)?
                .take(MAX_IN_MEMORY_BLOB + 1)
                .read_to_end(&mut buf)
                .map_err(|e| {
                    reg_err(self.client.registry(), format!("GET blob {}", d.digest), e)
                })?;
            buf
        };
        verify_blob(&format!("{}: blob", self.reference), d, &bytes)?;
        Ok(bytes)
    }

    fn fetch_manifest(&self, d: &Descriptor) -> Result<Vec<u8>> {
        check_small(&self.reference, d)?;
        match self
            .client
            .get_manifest_raw(&self.repository, d.digest.as_str())?
        {
            Some((_, raw)) => {
                verify_blob(&format!("{}: manifest", self.reference), d, &raw)?;
                Ok(raw)
            }
            None => Err(Error::BlobNotFound {
                image: self.reference.to_string(),
                digest: d.digest.to_string(),
            }),
        }
    }

    fn referrers(&self, manifest_digest: &Digest) -> Result<Option<Vec<Descriptor>>> {
        self.client
            .referrers(&self.repository, manifest_digest)
            .map(Some)
    }

    fn open_blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send>> {
        // The trait's readers hash what they read (see `ImageSource::open_blob`).
        self.client.open_blob_unverified(&self.repository, d)
    }

    fn read_blob_range(&self, d: &Descriptor, range: Range<u64>) -> Result<Vec<u8>> {
        self.client
            .read_blob_range(&self.repository, &d.digest, range)
    }
}
