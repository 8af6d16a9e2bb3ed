//! Registry faults, injected by a proxy (tests/cli/support/proxy.rs) in
//! front of a real registry: 5xx, 429 + Retry-After, connections reset in the
//! middle of a blob, truncated bodies, stalls, corrupt bodies, oversized
//! manifests. Downloads retry and resume; a digest mismatch is final; a stall
//! ends in a clear timeout.
use crate::support::proxied::{convert, proxied_registry, soci, verify, ProxiedRegistry};
use crate::support::proxy::Fault;
use crate::support::{check_store_blobs, text};
use soci_oci::registry::{RegistryClient, RetryPolicy};
use soci_oci::spec::Descriptor;
use soci_oci::{
    select_manifests, Credentials, ImageSource, PlatformChoice, RegistryOptions, RegistrySource,
};
use std::io::Read;
use std::time::{Duration, Instant};

fn opts() -> RegistryOptions {
    RegistryOptions {
        credentials: Credentials::Anonymous,
        plain_http: true,
        tls_ca: None,
        ..Default::default()
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        retries: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
        stall_timeout: Duration::from_millis(1500),
        total_timeout: Duration::from_secs(30),
    }
}

type Env = ProxiedRegistry;

fn setup() -> Env {
    proxied_registry()
}

fn source(env: &Env, policy: RetryPolicy) -> RegistrySource {
    let client = RegistryClient::with_policy(&env.proxy.host(), &opts(), policy).unwrap();
    RegistrySource::with_client(
        format!("{}/app/one:v1", env.proxy.host()).parse().unwrap(),
        client,
    )
    .unwrap()
}

/// The biggest layer's descriptor and bytes.
fn big_layer(env: &Env) -> (Descriptor, Vec<u8>) {
    let img = &env.fx.images[0];
    let b = img.layers.iter().max_by_key(|b| b.bytes.len()).unwrap();
    let d = Descriptor::new(
        b.media_type.clone(),
        crate::support::dg(&b.digest),
        b.bytes.len() as i64,
    );
    (d, b.bytes.clone())
}

/// A whole blob through the client's verified stream (`ImageSource::open_blob`
/// leaves the digest to its reader).
fn read_all(src: &RegistrySource, d: &Descriptor) -> soci_oci::Result<Vec<u8>> {
    let mut r = src.client().open_blob("app/one", d)?;
    let mut v = Vec::new();
    r.read_to_end(&mut v)
        .map_err(|e| soci_oci::Error::Registry {
            registry: "-".into(),
            context: "read".into(),
            message: e.to_string(),
        })?;
    Ok(v)
}

#[test]
fn blob_download_survives_5xx_429_resets_truncation_and_ignored_range() {
    let env = setup();
    let src = source(&env, policy());
    let (d, want) = big_layer(&env);
    let path = format!("/blobs/{}", d.digest);
    assert!(want.len() > 100_000, "need a big layer, got {}", want.len());

    // 500, 503, then fine.
    env.proxy.add("GET", &path, 1, Fault::Status(500, None));
    env.proxy.add("GET", &path, 1, Fault::Status(503, None));
    assert_eq!(read_all(&src, &d).unwrap(), want);
    assert_eq!(env.proxy.seen("GET", &path).len(), 3);

    // 429 with Retry-After is honoured: a 429 whose Retry-After makes us wait over 1 s (our own first backoff
    // is 20 ms), then the blob.
    let waits = |retry_after: &'static str| {
        env.proxy.clear();
        env.proxy
            .add("GET", &path, 1, Fault::Status(429, Some(retry_after)));
        let t = Instant::now();
        assert_eq!(read_all(&src, &d).unwrap(), want);
        assert!(
            t.elapsed() >= Duration::from_millis(950),
            "Retry-After {retry_after}: {:?}",
            t.elapsed()
        );
    };
    waits("1");

    // ... and so is Retry-After as an HTTP date (2 s ahead, whole seconds).
    let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    waits(Box::leak(at.into_boxed_str()));

    // Reset in the middle: resumed with Range from the byte reached.
    env.proxy.clear();
    let cut = want.len() / 3;
    env.proxy.add("GET", &path, 1, Fault::ResetAfter(cut));
    assert_eq!(read_all(&src, &d).unwrap(), want);
    let seen = env.proxy.seen("GET", &path);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let range = seen[1].range.clone().expect("the retry asks for a Range");
    let from: u64 = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(from > 0 && from <= cut as u64, "{range}");

    // A body cut short (clean close before Content-Length), twice.
    env.proxy.clear();
    env.proxy
        .add("GET", &path, 2, Fault::Truncate(want.len() / 4));
    assert_eq!(read_all(&src, &d).unwrap(), want);
    assert_eq!(env.proxy.seen("GET", &path).len(), 3);

    // A registry that ignores Range: the resumed answer is the whole blob again.
    env.proxy.clear();
    env.proxy
        .add("GET", &path, 1, Fault::ResetAfter(want.len() / 2));
    env.proxy.add("GET", &path, 1, Fault::IgnoreRange);
    assert_eq!(read_all(&src, &d).unwrap(), want);

    // Byte ranges (the lazy reader) retry too.
    env.proxy.clear();
    env.proxy.add("GET", &path, 1, Fault::Status(502, None));
    env.proxy.add("GET", &path, 1, Fault::ResetAfter(1000));
    let (a, b) = (want.len() as u64 / 4, want.len() as u64 / 2);
    assert_eq!(
        src.read_blob_range(&d, a..b).unwrap(),
        &want[a as usize..b as usize]
    );
    drop(env.reg);
}

#[test]
fn digest_mismatch_is_final_and_stall_times_out() {
    let env = setup();
    let (d, _) = big_layer(&env);
    let path = format!("/blobs/{}", d.digest);

    // Corrupt content: an error naming the digest, and never retried.
    let src = source(&env, policy());
    env.proxy.add("GET", &path, usize::MAX, Fault::Corrupt);
    let e = read_all(&src, &d).unwrap_err().to_string();
    assert!(
        e.contains("digest mismatch") && e.contains(d.digest.as_str()),
        "{e}"
    );
    assert_eq!(
        env.proxy.seen("GET", &path).len(),
        1,
        "a mismatch must not be retried"
    );
    // Through the store-level fetch as well (config blob).
    let cfg = &env.fx.images[0].config;
    let cfg_d = Descriptor::new(
        cfg.media_type.clone(),
        crate::support::dg(&cfg.digest),
        cfg.bytes.len() as i64,
    );
    env.proxy.add(
        "GET",
        &format!("/blobs/{}", cfg.digest),
        usize::MAX,
        Fault::Corrupt,
    );
    let e = src.fetch_blob(&cfg_d).unwrap_err().to_string();
    assert!(e.contains("digest mismatch"), "{e}");

    // A stall (headers and some bytes, then silence) on every attempt: a clear
    // timeout error after the retries, within the budget.
    env.proxy.clear();
    env.proxy.add(
        "GET",
        &path,
        usize::MAX,
        Fault::Stall(5000, Duration::from_secs(30)),
    );
    let mut p = policy();
    p.retries = 1;
    p.stall_timeout = Duration::from_millis(800);
    let src = source(&env, p);
    let t = Instant::now();
    let e = read_all(&src, &d).unwrap_err().to_string();
    assert!(e.contains("stalled") && e.contains("no data for"), "{e}");
    assert!(e.contains("gave up after 2 attempts"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // The overall timeout cuts retries short.
    let mut p = policy();
    p.retries = 100;
    p.stall_timeout = Duration::from_millis(500);
    p.total_timeout = Duration::from_secs(2);
    let src = source(&env, p);
    let t = Instant::now();
    let e = read_all(&src, &d).unwrap_err().to_string();
    assert!(e.contains("overall timeout"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
}

#[test]
fn manifests_retry_and_oversized_ones_are_refused_unread() {
    let env = setup();
    let src = source(&env, policy());
    env.proxy
        .add("GET", "/manifests/v1", 2, Fault::Status(503, Some("0")));
    env.proxy
        .add("GET", "/manifests/v1", 1, Fault::ResetAfter(10));
    let (root, raw) = src.resolve_root().unwrap();
    assert_eq!(root.digest, env.fx.root.digest);
    assert_eq!(raw, env.fx.root.bytes);
    assert_eq!(
        select_manifests(&src, &PlatformChoice::Host).unwrap().len(),
        1
    );

    // Persistent 500: a clear error with the status and the attempts.
    env.proxy.clear();
    env.proxy
        .add("GET", "/manifests/v1", usize::MAX, Fault::Status(500, None));
    let e = src.resolve_root().unwrap_err().to_string();
    assert!(
        e.contains("HTTP 500") && e.contains("gave up after 5 attempts"),
        "{e}"
    );
    assert!(e.contains("manifest app/one:v1"), "{e}");

    // A 4xx other than 404 is final.
    env.proxy.clear();
    env.proxy
        .add("GET", "/manifests/v1", usize::MAX, Fault::Status(403, None));
    let e = src.resolve_root().unwrap_err().to_string();
    assert!(e.contains("403"), "{e}");
    assert_eq!(env.proxy.seen("GET", "/manifests/v1").len(), 1);

    // 1 GiB announced: refused from the header, before reading the body
    // (the proxy would stall 20 s after a few bytes).
    env.proxy.clear();
    env.proxy
        .add("GET", "/manifests/v1", usize::MAX, Fault::HugeBody(1 << 30));
    let t = Instant::now();
    let e = src.resolve_root().unwrap_err().to_string();
    assert!(e.contains("limit") && e.contains("not read"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A corrupt manifest fetched by digest is a digest mismatch, not retried.
    env.proxy.clear();
    let m = &env.fx.images[0].manifest;
    env.proxy.add(
        "GET",
        &format!("/manifests/{}", m.digest),
        usize::MAX,
        Fault::Corrupt,
    );
    let d = Descriptor::new(
        m.media_type.clone(),
        crate::support::dg(&m.digest),
        m.bytes.len() as i64,
    );
    let e = src.fetch_manifest(&d).unwrap_err().to_string();
    assert!(e.contains("digest mismatch"), "{e}");
    assert_eq!(env.proxy.seen("GET", &m.digest).len(), 1);
}

/// The CLI end to end through the proxy: `create` and `create --push` succeed
/// despite faults on every kind of GET, and produce what a clean run does.
#[test]
fn cli_create_and_push_through_faults() {
    let env = setup();
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let faulty = tmp.path().join("faulty");
    let direct = format!("{}/app/one:v1", env.reg.host());
    let via = format!("{}/app/one:v1", env.proxy.host());
    let o = soci(&[
        "create",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        clean.to_str().unwrap(),
        &direct,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    for l in &env.fx.images[0].layers {
        let p = format!("/blobs/{}", l.digest);
        env.proxy.add("GET", &p, 1, Fault::Status(503, Some("0")));
        env.proxy
            .add("GET", &p, 1, Fault::ResetAfter(l.bytes.len() / 2));
    }
    env.proxy
        .add("GET", "/manifests/", 1, Fault::Status(500, None));
    let o = soci(&[
        "create",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        faulty.to_str().unwrap(),
        &via,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(env.proxy.log().iter().any(|s| s.fault.is_some()));
    let list = |dir: &std::path::Path| {
        let o = soci(&[
            "index",
            "list",
            "--digests-only",
            "--store",
            dir.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        list(&clean),
        list(&faulty),
        "same SOCI index with and without faults"
    );
    check_store_blobs(&faulty);

    // --push through faults on GETs, HEAD checks, uploads and manifest PUTs.
    env.proxy.clear();
    env.proxy
        .add("GET", "/manifests/", 2, Fault::Status(503, Some("0")));
    env.proxy
        .add("HEAD", "/blobs/", 1, Fault::Status(503, None));
    env.proxy
        .add("POST", "/blobs/uploads/", 1, Fault::Status(500, None));
    env.proxy
        .add("PUT", "/blobs/uploads/", 1, Fault::Status(502, None));
    env.proxy
        .add("PUT", "/manifests/", 1, Fault::Status(503, None));
    env.proxy
        .add("PUT", "/manifests/v1", 1, Fault::Status(503, None));
    let o = soci(&[
        "create",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--push",
        "--store",
        faulty.to_str().unwrap(),
        &via,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Order of the writes: every blob upload before the first manifest PUT,
    // and the tag last.
    let log = env.proxy.log();
    let writes: Vec<_> = log
        .iter()
        .filter(|s| s.method != "GET" && s.method != "HEAD")
        .collect();
    // (The source image manifest is re-put first: its blobs are already there.)
    let image_manifest = &env.fx.images[0].manifest.digest;
    let last_blob = writes
        .iter()
        .rposition(|s| s.path.contains("/blobs/"))
        .expect("blobs pushed");
    let first_new_manifest = writes
        .iter()
        .position(|s| s.path.contains("/manifests/") && !s.path.ends_with(image_manifest.as_str()))
        .expect("manifests pushed");
    assert!(
        last_blob < first_new_manifest,
        "a blob was uploaded after a manifest referencing it: {writes:?}"
    );
    let last = writes.last().unwrap();
    assert!(
        last.method == "PUT" && last.path.ends_with("/manifests/v1"),
        "the tag is not last: {writes:?}"
    );
    // The tag PUT was retried after its 503; no other tag write.
    assert!(writes
        .iter()
        .filter(|s| s.path.ends_with("/manifests/v1"))
        .all(|s| s.method == "PUT"));
    assert!(env.proxy.log().iter().filter(|s| s.fault.is_some()).count() >= 7);

    // A corrupt layer: create fails with a digest mismatch and stores nothing bad.
    env.proxy.clear();
    let l = &env.fx.images[0].layers[0];
    env.proxy.add(
        "GET",
        &format!("/blobs/{}", l.digest),
        usize::MAX,
        Fault::Corrupt,
    );
    let bad = tmp.path().join("bad");
    // --no-cache: the image's own SOCI index (pushed above) would spare the read.
    let o = soci(&[
        "create",
        "--no-cache",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        bad.to_str().unwrap(),
        &via,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("digest mismatch"), "{}", text(&o));
    check_store_blobs(&bad);
    assert!(list(&bad).trim().is_empty());
}

/// Copying an image to another repository streams its blobs (bounded memory);
/// an upload that fails on the way (refused session, twice a failed PUT of
/// the body) is started over from a freshly opened source stream.
#[test]
fn streamed_blob_uploads_are_retried() {
    let env = setup();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = format!("{}/app/one:v1", env.reg.host());
    let dst = format!("{}/app/copy:v1", env.proxy.host());
    env.proxy.add(
        "POST",
        "/app/copy/blobs/uploads/",
        1,
        Fault::Status(503, Some("0")),
    );
    env.proxy.add(
        "PUT",
        "/app/copy/blobs/uploads/",
        1,
        Fault::Status(502, None),
    );
    env.proxy.add(
        "PUT",
        "/app/copy/blobs/uploads/",
        1,
        Fault::Status(500, None),
    );
    let o = convert(&store, &src, &dst);
    assert!(o.status.success(), "{}", text(&o));
    let faults: Vec<_> = env
        .proxy
        .log()
        .into_iter()
        .filter(|s| s.fault.is_some())
        .collect();
    assert_eq!(faults.len(), 3, "{faults:?}");
    // Every layer landed whole: verify reads them all back from the copy.
    let o = verify(&store, &format!("{}/app/copy:v1", env.reg.host()));
    assert!(o.status.success(), "{}", text(&o));

    // A registry that keeps refusing: a bounded number of attempts (the
    // hardening runs allow 3 retries), then an error naming the blob.
    env.proxy.clear();
    env.proxy.add(
        "POST",
        "/app/refused/blobs/uploads/",
        usize::MAX,
        Fault::Status(503, Some("0")),
    );
    let o = convert(
        &store,
        &src,
        &format!("{}/app/refused:v1", env.proxy.host()),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("503") && err.contains("blob sha256:"),
        "{}",
        text(&o)
    );
    // Each blob copy that started made exactly 1 + 3 attempts (copies run 4
    // at a time; none starts after the first failure).
    let posts = env.proxy.seen("POST", "/app/refused/").len();
    assert!(
        posts.is_multiple_of(4) && (4..=16).contains(&posts),
        "{posts} session starts"
    );
}

/// `SOCI_REGISTRY_*` values that are not numbers in range (1e19 s overflowed
/// a timer and panicked, exit 101): a usage error naming the variable.
#[test]
fn absurd_registry_settings_are_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    for (name, value) in [
        ("SOCI_REGISTRY_TIMEOUT", "1e19"),
        ("SOCI_REGISTRY_STALL_TIMEOUT", "NaN"),
        ("SOCI_REGISTRY_TIMEOUT", "-3"),
        ("SOCI_REGISTRY_RETRIES", "many"),
    ] {
        let o = std::process::Command::new(crate::support::soci_bin())
            .args([
                "create",
                "--plain-http",
                "--store",
                store.to_str().unwrap(),
                "127.0.0.1:9/app/one:v1",
            ])
            .env(name, value)
            .env_remove("SOCI_STORE")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}={value}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(name) && !err.contains("panicked"),
            "{name}={value}: {}",
            text(&o)
        );
    }
}

/// Forgetting `--plain-http` on a plain-HTTP registry: at once (no retries),
/// one line saying what happened and what to do, not "authentication".
#[test]
fn forgetting_plain_http_fails_at_once_and_says_so() {
    let env = setup();
    let tmp = tempfile::tempdir().unwrap();
    let hostile = soci_testkit::HostileServer::start();
    // The real registry, then a server that counts the attempts.
    for host in [env.reg.host(), hostile.host()] {
        let o = soci(&[
            "create",
            "--store",
            tmp.path().join("store").to_str().unwrap(),
            &format!("{host}/app/one:v1"),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!(
                "{host} answered plain HTTP to a TLS request: use --plain-http"
            )),
            "{}",
            text(&o)
        );
        assert!(!err.contains("authentication"), "{}", text(&o));
    }
    assert_eq!(hostile.log().len(), 1, "retried: {:?}", hostile.log());
}
