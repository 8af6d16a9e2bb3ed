//! The registry client against a hostile registry (soci-testkit's
//! `HostileServer` on 127.0.0.1): every request kind follows one retry
//! policy (`Retry-After` honoured), every answer is bounded in size and time,
//! error bodies are shown escaped and short, and configuration mistakes fail
//! at once with a message that says what happened.
use soci_oci::registry::{RegistryClient, RetryPolicy, MAX_TOKEN_ANSWER};
use soci_oci::spec::Descriptor;
use soci_oci::{Credentials, RegistryOptions};
use soci_testkit::{Answer, HostileServer};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
const INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

fn policy() -> RetryPolicy {
    RetryPolicy {
        retries: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
        stall_timeout: Duration::from_millis(1500),
        total_timeout: Duration::from_secs(20),
    }
}

fn client_with(srv: &HostileServer, plain_http: bool, p: RetryPolicy) -> Arc<RegistryClient> {
    RegistryClient::with_policy(
        &srv.host(),
        &RegistryOptions {
            credentials: Credentials::Anonymous,
            plain_http,
            tls_ca: None,
            ..Default::default()
        },
        p,
    )
    .unwrap()
}

fn client(srv: &HostileServer) -> Arc<RegistryClient> {
    client_with(srv, true, policy())
}

fn sha256(b: &[u8]) -> soci_oci::Digest {
    soci_oci::Digest::of(b)
}

/// Run `f`, failing the test (instead of hanging it) if it takes over 60 s:
/// each case below hung forever before its fix.
fn within_60s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("no answer within 60 s: the client hangs")
}

/// One 503 with `Retry-After: 1` before `ok`, for `method path`.
fn once_503_then(srv: &HostileServer, method: &str, path: &str, ok: Answer) {
    srv.on(method, path, 1, Answer::retry_after(503, "1"));
    srv.on(method, path, usize::MAX, ok);
}

/// `f` succeeded after waiting for the 1-second `Retry-After` (our own first
/// backoff is 20 ms), and `method path` was asked twice.
fn waited(srv: &HostileServer, method: &str, path: &str, what: &str, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{what}: Retry-After ignored ({:?})",
        t.elapsed()
    );
    assert_eq!(srv.seen(method, path), 2, "{what}: {:?}", srv.log());
}

#[test]
fn retry_after_is_honoured_by_every_request_kind() {
    let blob = b"hello, hostile world".to_vec();
    let d = Descriptor::new("application/octet-stream", sha256(&blob), blob.len() as i64);

    // Token request.
    let srv = HostileServer::start();
    srv.require_token();
    once_503_then(
        &srv,
        "GET",
        "/token",
        Answer::status(200, &[], r#"{"token":"t0k"}"#),
    );
    srv.on(
        "GET",
        "/manifests/v1",
        usize::MAX,
        Answer::status(200, &[], MANIFEST),
    );
    waited(&srv, "GET", "/token", "token", || {
        client(&srv).get_manifest_raw("r", "v1").unwrap().unwrap();
    });

    // Manifest GET.
    let srv = HostileServer::start();
    once_503_then(
        &srv,
        "GET",
        "/manifests/v1",
        Answer::status(200, &[], MANIFEST),
    );
    waited(&srv, "GET", "/manifests/v1", "manifest GET", || {
        let (_, raw) = client(&srv).get_manifest_raw("r", "v1").unwrap().unwrap();
        assert_eq!(raw, MANIFEST);
    });

    // Blob GET.
    let srv = HostileServer::start();
    once_503_then(
        &srv,
        "GET",
        "/blobs/",
        Answer::status(200, &[], blob.clone()),
    );
    waited(&srv, "GET", "/blobs/", "blob GET", || {
        let mut got = Vec::new();
        client(&srv)
            .open_blob("r", &d)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, blob);
    });

    // HEAD.
    let srv = HostileServer::start();
    once_503_then(&srv, "HEAD", "/blobs/", Answer::status(200, &[], ""));
    waited(&srv, "HEAD", "/blobs/", "HEAD", || {
        assert!(client(&srv).blob_exists("r", &d.digest).unwrap());
    });

    // Manifest PUT.
    let srv = HostileServer::start();
    once_503_then(&srv, "PUT", "/manifests/v1", Answer::status(201, &[], ""));
    waited(&srv, "PUT", "/manifests/v1", "manifest PUT", || {
        client(&srv)
            .push_manifest(
                "r",
                "v1",
                MANIFEST,
                "application/vnd.oci.image.manifest.v1+json",
            )
            .unwrap();
    });

    // Whole and streamed blob uploads: the session POST answers 503 once.
    let upload_rules = |srv: &HostileServer| {
        once_503_then(
            srv,
            "POST",
            "/blobs/uploads/",
            Answer::status(202, &[("Location", "/v2/r/blobs/uploads/u1")], ""),
        );
        srv.on(
            "PUT",
            "/blobs/uploads/u1",
            usize::MAX,
            Answer::status(201, &[], ""),
        );
    };
    let srv = HostileServer::start();
    upload_rules(&srv);
    waited(&srv, "POST", "/blobs/uploads/", "blob upload", || {
        assert!(client(&srv).push_blob("r", &blob, &d.digest).unwrap());
    });
    let srv = HostileServer::start();
    upload_rules(&srv);
    waited(&srv, "POST", "/blobs/uploads/", "streamed upload", || {
        let c = client(&srv);
        let ok = c
            .push_blob_stream_reopening("r", &d, || Ok(std::io::Cursor::new(blob.clone())))
            .unwrap();
        assert!(ok);
    });
    assert_eq!(srv.seen("PUT", "/blobs/uploads/u1"), 1);

    // Cross-repository mount.
    let srv = HostileServer::start();
    once_503_then(&srv, "POST", "mount=", Answer::status(201, &[], ""));
    srv.on("HEAD", "/blobs/", usize::MAX, Answer::status(200, &[], ""));
    waited(&srv, "POST", "mount=", "mount", || {
        assert!(client(&srv).try_mount("r", "other", &d.digest).unwrap());
    });

    // Referrers probe.
    let srv = HostileServer::start();
    once_503_then(
        &srv,
        "GET",
        "/referrers/",
        Answer::status(
            200,
            &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
            INDEX,
        ),
    );
    waited(&srv, "GET", "/referrers/", "referrers", || {
        assert!(client(&srv)
            .referrers_api_supported("r", &d.digest)
            .unwrap());
    });
}

fn endless() -> Answer {
    Answer::Endless {
        headers: vec![],
        byte: b'{',
    }
}

fn trickle() -> Answer {
    Answer::Trickle {
        headers: vec![],
        byte: b' ',
        every: Duration::from_millis(300),
    }
}

/// A short policy for the time-limit cases: a trickle (a byte every 300 ms)
/// never trips a 1 s stall timeout by itself.
fn short() -> RetryPolicy {
    RetryPolicy {
        retries: 100,
        stall_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_secs(4),
        ..policy()
    }
}

#[test]
fn a_token_answer_is_bounded_in_size_and_time() {
    // Never ending: refused past the limit, not read on.
    let srv = Arc::new(HostileServer::start());
    srv.require_token();
    srv.on("GET", "/token", usize::MAX, endless());
    let s = srv.clone();
    let e = within_60s(move || {
        client(&s)
            .get_manifest_raw("r", "v1")
            .unwrap_err()
            .to_string()
    });
    assert!(e.contains("token answer") && e.contains("limit"), "{e}");
    assert!(
        srv.streamed_bytes() < 64 << 20,
        "{} bytes sent for a {MAX_TOKEN_ANSWER}-byte limit",
        srv.streamed_bytes()
    );

    // A byte every 300 ms: ends (stall of the whole answer, then the deadline).
    let srv = Arc::new(HostileServer::start());
    srv.require_token();
    srv.on("GET", "/token", usize::MAX, trickle());
    let s = srv.clone();
    let e = within_60s(move || {
        client_with(&s, true, short())
            .get_manifest_raw("r", "v1")
            .unwrap_err()
            .to_string()
    });
    assert!(
        e.contains("overall timeout") || e.contains("stalled"),
        "{e}"
    );

    // A refused token with a 4 MiB body full of escape sequences: one short
    // line naming the credentials tried, the body neither read nor quoted.
    let srv = Arc::new(HostileServer::start());
    srv.require_token();
    let mut body = b"\x1b[31mdenied\r\nsoci index sha256:0 OK\n".to_vec();
    body.extend(std::iter::repeat_n(b'x', 4 << 20));
    srv.on("GET", "/token", usize::MAX, Answer::status(401, &[], body));
    let e = client(&srv)
        .get_manifest_raw("r", "v1")
        .unwrap_err()
        .to_string();
    assert!(e.len() < 1000, "{} bytes of error", e.len());
    assert!(
        !e.contains('\x1b') && !e.contains('\n') && !e.contains('\r'),
        "{e:?}"
    );
    assert!(!e.contains("soci index"), "{e}");
    assert!(
        e.contains("HTTP 401 Unauthorized: access denied; credentials tried: anonymous"),
        "{e}"
    );
}

#[test]
fn a_referrers_answer_is_bounded_in_size_and_time() {
    let digest = sha256(b"subject");
    let srv = Arc::new(HostileServer::start());
    srv.on("GET", "/referrers/", usize::MAX, endless());
    let (s, dg) = (srv.clone(), digest.clone());
    let e = within_60s(move || client(&s).referrers("r", &dg).unwrap_err().to_string());
    assert!(e.contains("referrers answer") && e.contains("limit"), "{e}");
    assert!(srv.streamed_bytes() < 64 << 20, "{}", srv.streamed_bytes());

    let srv = Arc::new(HostileServer::start());
    srv.on("GET", "/referrers/", usize::MAX, trickle());
    let s = srv.clone();
    let e = within_60s(move || {
        client_with(&s, true, short())
            .referrers("r", &digest)
            .unwrap_err()
            .to_string()
    });
    assert!(e.contains("overall timeout"), "{e}");
}

#[test]
fn a_blob_is_never_read_past_its_descriptor_size() {
    let d = Descriptor::new(
        "application/octet-stream",
        sha256(b"217 bytes, they said"),
        217,
    );
    // No length, never ending.
    let srv = Arc::new(HostileServer::start());
    srv.on("GET", "/blobs/", usize::MAX, endless());
    let (s, dd) = (srv.clone(), d.clone());
    let e = within_60s(move || {
        let mut out = Vec::new();
        let r = client(&s).open_blob_unverified("r", &dd);
        r.and_then(|mut r| {
            r.read_to_end(&mut out)
                .map_err(|e| soci_oci::Error::Registry {
                    registry: "-".into(),
                    context: "read".into(),
                    message: e.to_string(),
                })
        })
        .unwrap_err()
        .to_string()
    });
    assert!(e.contains("size mismatch") && e.contains("217"), "{e}");
    assert!(srv.streamed_bytes() < 64 << 20, "{}", srv.streamed_bytes());

    // A Content-Length that contradicts the descriptor: refused unread.
    let srv = HostileServer::start();
    srv.on(
        "GET",
        "/blobs/",
        usize::MAX,
        Answer::status(200, &[], vec![b'x'; 5000]),
    );
    let e = match client(&srv).open_blob("r", &d) {
        Ok(_) => panic!("a 5000-byte answer for a 217-byte blob was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("size mismatch") && e.contains("Content-Length"),
        "{e}"
    );
    assert_eq!(srv.seen("GET", "/blobs/"), 1, "not retried");
}

#[test]
fn an_upload_that_gets_no_answer_ends_at_the_overall_deadline() {
    let blob = vec![7u8; 100_000];
    let d = Descriptor::new("application/octet-stream", sha256(&blob), blob.len() as i64);
    let srv = Arc::new(HostileServer::start());
    srv.on(
        "POST",
        "/blobs/uploads/",
        usize::MAX,
        Answer::status(202, &[("Location", "/v2/r/blobs/uploads/u1")], ""),
    );
    srv.on(
        "PUT",
        "/blobs/uploads/u1",
        usize::MAX,
        Answer::Silence(Duration::from_secs(120)),
    );
    let s = srv.clone();
    let e = within_60s(move || {
        client_with(&s, true, short())
            .push_blob_stream_reopening("r", &d, || Ok(std::io::Cursor::new(blob.clone())))
            .unwrap_err()
            .to_string()
    });
    assert!(e.contains("overall timeout"), "{e}");
}

#[test]
fn registry_error_bodies_are_escaped_and_short() {
    let srv = HostileServer::start();
    let mut body = b"\x1b[2J\x1b[H\nsoci index sha256:forged OK\n".to_vec();
    body.extend(std::iter::repeat_n(b'A', 10_000));
    srv.on(
        "GET",
        "/manifests/v1",
        usize::MAX,
        Answer::status(400, &[], body),
    );
    let e = client(&srv)
        .get_manifest_raw("r", "v1")
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\x1b') && !e.contains('\n'), "{e:?}");
    assert!(e.contains(r"\u{1b}[2J\u{1b}[H\nsoci index"), "{e}");
    assert!(e.len() < 1000, "{} bytes", e.len());
}

#[test]
fn tls_to_a_plain_http_registry_fails_at_once_and_says_so() {
    let srv = HostileServer::start();
    let t = Instant::now();
    let e = client_with(&srv, false, policy())
        .get_manifest_raw("r", "v1")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "{} answered plain HTTP to a TLS request: use --plain-http",
            srv.host()
        )),
        "{e}"
    );
    assert!(!e.contains("authentication"), "{e}");
    assert_eq!(srv.seen("TLS", ""), 1, "retried: {:?}", srv.log());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_refused_connection_is_not_called_authentication() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = RegistryClient::with_policy(
        &format!("127.0.0.1:{port}"),
        &RegistryOptions {
            credentials: Credentials::Anonymous,
            plain_http: true,
            tls_ca: None,
            ..Default::default()
        },
        RetryPolicy {
            retries: 1,
            ..policy()
        },
    )
    .unwrap();
    let e = c.get_manifest_raw("r", "v1").unwrap_err().to_string();
    assert!(!e.contains("authentication"), "{e}");
    assert!(e.to_lowercase().contains("refused"), "{e}");
    assert!(e.contains("gave up after 2 attempts"), "{e}");
}

#[test]
fn a_challenge_on_a_repository_is_followed_even_when_v2_had_none() {
    // `/v2/` answers without a challenge (404 here); the manifest asks for a token.
    let srv = HostileServer::start();
    srv.on(
        "GET",
        "/manifests/v1",
        1,
        Answer::status(
            401,
            &[(
                "WWW-Authenticate",
                r#"Bearer realm="http://{host}/token",service="hostile""#,
            )],
            "",
        ),
    );
    srv.on(
        "GET",
        "/manifests/v1",
        usize::MAX,
        Answer::status(200, &[], MANIFEST),
    );
    srv.on(
        "GET",
        "/token",
        usize::MAX,
        Answer::status(200, &[], r#"{"token":"t0k"}"#),
    );
    let (_, raw) = client(&srv).get_manifest_raw("r", "v1").unwrap().unwrap();
    assert_eq!(raw, MANIFEST);
    assert_eq!(srv.seen("GET", "/token"), 1, "{:?}", srv.log());
}

#[test]
fn credentials_go_only_where_they_are_asked_for() {
    let with_password = |srv: &HostileServer| {
        RegistryClient::with_policy(
            &srv.host(),
            &RegistryOptions {
                credentials: Credentials::Basic {
                    username: "alice".into(),
                    password: "pw".into(),
                },
                plain_http: true,
                tls_ca: None,
                ..Default::default()
            },
            policy(),
        )
        .unwrap()
    };
    // A registry that never asks: no request carries them.
    let srv = HostileServer::start();
    srv.on(
        "GET",
        "/manifests/v1",
        usize::MAX,
        Answer::status(200, &[], MANIFEST),
    );
    with_password(&srv)
        .get_manifest_raw("r", "v1")
        .unwrap()
        .unwrap();
    assert!(
        srv.log().iter().all(|s| s.authorization.is_none()),
        "{:?}",
        srv.log()
    );
    // One that asks for Basic: sent after the challenge.
    let srv = HostileServer::start();
    srv.on_exact(
        "GET",
        "/v2/",
        usize::MAX,
        Answer::status(401, &[("WWW-Authenticate", r#"Basic realm="r""#)], ""),
    );
    srv.on(
        "GET",
        "/manifests/v1",
        usize::MAX,
        Answer::status(200, &[], MANIFEST),
    );
    with_password(&srv)
        .get_manifest_raw("r", "v1")
        .unwrap()
        .unwrap();
    let m: Vec<_> = srv
        .log()
        .into_iter()
        .filter(|s| s.path.contains("/manifests/"))
        .collect();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].authorization.as_deref(), Some("Basic"));
    // A token realm: the password goes to the realm, the token to the registry.
    let srv = HostileServer::start();
    srv.require_token();
    srv.on(
        "GET",
        "/token",
        usize::MAX,
        Answer::status(200, &[], r#"{"token":"t0k"}"#),
    );
    srv.on(
        "GET",
        "/manifests/v1",
        usize::MAX,
        Answer::status(200, &[], MANIFEST),
    );
    with_password(&srv)
        .get_manifest_raw("r", "v1")
        .unwrap()
        .unwrap();
    for s in srv.log() {
        let want = match s.path.as_str() {
            p if p.starts_with("/token") => Some("Basic"),
            p if p.contains("/manifests/") => Some("Bearer"),
            _ => None,
        };
        assert_eq!(s.authorization.as_deref(), want, "{s:?}");
    }
}
