//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of a real registry.
//!
//! Every request is forwarded on a fresh upstream connection with
//! `Connection: close`, the whole answer is read, then a matching [`Rule`]
//! may replace or damage it before it goes back to the client, which is then
//! closed (so every request of the client passes through the rules).
//! Requests with a chunked body (streamed uploads) are piped through as they are.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// Answer with this status (and `Retry-After` if given), without asking upstream.
    Status(u16, Option<&'static str>),
    /// Send the head and the first `n` body bytes, then reset the connection (RST).
    ResetAfter(usize),
    /// Send the head and the first `n` body bytes, then close cleanly (FIN).
    Truncate(usize),
    /// Send the head and the first `n` body bytes, then send nothing for `d`.
    Stall(usize, Duration),
    /// Flip one byte in the middle of the body (same length).
    Corrupt,
    /// Forward without the client's `Range` header (a registry that ignores Range).
    IgnoreRange,
    /// Answer 200 with this `Content-Length` and a few bytes, then stall.
    HugeBody(u64),
    /// Answer 200 with this body and content type, without asking upstream
    /// (e.g. an endpoint the real registry lacks, such as the referrers API).
    Respond(Vec<u8>, &'static str),
    /// Wait this long, then forward as usual (a slow registry).
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub method: &'static str,
    /// Substring of the request path.
    pub path: String,
    /// How many more requests it applies to (`usize::MAX`: always).
    pub times: usize,
    pub fault: Fault,
}

/// One request seen by the proxy.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    /// The request's `Authorization` header, if any.
    pub authorization: Option<String>,
    pub fault: Option<String>,
    /// Requests being served when this one arrived, itself included.
    pub in_flight: usize,
}

pub(crate) struct FaultProxy {
    addr: SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl FaultProxy {
    pub(crate) fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rules: Arc<Mutex<Vec<Rule>>> = Default::default();
        let log: Arc<Mutex<Vec<Seen>>> = Default::default();
        let (r, l) = (rules.clone(), log.clone());
        // Connections this proxy is serving.
        let busy = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (r, l, busy) = (r.clone(), l.clone(), busy.clone());
                std::thread::spawn(move || {
                    let in_flight = busy.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = serve(conn, upstream, &r, &l, in_flight);
                    busy.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FaultProxy { addr, rules, log }
    }

    pub(crate) fn host(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn add(&self, method: &'static str, path: &str, times: usize, fault: Fault) {
        self.rules.lock().unwrap().push(Rule {
            method,
            path: path.to_string(),
            times,
            fault,
        });
    }

    pub(crate) fn clear(&self) {
        self.rules.lock().unwrap().clear();
        self.log.lock().unwrap().clear();
    }

    pub(crate) fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// Requests whose path contains `path`.
    pub(crate) fn seen(&self, method: &str, path: &str) -> Vec<Seen> {
        self.log()
            .into_iter()
            .filter(|s| s.method == method && s.path.contains(path))
            .collect()
    }
}

fn read_head(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(if lines.is_empty() { None } else { Some(lines) });
        }
        let t = line.trim_end_matches(['\r', '\n']).to_string();
        if t.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(t);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn reset(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // Test-only unsafe: std cannot set SO_LINGER, which makes close() send a RST.
    // SAFETY: a live socket fd, and a pointer/size pair to a local libc::linger.
    #[allow(unsafe_code)]
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    rules: &Mutex<Vec<Rule>>,
    log: &Mutex<Vec<Seen>>,
    in_flight: usize,
) -> std::io::Result<()> {
    let mut out = client.try_clone()?;
    let mut rd = BufReader::new(client);
    let Some(head) = read_head(&mut rd)? else {
        return Ok(());
    };
    let mut parts = head[0].split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let range = header(&head, "range").map(str::to_string);
    let fault = {
        let mut rules = rules.lock().unwrap();
        let hit = rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(&r.path));
        hit.map(|r| {
            if r.times != usize::MAX {
                r.times -= 1;
            }
            r.fault.clone()
        })
    };
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        range: range.clone(),
        authorization: header(&head, "authorization").map(str::to_string),
        fault: fault.as_ref().map(|f| format!("{f:?}")),
        in_flight,
    });

    match &fault {
        Some(Fault::Respond(body, ctype)) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(body)?;
            return Ok(());
        }
        Some(Fault::Status(code, retry_after)) => {
            let ra = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            let body = format!(
                "{{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":\"injected {code}\"}}]}}"
            );
            write!(
                out,
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\n{ra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(());
        }
        Some(Fault::HugeBody(n)) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{{\"schemaVersion\":2"
            )?;
            out.flush()?;
            std::thread::sleep(Duration::from_secs(20));
            return Ok(());
        }
        Some(Fault::Delay(d)) => std::thread::sleep(*d),
        _ => {}
    }

    // Forward the request.
    let mut up = TcpStream::connect(upstream)?;
    let chunked = header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let mut req = String::new();
    req.push_str(&head[0]);
    req.push_str("\r\n");
    for l in &head[1..] {
        let k = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if k == "connection" || (k == "range" && matches!(fault, Some(Fault::IgnoreRange))) {
            continue;
        }
        req.push_str(l);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    if chunked {
        // Pipe both ways until the upstream closes.
        let mut up2 = up.try_clone()?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut rd, &mut up2);
        });
        std::io::copy(&mut up, &mut out)?;
        return Ok(());
    }
    if let Some(n) = header(&head, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        let mut body = (&mut rd).take(n);
        std::io::copy(&mut body, &mut up)?;
    }
    // Read the whole answer.
    let mut ur = BufReader::new(up);
    let Some(rhead) = read_head(&mut ur)? else {
        return Ok(());
    };
    let mut body = Vec::new();
    if method != "HEAD" {
        ur.read_to_end(&mut body)?;
    }
    let mut h = String::new();
    h.push_str(&rhead[0]);
    h.push_str("\r\n");
    for l in &rhead[1..] {
        if l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        h.push_str(l);
        h.push_str("\r\n");
    }
    h.push_str("Connection: close\r\n\r\n");
    out.write_all(h.as_bytes())?;
    match fault {
        Some(Fault::ResetAfter(n)) => {
            out.write_all(&body[..n.min(body.len())])?;
            out.flush()?;
            std::thread::sleep(Duration::from_millis(50));
            reset(&out);
        }
        Some(Fault::Truncate(n)) => {
            out.write_all(&body[..n.min(body.len())])?;
            out.flush()?;
            out.shutdown(std::net::Shutdown::Both)?;
        }
        Some(Fault::Stall(n, d)) => {
            out.write_all(&body[..n.min(body.len())])?;
            out.flush()?;
            std::thread::sleep(d);
        }
        Some(Fault::Corrupt) => {
            if !body.is_empty() {
                let mid = body.len() / 2;
                body[mid] ^= 0x55;
            }
            out.write_all(&body)?;
        }
        _ => out.write_all(&body)?,
    }
    Ok(())
}
