//! Which credentials exist for a registry: the options the user gave, and
//! Docker's `config.json` (`auths`, `credHelpers`, `credsStore`).
use crate::error::{Error, Result};
use oci_client::secrets::RegistryAuth;
use std::path::PathBuf;

/// Who we are to the registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials.
    Anonymous,
    /// `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`) `auths`
    /// entry for the registry host; anonymous when there is none.
    #[default]
    DockerConfig,
    /// Explicit user name and password (`-u user:password`).
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::DockerConfig => write!(f, "DockerConfig"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
        }
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    pub credentials: Credentials,
    /// Speak plain HTTP (`--plain-http`), e.g. to a local test registry.
    pub plain_http: bool,
    /// An extra trusted root certificate (PEM file), e.g. a private CA.
    pub tls_ca: Option<PathBuf>,
}

/// The credentials Docker would use for `registry`: `config.json`'s
/// `credHelpers` entry for the host, else its `auths` entry, else its
/// `credsStore` (helpers are the `docker-credential-NAME` programs on `PATH`,
/// asked with `get`). Nothing configured, or a helper that does not know the
/// host, means anonymous; a helper that cannot be run or answers nonsense is
/// an error, not a silent anonymous pull that fails later with a 401.
fn docker_config_auth(registry: &str) -> Result<RegistryAuth> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let key = if registry == "docker.io" || registry == "index.docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    let config_path = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"));
    let config = config_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.docker/config.json".into());
    // The helper the config names for this server (for error messages).
    let helper_name = || -> String {
        let v: serde_json::Value = config_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let name = v["credHelpers"][key]
            .as_str()
            .or(v["credsStore"].as_str())
            .unwrap_or("NAME");
        format!("docker-credential-{name}")
    };
    let fail = |message: String| {
        Err(Error::Registry {
            registry: registry.into(),
            context: format!("credentials from {config}"),
            message,
        })
    };
    match docker_credential::get_credential(key) {
        Ok(DockerCredential::UsernamePassword(u, p)) => Ok(RegistryAuth::Basic(u, p)),
        Ok(DockerCredential::IdentityToken(t)) => Ok(RegistryAuth::Bearer(t)),
        Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => {
            Ok(RegistryAuth::Anonymous)
        }
        // The helper's standard answer for a server it holds nothing for.
        Err(E::HelperFailure { stdout, stderr, .. })
            if stdout.contains("credentials not found")
                || stderr.contains("credentials not found") =>
        {
            Ok(RegistryAuth::Anonymous)
        }
        Err(E::HelperFailure {
            helper,
            stdout,
            stderr,
        }) => fail(format!(
            "credential helper `{helper} get` failed: {}",
            format!("{} {}", stdout.trim(), stderr.trim()).trim()
        )),
        Err(E::HelperCommunicationError) => fail(format!(
            "cannot run the credential helper it names (credsStore/credHelpers): \
             is {} on PATH?",
            helper_name()
        )),
        Err(e) => fail(e.to_string()),
    }
}

/// The credentials to present to `registry` for `credentials`.
pub(super) fn registry_auth(registry: &str, credentials: &Credentials) -> Result<RegistryAuth> {
    Ok(match credentials {
        Credentials::Anonymous => RegistryAuth::Anonymous,
        Credentials::Basic { username, password } => {
            RegistryAuth::Basic(username.clone(), password.clone())
        }
        Credentials::DockerConfig => docker_config_auth(registry)?,
    })
}
