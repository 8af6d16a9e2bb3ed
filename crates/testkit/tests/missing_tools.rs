//! Missing tools are reported with how to install them. (Own test binary: it
//! changes PATH for the whole process.)
#[test]
fn missing_docker_registry_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("PATH", empty.path());
    let e = soci_testkit::Registry::start()
        .err()
        .expect("no docker-registry on PATH")
        .to_string();
    assert!(e.contains("apt-get install -y docker-registry"), "{e}");
    let e = soci_testkit::skopeo_inspect_raw("docker://127.0.0.1:1/x:y")
        .unwrap_err()
        .to_string();
    assert!(e.contains("install skopeo"), "{e}");
}
