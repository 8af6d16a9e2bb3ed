//! Which layers get a zTOC, and how they are compressed (soci-format.md §5).
use soci_oci::spec::{self, Descriptor};

/// How a layer is compressed, from its media type (containerd `DiffCompression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Gzip,
    /// Plain tar (OCI `…tar`, Docker `…rootfs.diff.tar`).
    Uncompressed,
    Zstd,
}

/// Classifies a layer media type; `None` for something that is not a layer.
pub fn layer_kind(media_type: &str) -> Option<LayerKind> {
    match media_type {
        spec::MEDIA_TYPE_DOCKER_LAYER_GZIP => Some(LayerKind::Gzip),
        spec::MEDIA_TYPE_DOCKER_LAYER_TAR => Some(LayerKind::Uncompressed),
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(LayerKind::Gzip),
        _ => {
            let base = media_type
                .strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.tar")
                .or_else(|| media_type.strip_prefix("application/vnd.oci.image.layer.v1.tar"))?;
            match base {
                "" => Some(LayerKind::Uncompressed),
                "+gzip" => Some(LayerKind::Gzip),
                "+zstd" => Some(LayerKind::Zstd),
                _ => None,
            }
        }
    }
}

/// What to do with one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerPlan {
    Index(LayerKind),
    /// Skipped, with the reference's message.
    Skip(String),
}

/// Decides for one layer, with the reference's messages. Errors for a descriptor
/// that is not a layer at all.
pub fn plan_layer(layer: &Descriptor, min_layer_size: u64) -> Result<LayerPlan, String> {
    let kind = layer_kind(&layer.media_type).ok_or_else(|| {
        format!(
            "layer {} has media type {:?}, which is not a known image layer type",
            layer.digest, layer.media_type
        )
    })?;
    if (layer.size.max(0) as u64) < min_layer_size {
        return Ok(LayerPlan::Skip(format!(
            "ztoc skipped - layer {} ({}) size {} is less than min-layer-size {}",
            layer.digest, layer.media_type, layer.size, min_layer_size
        )));
    }
    if kind == LayerKind::Zstd {
        return Ok(LayerPlan::Skip(format!(
            "ztoc skipped - layer {} ({}) is compressed in an unsupported format. expect: [tar, gzip, unknown] but got \"zstd\"",
            layer.digest, layer.media_type
        )));
    }
    Ok(LayerPlan::Index(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            layer_kind("application/vnd.oci.image.layer.v1.tar+gzip"),
            Some(LayerKind::Gzip)
        );
        assert_eq!(
            layer_kind("application/vnd.oci.image.layer.v1.tar"),
            Some(LayerKind::Uncompressed)
        );
        assert_eq!(
            layer_kind("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(LayerKind::Zstd)
        );
        assert_eq!(
            layer_kind("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(LayerKind::Gzip)
        );
        assert_eq!(
            layer_kind("application/vnd.docker.image.rootfs.diff.tar"),
            Some(LayerKind::Uncompressed)
        );
        assert_eq!(layer_kind("application/json"), None);
    }

    #[test]
    fn skip_rules() {
        let d = |mt: &str, size| Descriptor {
            media_type: mt.into(),
            digest: "sha256:ab".into(),
            size,
            ..Default::default()
        };
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(
            plan_layer(&d(gz, 10), 10).unwrap(),
            LayerPlan::Index(LayerKind::Gzip),
            "equal size is indexed"
        );
        assert!(
            matches!(plan_layer(&d(gz, 9), 10).unwrap(), LayerPlan::Skip(m) if m.contains("less than min-layer-size 10"))
        );
        assert!(
            matches!(plan_layer(&d("application/vnd.oci.image.layer.v1.tar+zstd", 99), 10).unwrap(), LayerPlan::Skip(m) if m.contains("\"zstd\""))
        );
        assert!(plan_layer(&d("text/plain", 99), 10).is_err());
    }
}
