//! A throw-away `docker-registry serve` (distribution 2.8) on 127.0.0.1.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "install docker-registry (apt-get install -y docker-registry)";

/// A running registry; killed and its storage deleted on drop.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
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
        let mut last_err = None;
        // The free port can be taken between probing and binding: retry.
        for _ in 0..3 {
            match Self::try_start() {
                Ok(r) => return Ok(r),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    fn try_start() -> std::io::Result<Registry> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: {addr}}}\n",
                dir.path().join("data").display()
            ),
        )?;
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
                    std::io::Error::new(e.kind(), format!("`docker-registry` not found: {INSTALL_HINT}"))
                } else {
                    std::io::Error::new(e.kind(), format!("cannot run docker-registry: {e}; {INSTALL_HINT}"))
                }
            })?;
        let mut reg = Registry { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = reg.child.try_wait()? {
                return Err(std::io::Error::other(format!("docker-registry exited with {status}: {}", reg.log())));
            }
            if let Ok(200) = http_get_status(addr, "/v2/") {
                return Ok(reg);
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!("docker-registry did not answer GET /v2/ on {addr} within 15 s: {}", reg.log())));
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

    /// The registry's own log (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

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
