//! Image references: where an image comes from or goes to.
//!
//! Accepted forms (transport prefixes as in skopeo):
//! - `docker://HOST/REPO[:TAG][@sha256:HEX]` or the same without `docker://`:
//!   a registry. The tag defaults to `latest` when there is no digest. The
//!   first path component must be a registry host (contains `.` or `:`, or is
//!   `localhost`): we never talk to Docker Hub implicitly, so `ubuntu:22.04` is
//!   an error that suggests `docker.io/library/ubuntu:22.04` (containerd, which
//!   the Go `soci` drives, also wants fully qualified names).
//! - `oci:DIR[:TAG]`: an OCI image layout. The *last* `:` separates the tag when
//!   what follows it is a valid tag (tags cannot contain `:` or `/`), so
//!   `oci:/tmp/a:b:v1` is directory `/tmp/a:b`, tag `v1`. (skopeo splits at the
//!   first `:`; both agree whenever DIR has no `:`.)
//! - `oci-archive:FILE[:TAG]`: an OCI image layout in a tar file; the tag is
//!   split off as for `oci:`.
//! - `docker-archive:FILE[:NAME:TAG]`: a `docker save` tarball; the optional
//!   image name picks one of several images (skopeo's rule: the first `:` after
//!   the transport ends the path).
//!
//! The transport prefixes win over registry hosts: a registry host literally
//! named `oci` needs `docker://`.
use crate::error::{Error, Result};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where an image lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// An image in a registry. At least one of `tag` and `digest` is set.
    Registry {
        /// Registry host, `host[:port]`.
        registry: String,
        /// Repository path within the registry (e.g. `library/alpine`).
        repository: String,
        /// Tag naming the image, if given.
        tag: Option<String>,
        /// Digest of the image's manifest or index, if given.
        digest: Option<String>,
    },
    /// An OCI image layout directory, optionally with the tag
    /// (`org.opencontainers.image.ref.name`) naming the image in `index.json`.
    OciLayout {
        /// The layout directory.
        dir: PathBuf,
        /// Tag of the image in `index.json`; `None` takes its only image.
        tag: Option<String>,
    },
    /// A `docker save` archive, optionally with the `RepoTags` entry naming the image.
    DockerArchive {
        /// The archive file.
        file: PathBuf,
        /// `RepoTags` entry naming the image; `None` takes its only image.
        image: Option<String>,
    },
    /// An OCI image layout packed in one tar file (`oci-archive:FILE[:TAG]`),
    /// optionally with the tag naming the image in its `index.json`.
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// Tag of the image in `index.json`; `None` takes its only image.
        tag: Option<String>,
    },
}

impl ImageRef {
    /// A registry reference, validated.
    pub fn registry(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<ImageRef> {
        let mut s = format!("{registry}/{repository}");
        if let Some(t) = tag {
            s = format!("{s}:{t}");
        }
        if let Some(d) = digest {
            s = format!("{s}@{d}");
        }
        parse_registry(&s, &s)
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::invalid_reference(input, reason)
}

/// distribution/reference `tag`: `[\w][\w.-]{0,127}`.
pub(crate) fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

/// A manifest reference within a repository: a tag or a sha256 digest.
pub(crate) fn check_manifest_reference(reference: &str) -> Result<()> {
    if is_sha256_digest(reference) || is_tag(reference) {
        Ok(())
    } else {
        Err(invalid(reference, "neither a tag nor a sha256 digest"))
    }
}

/// `sha256:` + 64 lower-case hex digits (the only algorithm we verify).
pub(crate) use soci_digest::is_sha256_digest;

/// distribution/reference path component: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn is_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    // Split into separator runs between alphanumeric runs and check each.
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn looks_like_host(c: &str) -> bool {
    c.contains('.') || c.contains(':') || c == "localhost" || c.starts_with('[')
}

fn valid_host(h: &str) -> bool {
    let (name, port) = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip6, tail)) => {
                if ip6.is_empty() || !ip6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                    return false;
                }
                (
                    None,
                    tail.strip_prefix(':')
                        .map(Some)
                        .unwrap_or(if tail.is_empty() { None } else { Some("") }),
                )
            }
            None => return false,
        }
    } else {
        match h.rsplit_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(h), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    match name {
        None => true,
        Some(n) => {
            !n.is_empty()
                && n.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        }
    }
}

/// A path (`/x`, `./x`, `../x`, `~/x`: never a registry reference), or a name
/// with an archive suffix that has no host part or names an existing file
/// (`HOST/repo.tar` stays a repository).
fn looks_like_local_path(s: &str) -> bool {
    ["/", "./", "../", "~/"].iter().any(|p| s.starts_with(p))
        || ([".tar", ".tar.gz", ".tgz"].iter().any(|x| s.ends_with(x))
            && (!s.contains('/') || std::path::Path::new(s).exists()))
}

fn parse_registry(input: &str, s: &str) -> Result<ImageRef> {
    if s.is_empty() {
        return Err(invalid(input, "empty registry reference"));
    }
    // A file or directory given without its transport: suggest the right one
    // rather than a registry name built around a path.
    if looks_like_local_path(s) {
        let form = if std::path::Path::new(s).is_dir() {
            format!("oci:{s}")
        } else {
            format!("docker-archive:{s}")
        };
        return Err(invalid(
            input,
            format!("this looks like a local path, not a registry reference; write {form:?}"),
        ));
    }
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => {
            if !is_sha256_digest(d) {
                return Err(invalid(
                    input,
                    format!("digest {d:?} is not sha256:<64 lower-case hex digits>"),
                ));
            }
            (n, Some(d.to_string()))
        }
        None => (s, None),
    };
    // A tag follows the last ':' if that ':' is after the last '/' (else it is a port).
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if i > name_tag.rfind('/').unwrap_or(0) => {
            (&name_tag[..i], Some(name_tag[i + 1..].to_string()))
        }
        _ => (name_tag, None),
    };
    if let Some(t) = &tag {
        if !is_tag(t) {
            return Err(invalid(
                input,
                format!("tag {t:?} is not valid (letters, digits, '_', '.', '-'; at most 128)"),
            ));
        }
    }
    let Some((host, repository)) = name.split_once('/').filter(|(h, _)| looks_like_host(h)) else {
        let suggestion = if name.contains('/') {
            format!("docker.io/{name_tag}")
        } else {
            format!("docker.io/library/{name_tag}")
        };
        return Err(invalid(
            input,
            format!("no registry host; soci-rs never picks a registry implicitly, write it in full, e.g. {suggestion:?}"),
        ));
    };
    if !valid_host(host) {
        return Err(invalid(
            input,
            format!("registry host {host:?} is not a valid host[:port]"),
        ));
    }
    if repository.is_empty() || !repository.split('/').all(is_path_component) {
        return Err(invalid(
            input,
            format!("repository {repository:?} is not valid (lower-case letters, digits and separators '.', '_', '__', '-' between '/'-separated components)"),
        ));
    }
    if repository.len() + host.len() + 1 > 255 {
        return Err(invalid(input, "repository name longer than 255 characters"));
    }
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".to_string())
    } else {
        tag
    };
    // Docker Hub's official images live under `library/`.
    let repository = if host == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    };
    Ok(ImageRef::Registry {
        registry: host.to_string(),
        repository,
        tag,
        digest,
    })
}

impl FromStr for ImageRef {
    type Err = Error;

    fn from_str(input: &str) -> Result<ImageRef> {
        if let Some(rest) = input.strip_prefix("docker://") {
            return parse_registry(input, rest);
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            let (dir, tag) = match rest.rsplit_once(':') {
                Some((d, t)) if is_tag(t) && !d.is_empty() => (d, Some(t.to_string())),
                Some((_, "")) => return Err(invalid(input, "empty tag after ':'")),
                _ => (rest, None),
            };
            if dir.is_empty() {
                return Err(invalid(input, "missing directory after 'oci:'"));
            }
            return Ok(ImageRef::OciLayout {
                dir: PathBuf::from(dir),
                tag,
            });
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            // Same split as `oci:`: the last ':' starts the tag when a valid tag follows.
            let (file, tag) = match rest.rsplit_once(':') {
                Some((f, t)) if is_tag(t) && !f.is_empty() => (f, Some(t.to_string())),
                Some((_, "")) => return Err(invalid(input, "empty tag after ':'")),
                _ => (rest, None),
            };
            if file.is_empty() {
                return Err(invalid(input, "missing file after 'oci-archive:'"));
            }
            return Ok(ImageRef::OciArchive {
                file: PathBuf::from(file),
                tag,
            });
        }
        if let Some(rest) = input.strip_prefix("docker-archive:") {
            let (file, image) = match rest.split_once(':') {
                Some((f, i)) => (f, Some(i)),
                None => (rest, None),
            };
            if file.is_empty() {
                return Err(invalid(input, "missing file after 'docker-archive:'"));
            }
            let image = match image {
                None => None,
                Some(i) => match parse_registry(input, i) {
                    Ok(_) => Some(
                        if i.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/')) {
                            i.to_string()
                        } else {
                            format!("{i}:latest")
                        },
                    ),
                    // Docker Hub short names are normal in RepoTags ("busybox:latest").
                    Err(_)
                        if i.split_once(':').is_none_or(|(_, t)| is_tag(t))
                            && !i.contains('@')
                            && !i.is_empty() =>
                    {
                        Some(if i.contains(':') {
                            i.to_string()
                        } else {
                            format!("{i}:latest")
                        })
                    }
                    Err(e) => return Err(e),
                },
            };
            return Ok(ImageRef::DockerArchive {
                file: PathBuf::from(file),
                image,
            });
        }
        if let Some((transport, _)) = input.split_once(':') {
            if [
                "dir",
                "docker-daemon",
                "containers-storage",
                "ostree",
                "sif",
            ]
            .contains(&transport)
            {
                return Err(invalid(input, format!("transport {transport:?} is not supported (use docker://, oci:, oci-archive: or docker-archive:)")));
            }
        }
        parse_registry(input, input)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Registry {
                registry,
                repository,
                tag,
                digest,
            } => {
                if registry == "oci"
                    || registry.starts_with("oci:")
                    || registry.starts_with("oci-archive:")
                    || registry.starts_with("docker-archive:")
                {
                    write!(f, "docker://")?;
                }
                write!(f, "{registry}/{repository}")?;
                if let Some(t) = tag {
                    write!(f, ":{t}")?;
                }
                if let Some(d) = digest {
                    write!(f, "@{d}")?;
                }
                Ok(())
            }
            ImageRef::OciLayout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                if let Some(t) = tag {
                    write!(f, ":{t}")?;
                }
                Ok(())
            }
            ImageRef::DockerArchive { file, image } => {
                write!(f, "docker-archive:{}", file.display())?;
                if let Some(i) = image {
                    write!(f, ":{i}")?;
                }
                Ok(())
            }
            ImageRef::OciArchive { file, tag } => {
                write!(f, "oci-archive:{}", file.display())?;
                if let Some(t) = tag {
                    write!(f, ":{t}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod local_path_tests {
    use super::ImageRef;

    #[test]
    fn a_path_suggests_its_transport_once() {
        for (input, form) in [
            ("/path/to/img.tar", "\"docker-archive:/path/to/img.tar\""),
            ("./img.tar", "\"docker-archive:./img.tar\""),
            ("img.tar", "\"docker-archive:img.tar\""),
            ("/", "\"oci:/\""),
        ] {
            let e = input.parse::<ImageRef>().unwrap_err().to_string();
            assert!(e.contains(form), "{input}: {e}");
            assert!(!e.contains("docker.io"), "{input}: {e}");
            assert_eq!(e.matches("invalid image reference").count(), 1, "{e}");
        }
        // A repository that happens to end in .tar is still one.
        assert!("example.com/x.tar".parse::<ImageRef>().is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn reg(r: &str, repo: &str, tag: Option<&str>, digest: Option<&str>) -> ImageRef {
        ImageRef::Registry {
            registry: r.into(),
            repository: repo.into(),
            tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        }
    }

    #[test]
    fn parse_table() {
        let dd = format!("127.0.0.1:5000/a/b@{D}");
        let td = format!("docker://ghcr.io/o/r:v1@{D}");
        let cases: Vec<(&str, ImageRef, &str)> = vec![
            (
                "docker://127.0.0.1:5000/repo:tag",
                reg("127.0.0.1:5000", "repo", Some("tag"), None),
                "127.0.0.1:5000/repo:tag",
            ),
            (
                "127.0.0.1:5000/repo",
                reg("127.0.0.1:5000", "repo", Some("latest"), None),
                "127.0.0.1:5000/repo:latest",
            ),
            (
                "localhost/a/b-c_d.e:1.0",
                reg("localhost", "a/b-c_d.e", Some("1.0"), None),
                "localhost/a/b-c_d.e:1.0",
            ),
            (
                "localhost/a__b/c---d",
                reg("localhost", "a__b/c---d", Some("latest"), None),
                "localhost/a__b/c---d:latest",
            ),
            (
                "public.ecr.aws/soci-workshop-examples/ffmpeg:latest",
                reg(
                    "public.ecr.aws",
                    "soci-workshop-examples/ffmpeg",
                    Some("latest"),
                    None,
                ),
                "public.ecr.aws/soci-workshop-examples/ffmpeg:latest",
            ),
            (&dd, reg("127.0.0.1:5000", "a/b", None, Some(D)), &dd),
            (&td, reg("ghcr.io", "o/r", Some("v1"), Some(D)), &td[9..]),
            (
                "docker.io/ubuntu:22.04",
                reg("docker.io", "library/ubuntu", Some("22.04"), None),
                "docker.io/library/ubuntu:22.04",
            ),
            (
                "docker://oci:5000/x:y",
                reg("oci:5000", "x", Some("y"), None),
                "docker://oci:5000/x:y",
            ),
            (
                "[::1]:5000/x",
                reg("[::1]:5000", "x", Some("latest"), None),
                "[::1]:5000/x:latest",
            ),
            (
                "oci:/tmp/layout",
                ImageRef::OciLayout {
                    dir: "/tmp/layout".into(),
                    tag: None,
                },
                "oci:/tmp/layout",
            ),
            (
                "oci:/tmp/layout:v1",
                ImageRef::OciLayout {
                    dir: "/tmp/layout".into(),
                    tag: Some("v1".into()),
                },
                "oci:/tmp/layout:v1",
            ),
            (
                "oci:rel/a:b:v1",
                ImageRef::OciLayout {
                    dir: "rel/a:b".into(),
                    tag: Some("v1".into()),
                },
                "oci:rel/a:b:v1",
            ),
            (
                "oci:/a:b/c",
                ImageRef::OciLayout {
                    dir: "/a:b/c".into(),
                    tag: None,
                },
                "oci:/a:b/c",
            ),
            (
                "oci-archive:/tmp/x.tar:v1",
                ImageRef::OciArchive {
                    file: "/tmp/x.tar".into(),
                    tag: Some("v1".into()),
                },
                "oci-archive:/tmp/x.tar:v1",
            ),
            (
                "oci-archive:x.tar",
                ImageRef::OciArchive {
                    file: "x.tar".into(),
                    tag: None,
                },
                "oci-archive:x.tar",
            ),
            (
                "docker-archive:/tmp/x.tar",
                ImageRef::DockerArchive {
                    file: "/tmp/x.tar".into(),
                    image: None,
                },
                "docker-archive:/tmp/x.tar",
            ),
            (
                "docker-archive:x.tar:busybox",
                ImageRef::DockerArchive {
                    file: "x.tar".into(),
                    image: Some("busybox:latest".into()),
                },
                "docker-archive:x.tar:busybox:latest",
            ),
            (
                "docker-archive:x.tar:localhost:5000/a:v2",
                ImageRef::DockerArchive {
                    file: "x.tar".into(),
                    image: Some("localhost:5000/a:v2".into()),
                },
                "docker-archive:x.tar:localhost:5000/a:v2",
            ),
        ];
        for (input, want, shown) in cases {
            let got: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, want, "{input}");
            assert_eq!(got.to_string(), shown, "{input}");
            assert_eq!(
                shown.parse::<ImageRef>().unwrap(),
                want,
                "round trip of {shown}"
            );
        }
    }

    #[test]
    fn errors_name_the_input() {
        let cases = [
            ("ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
            ("library/ubuntu", "docker.io/library/ubuntu"),
            ("127.0.0.1:5000/Repo:tag", "repository"),
            ("127.0.0.1:5000/repo:ta g", "tag"),
            ("127.0.0.1:5000/repo:-x", "tag"),
            ("127.0.0.1:5000/repo@sha256:abc", "digest"),
            (
                "127.0.0.1:5000/repo@md5:0123456789abcdef0123456789abcdef",
                "digest",
            ),
            ("127.0.0.1:5000/", "repository"),
            ("127.0.0.1:5000/a//b", "repository"),
            ("127.0.0.1:5000/a/b_", "repository"),
            ("127.0.0.1:5000/a.-b", "repository"),
            ("127.0.0.1:5000/a___b", "repository"),
            ("bad_host.io:x/repo", "host"),
            ("docker://", "empty"),
            ("oci:", "directory"),
            ("oci:/x:", "empty tag"),
            ("docker-archive:", "file"),
            ("oci-archive:", "file"),
            ("oci-archive:/x:", "empty tag"),
            ("dir:/tmp/x", "not supported"),
            ("", "empty"),
        ];
        for (input, fragment) in cases {
            let e = input.parse::<ImageRef>().expect_err(input).to_string();
            assert!(e.contains(&format!("{input:?}")), "{input}: {e}");
            assert!(e.contains(fragment), "{input}: {e}");
        }
    }
}
