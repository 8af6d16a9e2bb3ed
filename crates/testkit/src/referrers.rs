//! A minimal registry front that implements only the referrers API
//! (`GET /v2/<name>/referrers/<digest>`), for the code path that real
//! registries with that API take; no packaged registry offers it.
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Serves `GET /v2/` (200) and `GET /v2/<name>/referrers/<digest>` (200, the
/// given index); everything else is 404. Stopped on drop.
pub struct ReferrersServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReferrersServer {
    /// Listens on a free port of 127.0.0.1 and answers the referrers API with `index_json`.
    pub fn start(index_json: Vec<u8>) -> std::io::Result<ReferrersServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone socket"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // Drain the headers.
                let mut h = String::new();
                while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                    h.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let (status, ctype, body): (&str, &str, &[u8]) =
                    if line.starts_with("GET ") && path == "/v2/" {
                        ("200 OK", "application/json", b"{}")
                    } else if line.starts_with("GET ")
                        && path.starts_with("/v2/")
                        && path.contains("/referrers/sha256:")
                    {
                        (
                            "200 OK",
                            "application/vnd.oci.image.index.v1+json",
                            &index_json,
                        )
                    } else {
                        (
                            "404 Not Found",
                            "application/json",
                            br#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#,
                        )
                    };
                let _ = write!(conn, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = conn.write_all(body);
            }
        });
        Ok(ReferrersServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`, for image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for ReferrersServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
