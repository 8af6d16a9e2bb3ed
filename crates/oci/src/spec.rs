//! OCI image-spec v1.1 JSON types, serialised exactly like Go's `encoding/json`
//! does for `github.com/opencontainers/image-spec/specs-go/v1`.
//!
//! Why it matters: the soci-snapshotter decodes a SOCI index, re-marshals it with
//! Go and stores the result under the *original* digest. Any byte of difference
//! (field order, a dropped `omitempty`, escaping) makes the digest wrong and the
//! runtime silently falls back to a full pull. So field order here is the Go
//! struct declaration order, `omitempty` fields are `skip_serializing_if`, maps are
//! `BTreeMap` (Go sorts map keys bytewise) and [`to_go_json`] applies Go's string
//! escaping on top of serde_json's compact output.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Media type of an OCI image manifest.
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index (a list of manifests, e.g. one per platform).
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image config blob.
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a Docker image manifest (schema 2).
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker manifest list (Docker's multi-platform index).
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media type of a Docker image config blob.
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of an OCI layer as an uncompressed tar.
pub const MEDIA_TYPE_OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of an OCI layer as a gzip-compressed tar.
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of an OCI layer as a zstd-compressed tar.
pub const MEDIA_TYPE_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Media type of a Docker layer as a gzip-compressed tar.
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Media type of a Docker layer as an uncompressed tar.
pub const MEDIA_TYPE_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The annotation that names a manifest's tag in an OCI layout's `index.json`
/// (our local store is one, too).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Whether `mt` is a multi-manifest document: an OCI image index or a Docker
/// manifest list (the two are read alike).
pub fn is_index_media_type(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_INDEX || mt == MEDIA_TYPE_DOCKER_MANIFEST_LIST
}

/// Whether `mt` is a single-image manifest, OCI or Docker schema 2.
pub fn is_manifest_media_type(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_MANIFEST || mt == MEDIA_TYPE_DOCKER_MANIFEST
}

/// The media type of a manifest/index document: from its `mediaType` field, else
/// guessed from its shape (OCI allows the field to be absent).
pub(crate) fn sniff_media_type(raw: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(rename = "schemaVersion", default)]
        schema_version: i64,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
        #[serde(rename = "fsLayers")]
        fs_layers: Option<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(raw).ok()?;
    if !doc.media_type.is_empty() {
        return Some(doc.media_type);
    }
    if doc.fs_layers.is_some() || doc.schema_version == 1 {
        return Some("application/vnd.docker.distribution.manifest.v1+json".into());
    }
    if doc.manifests.is_some() {
        Some(MEDIA_TYPE_OCI_INDEX.into())
    } else if doc.config.is_some() {
        Some(MEDIA_TYPE_OCI_MANIFEST.into())
    } else {
        None
    }
}

/// Annotations: string keys to string values, kept sorted like Go sorts map keys.
pub type Annotations = BTreeMap<String, String>;

/// `ocispec.Platform`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Platform {
    /// CPU architecture in Go's `GOARCH` terms (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub architecture: String,
    /// Operating system in Go's `GOOS` terms (`linux`, `windows`, ...).
    #[serde(default)]
    pub os: String,
    /// Operating-system version (used by Windows images); empty if unset.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// Required operating-system features (used by Windows images).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant, e.g. `v7` or `v8` for ARM; empty if unset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// `ocispec.Descriptor`.
///
/// `D` is the type of the digest. Everywhere but one place it is [`Digest`]
/// (the default): checked when read, since descriptors come from registries
/// and files we do not control and their digests are printed and put into
/// URLs and paths. The one exception is the referrers fallback index, whose
/// entries may be Go's zero-value descriptor (`"digest":""`) or otherwise lack
/// a digest, and which we must read and write back byte for byte as oras-go
/// does; it uses [`MaybeDigest`]. A generic rather than an optional field
/// everywhere, so that no other code has to handle a missing digest, and
/// rather than a copy of this struct, so the Go field order lives once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Descriptor<D = Digest> {
    /// Media type of the object described.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// The object's content digest.
    pub digest: D,
    /// Size of the object in bytes.
    #[serde(default)]
    pub size: i64,
    /// Other places the object may be downloaded from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Arbitrary metadata about the object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
    /// The object's content embedded in the descriptor. Base64 in JSON; kept as the string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The platform a manifest is for, in an index's list of manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type of the object, if it is an artifact manifest; empty otherwise.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub artifact_type: String,
}

impl Descriptor {
    /// The descriptor of `bytes` as a blob of `media_type`: their digest and
    /// length, nothing else set.
    pub fn of(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as i64)
    }

    /// A descriptor with these three fields and nothing else set (there is no
    /// `Default`: a descriptor always has a digest).
    pub fn new(media_type: impl Into<String>, digest: Digest, size: i64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: Annotations::new(),
            data: None,
            platform: None,
            artifact_type: String::new(),
        }
    }

    /// The same descriptor with a [`MaybeDigest`], for the referrers
    /// fallback index.
    pub fn into_maybe(self) -> Descriptor<MaybeDigest> {
        Descriptor {
            media_type: self.media_type,
            digest: MaybeDigest(Some(self.digest)),
            size: self.size,
            urls: self.urls,
            annotations: self.annotations,
            data: self.data,
            platform: self.platform,
            artifact_type: self.artifact_type,
        }
    }
}

/// A digest that may be absent, written as `""` when it is: the digest of a
/// [`Descriptor`] in a referrers fallback index (see there), where Go's
/// zero-value descriptor can appear. `Default` is the absent digest, so
/// `Descriptor::<MaybeDigest>::default()` is Go's zero descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MaybeDigest(pub Option<Digest>);

impl Serialize for MaybeDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_ref().map_or("", Digest::as_str))
    }
}

impl<'de> Deserialize<'de> for MaybeDigest {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let d = String::deserialize(de)?;
        if d.is_empty() {
            return Ok(MaybeDigest(None));
        }
        Digest::try_from(d)
            .map(|d| MaybeDigest(Some(d)))
            .map_err(serde::de::Error::custom)
    }
}

/// `ocispec.Manifest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema version; 2 for every current manifest.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// Media type of this manifest itself; empty if the JSON does not say.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// Artifact type, if this manifest is an artifact (a SOCI index is one); empty otherwise.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub artifact_type: String,
    /// The image config blob.
    pub config: Descriptor,
    /// Go: `Layers []Descriptor json:"layers"` (no omitempty, but nil marshals as
    /// `null`); SOCI always sets it, so we always write an array.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (e.g. the image a SOCI index is for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata about the manifest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

/// `ocispec.Index`; `D` is the digest type of its descriptors (see
/// [`Descriptor`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// serde would ask `D: Default` for the defaulted `manifests`; `Vec` needs none.
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
pub struct Index<D = Digest> {
    /// Schema version; 2 for every current index.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// Media type of this index itself; empty if the JSON does not say.
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// Artifact type, if this index is an artifact (a SOCI index is one); empty otherwise.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub artifact_type: String,
    /// The manifests (or nested indexes) the index lists.
    #[serde(default)]
    pub manifests: Vec<Descriptor<D>>,
    /// The manifest this index refers to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor<D>>,
    /// Arbitrary metadata about the index.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

// By hand: the derive would ask `D: Default`, and `Digest` has no default.
impl<D> Default for Index<D> {
    fn default() -> Self {
        Index {
            schema_version: 0,
            media_type: String::new(),
            artifact_type: String::new(),
            manifests: Vec::new(),
            subject: None,
            annotations: Annotations::new(),
        }
    }
}

impl Index<MaybeDigest> {
    /// The index with its entries (and subject) that have no digest dropped:
    /// what a reader of referrers does with Go's zero-value descriptors (as
    /// oras-go does). Only the referrers fallback merge keeps them.
    pub fn into_known(self) -> Index {
        let known = |d: Descriptor<MaybeDigest>| {
            let digest = d.digest.0?;
            Some(Descriptor {
                media_type: d.media_type,
                digest,
                size: d.size,
                urls: d.urls,
                annotations: d.annotations,
                data: d.data,
                platform: d.platform,
                artifact_type: d.artifact_type,
            })
        };
        Index {
            schema_version: self.schema_version,
            media_type: self.media_type,
            artifact_type: self.artifact_type,
            manifests: self.manifests.into_iter().filter_map(known).collect(),
            subject: self.subject.and_then(known),
            annotations: self.annotations,
        }
    }
}

/// Serialise like Go's `json.Marshal`: compact, then Go's HTML-safe escaping of
/// `<`, `>`, `&`, U+2028 and U+2029 (serde_json leaves them raw; they can only
/// appear inside strings, so replacing them in the output is exact).
pub fn to_go_json<T: Serialize>(value: &T) -> Vec<u8> {
    let raw = serde_json::to_string(value).expect("serialising plain data cannot fail");
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// The digest grammar lives in soci-digest (one parser for the workspace);
/// these names stay here for the callers that know them from this module.
pub use soci_digest::{escape_untrusted, Digest, InvalidDigest};

/// `sha256:<hex>` of some bytes (the workspace's one implementation, also
/// `soci_ztoc::codec::sha256_digest`).
pub use soci_digest::sha256_digest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_go_canonical() {
        let mut ann = Annotations::new();
        ann.insert("b".into(), "x<y>&z".into());
        ann.insert("a".into(), "1".into());
        let m = Manifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_OCI_MANIFEST.into(),
            artifact_type: String::new(),
            config: Descriptor::new(
                "application/vnd.amazon.soci.index.v2+json",
                Digest::parse(
                    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                )
                .unwrap(),
                2,
            ),
            layers: vec![],
            subject: None,
            annotations: ann,
        };
        let s = String::from_utf8(to_go_json(&m)).unwrap();
        assert_eq!(
            s,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v2+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"a":"1","b":"x\u003cy\u003e\u0026z"}}"#
        );
    }

    #[test]
    fn forged_digests_are_refused_when_read() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(Digest::parse(&good).is_ok());
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(
            Digest::parse("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")
                .is_ok()
        );
        for bad in [
            String::new(),
            "sha256".into(),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha256:{}\nsoci index sha256:00 OK", "ab".repeat(32)),
            "sha256:\u{1b}[2J".into(),
            "../x:abc".into(),
            "sha256:ab/../../etc".into(),
        ] {
            let e = Digest::parse(&bad).unwrap_err().to_string();
            assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e:?}");
        }
        let forged = format!(
            r#"{{"mediaType":"m","digest":"sha256:{}\n\u001b[1;32msoci index OK","size":1}}"#,
            "ab".repeat(32)
        );
        let e = serde_json::from_str::<Descriptor>(&forged)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid digest \"sha256:"), "{e}");
        assert!(e.contains("\\n\\u{1b}"), "escaped: {e}");
        assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e:?}");
    }

    #[test]
    fn maybe_digest_keeps_the_empty_digest_and_checks_the_rest() {
        let zero = r#"{"mediaType":"","digest":"","size":0}"#;
        let d: Descriptor<MaybeDigest> = serde_json::from_str(zero).unwrap();
        assert_eq!(d, Descriptor::default());
        assert_eq!(String::from_utf8(to_go_json(&d)).unwrap(), zero);
        // A strict descriptor refuses it; a forged digest is refused by both.
        assert!(serde_json::from_str::<Descriptor>(zero).is_err());
        let forged = r#"{"mediaType":"m","digest":"sha256:../x","size":1}"#;
        assert!(serde_json::from_str::<Descriptor<MaybeDigest>>(forged).is_err());
        // Readers of referrers drop digest-less entries.
        let idx: Index<MaybeDigest> = serde_json::from_str(&format!(
            r#"{{"schemaVersion":2,"manifests":[{zero},{}]}}"#,
            String::from_utf8(to_go_json(&Descriptor::of("m", b"x"))).unwrap()
        ))
        .unwrap();
        assert_eq!(idx.into_known().manifests, [Descriptor::of("m", b"x")]);
    }

    #[test]
    fn descriptor_field_order() {
        let d = Descriptor {
            platform: Some(Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
                ..Default::default()
            }),
            artifact_type: "t".into(),
            annotations: [("k".to_string(), "v".to_string())].into_iter().collect(),
            ..Descriptor::new("m", Digest::of(b"d"), 1)
        };
        assert_eq!(
            String::from_utf8(to_go_json(&d)).unwrap(),
            r#"{"mediaType":"m","digest":"sha256:18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4","size":1,"annotations":{"k":"v"},"platform":{"architecture":"amd64","os":"linux"},"artifactType":"t"}"#
        );
    }
}
