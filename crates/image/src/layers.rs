//! Which layers get a zTOC, and how they are compressed (docs/format.md §4.1, §4.2).
use soci_oci::spec::{self, Descriptor};

/// How a layer is compressed, from its media type (containerd `DiffCompression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerKind {
    Gzip,
    /// Plain tar (OCI `…tar`, Docker `…rootfs.diff.tar`).
    Uncompressed,
    Zstd,
}

/// Classifies a layer media type; `None` for something that is not a layer.
pub(crate) fn layer_kind(media_type: &str) -> Option<LayerKind> {
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
pub(crate) enum LayerPlan {
    Index(LayerKind),
    /// Skipped, with the reference's message.
    Skip(String),
}

/// Decides for one layer, with the reference's messages. Errors for a descriptor
/// that is not a layer at all.
pub(crate) fn plan_layer(layer: &Descriptor, min_layer_size: u64) -> Result<LayerPlan, String> {
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

/// Why no layer got a zTOC, in a few words and with the flag that changes it
/// (the reference prints a line per skipped layer; a user who missed those, or
/// ran with `-q`, still learns what to do).
pub(crate) fn why_nothing_indexed(
    plans: &[(Descriptor, LayerPlan)],
    min_layer_size: u64,
) -> String {
    let small: Vec<u64> = plans
        .iter()
        .filter(|(l, _)| (l.size.max(0) as u64) < min_layer_size)
        .map(|(l, _)| l.size.max(0) as u64)
        .collect();
    let zstd = plans
        .iter()
        .filter(|(l, p)| {
            matches!(p, LayerPlan::Skip(_))
                && (l.size.max(0) as u64) >= min_layer_size
                && layer_kind(&l.media_type) == Some(LayerKind::Zstd)
        })
        .count();
    let mut parts = Vec::new();
    if let Some(largest) = small.iter().max() {
        parts.push(format!(
            "{} of {} layers are smaller than --min-layer-size {min_layer_size} bytes, \
             the largest {largest} bytes; --min-layer-size 0 indexes every layer",
            small.len(),
            plans.len()
        ));
    }
    if zstd > 0 {
        parts.push(format!(
            "{zstd} zstd-compressed layer{}, and SOCI indexes only gzip and uncompressed layers",
            if zstd == 1 { "" } else { "s" }
        ));
    }
    if parts.is_empty() {
        parts.push(format!("{} layers, none indexable", plans.len()));
    }
    parts.join("; ")
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

    fn d(mt: &str, size: i64) -> Descriptor {
        Descriptor::new(mt, soci_oci::spec::Digest::of(b"ab"), size)
    }

    #[test]
    fn skip_rules() {
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

    #[test]
    fn why_nothing_indexed_names_the_cause() {
        let plan = |l: &Descriptor, min| (l.clone(), plan_layer(l, min).unwrap());
        let gz = d("application/vnd.oci.image.layer.v1.tar+gzip", 99);
        let gz_big = d("application/vnd.oci.image.layer.v1.tar+gzip", 500);
        let zs = d("application/vnd.oci.image.layer.v1.tar+zstd", 400);
        let why = why_nothing_indexed(&[plan(&gz, 300), plan(&gz_big, 300), plan(&zs, 300)], 300);
        assert!(
            why.contains(
                "1 of 3 layers are smaller than --min-layer-size 300 bytes, the largest 99 bytes"
            ),
            "{why}"
        );
        assert!(why.contains("1 zstd-compressed layer,"), "{why}");
        let why = why_nothing_indexed(&[plan(&zs, 10), plan(&zs, 10)], 10);
        assert!(!why.contains("smaller"), "{why}");
        assert!(why.starts_with("2 zstd-compressed layers"), "{why}");
    }
}
