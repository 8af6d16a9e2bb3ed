//! A throw-away `docker-registry serve` (distribution 2.8) on 127.0.0.1.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "install docker-registry (apt-get install -y docker-registry)";

/// A running registry; killed and its storage deleted on drop.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    tls: bool,
}

/// Options for [`Registry::start_with`].
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Require HTTP basic auth (htpasswd, bcrypt) with this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Serve HTTPS with a leaf certificate for 127.0.0.1 signed by a fresh CA
    /// (see [`Registry::ca_cert`]); needs the `openssl` command.
    pub tls: bool,
    /// With `tls`: require a client certificate signed by the same CA (see
    /// [`Registry::client_cert`]).
    pub client_ca: bool,
}

fn run(cmd: &mut Command) -> std::io::Result<()> {
    let out = cmd
        .output()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// A CA (`ca.pem`) and a leaf (`leaf.pem`, `leaf.key`) for IP 127.0.0.1.
/// rustls refuses a self-signed certificate that is itself a CA, hence two.
fn make_certs(dir: &Path) -> std::io::Result<()> {
    let ext = dir.join("leaf.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n")?;
    let o = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.current_dir(dir).args(args);
        run(&mut c)
    };
    o(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=soci-testkit CA",
    ])?;
    o(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    o(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ])
}

/// A client certificate (`client.pem`, `client.key`) signed by the CA of
/// [`make_certs`], and the same pair as skopeo's `--*-cert-dir` wants it.
fn make_client_cert(dir: &Path) -> std::io::Result<()> {
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
    )?;
    let o = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.current_dir(dir).args(args);
        run(&mut c)
    };
    o(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/CN=soci-testkit client",
    ])?;
    o(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.pem",
        "-days",
        "2",
        "-extfile",
        "client.ext",
    ])?;
    let certs = dir.join("client-certs");
    std::fs::create_dir_all(&certs)?;
    std::fs::copy(dir.join("client.pem"), certs.join("client.cert"))?;
    std::fs::copy(dir.join("client.key"), certs.join("client.key"))?;
    std::fs::copy(dir.join("ca.pem"), certs.join("ca.crt"))?;
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Status code of a plain `GET path` (HTTP/1.0, no client library needed).
pub fn http_get_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP status line {text:?}")))
}

impl Registry {
    /// Start a registry on a free port and wait until `GET /v2/` answers 200.
    pub fn start() -> std::io::Result<Registry> {
        Self::start_with(&RegistryConfig::default())
    }

    /// Start a registry with basic auth and/or TLS and wait until it listens.
    pub fn start_with(config: &RegistryConfig) -> std::io::Result<Registry> {
        Self::start_deletes(config, true)
    }

    /// Start a registry that refuses DELETEs (`storage.delete.enabled: false`,
    /// docker-registry's own default; the others allow them).
    pub fn start_without_deletes() -> std::io::Result<Registry> {
        Self::start_deletes(&RegistryConfig::default(), false)
    }

    fn start_deletes(config: &RegistryConfig, deletes: bool) -> std::io::Result<Registry> {
        let mut last_err = None;
        // The free port can be taken between probing and binding: retry.
        for _ in 0..3 {
            match Self::try_start(config, deletes) {
                Ok(r) => return Ok(r),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    fn try_start(opts: &RegistryConfig, deletes: bool) -> std::io::Result<Registry> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = dir.path().join("config.yml");
        let mut yml = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: {deletes}}}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if opts.tls {
            make_certs(dir.path())?;
            yml += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("leaf.pem").display(),
                dir.path().join("leaf.key").display()
            );
            if opts.client_ca {
                make_client_cert(dir.path())?;
                yml += &format!(
                    "    clientcas:\n      - {}\n",
                    dir.path().join("ca.pem").display()
                );
            }
        }
        if let Some((user, password)) = &opts.basic_auth {
            let hash = bcrypt::hash(password, 4).map_err(std::io::Error::other)?;
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n"))?;
            yml += &format!(
                "auth:\n  htpasswd:\n    realm: soci-testkit\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        std::fs::write(&config, yml)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    std::io::Error::new(
                        e.kind(),
                        format!("`docker-registry` not found: {INSTALL_HINT}"),
                    )
                } else {
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot run docker-registry: {e}; {INSTALL_HINT}"),
                    )
                }
            })?;
        let mut reg = Registry {
            child,
            addr,
            dir,
            tls: opts.tls,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = reg.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "docker-registry exited with {status}: {}",
                    reg.log()
                )));
            }
            // Over TLS, accepting connections is the sign of life (the
            // certificates were loaded before the listener opened).
            let ready = if opts.tls {
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            } else {
                matches!(http_get_status(addr, "/v2/"), Ok(200) | Ok(401))
            };
            if ready {
                return Ok(reg);
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "docker-registry did not answer GET /v2/ on {addr} within 15 s: {}",
                    reg.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT` as a string, the registry part of references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The CA certificate (PEM file) that signed the registry's certificate
    /// (only with `tls`).
    pub fn ca_cert(&self) -> Option<std::path::PathBuf> {
        self.tls.then(|| self.dir.path().join("ca.pem"))
    }

    /// The client certificate and key (PEM files) the registry accepts, and a
    /// directory holding them as skopeo's `--dest-cert-dir` wants (only with
    /// `client_ca`).
    pub fn client_cert(&self) -> Option<(PathBuf, PathBuf, PathBuf)> {
        let d = self.dir.path();
        d.join("client-certs").is_dir().then(|| {
            (
                d.join("client.pem"),
                d.join("client.key"),
                d.join("client-certs"),
            )
        })
    }

    /// The registry's own log (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps its blobs and manifests, for tests that corrupt or inspect them.
    pub fn storage_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
