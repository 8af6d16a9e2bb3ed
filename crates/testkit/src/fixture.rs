//! Deterministic image fixtures: the same bytes (and digests) on every run.
//!
//! - [`make_oci_layout`]: one linux/amd64 image, tagged, with two gzip layers,
//!   one uncompressed tar layer and one zstd layer.
//! - [`make_multiplatform_layout`]: an index with linux/amd64, linux/arm64/v8
//!   and an `unknown/unknown` attestation manifest, as Docker buildx makes.
//! - [`make_docker_archive`]: a `docker save` tarball (manifest.json,
//!   `<id>/layer.tar`, a duplicate layer as a symlink).
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Descriptor with the OCI Go field order (mediaType, digest, size, annotations, platform).
#[derive(Serialize, Clone)]
struct Desc {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct ManifestDoc {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: Desc,
    layers: Vec<Desc>,
}

#[derive(Serialize)]
struct IndexDoc {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<Desc>,
}

fn manifest_doc(config: Desc, layers: Vec<Desc>) -> Vec<u8> {
    serde_json::to_vec(&ManifestDoc {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        config,
        layers,
    })
    .unwrap()
}

fn index_doc(manifests: Vec<Desc>) -> Vec<u8> {
    serde_json::to_vec(&IndexDoc {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
    })
    .unwrap()
}
use sha2::Digest as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Media type of an OCI image index (a multi-platform fixture's root).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of an uncompressed tar layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a gzip-compressed tar layer.
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of a zstd-compressed tar layer.
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A blob of a fixture: what a descriptor says, plus the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The descriptor's `mediaType`.
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// The blob's content.
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: sha256(&bytes),
            bytes,
        }
    }
    /// Length of the content, as a descriptor's `size`.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn descriptor(&self) -> Desc {
        Desc {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size(),
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    fn descriptor_with(
        &self,
        annotations: &[(&str, &str)],
        platform: Option<serde_json::Value>,
    ) -> Desc {
        let mut d = self.descriptor();
        d.annotations = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.platform = platform;
        d
    }
}

/// One image (platform manifest) of a fixture.
#[derive(Debug, Clone)]
pub struct FixtureImage {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The image manifest.
    pub manifest: Blob,
    /// The image config.
    pub config: Blob,
    /// The layer blobs, in manifest order.
    pub layers: Vec<Blob>,
    /// The uncompressed tar of each layer (diff_id = its sha256).
    pub layer_tars: Vec<Vec<u8>>,
}

/// An OCI layout written by the fixture makers.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The layout's directory.
    pub dir: PathBuf,
    /// The tag its `index.json` names the root by.
    pub tag: String,
    /// What the tag points at: the image manifest or the index.
    pub root: Blob,
    /// Real images (no attestations), in index order.
    pub images: Vec<FixtureImage>,
    /// Other manifests in the index (attestations).
    pub extra_manifests: Vec<Blob>,
}

impl Fixture {
    /// `oci:DIR:TAG`.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }

    /// A blob's bytes as stored in the layout.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        std::fs::read(blob_path(&self.dir, digest))
            .unwrap_or_else(|e| panic!("blob {digest} in {}: {e}", self.dir.display()))
    }
}

/// `sha256:<hex>` of some bytes, computed here independently of the code under test.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Deterministic pseudo-random bytes (xorshift), mixed with text so it compresses some.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (x >> 60) < 6 {
            out.extend_from_slice(b"the quick brown fox ");
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// A tar with fixed metadata (mtime 0, root-owned) of `(path, content)`;
/// paths ending in `/` are directories, `content` starting with `->` a symlink.
pub fn make_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, path, &[][..]).unwrap();
        } else if let Some(target) = content.strip_prefix(b"->") {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, path, std::str::from_utf8(target).unwrap())
                .unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(content.len() as u64);
            b.append_data(&mut h, path, *content).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

fn write_blob(dir: &Path, b: &Blob) {
    let p = blob_path(dir, &b.digest);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, &b.bytes).unwrap();
}

/// The four layers of an image; `seed` varies the content per platform.
fn layers(seed: u64, with_zstd: bool) -> Vec<(Blob, Vec<u8>)> {
    let hello = format!("hello from layer 1, seed {seed}\n");
    let l1 = make_tar(&[
        ("etc/", b""),
        ("etc/hello.txt", hello.as_bytes()),
        ("etc/hello-link", b"->hello.txt"),
    ]);
    let data = pseudo_random(seed, 300_000);
    let l2 = make_tar(&[
        ("bin/", b""),
        ("bin/data", &data),
        ("bin/small", b"small file\n"),
    ]);
    let l3 = make_tar(&[
        ("usr/", b""),
        ("usr/share/", b""),
        ("usr/share/readme", b"an uncompressed layer\n"),
    ]);
    let zdata = pseudo_random(seed + 7, 50_000);
    let l4 = make_tar(&[("opt/", b""), ("opt/z.bin", &zdata)]);
    let mut v = vec![
        (Blob::new(LAYER_GZIP, gzip(&l1)), l1),
        (Blob::new(LAYER_GZIP, gzip(&l2)), l2),
        (Blob::new(LAYER_TAR, l3.clone()), l3),
    ];
    if with_zstd {
        v.push((Blob::new(LAYER_ZSTD, zstd(&l4)), l4));
    }
    v
}

fn image(
    dir: &Path,
    os: &str,
    arch: &str,
    variant: &str,
    seed: u64,
    with_zstd: bool,
) -> FixtureImage {
    let ls = layers(seed, with_zstd);
    let diff_ids: Vec<String> = ls.iter().map(|(_, t)| sha256(t)).collect();
    let mut config = json!({
        "architecture": arch,
        "os": os,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "soci-testkit"}],
    });
    if !variant.is_empty() {
        config["variant"] = json!(variant);
    }
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config).unwrap());
    let manifest = manifest_doc(
        config.descriptor(),
        ls.iter().map(|(b, _)| b.descriptor()).collect(),
    );
    let manifest = Blob::new(OCI_MANIFEST, manifest);
    write_blob(dir, &config);
    write_blob(dir, &manifest);
    for (b, _) in &ls {
        write_blob(dir, b);
    }
    let platform = if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    };
    let (layers, layer_tars) = ls.into_iter().unzip();
    FixtureImage {
        platform,
        manifest,
        config,
        layers,
        layer_tars,
    }
}

fn write_index_json(dir: &Path, root: &Blob, tag: &str) {
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index =
        index_doc(vec![root.descriptor_with(
            &[("org.opencontainers.image.ref.name", tag)],
            None,
        )]);
    std::fs::write(dir.join("index.json"), index).unwrap();
}

/// A single linux/amd64 image tagged `tag` in a new OCI layout at `dir`.
pub fn make_oci_layout(dir: &Path, tag: &str) -> Fixture {
    make_oci_layout_opts(dir, tag, true)
}

/// [`make_oci_layout`], optionally without the zstd layer (Docker schema2
/// cannot carry zstd, so conversions to `docker-archive:` need this).
pub fn make_oci_layout_opts(dir: &Path, tag: &str, with_zstd: bool) -> Fixture {
    std::fs::create_dir_all(dir).unwrap();
    let img = image(dir, "linux", "amd64", "", 1, with_zstd);
    write_index_json(dir, &img.manifest, tag);
    Fixture {
        dir: dir.into(),
        tag: tag.into(),
        root: img.manifest.clone(),
        images: vec![img],
        extra_manifests: vec![],
    }
}

/// An index (tagged `tag`) with linux/amd64, linux/arm64/v8 and an
/// `unknown/unknown` attestation manifest for the amd64 image.
pub fn make_multiplatform_layout(dir: &Path, tag: &str) -> Fixture {
    std::fs::create_dir_all(dir).unwrap();
    let amd = image(dir, "linux", "amd64", "", 1, true);
    let arm = image(dir, "linux", "arm64", "v8", 2, true);
    // Attestation as Docker buildx writes it.
    let statement = Blob::new(
        "application/vnd.in-toto+json",
        br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#.to_vec(),
    );
    let att_config = Blob::new(OCI_CONFIG, br#"{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec());
    let att = manifest_doc(
        att_config.descriptor(),
        vec![statement.descriptor_with(
            &[(
                "in-toto.io/predicate-type",
                "https://slsa.dev/provenance/v0.2",
            )],
            None,
        )],
    );
    let att = Blob::new(OCI_MANIFEST, att);
    for b in [&statement, &att_config, &att] {
        write_blob(dir, b);
    }
    let index = index_doc(vec![
        amd.manifest
            .descriptor_with(&[], Some(json!({"architecture": "amd64", "os": "linux"}))),
        arm.manifest.descriptor_with(
            &[],
            Some(json!({"architecture": "arm64", "os": "linux", "variant": "v8"})),
        ),
        att.descriptor_with(
            &[
                ("vnd.docker.reference.digest", &amd.manifest.digest),
                ("vnd.docker.reference.type", "attestation-manifest"),
            ],
            Some(json!({"architecture": "unknown", "os": "unknown"})),
        ),
    ]);
    let index = Blob::new(OCI_INDEX, index);
    write_blob(dir, &index);
    write_index_json(dir, &index, tag);
    Fixture {
        dir: dir.into(),
        tag: tag.into(),
        root: index,
        images: vec![amd, arm],
        extra_manifests: vec![att],
    }
}

/// Write a `docker save`-style archive of `img` at `path` (old layout:
/// `<id>/layer.tar`; the uncompressed layer tars, with the last one repeated
/// as a symlink to the first when `duplicate_layer`). Returns the archive's
/// layer tars in manifest order.
pub fn make_docker_archive(
    path: &Path,
    img: &FixtureImage,
    repo_tag: &str,
    duplicate_layer: bool,
) -> Vec<Vec<u8>> {
    let mut tars: Vec<Vec<u8>> = img.layer_tars.clone();
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    let config_name = format!("{}.json", img.config.digest.trim_start_matches("sha256:"));
    let mut layer_names = Vec::new();
    for (i, t) in tars.iter().enumerate() {
        let id = format!("{:064x}", i + 1);
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Directory);
        b.append_data(&mut h, format!("{id}/"), &[][..]).unwrap();
        add(&mut b, &format!("{id}/VERSION"), b"1.0");
        add(&mut b, &format!("{id}/layer.tar"), t);
        layer_names.push(format!("{id}/layer.tar"));
    }
    if duplicate_layer {
        let id = format!("{:064x}", 99);
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        b.append_link(
            &mut h,
            format!("{id}/layer.tar"),
            format!("../{:064x}/layer.tar", 1),
        )
        .unwrap();
        layer_names.push(format!("{id}/layer.tar"));
        tars.push(tars[0].clone());
    }
    add(&mut b, &config_name, &img.config.bytes);
    let manifest = json!([{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
    tars
}

/// Write a Docker 25+ style `docker save` archive of the single-image
/// fixture `fx`: the OCI layout itself (`oci-layout`, `index.json`,
/// `blobs/sha256/…`) plus `manifest.json` naming config and layers by their
/// blob paths. (Docker stores layers uncompressed; the fixture's compressed
/// layers are kept as they are, which readers must cope with too.)
pub fn make_docker_archive_oci(path: &Path, fx: &Fixture, repo_tag: &str) {
    let img = &fx.images[0];
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add(
        &mut b,
        "oci-layout",
        &std::fs::read(fx.dir.join("oci-layout")).unwrap(),
    );
    add(
        &mut b,
        "index.json",
        &std::fs::read(fx.dir.join("index.json")).unwrap(),
    );
    let mut names: Vec<_> = std::fs::read_dir(fx.dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let n = n.to_string_lossy().into_owned();
        add(
            &mut b,
            &format!("blobs/sha256/{n}"),
            &std::fs::read(fx.dir.join("blobs/sha256").join(&n)).unwrap(),
        );
    }
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let manifest = json!([{
        "Config": blob(&img.config.digest),
        "RepoTags": [repo_tag],
        "Layers": img.layers.iter().map(|l| blob(&l.digest)).collect::<Vec<_>>(),
    }]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
}

/// A linux/amd64 image tagged `tag` in a new OCI layout at `dir`, of the
/// given layers (uncompressed tars, gzipped here, bottom first): images that
/// share a base are made by passing the same first tars.
pub fn make_layered_layout(dir: &Path, tag: &str, tars: &[Vec<u8>]) -> Fixture {
    std::fs::create_dir_all(dir).unwrap();
    let layers: Vec<Blob> = tars
        .iter()
        .map(|t| Blob::new(LAYER_GZIP, gzip(t)))
        .collect();
    let diff_ids: Vec<String> = tars.iter().map(|t| sha256(t)).collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config).unwrap());
    let manifest = Blob::new(
        OCI_MANIFEST,
        manifest_doc(
            config.descriptor(),
            layers.iter().map(Blob::descriptor).collect(),
        ),
    );
    write_blob(dir, &config);
    write_blob(dir, &manifest);
    for b in &layers {
        write_blob(dir, b);
    }
    write_index_json(dir, &manifest, tag);
    let img = FixtureImage {
        platform: "linux/amd64".into(),
        manifest: manifest.clone(),
        config,
        layers,
        layer_tars: tars.to_vec(),
    };
    Fixture {
        dir: dir.into(),
        tag: tag.into(),
        root: manifest,
        images: vec![img],
        extra_manifests: vec![],
    }
}
