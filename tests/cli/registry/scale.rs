//! Many images in one run (`create A B C`, `--from-file`, `--max-images`),
//! `--shard I/N`, and concurrent writers of one v1 fallback tag.
use crate::support::*;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};

/// A base layer (big enough that its build takes a while, so that images
/// started together reach it at the same time) and a small layer per image.
fn base_and_tops(n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let data = soci_testkit::fixture::pseudo_random(42, 3 << 20);
    let base = soci_testkit::fixture::make_tar(&[("base/", b""), ("base/data", &data)]);
    let tops = (0..n)
        .map(|i| {
            let body = format!("image {i}\n");
            soci_testkit::fixture::make_tar(&[("app/", b""), ("app/id", body.as_bytes())])
        })
        .collect();
    (base, tops)
}

/// `n` images sharing one base layer, pushed to `HOST/scale/imgI:1`.
fn push_images(reg: &Registry, dir: &std::path::Path, n: usize) -> (Vec<String>, String) {
    let (base, tops) = base_and_tops(n);
    let mut base_digest = String::new();
    let refs = tops
        .into_iter()
        .enumerate()
        .map(|(i, top)| {
            let fx = soci_testkit::make_layered_layout(
                &dir.join(format!("img{i}")),
                "1",
                &[base.clone(), top],
            );
            base_digest = fx.images[0].layers[0].digest.clone();
            push_fixture(&fx, reg, &format!("scale/img{i}:1"))
        })
        .collect();
    (refs, base_digest)
}

/// `soci --json create ARGS`: the per-image objects by reference, and the summary.
fn create_many(args: &[&str]) -> (std::process::Output, HashMap<String, Value>, Value) {
    let mut a = vec!["--json", "create"];
    a.extend_from_slice(args);
    let o = soci(&a);
    let mut images = HashMap::new();
    let mut summary = Value::Null;
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object a line ({e}): {line}\n{}", text(&o)));
        if v.get("summary").is_some() {
            summary = v["summary"].clone();
        } else {
            let r = v["reference"].as_str().expect("reference").to_string();
            assert!(images.insert(r, v).is_none(), "an image reported twice");
        }
    }
    (o, images, summary)
}

/// How many times each layer was built, over all images of a run.
fn built_counts(images: &HashMap<String, Value>) -> HashMap<String, usize> {
    let mut built = HashMap::new();
    for v in images.values() {
        for l in v["layers"].as_array().unwrap() {
            if l["status"] == "built" {
                *built
                    .entry(l["digest"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    built
}

/// Several SRCs at once: every image indexed and pushed next to itself, the
/// shared base layer built once (the other images wait for it and reuse it),
/// then `--from-file` of the same images finds everything in the store.
#[test]
fn many_images_share_their_base_layer() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (refs, base) = push_images(&reg, dir.path(), 4);
    let store = dir.path().join("store");
    let mut args: Vec<&str> = refs.iter().map(String::as_str).collect();
    args.extend([
        "--push",
        "--max-images",
        "4",
        "--plain-http",
        "--store",
        p(&store),
        "-q",
        "--min-layer-size",
        "0",
    ]);
    let (o, images, summary) = create_many(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(images.len(), 4, "{}", text(&o));
    assert_eq!(summary["indexed"], 4);
    for r in &refs {
        let v = &images[r];
        assert_eq!(v["ok"], true, "{v}");
        let (repo, tag) = r.split_once('/').unwrap().1.split_once(':').unwrap();
        // Each is now a SOCI-enabled image index at its own tag.
        let m = manifest_json(&reg, repo, tag);
        assert_eq!(m["mediaType"], OCI_INDEX, "{m}");
        assert_eq!(
            v["pushed"]["image_index"]["digest"].as_str().unwrap(),
            sha256(&get_manifest(&reg, repo, tag))
        );
    }
    let built = built_counts(&images);
    assert_eq!(built.get(&base), Some(&1), "base built once: {built:?}");
    assert_eq!(built.len(), 5, "4 top layers + the base: {built:?}");
    assert_eq!(summary["layers_built"], 5);

    // The same images from a list (comments, blank lines, a repeat): all
    // indexed, nothing built again.
    let list = dir.path().join("images.txt");
    std::fs::write(
        &list,
        format!("# the scale images\n\n{}\n{}\n", refs.join("\n"), refs[0]),
    )
    .unwrap();
    let (o, images, summary) = create_many(&[
        "--from-file",
        p(&list),
        "--plain-http",
        "--store",
        p(&store),
        "-q",
        "--min-layer-size",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(images.len(), 4);
    assert_eq!(summary["layers_built"], 0, "{summary}");
    assert!(images.values().all(|v| v["ok"] == true));
}

/// One bad image does not stop the others; the exit code is 1 and the
/// summary (and stderr) name the failed image.
#[test]
fn a_failed_image_is_named_and_the_others_are_indexed() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (refs, _) = push_images(&reg, dir.path(), 2);
    let missing = format!("{}/scale/nothing:1", reg.host());
    let store = dir.path().join("store");
    let o = soci(&[
        "create",
        &refs[0],
        &missing,
        &refs[1],
        "--plain-http",
        "--store",
        p(&store),
        "-q",
        "--min-layer-size",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    for r in &refs {
        assert!(
            out.contains(&format!("{r}: ok, soci index sha256:")),
            "{}",
            text(&o)
        );
    }
    assert!(
        out.contains(&format!("{missing}: FAILED: ")),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("3 image(s): 2 indexed, 1 failed"),
        "{}",
        text(&o)
    );
    assert!(
        err.contains(&format!("soci: 1 of 3 image(s) failed: {missing}")),
        "{}",
        text(&o)
    );
    assert!(!err.contains("panicked"), "{}", text(&o));
}

/// `--dest` names one place: with several images it is wrong usage.
#[test]
fn dest_with_several_images_is_a_usage_error() {
    let o = soci(&["create", "oci:/a:1", "oci:/b:1", "--dest", "oci:/c:1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--dest takes one image, and 2 are given"),
        "{}",
        text(&o)
    );
    let o = soci(&["create", "--from-file", "/nonexistent/list.txt"]);
    assert_error(&o, "/nonexistent/list.txt");
    let o = soci(&["create", "x", "--shard", "4/4"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// `--shard I/N` over one list: for N = 1..4 the N shards (the real binary,
/// `--list`: the selection alone, nothing read or built) are disjoint and
/// together are the whole list.
#[test]
fn shards_cover_every_reference_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let refs: Vec<String> = (0..40)
        .map(|i| format!("registry.example.com/team{}/app{i}:{}", i % 3, i % 7))
        .collect();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("# all\n{}\n\n", refs.join("\n"))).unwrap();
    let all: BTreeSet<String> = refs.iter().cloned().collect();
    for n in 1..=4 {
        let mut seen: Vec<String> = Vec::new();
        for i in 0..n {
            let out = soci_ok(&[
                "create",
                "--from-file",
                p(&list),
                "--shard",
                &format!("{i}/{n}"),
                "--list",
            ]);
            seen.extend(out.lines().map(str::to_string));
        }
        let set: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(set.len(), seen.len(), "N={n}: a reference in two shards");
        assert_eq!(set, all, "N={n}: shards do not cover the list");
    }
}

/// The same, for real: two shards of a list of images, each run indexing its
/// part; together every image is indexed exactly once.
#[test]
fn shards_index_every_image_once() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (refs, _) = push_images(&reg, dir.path(), 4);
    let list = dir.path().join("list.txt");
    std::fs::write(&list, refs.join("\n")).unwrap();
    let mut indexed = Vec::new();
    for i in 0..2 {
        // A machine each: its own store.
        let store = dir.path().join(format!("store{i}"));
        let (o, images, summary) = create_many(&[
            "--from-file",
            p(&list),
            "--shard",
            &format!("{i}/2"),
            "--push",
            "--plain-http",
            "--store",
            p(&store),
            "-q",
            "--min-layer-size",
            "0",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(summary["listed"], 4);
        assert!(images.values().all(|v| v["ok"] == true));
        indexed.extend(images.into_keys());
    }
    indexed.sort();
    let mut want = refs.clone();
    want.sort();
    assert_eq!(indexed, want);
    for r in &refs {
        let (repo, tag) = r.split_once('/').unwrap().1.split_once(':').unwrap();
        assert_eq!(manifest_json(&reg, repo, tag)["mediaType"], OCI_INDEX);
    }
}

/// Writers of one fallback tag at once: several `create --push --index-version
/// v1` processes, each pushing another SOCI index of the same image (other
/// span sizes), start together; the fallback tag must list all of them. Each
/// re-reads the tag after writing and merges again when its entry was lost.
#[test]
fn concurrent_v1_fallback_writers_keep_every_entry() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (refs, _) = push_images(&reg, dir.path(), 1);
    let image = &refs[0];
    let (repo, tag) = image.split_once('/').unwrap().1.split_once(':').unwrap();
    let subject = sha256(&get_manifest(&reg, repo, tag));
    let ftag = format!("sha256-{}", subject.trim_start_matches("sha256:"));
    const WRITERS: usize = 5;
    for round in 0..3 {
        let span_sizes: Vec<String> = (0..WRITERS)
            .map(|w| (65536 * (1 + w + WRITERS * round)).to_string())
            .collect();
        let children: Vec<_> = (0..WRITERS)
            .map(|w| {
                Command::new(soci_bin())
                    .args([
                        "--json",
                        "create",
                        image,
                        "--push",
                        "--index-version",
                        "v1",
                        "--span-size",
                        &span_sizes[w],
                        "--plain-http",
                        "--store",
                        p(&dir.path().join(format!("store-{round}-{w}"))),
                        "-q",
                        "--min-layer-size",
                        "0",
                    ])
                    .env_remove("SOCI_STORE")
                    .env("DOCKER_CONFIG", "/nonexistent-soci-itest")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut pushed = BTreeSet::new();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            pushed.insert(v["platforms"][0]["index"].as_str().unwrap().to_string());
        }
        assert_eq!(pushed.len(), WRITERS);
        let fallback = manifest_json(&reg, repo, &ftag);
        let listed: BTreeSet<String> = fallback["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_string())
            .collect();
        assert!(
            pushed.is_subset(&listed),
            "round {round}: lost {:?}",
            pushed.difference(&listed).collect::<Vec<_>>()
        );
        assert_eq!(listed.len(), WRITERS * (round + 1), "round {round}");
    }
}
