//! A small generated image (offline): two gzip layers of semi-compressible files
//! and a trace that touches a few of them. For tests and when no cached images exist.
use crate::trace::{Trace, TraceFile};
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

fn data(seed: u64, len: usize) -> Vec<u8> {
    // text-like: words from a small alphabet, compresses ~3x like code does
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = (x % 26) as u8;
        out.push(b'a' + w);
        if x % 7 == 0 {
            out.push(b' ');
        }
        if x % 61 == 0 {
            out.push(b'\n');
        }
    }
    out.truncate(len);
    out
}

fn layer(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    layer_at(files, flate2::Compression::new(6))
}

fn layer_at(files: &[(String, Vec<u8>)], level: flate2::Compression) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (name, _) in files {
        let mut d = Path::new(name).parent();
        while let Some(p) = d {
            if !p.as_os_str().is_empty() {
                dirs.insert(format!("{}/", p.display()));
            }
            d = p.parent();
        }
    }
    for d in dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        b.append_data(&mut h, &d, std::io::empty())?;
    }
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, name, bytes.as_slice())?;
    }
    let tar = b.into_inner()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), level);
    gz.write_all(&tar)?;
    Ok(gz.finish()?)
}

fn hex256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Writes the OCI layout at `dir` (tag `latest`); `scale` multiplies the file
/// sizes (1: ~3 MiB of data). Returns the image reference and the trace.
pub fn make_image(dir: &Path, scale: usize) -> Result<(String, Trace)> {
    let mut base = Vec::new();
    for i in 0..40 {
        base.push((
            format!("usr/lib/lib{i:02}.so"),
            data(i, (20_000 + (i as usize * 7919) % 60_000) * scale),
        ));
    }
    let mut app = Vec::new();
    for i in 0..20 {
        app.push((format!("app/mod{i:02}.py"), data(100 + i, 3000 * scale)));
    }
    app.push(("app/big.bin".to_string(), data(999, 1_000_000 * scale)));
    let layers = [layer(&base)?, layer(&app)?];
    write_layout(dir, &layers)?;
    let mut files = Vec::new();
    for (name, bytes) in base.iter().step_by(9).chain(app.iter().take(5)) {
        files.push(TraceFile {
            path: name.clone(),
            size: bytes.len() as u64,
            ranges: vec![(0, 4096.min(bytes.len() as u64))],
        });
    }
    let trace = Trace {
        image: "synthetic".into(),
        command: vec!["(synthetic)".into()],
        regenerate: String::new(),
        files,
    };
    Ok((format!("oci:{}:latest", dir.display()), trace))
}

/// Compressed size above which every layer of [`make_demo_image`] is: the
/// default `--min-layer-size` (10 MiB), so the demo is indexed as it comes.
pub const DEMO_MIN_LAYER_BYTES: u64 = 10 << 20;

/// The image `soci bench startup` runs without SRC: where a lazy start pays
/// off, as in real images. Two gzip layers of about 11 MiB each (above the
/// default --min-layer-size): a "base" of 40 libraries and an "app" of small
/// modules beside a large data file. The start-up trace reads the first
/// libraries and the modules (they sit in the first span of each layer), not
/// the data file: a few percent of the image, as measured for real images
/// (docs/benchmarks.md). gzip -6, as `docker push` does (level 1 of zlib-rs
/// makes blocks so long that a layer has only 2 checkpoints).
pub fn make_demo_image(dir: &Path) -> Result<(String, Trace)> {
    let mut base = Vec::new();
    for i in 0..40 {
        base.push((
            format!("usr/lib/lib{i:02}.so"),
            data(i, 440_000 + (i as usize * 7919) % 60_000),
        ));
    }
    let mut app = Vec::new();
    for i in 0..20 {
        app.push((format!("app/mod{i:02}.py"), data(100 + i, 3000)));
    }
    app.push(("app/data.bin".to_string(), data(999, 19_000_000)));
    let level = flate2::Compression::new(6);
    let layers = [layer_at(&base, level)?, layer_at(&app, level)?];
    for l in &layers {
        anyhow::ensure!(
            l.len() as u64 > DEMO_MIN_LAYER_BYTES,
            "the demo layer is {} bytes, under the default --min-layer-size",
            l.len()
        );
    }
    write_layout(dir, &layers)?;
    let files = base
        .iter()
        .take(3)
        .chain(app.iter().take(20))
        .map(|(name, bytes)| TraceFile {
            path: name.clone(),
            size: bytes.len() as u64,
            ranges: vec![(0, bytes.len() as u64)],
        })
        .collect();
    let trace = Trace {
        image: "demo".into(),
        command: vec!["(generated demo: reads 3 libraries and 20 modules)".into()],
        regenerate: String::new(),
        files,
    };
    Ok((format!("oci:{}:latest", dir.display()), trace))
}

/// Writes an OCI layout (tag `latest`) of one linux/amd64 image of `layers`.
fn write_layout(dir: &Path, layers: &[Vec<u8>]) -> Result<()> {
    std::fs::create_dir_all(dir.join("blobs/sha256"))?;
    let put = |b: &[u8]| -> Result<String> {
        let d = hex256(b);
        std::fs::write(dir.join("blobs/sha256").join(&d[7..]), b)?;
        Ok(d)
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(l.as_slice()), &mut raw)?;
        diff_ids.push(hex256(&raw));
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(l)?, "size": l.len()}));
    }
    let config = serde_json::to_vec(
        &serde_json::json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}),
    )?;
    let manifest = serde_json::to_vec(
        &serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config)?, "size": config.len()},
        "layers": descs}),
    )?;
    let md = put(&manifest)?;
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}
