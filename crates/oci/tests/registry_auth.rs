//! Credentials and TLS against a real registry (htpasswd + a CA-signed
//! certificate). Its own test binary: it sets DOCKER_CONFIG for the process.
use soci_oci::spec;
use soci_oci::{
    select_manifests, Credentials, ImageSource, PlatformChoice, RegistryOptions, RegistrySource,
    RegistryTarget,
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
    assert_eq!(spec::sha256_digest(&bytes), l.digest);
    assert_eq!(src.read_blob_range(l, 100..200).unwrap(), &bytes[100..200]);

    // Push with credentials.
    let target = RegistryTarget::new(
        &reg.host(),
        &RegistryOptions {
            credentials: basic,
            plain_http: false,
            tls_ca: Some(ca.clone()),
        },
    )
    .unwrap();
    let blob = b"pushed with basic auth".to_vec();
    assert!(target
        .push_blob("secure", &blob, &spec::sha256_digest(&blob))
        .unwrap());
    assert!(!target
        .referrers_api_supported("secure", &fx.root.digest)
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
    assert!(with(Credentials::DockerConfig, Some(ca))
        .unwrap()
        .resolve_root()
        .is_err());
}
