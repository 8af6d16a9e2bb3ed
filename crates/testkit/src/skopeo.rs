//! skopeo, the independent tool we check our registry and layout code against.
use std::process::Command;

/// Run skopeo with `args`; its stdout, or an error carrying its stderr.
pub fn skopeo(args: &[&str]) -> std::io::Result<Vec<u8>> {
    let out = Command::new("skopeo").args(args).output().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot run skopeo ({e}): install skopeo (apt-get install -y skopeo)"),
        )
    })?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "skopeo {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out.stdout)
}

/// `skopeo copy --preserve-digests SRC DST` without TLS verification
/// (plain-HTTP test registries) and without a signature policy. Preserving
/// digests matters: by default skopeo gzips uncompressed layers on the way to
/// a registry, which rewrites the manifest.
pub fn skopeo_copy(src: &str, dst: &str) -> std::io::Result<()> {
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        src,
        dst,
    ])
    .map(drop)
}

/// Like [`skopeo_copy`] with `--all`: every image of an index, byte-exact.
pub fn skopeo_copy_all(src: &str, dst: &str) -> std::io::Result<()> {
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        src,
        dst,
    ])
    .map(drop)
}

/// `skopeo inspect --raw REF`: the manifest bytes exactly as stored.
pub fn skopeo_inspect_raw(reference: &str) -> std::io::Result<Vec<u8>> {
    skopeo(&[
        "--insecure-policy",
        "inspect",
        "--raw",
        "--tls-verify=false",
        reference,
    ])
}
