//! A traffic-shaping TCP proxy between the client and the registry (loopback only).
//!
//! Model: every connection pays one round trip to open (the TCP handshake); every
//! byte the client sends reaches the registry one RTT later (a one-way delay line
//! carrying the whole round trip, so a request/response pays exactly one RTT and
//! pipelined or parallel requests overlap); the bytes the registry sends back share
//! one token bucket of the profile's bandwidth (the client's downlink; no burst
//! credit). TCP slow start and loss are not modelled. Bytes are counted in both
//! directions and requests by their header terminators.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A network between client and registry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Profile {
    /// Label in reports, e.g. `100Mbit/20ms`.
    pub name: String,
    /// Downlink bandwidth, bits per second (0: unlimited).
    pub bandwidth_bps: u64,
    /// Round-trip time.
    #[serde(serialize_with = "ser_ms")]
    pub rtt: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl Profile {
    /// A profile named after its bandwidth and RTT.
    pub fn new(bandwidth_bps: u64, rtt: Duration) -> Profile {
        let bw = if bandwidth_bps >= 1_000_000_000 && bandwidth_bps % 1_000_000_000 == 0 {
            format!("{}Gbit", bandwidth_bps / 1_000_000_000)
        } else {
            format!("{}Mbit", bandwidth_bps / 1_000_000)
        };
        Profile {
            name: format!("{bw}/{}ms", rtt.as_millis()),
            bandwidth_bps,
            rtt,
        }
    }
    /// The issue's profiles: 100 Mbit/s with 20 ms RTT, 1 Gbit/s with 2 ms RTT.
    pub fn defaults() -> Vec<Profile> {
        vec![
            Profile::new(100_000_000, Duration::from_millis(20)),
            Profile::new(1_000_000_000, Duration::from_millis(2)),
        ]
    }
    /// `100M/20ms`, `1G/2ms`, `250Mbit/5ms`.
    pub fn parse(s: &str) -> anyhow::Result<Profile> {
        let (bw, rtt) = s.split_once('/').ok_or_else(|| {
            anyhow::anyhow!("profile {s:?}: expected BANDWIDTH/RTT, e.g. 100M/20ms")
        })?;
        let bw = bw.trim().to_ascii_lowercase();
        let bw = bw
            .trim_end_matches("bit/s")
            .trim_end_matches("bit")
            .trim_end_matches("bps");
        let (num, mult) = match bw.chars().last() {
            Some('g') => (&bw[..bw.len() - 1], 1_000_000_000f64),
            Some('m') => (&bw[..bw.len() - 1], 1_000_000f64),
            Some('k') => (&bw[..bw.len() - 1], 1_000f64),
            _ => (bw, 1f64),
        };
        let bps = (num
            .parse::<f64>()
            .map_err(|_| anyhow::anyhow!("profile {s:?}: bad bandwidth"))?
            * mult) as u64;
        let rtt = rtt.trim().trim_end_matches("ms");
        let ms: f64 = rtt.parse().map_err(|_| {
            anyhow::anyhow!("profile {s:?}: bad RTT (give milliseconds, e.g. 20ms)")
        })?;
        Ok(Profile::new(bps, Duration::from_secs_f64(ms / 1000.0)))
    }
}

/// Counters at the proxy.
#[derive(Debug, Default)]
struct Counters {
    down: AtomicU64,
    up: AtomicU64,
    requests: AtomicU64,
    connections: AtomicU64,
}

/// What went through the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    /// Bytes from the registry to the client (bodies and HTTP headers).
    pub bytes_down: u64,
    /// Bytes from the client to the registry.
    pub bytes_up: u64,
    /// HTTP requests forwarded.
    pub requests: u64,
    /// Client connections accepted.
    pub connections: u64,
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;
    fn sub(self, o: Traffic) -> Traffic {
        Traffic {
            bytes_down: self.bytes_down - o.bytes_down,
            bytes_up: self.bytes_up - o.bytes_up,
            requests: self.requests - o.requests,
            connections: self.connections - o.connections,
        }
    }
}

struct Shared {
    counters: Counters,
    profile: Mutex<Profile>,
    /// When the downlink is next free.
    link_free: Mutex<Instant>,
}

impl Shared {
    /// Reserve the downlink for `n` bytes; the instant they have been delivered.
    fn reserve(&self, n: usize) -> Instant {
        let bps = self.profile.lock().unwrap().bandwidth_bps;
        let now = Instant::now();
        if bps == 0 {
            return now;
        }
        let mut free = self.link_free.lock().unwrap();
        let start = (*free).max(now);
        *free = start + Duration::from_secs_f64(n as f64 * 8.0 / bps as f64);
        *free
    }
    fn rtt(&self) -> Duration {
        self.profile.lock().unwrap().rtt
    }
}

/// A running proxy on 127.0.0.1 (its own runtime; stopped on drop).
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Listen on a free port of 127.0.0.1 and forward to `upstream`.
    pub fn start(upstream: SocketAddr, profile: Profile) -> anyhow::Result<Proxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("shaping-proxy")
            .build()?;
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            profile: Mutex::new(profile),
            link_free: Mutex::new(Instant::now()),
        });
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let sh = shared.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let sh = sh.clone();
                tokio::spawn(async move {
                    let _ = handle(client, upstream, sh).await;
                });
            }
        });
        Ok(Proxy {
            addr,
            shared,
            runtime: Some(runtime),
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Shapes traffic from now on to `p`, on open connections too.
    pub fn set_profile(&self, p: Profile) {
        *self.shared.profile.lock().unwrap() = p;
    }

    /// The profile traffic is shaped to now.
    pub fn profile(&self) -> Profile {
        self.shared.profile.lock().unwrap().clone()
    }

    /// Counters so far (subtract two snapshots for one run).
    pub fn traffic(&self) -> Traffic {
        let c = &self.shared.counters;
        Traffic {
            bytes_down: c.down.load(Ordering::SeqCst),
            bytes_up: c.up.load(Ordering::SeqCst),
            requests: c.requests.load(Ordering::SeqCst),
            connections: c.connections.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Counts `\r\n\r\n` across chunk boundaries.
#[derive(Default)]
pub(crate) struct HeaderEnds {
    tail: Vec<u8>,
}

impl HeaderEnds {
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> u64 {
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        let (mut n, mut i, mut after) = (0u64, 0usize, 0usize);
        while i + 4 <= buf.len() {
            if &buf[i..i + 4] == b"\r\n\r\n" {
                n += 1;
                i += 4;
                after = i;
            } else {
                i += 1;
            }
        }
        // keep up to 3 bytes not part of a counted terminator
        let keep_from = after.max(buf.len().saturating_sub(3));
        self.tail = buf[keep_from..].to_vec();
        n
    }
}

async fn handle(client: TcpStream, upstream: SocketAddr, sh: Arc<Shared>) -> std::io::Result<()> {
    sh.counters.connections.fetch_add(1, Ordering::SeqCst);
    let _ = client.set_nodelay(true);
    // the handshake's round trip
    tokio::time::sleep(sh.rtt()).await;
    let server = TcpStream::connect(upstream).await?;
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();

    // client -> registry: a delay line of one RTT
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let sh_up = sh.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        let mut ends = HeaderEnds::default();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sh_up.counters.up.fetch_add(n as u64, Ordering::SeqCst);
            sh_up
                .counters
                .requests
                .fetch_add(ends.feed(&buf[..n]), Ordering::SeqCst);
            let due = tokio::time::Instant::now() + sh_up.rtt();
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some((due, data)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if sw.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    });
    // registry -> client: the shared downlink
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let done = sh.reserve(n);
        tokio::time::sleep_until(tokio::time::Instant::from_std(done)).await;
        sh.counters.down.fetch_add(n as u64, Ordering::SeqCst);
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = cw.shutdown().await;
    reader.abort();
    let _ = writer.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_ends_across_chunks() {
        let mut h = HeaderEnds::default();
        assert_eq!(h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r"), 0);
        assert_eq!(h.feed(b"\nGET /a HTTP/1.1\r\n\r\n"), 2);
        assert_eq!(h.feed(b"\r\n\r\n\r\n\r\n"), 2);
        assert_eq!(h.feed(b"\r\n"), 0);
    }

    #[test]
    fn parses_profiles() {
        let p = Profile::parse("100M/20ms").unwrap();
        assert_eq!(
            (p.bandwidth_bps, p.rtt),
            (100_000_000, Duration::from_millis(20))
        );
        assert_eq!(p.name, "100Mbit/20ms");
        let p = Profile::parse("1Gbit/2").unwrap();
        assert_eq!(
            (p.bandwidth_bps, p.rtt, p.name.as_str()),
            (1_000_000_000, Duration::from_millis(2), "1Gbit/2ms")
        );
    }
}
