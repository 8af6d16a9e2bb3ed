//! `soci push` publishes the SOCI index `create` stored, byte for byte: the
//! options given to `create` reach the registry, nothing is rebuilt.
use crate::support::*;
use serde_json::Value;

/// The SOCI index digests of the SOCI-enabled image index at `r`.
fn soci_entries(r: &str) -> Vec<String> {
    let idx = inspect(r);
    // A plain image manifest (not converted yet) has none.
    idx["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|m| m["artifactType"] == SOCI_V2)
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

fn stored_indexes(store: &str) -> Vec<String> {
    soci_ok(&["index", "list", "--digests-only", "--store", store])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn push_publishes_the_stored_index_with_create_options() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1", false);
    let r = push_fixture(&fx, &reg, "pushtest:1.0");
    let store = dir.path().join("store");
    let st = p(&store);

    // Nothing stored: a clear error, nothing pushed.
    let o = soci(&["push", "--plain-http", "--store", st, &r]);
    assert_error(&o, "run `soci create");
    assert!(soci_entries(&r).is_empty());

    // Non-default options: every layer indexed, a prefetch artifact.
    soci_ok(&[
        "create",
        "--plain-http",
        "--store",
        st,
        "-q",
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        "--prefetch-file",
        "bin/data",
        &r,
    ]);
    let stored = stored_indexes(st);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let out = soci_ok(&["push", "--plain-http", "--store", st, "-q", &r]);
    assert!(out.contains(&stored[0]), "{out}");
    assert!(out.contains("1 prefetch artifact"), "{out}");
    assert_eq!(
        soci_entries(&r),
        stored,
        "the registry holds the stored index"
    );
    // Byte for byte, with its zTOCs and prefetch artifact.
    let raw = get_manifest(&reg, "pushtest", &stored[0]);
    let v: Value = serde_json::from_slice(&raw).unwrap();
    let layers = v["layers"].as_array().unwrap();
    assert!(
        layers
            .iter()
            .any(|d| d["mediaType"] == "application/vnd.amazon.soci.prefetch.v1+json"),
        "{v}"
    );
    for d in layers {
        let digest = d["digest"].as_str().unwrap();
        assert_eq!(
            d["annotations"]
                .get(ANN_SPAN_SIZE)
                .map_or("65536", |s| s.as_str().unwrap()),
            "65536"
        );
        get_blob(&reg, "pushtest", digest);
    }
    // Nothing was built by push: the store holds only what create made.
    assert_eq!(stored_indexes(st), stored);

    // Again: the destination has it; skip leaves it, warn says so and pushes.
    let o = soci(&[
        "push",
        "--plain-http",
        "--store",
        st,
        "--existing-index",
        "skip",
        &r,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("skipped"),
        "{}",
        text(&o)
    );
    let o = soci(&[
        "push",
        "--plain-http",
        "--store",
        st,
        "--max-concurrent-uploads",
        "1",
        &r,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already has SOCI index"),
        "{}",
        text(&o)
    );
    assert_eq!(soci_entries(&r), stored);
}

#[test]
fn push_picks_the_newest_or_the_named_index() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1", false);
    let r = push_fixture(&fx, &reg, "pick:1");
    let store = dir.path().join("store");
    let st = p(&store);
    let create = |span: &str| {
        soci_ok(&[
            "create",
            "--plain-http",
            "--store",
            st,
            "-q",
            "--min-layer-size",
            "0",
            "--span-size",
            span,
            &r,
        ]);
        // Newest first.
        stored_indexes(st)[0].clone()
    };
    let first = create("64KiB");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = create("128KiB");
    assert_ne!(first, second);
    // The newest by default.
    let dst = format!("{}/pick:newest", reg.host());
    soci_ok(&[
        "push",
        "--plain-http",
        "--store",
        st,
        "-q",
        "--dest",
        &dst,
        &r,
    ]);
    assert_eq!(soci_entries(&dst), vec![second.clone()]);
    // --index by a short prefix without `sha256:`.
    let dst = format!("{}/pick:named", reg.host());
    let prefix = &first["sha256:".len().."sha256:".len() + 10];
    soci_ok(&[
        "push",
        "--plain-http",
        "--store",
        st,
        "-q",
        "--dest",
        &dst,
        "--index",
        prefix,
        &r,
    ]);
    assert_eq!(soci_entries(&dst), vec![first.clone()]);
    // An unknown index: an error naming it.
    let o = soci(&[
        "push",
        "--plain-http",
        "--store",
        st,
        "--index",
        "sha256:0000",
        &r,
    ]);
    assert_error(&o, "no SOCI index sha256:0000");
    // Build flags belong to create: push refuses them (usage error).
    let o = soci(&[
        "push",
        "--plain-http",
        "--store",
        st,
        "--min-layer-size",
        "0",
        &r,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn push_of_a_docker_archive_publishes_what_create_stored() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = soci_testkit::make_oci_layout_opts(&dir.path().join("img"), "1", false);
    let archive = dir.path().join("app.tar");
    soci_testkit::make_docker_archive(&archive, &fx.images[0], "app:1", false);
    let src = format!("docker-archive:{}", archive.display());
    let store = dir.path().join("store");
    let st = p(&store);
    let a = format!("{}/arch:a", reg.host());
    soci_ok(&[
        "create",
        "--plain-http",
        "--store",
        st,
        "-q",
        "--min-layer-size",
        "0",
        "--span-size",
        "64KiB",
        &src,
        "--dest",
        &a,
    ]);
    let stored = stored_indexes(st);
    assert_eq!(soci_entries(&a), stored);
    // To another tag from the store: the same index, the same image index.
    let b = format!("{}/arch:b", reg.host());
    soci_ok(&[
        "push",
        "--plain-http",
        "--store",
        st,
        "-q",
        &src,
        "--dest",
        &b,
    ]);
    assert_eq!(soci_entries(&b), stored);
    assert_eq!(inspect_raw(&a), inspect_raw(&b));
}
