//! Which credentials exist for a registry, and which host they may go to: the
//! options the user gave (scoped to one registry), and Docker's `config.json`
//! (`credHelpers`, `auths`, `credsStore`).
use crate::error::{Error, Result};
use oci_client::secrets::RegistryAuth;
use std::path::PathBuf;

/// Who we are to the registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials.
    Anonymous,
    /// What Docker would use for the registry host: `$DOCKER_CONFIG/config.json`
    /// (else `~/.docker/config.json`) `credHelpers`, `auths`, `credsStore`;
    /// anonymous when there is nothing for the host.
    #[default]
    DockerConfig,
    /// Explicit user name and password (`-u user:password`).
    Basic {
        /// User name to log in with.
        username: String,
        /// Password (or token) to log in with.
        password: String,
    },
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

/// Credentials that belong to one registry host only (e.g. `-u` for the
/// destination): every other host gets [`RegistryOptions::credentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCredentials {
    /// `host[:port]` as in the image reference.
    pub registry: String,
    /// The credentials to use for that host.
    pub credentials: Credentials,
    /// Where they came from, for error messages (e.g. `-u/--user`).
    pub origin: String,
}

/// A client certificate and its private key (PEM files), for registries that
/// ask for one (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// PEM file with the client certificate.
    pub cert: PathBuf,
    /// PEM file with the certificate's private key.
    pub key: PathBuf,
}

/// How to reach registries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Credentials for every registry not named in `host_credentials`.
    pub credentials: Credentials,
    /// Credentials scoped to one registry host each (they win over
    /// `credentials` for that host and are never offered to another).
    pub host_credentials: Vec<HostCredentials>,
    /// Speak plain HTTP to every registry (`--plain-http`), e.g. a local test
    /// registry. Credentials still go over plain HTTP only to loopback hosts
    /// and to hosts named in `plain_http_hosts`.
    pub plain_http: bool,
    /// Registries spoken to in plain HTTP (`--plain-http=HOST`); naming a
    /// host also allows sending it credentials in the clear.
    pub plain_http_hosts: Vec<String>,
    /// An extra trusted root certificate (PEM file), e.g. a private CA.
    pub tls_ca: Option<PathBuf>,
    /// Skip TLS certificate verification (`-k/--insecure`).
    pub insecure: bool,
    /// Present this client certificate (`--tlscert/--tlskey`).
    pub client_cert: Option<ClientCert>,
    /// Overall limit for one request (a whole download or upload), retries
    /// included (`--timeout`); the `SOCI_REGISTRY_TIMEOUT` environment
    /// variable otherwise.
    pub timeout: Option<std::time::Duration>,
    /// Print every HTTP exchange soci makes itself (method, URL, status,
    /// headers; credentials redacted) on stderr (`--http-dump`).
    pub http_dump: bool,
}

impl RegistryOptions {
    /// Whether `registry` (`host[:port]`) is spoken to in plain HTTP.
    pub fn plain_http_for(&self, registry: &str) -> bool {
        self.plain_http || self.plain_http_hosts.iter().any(|h| h == registry)
    }
}

/// Whether `registry` (`host[:port]`) is this machine: `localhost`, 127.0.0.0/8, `::1`.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The credentials chosen for one registry, and how to describe them (never
/// the secret) when the registry refuses them.
#[derive(Clone)]
pub(super) struct Resolved {
    pub(super) auth: RegistryAuth,
    /// e.g. `user alice from -u/--user`, `anonymous (no credentials for H in FILE)`.
    pub(super) tried: String,
    /// What the user can do about a refusal.
    pub(super) advice: String,
}

impl Resolved {
    /// The text for a registry's refusal (401/403): what was tried, what to do.
    pub(super) fn refused(&self) -> String {
        format!(
            "access denied; credentials tried: {}; {}",
            self.tried, self.advice
        )
    }
}

/// The credentials to present to `registry` under `opts`. Credentials that
/// would travel in plain HTTP to a host that is neither loopback nor named by
/// `--plain-http=HOST` are withheld (config credentials) or refused (explicit
/// ones).
pub(super) fn resolve(registry: &str, opts: &RegistryOptions) -> Result<Resolved> {
    let login = format!("run `docker login {registry}` or pass -u USER:PASSWORD");
    let scoped = opts
        .host_credentials
        .iter()
        .find(|h| h.registry == registry);
    let (creds, origin) = match scoped {
        Some(h) => (&h.credentials, h.origin.as_str()),
        None => (&opts.credentials, ""),
    };
    let mut resolved = match creds {
        Credentials::Anonymous => Resolved {
            auth: RegistryAuth::Anonymous,
            tried: "anonymous".into(),
            advice: login,
        },
        Credentials::Basic { username, password } => Resolved {
            auth: RegistryAuth::Basic(username.clone(), password.clone()),
            tried: format!(
                "user {username} from {}",
                if origin.is_empty() {
                    "the options"
                } else {
                    origin
                }
            ),
            advice: "check the user name and password".into(),
        },
        Credentials::DockerConfig => docker_config_auth(registry)?,
    };
    let clear_text = opts.plain_http_for(registry)
        && !is_loopback(registry)
        && !opts.plain_http_hosts.iter().any(|h| h == registry);
    if clear_text && resolved.auth != RegistryAuth::Anonymous {
        let why = format!(
            "credentials are not sent in plain HTTP to {registry}, which is not this machine; \
             name it with --plain-http={registry} to allow that"
        );
        if matches!(creds, Credentials::Basic { .. }) {
            return Err(Error::Registry {
                registry: registry.into(),
                context: resolved.tried,
                message: why,
            });
        }
        resolved = Resolved {
            auth: RegistryAuth::Anonymous,
            tried: format!("anonymous ({} withheld)", resolved.tried),
            advice: why,
        };
    }
    Ok(resolved)
}

/// Docker's `config.json` for this process.
fn docker_config_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"))
}

/// The registry part of an `auths` key (`https://index.docker.io/v1/` →
/// `index.docker.io`), as Docker matches them.
fn auths_key_host(key: &str) -> &str {
    let stripped = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"));
    let host = match stripped {
        Some(s) => s.split('/').next().unwrap_or(s),
        None => key,
    };
    match host {
        "docker.io" | "registry-1.docker.io" => "index.docker.io",
        h => h,
    }
}

/// Whether `name` may follow `docker-credential-`: what Docker's helpers are
/// called (`desktop`, `ecr-login`, `osxkeychain`, `pass`): letters, digits,
/// `-`, `_`, `.`, starting with a letter or digit, no `..`. Anything else
/// (a `/`, a `..`) could make the program name a path.
pub fn valid_helper_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.contains("..")
}

/// `docker-credential-NAME` in the absolute directories of `PATH` (empty or
/// relative entries, which mean the current directory, are skipped).
fn find_helper(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Asks `docker-credential-NAME get` for `server`: `Ok(None)` when it holds
/// nothing for it.
fn ask_helper(name: &str, server: &str) -> std::result::Result<Option<RegistryAuth>, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let program = format!("docker-credential-{name}");
    let path = find_helper(&program).ok_or_else(|| format!("{program} is not on PATH"))?;
    let mut child = Command::new(&path)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its answer below.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // The helpers' standard answer for a server they hold nothing for.
        if stdout.contains("credentials not found") || stderr.contains("credentials not found") {
            return Ok(None);
        }
        let said: String = format!("{} {}", stdout.trim(), stderr.trim())
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        return Err(format!("`{program} get` failed ({}): {said}", out.status));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    let a: Answer = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("`{program} get` answered something that is not its JSON: {e}"))?;
    Ok(Some(if a.username == "<token>" {
        RegistryAuth::Bearer(a.secret)
    } else {
        RegistryAuth::Basic(a.username, a.secret)
    }))
}

/// The credentials Docker would use for `registry`: `config.json`'s
/// `credHelpers` entry for the host, else its `auths` entry, else its
/// `credsStore` (helpers are the `docker-credential-NAME` programs, looked up
/// in `PATH`'s absolute directories only, asked with `get`). Nothing
/// configured, or a helper that does not know the host, means anonymous; a
/// helper that cannot be run or answers nonsense is an error, not a silent
/// anonymous pull that fails later with a 401.
fn docker_config_auth(registry: &str) -> Result<Resolved> {
    let key = if registry == "docker.io" || registry == "index.docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    let login = format!("run `docker login {registry}` or pass -u USER:PASSWORD");
    let anonymous = |why: String| Resolved {
        auth: RegistryAuth::Anonymous,
        tried: format!("anonymous ({why})"),
        advice: login.clone(),
    };
    let Some(path) = docker_config_path() else {
        return Ok(anonymous(
            "no Docker config: neither DOCKER_CONFIG nor HOME is set".into(),
        ));
    };
    let config = path.display().to_string();
    let fail = |message: String| Error::Registry {
        registry: registry.into(),
        context: format!("credentials from {config}"),
        message,
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(anonymous(format!("no {config}")))
        }
        Err(e) => return Err(fail(format!("cannot read it: {e}"))),
    };
    let v: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return Err(fail(format!("not valid JSON: {e}"))),
    };
    let helper = |name: &str, field: &str| -> Result<Option<Resolved>> {
        if !valid_helper_name(name) {
            return Err(fail(format!(
                "{field} names the credential helper {name:?}: not a helper name \
                 (letters, digits, '-', '_', '.'; no '/' or '..')"
            )));
        }
        let origin = format!("credential helper docker-credential-{name} ({field} in {config})");
        match ask_helper(name, key) {
            Ok(Some(auth)) => Ok(Some(Resolved {
                tried: match &auth {
                    RegistryAuth::Basic(u, _) => format!("user {u} from {origin}"),
                    _ => format!("an identity token from {origin}"),
                },
                auth,
                advice: format!(
                    "check what docker-credential-{name} holds for {registry} (`docker login {registry}`)"
                ),
            })),
            Ok(None) => Ok(None),
            Err(message) => Err(fail(format!("{field} names a helper that cannot answer: {message}"))),
        }
    };
    if let Some(name) = v["credHelpers"][key].as_str().filter(|s| !s.is_empty()) {
        return Ok(helper(name, "credHelpers")?.unwrap_or_else(|| {
            anonymous(format!("docker-credential-{name} holds nothing for {key}"))
        }));
    }
    if let Some(auths) = v["auths"].as_object() {
        let entry = auths.get(key).or_else(|| {
            let want = auths_key_host(key);
            auths
                .iter()
                .find(|(k, _)| auths_key_host(k) == want)
                .map(|(_, e)| e)
        });
        if let Some(e) = entry {
            let origin = format!("auths in {config}");
            let advice = format!("run `docker login {registry}` again");
            let found = |auth: RegistryAuth, tried: String| Resolved {
                auth,
                tried,
                advice: advice.clone(),
            };
            if let Some(auth) = e["auth"].as_str().filter(|s| !s.is_empty()) {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                let Some((u, p)) = decoded.as_deref().and_then(|s| s.split_once(':')) else {
                    return Err(fail(format!(
                        "auths entry for {key}: \"auth\" is not base64 of USER:PASSWORD"
                    )));
                };
                return Ok(found(
                    RegistryAuth::Basic(u.into(), p.into()),
                    format!("user {u} from {origin}"),
                ));
            }
            if let (Some(u), Some(p)) = (e["username"].as_str(), e["password"].as_str()) {
                return Ok(found(
                    RegistryAuth::Basic(u.into(), p.into()),
                    format!("user {u} from {origin}"),
                ));
            }
            if let Some(t) = e["identitytoken"].as_str().filter(|s| !s.is_empty()) {
                return Ok(found(
                    RegistryAuth::Bearer(t.into()),
                    format!("an identity token from {origin}"),
                ));
            }
        }
    }
    if let Some(name) = v["credsStore"].as_str().filter(|s| !s.is_empty()) {
        return Ok(helper(name, "credsStore")?.unwrap_or_else(|| {
            anonymous(format!("docker-credential-{name} holds nothing for {key}"))
        }));
    }
    Ok(anonymous(format!(
        "no credentials for {registry} in {config}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_names() {
        for ok in [
            "desktop",
            "ecr-login",
            "osxkeychain",
            "pass",
            "acr_env",
            "v1.2",
        ] {
            assert!(valid_helper_name(ok), "{ok}");
        }
        for bad in [
            "", "../x", "a/b", "..", "x..y", "-x", ".x", "a b", "a\nb", "/abs",
        ] {
            assert!(!valid_helper_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "localhost",
            "LOCALHOST:80",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.1:5000",
            "registry.example.com",
            "[fe80::1]:5000",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn auths_keys() {
        assert_eq!(
            auths_key_host("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(auths_key_host("docker.io"), "index.docker.io");
        assert_eq!(auths_key_host("http://h:5000/x"), "h:5000");
        assert_eq!(auths_key_host("h:5000"), "h:5000");
    }

    fn opts(plain_http: bool, hosts: &[&str], creds: Credentials) -> RegistryOptions {
        RegistryOptions {
            plain_http,
            plain_http_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            host_credentials: vec![HostCredentials {
                registry: "r.example.com".into(),
                credentials: creds,
                origin: "-u/--user".into(),
            }],
            credentials: Credentials::Anonymous,
            ..Default::default()
        }
    }

    #[test]
    fn credentials_stay_with_their_host_and_off_clear_text() {
        let basic = Credentials::Basic {
            username: "alice".into(),
            password: "pw".into(),
        };
        // Scoped: another host gets the default (anonymous here).
        let o = opts(false, &[], basic.clone());
        assert_eq!(
            resolve("other:5000", &o).unwrap().auth,
            RegistryAuth::Anonymous
        );
        let r = resolve("r.example.com", &o).unwrap();
        assert_eq!(r.auth, RegistryAuth::Basic("alice".into(), "pw".into()));
        assert_eq!(r.tried, "user alice from -u/--user");
        assert!(!r.refused().contains("pw"));
        // Plain HTTP to a remote host: refused unless the host is named.
        let e = resolve("r.example.com", &opts(true, &[], basic.clone()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--plain-http=r.example.com"), "{e}");
        assert!(!e.contains("pw"), "{e}");
        assert!(resolve("r.example.com", &opts(false, &["r.example.com"], basic)).is_ok());
    }
}
