//! A hostile registry on 127.0.0.1: a small HTTP/1.1 server whose answers
//! are scripted per request (status codes with `Retry-After`, bodies that
//! trickle a byte at a time, never end, or are far larger than announced,
//! heads followed by silence). It is not a registry: a request no rule
//! matches gets a 404. Tests put it where the real registry or a token
//! server would be, to prove the client's limits hold.
//!
//! Every connection carries one request (`Connection: close`). A TLS
//! handshake (a client that forgot `--plain-http`'s opposite) is answered in
//! plain HTTP, as a plain-HTTP registry would.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to answer a matching request. In header values and bodies, `{host}`
/// is replaced by the server's `127.0.0.1:PORT`.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status, headers and body (with a correct `Content-Length`).
    Status {
        /// HTTP status code.
        code: u16,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// Response body.
        body: Vec<u8>,
    },
    /// 200 with these headers and no length, then one byte of `byte` every
    /// `every`, until the client goes away.
    Trickle {
        /// Response headers.
        headers: Vec<(String, String)>,
        /// The byte repeated as the body.
        byte: u8,
        /// Pause before each byte.
        every: Duration,
    },
    /// 200 with these headers and no length, then `byte` as fast as the
    /// client reads, until it goes away.
    Endless {
        /// Response headers.
        headers: Vec<(String, String)>,
        /// The byte repeated as the body.
        byte: u8,
    },
    /// No answer at all for this long (the request is read), then a close.
    Silence(Duration),
    /// The head (200, these headers), then silence for this long.
    Stall {
        /// Response headers.
        headers: Vec<(String, String)>,
        /// How long to stay silent after the head.
        wait: Duration,
    },
}

impl Answer {
    /// A status with a `Retry-After` and a small JSON error body.
    pub fn retry_after(code: u16, retry_after: &str) -> Answer {
        Answer::Status {
            code,
            headers: vec![("Retry-After".into(), retry_after.into())],
            body: br#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#.to_vec(),
        }
    }

    /// A status with headers and a body.
    pub fn status(code: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Answer {
        Answer::Status {
            code,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    method: String,
    path: String,
    /// The whole path, not a part of it.
    exact: bool,
    times: usize,
    answer: Answer,
}

/// One request the server saw: method (`TLS` for a TLS handshake), path,
/// and the scheme of its `Authorization` header (`Basic`, `Bearer`; never
/// the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// HTTP method, or `TLS` for a TLS handshake.
    pub method: String,
    /// Request target as sent (path and query); empty for TLS.
    pub path: String,
    /// Scheme of the `Authorization` header, if one was sent.
    pub authorization: Option<String>,
}

/// The server; it stops serving when dropped (its port is then refused).
pub struct HostileServer {
    addr: SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
    log: Arc<Mutex<Vec<Seen>>>,
    sent: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl HostileServer {
    /// Listens on a free port of 127.0.0.1; with no rules every request gets 404.
    pub fn start() -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let rules: Arc<Mutex<Vec<Rule>>> = Default::default();
        let log: Arc<Mutex<Vec<Seen>>> = Default::default();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, l, s, st) = (rules.clone(), log.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (r, l, s) = (r.clone(), l.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, addr, &r, &l, &s);
                });
            }
        });
        HostileServer {
            addr,
            rules,
            log,
            sent,
            stop,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Answer the next `times` requests (`usize::MAX`: all) of `method` whose
    /// path contains `path` with `answer`. Earlier rules win.
    pub fn on(&self, method: &str, path: &str, times: usize, answer: Answer) {
        self.rules.lock().unwrap().push(Rule {
            method: method.into(),
            path: path.into(),
            exact: false,
            times,
            answer,
        });
    }

    /// [`Self::on`] for requests whose path is exactly `path`.
    pub fn on_exact(&self, method: &str, path: &str, times: usize, answer: Answer) {
        self.rules.lock().unwrap().push(Rule {
            method: method.into(),
            path: path.into(),
            exact: true,
            times,
            answer,
        });
    }

    /// Make `GET /v2/` ask for a bearer token from this server's `/token`.
    pub fn require_token(&self) {
        self.on_exact(
            "GET",
            "/v2/",
            usize::MAX,
            Answer::status(
                401,
                &[(
                    "WWW-Authenticate",
                    r#"Bearer realm="http://{host}/token",service="hostile""#,
                )],
                "",
            ),
        );
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// Requests of `method` whose path contains `path`.
    pub fn seen(&self, method: &str, path: &str) -> usize {
        self.log()
            .iter()
            .filter(|s| s.method == method && s.path.contains(path))
            .count()
    }

    /// Body bytes written so far by trickling and endless answers (what a
    /// client let itself be sent).
    pub fn streamed_bytes(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    conn: TcpStream,
    addr: SocketAddr,
    rules: &Mutex<Vec<Rule>>,
    log: &Mutex<Vec<Seen>>,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut first = [0u8; 1];
    if conn.peek(&mut first)? == 0 {
        return Ok(());
    }
    if first[0] == 0x16 {
        // A TLS ClientHello: answer as a plain-HTTP server does.
        log.lock().unwrap().push(Seen {
            method: "TLS".into(),
            path: String::new(),
            authorization: None,
        });
        out.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let mut rd = BufReader::new(conn);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let t = line.trim_end_matches(['\r', '\n']).to_string();
        if t.is_empty() {
            break;
        }
        head.push(t);
    }
    let mut parts = head
        .first()
        .map(|l| l.split_whitespace())
        .into_iter()
        .flatten();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    // Drain a request body (uploads, manifests) before answering.
    let len = head.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<u64>().ok())?
    });
    if let Some(n) = len {
        std::io::copy(&mut (&mut rd).take(n), &mut std::io::sink())?;
    }
    let authorization = head.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| v.split_whitespace().next().unwrap_or("").to_string())
    });
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        authorization,
    });
    let answer = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| {
                r.times > 0
                    && r.method == method
                    && if r.exact {
                        path == r.path
                    } else {
                        path.contains(&r.path)
                    }
            })
            .map(|r| {
                if r.times != usize::MAX {
                    r.times -= 1;
                }
                r.answer.clone()
            })
    };
    let host = addr.to_string();
    let fill = |s: &str| s.replace("{host}", &host);
    let head_of = |code: u16, headers: &[(String, String)], length: Option<usize>| {
        let mut h = format!("HTTP/1.1 {code} Hostile\r\nConnection: close\r\n");
        for (k, v) in headers {
            h.push_str(&format!("{k}: {}\r\n", fill(v)));
        }
        if let Some(n) = length {
            h.push_str(&format!("Content-Length: {n}\r\n"));
        }
        h.push_str("\r\n");
        h
    };
    match answer {
        None => {
            let body = br#"{"errors":[{"code":"NOT_FOUND","message":"no rule"}]}"#;
            out.write_all(head_of(404, &[], Some(body.len())).as_bytes())?;
            if method != "HEAD" {
                out.write_all(body)?;
            }
        }
        Some(Answer::Status {
            code,
            headers,
            body,
        }) => {
            let body = fill(&String::from_utf8_lossy(&body)).into_bytes();
            out.write_all(head_of(code, &headers, Some(body.len())).as_bytes())?;
            if method != "HEAD" {
                out.write_all(&body)?;
            }
        }
        Some(Answer::Trickle {
            headers,
            byte,
            every,
        }) => {
            out.write_all(head_of(200, &headers, None).as_bytes())?;
            loop {
                out.write_all(&[byte])?;
                out.flush()?;
                sent.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(every);
            }
        }
        Some(Answer::Endless { headers, byte }) => {
            out.write_all(head_of(200, &headers, None).as_bytes())?;
            let chunk = vec![byte; 64 << 10];
            loop {
                out.write_all(&chunk)?;
                sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
        Some(Answer::Silence(wait)) => std::thread::sleep(wait),
        Some(Answer::Stall { headers, wait }) => {
            out.write_all(head_of(200, &headers, None).as_bytes())?;
            out.flush()?;
            std::thread::sleep(wait);
        }
    }
    Ok(())
}
