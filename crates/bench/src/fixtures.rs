//! The benchmark's images: the realistic ones `scripts/bench-fixtures.py` caches
//! under `target/bench-data`, with the traces committed in `fixtures/traces`, or a
//! generated one when the cache is empty.
use crate::run::ImageSpec;
use crate::trace::Trace;
use anyhow::Result;
use std::path::Path;

/// (image name, trace file) of the realistic images, in report order.
pub const REALISTIC: &[(&str, &str)] = &[
    ("debian", "debian-sh.json"),
    ("python", "python-numpy-pandas.json"),
    ("app", "app-main.json"),
    ("bigunused", "bigunused-numpy.json"),
    // Real runs only (`bench-fixtures.py --real-python`): the host's python +
    // numpy, pandas; no committed trace, the real lazy run records it.
    ("pyreal", ""),
];

/// The cached realistic images present under `data/images`, or `None`.
/// The images without a committed trace only come with `real_run`.
pub fn realistic(
    repo_root: &Path,
    data: &Path,
    only: &[String],
    real_run: bool,
) -> Result<Option<Vec<ImageSpec>>> {
    let mut out = Vec::new();
    for (name, trace) in REALISTIC {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        if trace.is_empty() && !real_run {
            continue;
        }
        let layout = data.join("images").join(name);
        if !layout.join("index.json").exists() {
            continue;
        }
        let trace = if trace.is_empty() {
            Trace::default()
        } else {
            Trace::load(&repo_root.join("fixtures/traces").join(trace))?
        };
        out.push(ImageSpec {
            name: name.to_string(),
            source: format!("oci:{}:latest", layout.display()),
            trace,
        });
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

/// A generated image (about 4 MB) in `dir`.
pub fn synthetic(dir: &Path) -> Result<ImageSpec> {
    let (source, trace) = crate::synthetic::make_image(dir, 1)?;
    Ok(ImageSpec {
        name: "synthetic".into(),
        source,
        trace,
    })
}

/// The generated demo image of `soci bench startup` without SRC (about
/// 22 MiB, every layer above the default --min-layer-size), in `dir`.
pub fn demo(dir: &Path) -> Result<ImageSpec> {
    let (source, trace) = crate::synthetic::make_demo_image(dir)?;
    Ok(ImageSpec {
        name: "demo".into(),
        source,
        trace,
    })
}
