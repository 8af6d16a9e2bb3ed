//! Which credentials go where: `-u` belongs to one registry and is sent only
//! after that registry's own 401 challenge; `-u USER:PASSWORD`; refusals name
//! what was tried; credential helpers by valid name from PATH only; TLS and
//! timeout flags; `--http-dump` with secrets redacted. Real `docker-registry`
//! instances, a recording proxy on 127.0.0.1 in front of the anonymous one.

use crate::support::proxied::proxied_registry;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::{soci_bin, text};
use soci_testkit::{make_oci_layout, skopeo, Registry, RegistryConfig};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "alice";
const PASS: &str = "pw-Zq81-never-shown";

/// base64 of `USER:PASS`, as an `Authorization: Basic` header carries it.
fn basic_b64() -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = format!("{USER}:{PASS}");
    let mut o = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                o.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

/// A plain-HTTP registry on 127.0.0.1 that wants `USER:PASS`, holding the
/// fixture image as `app/one:v1`.
fn auth_registry(tmp: &Path) -> Registry {
    let reg = Registry::start_with(&RegistryConfig {
        basic_auth: Some((USER.into(), PASS.into())),
        tls: false,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("test registry: {e}"));
    let fx = make_oci_layout(&tmp.join("auth-img"), "v1");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("{USER}:{PASS}"),
        &fx.oci_ref(),
        &format!("docker://{}/app/one:v1", reg.host()),
    ])
    .unwrap();
    reg
}

/// `soci ARGS` with `stdin` on its standard input, an empty Docker config
/// (no credentials from the machine running the tests) and fast timeouts.
fn soci_in(args: &[&str], stdin: &str, env: &[(&str, &str)], cwd: Option<&Path>) -> Output {
    let docker_config = tempfile::tempdir().unwrap();
    let mut c = Command::new(soci_bin());
    c.args(args)
        .env("DOCKER_CONFIG", docker_config.path())
        .env("SOCI_REGISTRY_STALL_TIMEOUT", "5")
        .env("SOCI_REGISTRY_RETRIES", "1")
        .env_remove("SOCI_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let mut child = c.spawn().expect("run soci");
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().unwrap()
}

fn soci(args: &[&str]) -> Output {
    soci_in(args, "", &[], None)
}

fn no_secret(o: &Output) {
    let all = text(o);
    assert!(!all.contains(PASS), "password in output: {all}");
    assert!(
        !all.contains(&basic_b64()),
        "Authorization value in output: {all}"
    );
}

#[test]
fn credentials_go_only_to_the_registry_that_asks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = proxied_registry();
    let dst = auth_registry(tmp.path());
    let store = tmp.path().join("store");
    let store = store.to_str().unwrap();
    let source = format!("{}/app/one:v1", src.proxy.host());
    let anonymous_requests = |what: &str| {
        let log = src.proxy.log();
        assert!(!log.is_empty(), "{what}: the source saw no request");
        let sent: Vec<_> = log.iter().filter(|s| s.authorization.is_some()).collect();
        assert!(
            sent.is_empty(),
            "{what}: the anonymous source received credentials: {sent:?}"
        );
    };

    // convert: -u is the destination's; the anonymous source never sees it.
    let o = soci_in(
        &[
            "convert",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store,
            "-u",
            USER,
            "--password-stdin",
            &source,
            &format!("{}/app/dst:v1", dst.host()),
        ],
        &format!("{PASS}\n"),
        &[],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    no_secret(&o);
    anonymous_requests("convert -u");

    // The same with USER:PASSWORD, and `create --dest`.
    src.proxy.clear();
    let o = soci(&[
        "create",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        store,
        "--force",
        "-u",
        &format!("{USER}:{PASS}"),
        &source,
        "--dest",
        &format!("{}/app/dst2:v1", dst.host()),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    anonymous_requests("create --dest -u USER:PASSWORD");

    // Without a destination -u is the source's, but the source never asks
    // (no 401 challenge): nothing is sent.
    src.proxy.clear();
    let o = soci(&[
        "create",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        store,
        "--force",
        "-u",
        &format!("{USER}:{PASS}"),
        &source,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    anonymous_requests("create -u to a registry that never asks");

    // The other way round: --src-user for the authenticated source, the
    // anonymous registry as destination (the destination gets nothing).
    src.proxy.clear();
    let o = soci_in(
        &[
            "convert",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store,
            "--src-user",
            USER,
            "--src-password-stdin",
            &format!("{}/app/one:v1", dst.host()),
            &format!("{}/app/back:v1", src.proxy.host()),
        ],
        &format!("{PASS}\n"),
        &[],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    no_secret(&o);
    anonymous_requests("convert --src-user (anonymous destination)");

    // -u names the destination: an oci: destination is refused, clearly.
    let o = soci(&[
        "convert",
        "--plain-http",
        "--store",
        store,
        "-u",
        &format!("{USER}:{PASS}"),
        &source,
        &format!("oci:{}/out:v1", tmp.path().display()),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--src-user"), "{}", text(&o));
}

#[test]
fn user_password_forms_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = auth_registry(tmp.path());
    let store = tmp.path().join("store");
    let store = store.to_str().unwrap();
    let image = format!("{}/app/one:v1", reg.host());
    let create = |user: &[&str]| {
        let mut args = vec![
            "create",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store,
            "--force",
        ];
        args.extend_from_slice(user);
        args.push(&image);
        soci(&args)
    };

    // The reference's form: the password after the first `:`.
    let o = create(&["-u", &format!("{USER}:{PASS}")]);
    assert!(o.status.success(), "{}", text(&o));
    no_secret(&o);

    // A user without a password is a usage error, before any request.
    let o = create(&["-u", USER]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--password-stdin"), "{}", text(&o));
    let o = create(&["-u", &format!("{USER}:{PASS}"), "--password-stdin"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A wrong password: the refusal says who we were, not the secret nor the
    // registry's raw JSON body, and what to do.
    let o = create(&["-u", &format!("{USER}:wrong-{PASS}")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("user alice from -u/--user"), "{err}");
    assert!(err.contains("check the user name and password"), "{err}");
    assert!(!err.contains("wrong-"), "{err}");
    assert!(!err.contains("{\"errors\""), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // The same refusal on the upload side (HEAD, uploads).
    let o = soci(&[
        "convert",
        "--plain-http",
        "--min-layer-size",
        "0",
        "--store",
        store,
        "-u",
        &format!("{USER}:wrong-{PASS}"),
        &format!(
            "oci:{}/fixtures/example-image:latest",
            env!("CARGO_MANIFEST_DIR")
        ),
        &format!("{}/app/pushed:v1", reg.host()),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("credentials tried: user alice from -u/--user"),
        "{err}"
    );
    assert!(!err.contains("wrong-"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // No credentials at all: says anonymous, and why.
    let o = create(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("credentials tried: anonymous (no "), "{err}");
    assert!(err.contains("docker login"), "{err}");

    // Plain HTTP to a host that is not this machine: explicit credentials are
    // refused before anything is sent, unless --plain-http=HOST names it.
    let remote = "registry.invalid:5000/app/one:v1";
    let o = create_remote(
        store,
        &["--plain-http", "-u", &format!("{USER}:{PASS}"), remote],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("--plain-http=registry.invalid:5000"),
        "{}",
        text(&o)
    );
    no_secret(&o);
    let o = create_remote(
        store,
        &[
            "--plain-http=registry.invalid:5000",
            "-u",
            &format!("{USER}:{PASS}"),
            remote,
        ],
    );
    // Named: the credentials are allowed; the (unresolvable) host then fails.
    assert!(!text(&o).contains("not sent in plain HTTP"), "{}", text(&o));
}

fn create_remote(store: &str, args: &[&str]) -> Output {
    let mut a = vec!["create", "--min-layer-size", "0", "--store", store];
    a.extend_from_slice(args);
    soci_in(&a, "", &[("SOCI_REGISTRY_RETRIES", "0")], None)
}

#[test]
fn credential_helpers_by_name_from_path_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let reg = auth_registry(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join("docker-credential-sub")).unwrap();
    let marker = tmp.path().join("planted-ran");
    // Helpers planted in the working directory: one under a plain name, one
    // reached through a name with a `/`. Each leaves a marker if run.
    let plant = |path: &Path| {
        std::fs::write(
            path,
            format!(
                "#!/bin/sh\ntouch {}\nprintf '{{\"Username\":\"{USER}\",\"Secret\":\"{PASS}\"}}'\n",
                marker.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    plant(&work.join("docker-credential-planted"));
    plant(&work.join("docker-credential-sub").join("evil"));
    let config = tmp.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    let store = tmp.path().join("store");
    let image = format!("{}/app/one:v1", reg.host());
    let run = |json: &str| {
        std::fs::write(config.join("config.json"), json).unwrap();
        // PATH with an empty entry and `.`: both mean the working directory.
        let path = format!(":.:{}", std::env::var("PATH").unwrap_or_default());
        soci_in(
            &[
                "create",
                "--plain-http",
                "--min-layer-size",
                "0",
                "--store",
                store.to_str().unwrap(),
                &image,
            ],
            "",
            &[("DOCKER_CONFIG", config.to_str().unwrap()), ("PATH", &path)],
            Some(&work),
        )
    };

    for bad in ["sub/evil", "../work/docker-credential-planted", "..", "x y"] {
        let o = run(&format!(r#"{{"credsStore":"{bad}"}}"#));
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", text(&o));
        assert!(
            text(&o).contains("not a helper name"),
            "{bad}: {}",
            text(&o)
        );
        assert!(!marker.exists(), "{bad}: a helper outside PATH was run");
        let o = run(&format!(
            r#"{{"credHelpers":{{"{}":"{bad}"}}}}"#,
            reg.host()
        ));
        assert!(
            text(&o).contains("not a helper name"),
            "{bad}: {}",
            text(&o)
        );
        assert!(!marker.exists(), "{bad}: a helper outside PATH was run");
    }
    // A valid name found only in the working directory is not run.
    let o = run(r#"{"credsStore":"planted"}"#);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("docker-credential-planted is not on PATH"),
        "{}",
        text(&o)
    );
    assert!(
        !marker.exists(),
        "the helper in the working directory was run"
    );

    // The same helper in an absolute PATH directory is used, and named on refusal.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(
        work.join("docker-credential-planted"),
        bin.join("docker-credential-good"),
    )
    .unwrap();
    std::fs::write(config.join("config.json"), r#"{"credsStore":"good"}"#).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = soci_in(
        &[
            "create",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            &image,
        ],
        "",
        &[("DOCKER_CONFIG", config.to_str().unwrap()), ("PATH", &path)],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(marker.exists());

    // Refusals name where the credentials came from: a helper, an auths entry.
    let stale = "stale-Qx7-secret";
    std::fs::write(
        bin.join("docker-credential-stale"),
        format!("#!/bin/sh\nprintf '{{\"Username\":\"bob\",\"Secret\":\"{stale}\"}}'\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("docker-credential-stale"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let refused = |json: String| {
        std::fs::write(config.join("config.json"), json).unwrap();
        let o = soci_in(
            &[
                "create",
                "--plain-http",
                "--min-layer-size",
                "0",
                "--store",
                store.to_str().unwrap(),
                &image,
            ],
            "",
            &[("DOCKER_CONFIG", config.to_str().unwrap()), ("PATH", &path)],
            None,
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(!text(&o).contains(stale), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let err = refused(format!(r#"{{"credHelpers":{{"{}":"stale"}}}}"#, reg.host()));
    assert!(
        err.contains("credentials tried: user bob from credential helper docker-credential-stale (credHelpers in"),
        "{err}"
    );
    // base64 of "bob:stale-Qx7-secret"
    let err = refused(format!(
        r#"{{"auths":{{"{}":{{"auth":"Ym9iOnN0YWxlLVF4Ny1zZWNyZXQ="}}}}}}"#,
        reg.host()
    ));
    assert!(
        err.contains("credentials tried: user bob from auths in"),
        "{err}"
    );
    assert!(err.contains("docker login"), "{err}");
}

#[test]
fn http_dump_shows_exchanges_without_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = auth_registry(tmp.path());
    let store = tmp.path().join("store");
    let o = soci_in(
        &[
            "create",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            "--http-dump",
            "-u",
            USER,
            "--password-stdin",
            &format!("{}/app/one:v1", reg.host()),
        ],
        &format!("{PASS}\n"),
        &[],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    no_secret(&o);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let host = reg.host();
    assert!(err.contains(&format!("> GET http://{host}/v2/\n")), "{err}");
    assert!(err.contains("< 401 Unauthorized"), "{err}");
    assert!(err.contains("www-authenticate: Basic"), "{err}");
    assert!(
        err.contains(&format!("> GET http://{host}/v2/app/one/manifests/v1")),
        "{err}"
    );
    assert!(err.contains("> authorization: Basic <redacted>"), "{err}");
    assert!(err.contains("< 200 OK"), "{err}");
    // --debug is the same switch.
    let o = soci_in(
        &[
            "create",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            "--debug",
            "-u",
            &format!("{USER}:{PASS}"),
            &format!("{}/app/one:v1", reg.host()),
        ],
        "",
        &[],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    no_secret(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("Basic <redacted>"));
    // Uploads are soci's own requests too: the session POST, the blob and
    // manifest PUTs are shown, redacted like the rest.
    let o = soci_in(
        &[
            "create",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            "--force",
            "--push",
            "--http-dump",
            "-u",
            &format!("{USER}:{PASS}"),
            &format!("{}/app/one:v1", reg.host()),
        ],
        "",
        &[],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    no_secret(&o);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains(&format!("> POST http://{host}/v2/app/one/blobs/uploads/")),
        "{err}"
    );
    assert!(
        err.contains(&format!("> PUT http://{host}/v2/app/one/manifests/")),
        "{err}"
    );
    assert!(
        err.contains("?<redacted>"),
        "blob PUT query not redacted: {err}"
    );
    assert!(!err.contains("digest=sha256"), "{err}");
}

#[test]
fn tls_flags_and_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(&RegistryConfig {
        basic_auth: None,
        tls: true,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("test registry: {e}"));
    let fx = make_oci_layout(&tmp.path().join("img"), "v1");
    soci_testkit::skopeo_copy(
        &fx.oci_ref(),
        &format!("docker://{}/app/one:v1", reg.host()),
    )
    .unwrap();
    let store = tmp.path().join("store");
    let store = store.to_str().unwrap();
    let image = format!("{}/app/one:v1", reg.host());
    let create = |extra: &[&str]| {
        let mut a = vec![
            "create",
            "--min-layer-size",
            "0",
            "--store",
            store,
            "--force",
        ];
        a.extend_from_slice(extra);
        a.push(&image);
        soci(&a)
    };
    // An unknown CA fails; -k accepts it, with a warning.
    let o = create(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = create(&["-k"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("warning: -k/--insecure"),
        "{}",
        text(&o)
    );

    // Client certificate files: missing or not PEM, a clear error naming them.
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let missing = tmp.path().join("missing.pem");
    let o = create(&[
        "--tlscert",
        missing.to_str().unwrap(),
        "--tlskey",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(missing.to_str().unwrap()), "{}", text(&o));
    let o = create(&[
        "--tlscert",
        junk.to_str().unwrap(),
        "--tlskey",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("client certificate"), "{}", text(&o));
    let o = create(&["--tlscert", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // --timeout: absurd values are usage errors; a value bounds a stalled download.
    for bad in ["0", "-1", "1e19", "soon"] {
        let o = create(&["--timeout", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
    }
    let src = proxied_registry();
    src.proxy.add(
        "GET",
        "/blobs/",
        usize::MAX,
        Fault::Stall(10, Duration::from_secs(600)),
    );
    let started = Instant::now();
    let o = soci_in(
        &[
            "create",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store,
            "--force",
            "--timeout",
            "3",
            &format!("{}/app/one:v1", src.proxy.host()),
        ],
        "",
        // The stall timeout alone would wait 10 minutes per attempt.
        &[("SOCI_REGISTRY_STALL_TIMEOUT", "600")],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "--timeout not applied: {}",
        text(&o)
    );
    let _: &FaultProxy = &src.proxy;
}

#[test]
fn client_certificate_is_presented() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(&RegistryConfig {
        basic_auth: None,
        tls: true,
        client_ca: true,
    })
    .unwrap_or_else(|e| panic!("test registry: {e}"));
    let (cert, key, cert_dir) = reg.client_cert().unwrap();
    let fx = make_oci_layout(&tmp.path().join("img"), "v1");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-cert-dir",
        cert_dir.to_str().unwrap(),
        &fx.oci_ref(),
        &format!("docker://{}/app/one:v1", reg.host()),
    ])
    .unwrap();
    let store = tmp.path().join("store");
    let ca = reg.ca_cert().unwrap();
    let image = format!("{}/app/one:v1", reg.host());
    let create = |extra: &[&str]| {
        let mut a = vec![
            "create",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            "--force",
            "--tls-ca",
            ca.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.push(&image);
        soci(&a)
    };
    // Without the certificate the registry ends the handshake.
    let o = create(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // With it, the image is read and indexed.
    let o = create(&[
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("-> ztoc sha256:"),
        "{}",
        text(&o)
    );
    // Uploads present it too (they went through oci-client, which could not).
    let o = create(&[
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
        "--push",
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn uploads_send_no_credentials_to_a_destination_that_never_asks() {
    // An identity token for the destination in config.json: oci-client used
    // to send it (as a bearer token) on every HEAD, upload and mount, unasked.
    let tmp = tempfile::tempdir().unwrap();
    let src = proxied_registry();
    let dst = proxied_registry();
    let config = tmp.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"idtok-{PASS}"}}}}}}"#,
            dst.proxy.host()
        ),
    )
    .unwrap();
    let store = tmp.path().join("store");
    let o = soci_in(
        &[
            "convert",
            "--plain-http",
            "--min-layer-size",
            "0",
            "--store",
            store.to_str().unwrap(),
            &format!("{}/app/one:v1", src.reg.host()),
            &format!("{}/app/dst:v1", dst.proxy.host()),
        ],
        "",
        &[("DOCKER_CONFIG", config.to_str().unwrap())],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    no_secret(&o);
    let log = dst.proxy.log();
    assert!(
        log.iter().any(|s| s.method == "PUT"),
        "nothing uploaded: {log:?}"
    );
    let sent: Vec<_> = log.iter().filter(|s| s.authorization.is_some()).collect();
    assert!(
        sent.is_empty(),
        "the destination received credentials: {sent:?}"
    );
}
