//! Credentials and TLS against a real registry (htpasswd + a CA-signed
//! certificate). Its own test binary: it sets DOCKER_CONFIG for the process.
use soci_oci::spec::Digest;
use soci_oci::{
    select_manifests, Credentials, ImageSource, PlatformChoice, RegistryClient, RegistryOptions,
    RegistrySource,
};
use soci_testkit::{make_oci_layout, skopeo, Registry, RegistryConfig};
use std::io::Read;

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn credentials_and_tls() {
    let reg = Registry::start_with(&RegistryConfig {
        basic_auth: Some(("soci".into(), "s3cret".into())),
        tls: true,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("test registry: {e}"));
    let ca = reg.ca_cert().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fx = make_oci_layout(&tmp.path().join("img"), "v1");
    let dst = format!("docker://{}/secure:v1", reg.host());
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        "soci:s3cret",
        &fx.oci_ref(),
        &dst,
    ])
    .unwrap();

    let image = format!("{}/secure:v1", reg.host());
    let with = |credentials: Credentials, tls_ca: Option<std::path::PathBuf>| {
        RegistrySource::new(
            image.parse().unwrap(),
            &RegistryOptions {
                credentials,
                plain_http: false,
                tls_ca,
                ..Default::default()
            },
        )
    };
    let basic = Credentials::Basic {
        username: "soci".into(),
        password: "s3cret".into(),
    };

    // Without our CA, TLS fails; anonymous and wrong passwords are refused.
    assert!(with(basic.clone(), None).unwrap().resolve_root().is_err());
    assert!(with(Credentials::Anonymous, Some(ca.clone()))
        .unwrap()
        .resolve_root()
        .is_err());
    let wrong = Credentials::Basic {
        username: "soci".into(),
        password: "nope".into(),
    };
    assert!(with(wrong, Some(ca.clone()))
        .unwrap()
        .resolve_root()
        .is_err());

    // Explicit credentials: resolve, stream, range.
    let src = with(basic.clone(), Some(ca.clone())).unwrap();
    assert_eq!(src.resolve_root().unwrap().1, fx.root.bytes);
    let m = &select_manifests(&src, &PlatformChoice::Host).unwrap()[0];
    let l = &m.manifest.layers[1];
    let mut bytes = Vec::new();
    src.open_blob(l).unwrap().read_to_end(&mut bytes).unwrap();
    assert_eq!(Digest::of(&bytes), l.digest);
    assert_eq!(src.read_blob_range(l, 100..200).unwrap(), &bytes[100..200]);

    // Push with credentials.
    let target = RegistryClient::new(
        &reg.host(),
        &RegistryOptions {
            credentials: basic,
            plain_http: false,
            tls_ca: Some(ca.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let blob = b"pushed with basic auth".to_vec();
    assert!(target
        .push_blob("secure", &blob, &Digest::of(&blob))
        .unwrap());
    assert!(!target
        .referrers_api_supported("secure", &soci_oci::Digest::parse(&fx.root.digest).unwrap())
        .unwrap());

    // Credentials from $DOCKER_CONFIG/config.json.
    let cfg = tmp.path().join("docker");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            base64(b"soci:s3cret")
        ),
    )
    .unwrap();
    std::env::set_var("DOCKER_CONFIG", &cfg);
    let src = with(Credentials::DockerConfig, Some(ca.clone())).unwrap();
    assert_eq!(src.resolve_root().unwrap().0.digest, fx.root.digest);
    // No entry for the host: anonymous, refused.
    std::fs::write(cfg.join("config.json"), r#"{"auths":{}}"#).unwrap();
    assert!(with(Credentials::DockerConfig, Some(ca.clone()))
        .unwrap()
        .resolve_root()
        .is_err());

    // Credential helpers, as Docker runs them: `docker-credential-NAME get`
    // on PATH, the server on stdin, JSON on stdout. Each helper logs the
    // server it was asked about.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = |name: &str, password: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = bin.join(format!("docker-credential-{name}"));
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread server\necho \"$server\" >> {log}\n\
             if [ \"$server\" = \"{host}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"soci\",\"Secret\":\"{password}\"}}' \"$server\"\n\
             else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            log = tmp.path().join(format!("{name}.log")).display(),
            host = reg.host(),
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    helper("good", "s3cret");
    helper("wrong", "nope");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", path);
    let asked = |name: &str| {
        std::fs::read_to_string(tmp.path().join(format!("{name}.log"))).unwrap_or_default()
    };
    let config = |json: String| std::fs::write(cfg.join("config.json"), json).unwrap();

    // credsStore: the helper is asked for this host and its answer is used.
    config(r#"{"credsStore":"good"}"#.into());
    let src = with(Credentials::DockerConfig, Some(ca.clone())).unwrap();
    assert_eq!(src.resolve_root().unwrap().0.digest, fx.root.digest);
    assert_eq!(asked("good").trim(), reg.host());
    // credHelpers for this host wins over credsStore (and over auths).
    config(format!(
        r#"{{"credsStore":"good","credHelpers":{{"{}":"wrong"}},"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        reg.host(),
        reg.host(),
        base64(b"soci:s3cret")
    ));
    let e = with(Credentials::DockerConfig, Some(ca.clone()))
        .unwrap()
        .resolve_root()
        .unwrap_err();
    assert!(
        !asked("wrong").is_empty(),
        "credHelpers entry not used: {e}"
    );
    // A helper that holds nothing for another host: anonymous, no error.
    let other = "127.0.0.1:1/secure:v1".to_string();
    config(r#"{"credsStore":"good"}"#.into());
    assert!(RegistrySource::new(other.parse().unwrap(), &RegistryOptions::default()).is_ok());
    assert!(asked("good").contains("127.0.0.1:1"));
    // A helper that cannot be run is a clear error, not a silent anonymous pull.
    config(r#"{"credsStore":"absent"}"#.into());
    let e = match with(Credentials::DockerConfig, Some(ca)) {
        Ok(_) => panic!("a missing credential helper must fail"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("docker-credential-absent") && e.contains("config.json"),
        "{e}"
    );
}
