//! The image to run: its manifest for the platform and the parts of its
//! config a container needs (Env, Entrypoint, Cmd, WorkingDir, User).
use crate::error::{Error, Result};
use serde::Deserialize;
use soci_oci::source::{select_manifests, ImageSource, PlatformChoice};
use soci_oci::spec::Manifest;

/// The image config's `config` object (the OCI image spec's fields that
/// decide how the container starts).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `NAME=value` pairs.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// The program and its first arguments.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// The default arguments (after the entrypoint), or the command.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// The working directory (default `/`).
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group`, `uid:gid` (default root).
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    config: Option<ContainerConfig>,
}

/// One platform's image: manifest and start-up config.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image manifest chosen for the platform.
    pub manifest: Manifest,
    /// Its digest.
    pub manifest_digest: String,
    /// The container config from the image config blob.
    pub config: ContainerConfig,
}

/// The image manifest of `source` for `platform` (the host's when `Host`;
/// a single-platform image whatever its platform) and its config.
pub fn load_image(source: &dyn ImageSource, platform: &PlatformChoice) -> Result<Image> {
    let chosen = select_manifests(source, platform)?;
    let m = chosen.into_iter().next().ok_or_else(|| Error::Config {
        digest: String::new(),
        reason: "no image manifest for the platform".into(),
    })?;
    let raw = source.fetch_blob(&m.manifest.config)?;
    let doc: ConfigDoc = serde_json::from_slice(&raw).map_err(|e| Error::Config {
        digest: m.manifest.config.digest.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Image {
        manifest_digest: m.descriptor.digest.to_string(),
        manifest: m.manifest,
        config: doc.config.unwrap_or_default(),
    })
}

/// The process arguments, as `docker run` builds them: the entrypoint (or
/// `entrypoint` when given; an empty one clears it), then `cmd` when given,
/// else the image's Cmd.
pub fn process_args(
    config: &ContainerConfig,
    entrypoint: Option<&[String]>,
    cmd: &[String],
) -> Result<Vec<String>> {
    let mut args: Vec<String> = match entrypoint {
        Some(e) => e.to_vec(),
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    if cmd.is_empty() {
        args.extend(config.cmd.clone().unwrap_or_default());
    } else {
        args.extend(cmd.iter().cloned());
    }
    if args.is_empty() || args[0].is_empty() {
        return Err(Error::NoCommand);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_follow_docker_run() {
        let c = ContainerConfig {
            entrypoint: Some(vec!["/ep".into()]),
            cmd: Some(vec!["a".into()]),
            ..Default::default()
        };
        assert_eq!(process_args(&c, None, &[]).unwrap(), ["/ep", "a"]);
        assert_eq!(process_args(&c, None, &["b".into()]).unwrap(), ["/ep", "b"]);
        assert_eq!(
            process_args(&c, Some(&[]), &["/bin/sh".into()]).unwrap(),
            ["/bin/sh"]
        );
        assert!(process_args(&ContainerConfig::default(), None, &[]).is_err());
    }
}
