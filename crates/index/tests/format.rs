//! Byte forms (docs/format.md): index manifests (§5), prefetch artifacts and planning (§6),
//! disable-xattrs rule (§4.3), convert (§7), referrers fallback (§8.2).
use soci_index::*;
use soci_oci::spec::{self, Descriptor, Digest, Index, Platform};
use std::collections::HashMap;

fn dg(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

const ZTOC: char = 'a';
const LAYER: char = 'b';
const IMAGE: char = 'c';
const PF: char = 'd';

fn ztoc_record() -> ZtocRecord {
    ZtocRecord {
        ztoc_digest: dg(ZTOC),
        ztoc_size: 1086672,
        layer_digest: dg(LAYER),
        layer_media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        span_size: 4194304,
        disable_xattrs: true,
    }
}

fn fill(s: &str) -> String {
    s.replace("<ztoc>", &ZTOC.to_string().repeat(64))
        .replace("<layer>", &LAYER.to_string().repeat(64))
        .replace("<image manifest>", &IMAGE.to_string().repeat(64))
        .replace("<pf>", &PF.to_string().repeat(64))
}

// The build tool identifier in the examples below: the reference CLI's.
const REFERENCE_TOOL: &str = "AWS SOCI CLI v0.2";

// The docs/format.md §5.2 example, verbatim.
const V1_EXAMPLE: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/octet-stream","digest":"sha256:<ztoc>","size":1086672,"annotations":{"com.amazon.soci.disable-xattrs":"true","com.amazon.soci.image-layer-digest":"sha256:<layer>","com.amazon.soci.image-layer-mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","com.amazon.soci.span-size":"4194304"}}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:<image manifest>","size":1234},"annotations":{"com.amazon.soci.build-tool-identifier":"AWS SOCI CLI v0.2"}}"#;

// The docs/format.md §5.3 example, verbatim.
const V2_EXAMPLE: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.amazon.soci.index.v2+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/octet-stream","digest":"sha256:<ztoc>","size":1086672,"annotations":{"com.amazon.soci.disable-xattrs":"true","com.amazon.soci.image-layer-digest":"sha256:<layer>","com.amazon.soci.image-layer-mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","com.amazon.soci.span-size":"4194304"}},{"mediaType":"application/vnd.amazon.soci.prefetch.v1+json","digest":"sha256:<pf>","size":66,"annotations":{"com.amazon.soci.image-layer-digest":"sha256:<layer>"}}],"annotations":{"com.amazon.soci.build-tool-identifier":"AWS SOCI CLI v0.2"}}"#;

fn subject() -> Descriptor {
    Descriptor {
        // Dropped from the subject like the reference does.
        platform: Some(Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Default::default()
        }),
        annotations: [("x".to_string(), "y".to_string())].into_iter().collect(),
        ..Descriptor::new(spec::MEDIA_TYPE_OCI_MANIFEST, dg(IMAGE), 1234)
    }
}

#[test]
fn v1_example_byte_for_byte() {
    let built = build_index_manifest(
        IndexVersion::V1,
        &[ztoc_record()],
        &[],
        Some(subject()),
        REFERENCE_TOOL,
    )
    .unwrap();
    let expected = fill(V1_EXAMPLE);
    assert_eq!(String::from_utf8(built.bytes.clone()).unwrap(), expected);
    assert_eq!(
        built.descriptor,
        Descriptor {
            artifact_type: "application/vnd.amazon.soci.index.v1+json".into(),
            ..Descriptor::new(
                "application/vnd.oci.image.manifest.v1+json",
                Digest::of(expected.as_bytes()),
                expected.len() as i64
            )
        }
    );
    assert_eq!(
        String::from_utf8(spec::to_go_json(&built.descriptor)).unwrap(),
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"artifactType":"application/vnd.amazon.soci.index.v1+json"}}"#,
            Digest::of(expected.as_bytes()),
            expected.len()
        )
    );
}

#[test]
fn v2_example_byte_for_byte() {
    let pf_bytes = PrefetchArtifact::new(vec![PrefetchSpan {
        start_span: 0,
        end_span: 2,
        priority: 0,
    }])
    .to_json()
    .unwrap();
    assert_eq!(pf_bytes.len(), 66);
    let pf = PrefetchRecord {
        digest: dg(PF),
        size: pf_bytes.len() as u64,
        layer_digest: dg(LAYER),
    };
    let built = build_index_manifest(
        IndexVersion::V2,
        &[ztoc_record()],
        &[pf],
        None,
        REFERENCE_TOOL,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(built.bytes.clone()).unwrap(),
        fill(V2_EXAMPLE)
    );
    assert!(built.manifest.subject.is_none());
    assert_eq!(built.descriptor.artifact_type, SOCI_INDEX_ARTIFACT_TYPE_V2);
}

#[test]
fn subject_rules_and_empty_index() {
    assert!(matches!(
        build_index_manifest(IndexVersion::V1, &[ztoc_record()], &[], None, "t"),
        Err(Error::MissingSubject)
    ));
    assert!(matches!(
        build_index_manifest(
            IndexVersion::V2,
            &[ztoc_record()],
            &[],
            Some(subject()),
            "t"
        ),
        Err(Error::UnexpectedSubject(_))
    ));
    assert!(matches!(
        build_index_manifest(IndexVersion::V2, &[], &[], None, "t"),
        Err(Error::EmptyIndex)
    ));
    let stray = PrefetchRecord {
        digest: dg(PF),
        size: 66,
        layer_digest: dg('e'),
    };
    assert!(matches!(
        build_index_manifest(IndexVersion::V2, &[ztoc_record()], &[stray], None, "t"),
        Err(Error::PrefetchLayerNotIndexed { .. })
    ));
}

#[test]
fn ztocs_keep_layer_order_then_prefetches() {
    let mut z1 = ztoc_record();
    z1.disable_xattrs = false;
    let mut z2 = ztoc_record();
    z2.ztoc_digest = dg('1');
    z2.layer_digest = dg('2');
    let p2 = PrefetchRecord {
        digest: dg('3'),
        size: 10,
        layer_digest: dg('2'),
    };
    let p1 = PrefetchRecord {
        digest: dg('4'),
        size: 10,
        layer_digest: dg(LAYER),
    };
    let built =
        build_index_manifest(IndexVersion::V2, &[z1, z2], &[p1, p2], None, "tool <x>").unwrap();
    let digests: Vec<_> = built
        .manifest
        .layers
        .iter()
        .map(|d| d.digest.clone())
        .collect();
    assert_eq!(digests, vec![dg(ZTOC), dg('1'), dg('4'), dg('3')]);
    assert!(!built.manifest.layers[0]
        .annotations
        .contains_key(ANNOTATION_DISABLE_XATTRS));
    // Go escaping of the build tool identifier.
    assert!(String::from_utf8(built.bytes).unwrap().ends_with(
        r#""annotations":{"com.amazon.soci.build-tool-identifier":"tool \u003cx\u003e"}}"#
    ));
}

#[test]
fn parse_roundtrip_and_canonical_check() {
    let built = build_index_manifest(
        IndexVersion::V1,
        &[ztoc_record()],
        &[],
        Some(subject()),
        REFERENCE_TOOL,
    )
    .unwrap();
    let parsed = parse_index_manifest(&built.bytes).unwrap();
    assert_eq!(parsed.version, IndexVersion::V1);
    assert!(parsed.go_canonical);
    assert_eq!(parsed.manifest, built.manifest);
    assert_eq!(parsed.ztocs().count(), 1);
    assert_eq!(parsed.prefetches().count(), 0);

    // Pretty-printed: same content, not canonical.
    let v: serde_json::Value = serde_json::from_slice(&built.bytes).unwrap();
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    let p = parse_index_manifest(&pretty).unwrap();
    assert!(!p.go_canonical);
    assert_eq!(p.manifest, built.manifest);

    // A top-level artifactType is dropped by the snapshotter's re-marshal.
    let with_at = String::from_utf8(built.bytes.clone()).unwrap().replacen(
        r#""mediaType":"application/vnd.oci.image.manifest.v1+json","config""#,
        r#""mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.amazon.soci.index.v1+json","config""#,
        1,
    );
    assert!(
        !parse_index_manifest(with_at.as_bytes())
            .unwrap()
            .go_canonical
    );

    // Unknown field: not canonical. Unknown config media type: rejected.
    let unknown = String::from_utf8(built.bytes.clone())
        .unwrap()
        .replacen("{", r#"{"foo":1,"#, 1);
    assert!(
        !parse_index_manifest(unknown.as_bytes())
            .unwrap()
            .go_canonical
    );
    let other = String::from_utf8(built.bytes.clone()).unwrap().replace(
        "application/vnd.amazon.soci.index.v1+json",
        "application/vnd.oci.image.config.v1+json",
    );
    match parse_index_manifest(other.as_bytes()) {
        Err(Error::UnknownIndexVersion(mt)) => {
            assert_eq!(mt, "application/vnd.oci.image.config.v1+json")
        }
        r => panic!("expected UnknownIndexVersion, got {r:?}"),
    }
    assert!(matches!(
        parse_index_manifest(b"{"),
        Err(Error::Json { .. })
    ));
}

#[test]
fn prefetch_json_exact() {
    let a = PrefetchArtifact::new(vec![
        PrefetchSpan {
            start_span: 0,
            end_span: 2,
            priority: 0,
        },
        PrefetchSpan {
            start_span: 5,
            end_span: 5,
            priority: 3,
        },
    ]);
    let bytes = a.to_json().unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        r#"{"version":"1.0","prefetch_spans":[{"start_span":0,"end_span":2},{"start_span":5,"end_span":5,"priority":3}]}"#
    );
    assert_eq!(PrefetchArtifact::from_json(&bytes).unwrap(), a);
    assert_eq!(a.total_spans(), 4);
    assert!(matches!(
        PrefetchArtifact::new(vec![]).to_json(),
        Err(Error::EmptyPrefetchArtifact)
    ));
    assert!(matches!(
        PrefetchArtifact::from_json(br#"{"version":"2.0","prefetch_spans":[{"start_span":0,"end_span":0}]}"#),
        Err(Error::UnsupportedPrefetchVersion(v)) if v == "2.0"
    ));
    assert!(matches!(
        PrefetchArtifact::from_json(br#"{"version":"1.0","prefetch_spans":[]}"#),
        Err(Error::EmptyPrefetchArtifact)
    ));
}

#[test]
fn prefetch_path_cleaning() {
    assert_eq!(clean_prefetch_path("/app/x"), "app/x");
    assert_eq!(clean_prefetch_path("app//x/"), "app/x");
    assert_eq!(clean_prefetch_path("./app/./x"), "app/x");
    assert_eq!(clean_prefetch_path("../../app/y/../x"), "app/x");
    assert_eq!(clean_prefetch_path("/"), "");
    assert_eq!(
        trim_prefetch_paths(&[" a ", "", "  ", "b"]),
        vec!["a".to_string(), "b".to_string()]
    );
}

/// Span = offset / 10 (fixed-size spans of 10 bytes).
fn by_ten(off: u64) -> u64 {
    off / 10
}

#[test]
fn prefetch_planning_rules() {
    let bottom_files: Vec<(&[u8], u64, u64)> = vec![
        (b"./dot", 0, 5),    // raw "./dot": never matches a cleaned path
        (b"etc/", 512, 0),   // dir name with '/': never matches
        (b"app/a", 15, 10),  // spans 1..=2 (end uses off+size = 25)
        (b"app/b", 30, 10),  // spans 3..=4: touches 1..=2 → merged
        (b"app/c", 80, 0),   // span 8..=8
        (b"shadowed", 0, 1), // also in the top layer
    ];
    let top_files: Vec<(&[u8], u64, u64)> = vec![(b"shadowed", 40, 20), (b"app/z", 0, 9)];
    let f = by_ten;
    let (bottom, top) = (dg('b'), dg('7'));
    let layers = [
        PrefetchLayer {
            layer_digest: &bottom,
            files: &bottom_files,
            span_of: &f,
        },
        PrefetchLayer {
            layer_digest: &top,
            files: &top_files,
            span_of: &f,
        },
    ];
    let plan = plan_prefetch(
        &[
            "./dot", "/etc/", "etc", "/app/b", "app/a", "app//c", "shadowed", "/app/z", "missing",
        ],
        &layers,
    );
    // "etc" (cleaned "/etc/") matches nothing: the raw name is "etc/". "./dot" cleans to "dot".
    assert_eq!(
        plan.not_found,
        vec![
            "dot".to_string(),
            "etc".to_string(),
            "etc".to_string(),
            "missing".to_string()
        ]
    );
    assert_eq!(
        plan.layers,
        vec![
            LayerPrefetch {
                layer_digest: bottom.clone(),
                artifact: PrefetchArtifact::new(vec![
                    PrefetchSpan {
                        start_span: 1,
                        end_span: 4,
                        priority: 0
                    },
                    PrefetchSpan {
                        start_span: 8,
                        end_span: 8,
                        priority: 0
                    },
                ]),
            },
            LayerPrefetch {
                layer_digest: top.clone(),
                artifact: PrefetchArtifact::new(vec![
                    // app/z [0,9) → spans 0..=0; shadowed [40,60] → 4..=6; not adjacent (0+1 < 4)
                    PrefetchSpan {
                        start_span: 0,
                        end_span: 0,
                        priority: 0
                    },
                    PrefetchSpan {
                        start_span: 4,
                        end_span: 6,
                        priority: 0
                    },
                ]),
            },
        ]
    );
}

#[test]
fn prefetch_end_span_uses_offset_plus_size() {
    // A 10-byte file at offset 10 ends exactly at the next span's start: [1, 2], not [1, 1].
    let files: Vec<(&[u8], u64, u64)> = vec![(b"f", 10, 10)];
    let f = by_ten;
    let plan = plan_prefetch(
        &["f"],
        &[PrefetchLayer {
            layer_digest: &dg('1'),
            files: &files,
            span_of: &f,
        }],
    );
    assert_eq!(
        plan.layers[0].artifact.prefetch_spans,
        vec![PrefetchSpan {
            start_span: 1,
            end_span: 2,
            priority: 0
        }]
    );
    assert!(plan.not_found.is_empty());
}

#[test]
fn prefetch_merge_rules() {
    let s = |a, b| PrefetchSpan {
        start_span: a,
        end_span: b,
        priority: 0,
    };
    assert_eq!(
        normalize_prefetch_spans(vec![s(5, 6), s(0, 1), s(2, 3), s(9, 9), s(1, 1)]),
        vec![s(0, 3), s(5, 6), s(9, 9)]
    );
    assert_eq!(
        normalize_prefetch_spans(vec![s(0, 10), s(2, 3)]),
        vec![s(0, 10)]
    );
    assert_eq!(
        normalize_prefetch_spans(vec![s(0, 1), s(3, 4)]),
        vec![s(0, 1), s(3, 4)]
    );
    assert!(normalize_prefetch_spans(vec![]).is_empty());
}

#[test]
fn disable_xattrs_rule() {
    let plain: Vec<(&[u8], bool)> = vec![(b"etc/", false), (b"etc/passwd", false)];
    assert!(disable_xattrs_applies(plain.iter().copied()));
    assert!(disable_xattrs_applies(std::iter::empty()));
    let with_xattr: Vec<(&[u8], bool)> = vec![(b"etc/", false), (b"bin/ping", true)];
    assert!(!disable_xattrs_applies(with_xattr.iter().copied()));
    let opaque: Vec<(&[u8], bool)> = vec![(b"var/lib/.wh..wh..opq", false)];
    assert!(!disable_xattrs_applies(opaque.iter().copied()));
    let not_opaque: Vec<(&[u8], bool)> =
        vec![(b"var/lib/.wh..wh..opq/x", false), (b"var/.wh.foo", false)];
    assert!(disable_xattrs_applies(not_opaque.iter().copied()));
}

// ---- convert ----

fn docker_manifest(config: char, layer: char, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2818413,"digest":"{}"}}]{extra}}}"#,
        dg(config),
        dg(layer)
    )
    .into_bytes()
}

fn desc_of(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, Digest::of(bytes), bytes.len() as i64)
}

fn amd64() -> Platform {
    Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    }
}

fn arm64() -> Platform {
    Platform {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: "v8".into(),
        ..Default::default()
    }
}

#[test]
fn convert_single_manifest_image() {
    let m = docker_manifest('1', '2', "");
    let mut root = desc_of(spec::MEDIA_TYPE_DOCKER_MANIFEST, &m);
    root.platform = Some(amd64());
    let empty = HashMap::new();
    let pi = PlatformIndex {
        image_manifest_digest: root.digest.clone(),
        platform: amd64(),
        index_digest: dg('9'),
        index_size: 700,
    };
    let out = convert(&ConvertInput {
        root: root.clone(),
        root_bytes: &m,
        manifests: &empty,
        indexes: &[pi],
    })
    .unwrap();
    let expected_manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":1469}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":2818413}}],"annotations":{{"com.amazon.soci.index-digest":"{}"}}}}"#,
        dg('1'),
        dg('2'),
        dg('9')
    );
    assert_eq!(out.manifests.len(), 1);
    let cm = &out.manifests[0];
    assert_eq!(
        String::from_utf8(cm.bytes.clone()).unwrap(),
        expected_manifest
    );
    assert_eq!(cm.original_digest, root.digest);
    let md = Digest::of(expected_manifest.as_bytes());
    assert_eq!(cm.descriptor.digest, md);
    let expected_index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{},"annotations":{{"com.amazon.soci.index-digest":"{}"}},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":700,"annotations":{{"com.amazon.soci.image-manifest-digest":"{md}"}},"platform":{{"architecture":"amd64","os":"linux"}},"artifactType":"application/vnd.amazon.soci.index.v2+json"}}]}}"#,
        expected_manifest.len(),
        dg('9'),
        dg('9')
    );
    assert_eq!(
        String::from_utf8(out.index_bytes.clone()).unwrap(),
        expected_index
    );
    assert_eq!(
        out.index_descriptor,
        desc_of(spec::MEDIA_TYPE_OCI_INDEX, expected_index.as_bytes())
    );
    assert_eq!(out.soci_descriptors.len(), 1);
    assert_eq!(
        out.soci_descriptors[0].annotations[ANNOTATION_IMAGE_MANIFEST_DIGEST],
        md
    );

    // Re-convert the converted image (index root now): same bytes.
    let mut have = HashMap::new();
    have.insert(cm.descriptor.digest.clone(), cm.bytes.clone());
    let pi2 = PlatformIndex {
        image_manifest_digest: md.clone(),
        platform: amd64(),
        index_digest: dg('9'),
        index_size: 700,
    };
    let again = convert(&ConvertInput {
        root: out.index_descriptor.clone(),
        root_bytes: &out.index_bytes,
        manifests: &have,
        indexes: &[pi2],
    })
    .unwrap();
    assert_eq!(again.index_bytes, out.index_bytes);
    assert_eq!(again.manifests[0].bytes, cm.bytes);
}

#[test]
fn convert_two_platform_index_and_reconvert() {
    let m_amd = docker_manifest('1', '2', r#","annotations":{"a":"1"},"unknownField":true"#);
    let m_arm = docker_manifest('3', '4', "");
    let d_amd = desc_of(spec::MEDIA_TYPE_DOCKER_MANIFEST, &m_amd);
    let d_arm = desc_of(spec::MEDIA_TYPE_DOCKER_MANIFEST, &m_arm);
    let root_bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{{"mediaType":"{mt}","size":{},"digest":"{}","platform":{{"architecture":"amd64","os":"linux"}},"annotations":{{"old":"gone"}}}},{{"mediaType":"{mt}","size":{},"digest":"{}","platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":5,"digest":"{}","platform":{{"architecture":"unknown","os":"unknown"}},"annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#,
        d_amd.size,
        d_amd.digest,
        d_arm.size,
        d_arm.digest,
        dg('7'),
        mt = spec::MEDIA_TYPE_DOCKER_MANIFEST
    )
    .into_bytes();
    let root = desc_of(spec::MEDIA_TYPE_DOCKER_MANIFEST_LIST, &root_bytes);
    let mut have = HashMap::new();
    have.insert(d_amd.digest.clone(), m_amd.clone());
    have.insert(d_arm.digest.clone(), m_arm.clone());
    let indexes = vec![
        PlatformIndex {
            image_manifest_digest: d_amd.digest.clone(),
            platform: amd64(),
            index_digest: dg('e'),
            index_size: 800,
        },
        PlatformIndex {
            image_manifest_digest: d_arm.digest.clone(),
            platform: arm64(),
            index_digest: dg('f'),
            index_size: 900,
        },
    ];
    let out = convert(&ConvertInput {
        root: root.clone(),
        root_bytes: &root_bytes,
        manifests: &have,
        indexes: &indexes,
    })
    .unwrap();

    let idx: Index = serde_json::from_slice(&out.index_bytes).unwrap();
    assert_eq!(idx.media_type, spec::MEDIA_TYPE_OCI_INDEX);
    assert_eq!(idx.manifests.len(), 5);
    // Images first (rewritten, annotations replaced), untouched absent entry, then SOCI indexes.
    let (amd, arm, att, s_amd, s_arm) = (
        &idx.manifests[0],
        &idx.manifests[1],
        &idx.manifests[2],
        &idx.manifests[3],
        &idx.manifests[4],
    );
    assert_eq!(amd.media_type, spec::MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(amd.platform, Some(amd64()));
    assert_eq!(
        amd.annotations,
        [
            ("a".to_string(), "1".to_string()),
            (
                IMAGE_ANNOTATION_SOCI_INDEX_DIGEST.to_string(),
                dg('e').to_string()
            )
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(arm.annotations[IMAGE_ANNOTATION_SOCI_INDEX_DIGEST], dg('f'));
    assert_eq!(att.digest, dg('7'));
    assert_eq!(
        att.annotations["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(s_amd.digest, dg('e'));
    assert_eq!(
        s_amd.annotations[ANNOTATION_IMAGE_MANIFEST_DIGEST],
        amd.digest
    );
    assert_eq!(s_amd.artifact_type, SOCI_INDEX_ARTIFACT_TYPE_V2);
    assert_eq!(s_arm.platform, Some(arm64()));
    assert_eq!(
        s_arm.annotations[ANNOTATION_IMAGE_MANIFEST_DIGEST],
        arm.digest
    );
    // The rewritten manifest lost the unknown field, kept its annotation.
    let amd_bytes = &out
        .manifests
        .iter()
        .find(|c| c.original_digest == d_amd.digest)
        .unwrap()
        .bytes;
    let s = String::from_utf8(amd_bytes.clone()).unwrap();
    assert!(!s.contains("unknownField"));
    assert!(s.ends_with(&format!(
        r#""annotations":{{"a":"1","com.amazon.soci.index-digest":"{}"}}}}"#,
        dg('e')
    )));
    assert_eq!(Digest::of(amd_bytes), amd.digest);

    // Re-convert: idempotent (same bytes, SOCI entries replaced in place).
    let mut have2 = HashMap::new();
    for c in &out.manifests {
        have2.insert(c.descriptor.digest.clone(), c.bytes.clone());
    }
    let indexes2 = vec![
        PlatformIndex {
            image_manifest_digest: amd.digest.clone(),
            platform: amd64(),
            index_digest: dg('e'),
            index_size: 800,
        },
        PlatformIndex {
            image_manifest_digest: arm.digest.clone(),
            platform: arm64(),
            index_digest: dg('f'),
            index_size: 900,
        },
    ];
    let again = convert(&ConvertInput {
        root: out.index_descriptor.clone(),
        root_bytes: &out.index_bytes,
        manifests: &have2,
        indexes: &indexes2,
    })
    .unwrap();
    assert_eq!(again.index_bytes, out.index_bytes);

    // A rebuilt amd64 index (new digest) replaces the old entry in place; arm64 platform
    // given as "aarch64" still matches strictly after normalisation.
    let arm_alias = Platform {
        architecture: "aarch64".into(),
        os: "linux".into(),
        ..Default::default()
    };
    let indexes3 = vec![
        PlatformIndex {
            image_manifest_digest: amd.digest.clone(),
            platform: amd64(),
            index_digest: dg('5'),
            index_size: 801,
        },
        PlatformIndex {
            image_manifest_digest: arm.digest.clone(),
            platform: arm_alias.clone(),
            index_digest: dg('6'),
            index_size: 901,
        },
    ];
    let third = convert(&ConvertInput {
        root: out.index_descriptor.clone(),
        root_bytes: &out.index_bytes,
        manifests: &have2,
        indexes: &indexes3,
    })
    .unwrap();
    let idx3: Index = serde_json::from_slice(&third.index_bytes).unwrap();
    assert_eq!(idx3.manifests.len(), 5);
    assert_eq!(idx3.manifests[3].digest, dg('5'));
    assert_eq!(idx3.manifests[4].digest, dg('6'));
    assert_eq!(idx3.manifests[4].platform, Some(arm_alias));
    assert_eq!(
        idx3.manifests[0].annotations[IMAGE_ANNOTATION_SOCI_INDEX_DIGEST],
        dg('5')
    );
    assert_eq!(
        idx3.manifests[3].annotations[ANNOTATION_IMAGE_MANIFEST_DIGEST],
        idx3.manifests[0].digest
    );
}

#[test]
fn convert_errors_name_the_digest() {
    let m = docker_manifest('1', '2', "");
    let root = desc_of(spec::MEDIA_TYPE_DOCKER_MANIFEST, &m);
    let empty = HashMap::new();
    let mut bad = root.clone();
    bad.digest = dg('0');
    match convert(&ConvertInput {
        root: bad,
        root_bytes: &m,
        manifests: &empty,
        indexes: &[],
    }) {
        Err(Error::DigestMismatch { expected, .. }) => assert_eq!(expected, dg('0')),
        r => panic!("{r:?}"),
    }
    let pi = PlatformIndex {
        image_manifest_digest: dg('4'),
        platform: amd64(),
        index_digest: dg('9'),
        index_size: 1,
    };
    match convert(&ConvertInput {
        root: root.clone(),
        root_bytes: &m,
        manifests: &empty,
        indexes: &[pi],
    }) {
        Err(Error::ManifestNotInImage { manifest, .. }) => assert_eq!(manifest, dg('4')),
        r => panic!("{r:?}"),
    }
    let mut wrong_mt = root.clone();
    wrong_mt.media_type = spec::MEDIA_TYPE_OCI_MANIFEST.into();
    assert!(matches!(
        convert(&ConvertInput {
            root: wrong_mt,
            root_bytes: &m,
            manifests: &empty,
            indexes: &[]
        }),
        Err(Error::MediaTypeMismatch { .. })
    ));
}

// ---- fallback ----

#[test]
fn fallback_tag_and_merge() {
    assert_eq!(
        fallback_tag(&dg('c')).unwrap(),
        format!("sha256-{}", "c".repeat(64))
    );
    assert!(matches!(
        fallback_tag(&Digest::parse(&format!("sha512:{}", "c".repeat(128))).unwrap()),
        Err(Error::InvalidDigest(_))
    ));

    let built = build_index_manifest(
        IndexVersion::V1,
        &[ztoc_record()],
        &[],
        Some(subject()),
        REFERENCE_TOOL,
    )
    .unwrap();
    let entry = fallback_entry(&built.descriptor, &built.manifest);
    assert_eq!(entry.artifact_type, SOCI_INDEX_ARTIFACT_TYPE_V1);
    assert_eq!(
        entry.annotations[ANNOTATION_BUILD_TOOL_IDENTIFIER],
        REFERENCE_TOOL
    );

    let fresh = merge_fallback_index(None, entry.clone()).unwrap();
    assert_eq!(
        String::from_utf8(fresh.clone()).unwrap(),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"com.amazon.soci.build-tool-identifier":"AWS SOCI CLI v0.2"}},"artifactType":"application/vnd.amazon.soci.index.v1+json"}}]}}"#,
            built.descriptor.digest, built.descriptor.size
        )
    );
    // Same entry again: unchanged.
    assert_eq!(
        merge_fallback_index(Some(&fresh), entry.clone()).unwrap(),
        fresh
    );

    // A foreign entry (signature) and a duplicate are kept once, an empty entry dropped,
    // the new entry appended.
    let existing = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{s}","size":10,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","annotations":{{"k":"v"}},"x-unknown":1}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{s}","size":10}},{{"mediaType":"","digest":"","size":0}}],"annotations":{{"top":"dropped"}}}}"#,
        s = dg('5')
    );
    let merged = merge_fallback_index(Some(existing.as_bytes()), entry.clone()).unwrap();
    let idx: Index = serde_json::from_slice(&merged).unwrap();
    assert_eq!(idx.manifests.len(), 2);
    assert_eq!(idx.manifests[0].digest, dg('5'));
    assert_eq!(
        idx.manifests[0].artifact_type,
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    );
    assert_eq!(idx.manifests[0].annotations["k"], "v");
    assert_eq!(idx.manifests[1], entry);
    assert!(idx.annotations.is_empty(), "oras-go writes a fresh index");
    assert!(!String::from_utf8(merged).unwrap().contains("x-unknown"));
    // An entry without a digest that is not Go's zero descriptor is kept byte
    // for byte, as oras-go keeps it (read with `MaybeDigest`, not refused).
    let existing =
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/x","digest":"","size":3}]}"#;
    let merged = merge_fallback_index(Some(existing.as_bytes()), entry.clone()).unwrap();
    let text = String::from_utf8(merged).unwrap();
    assert!(
        text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/x","digest":"","size":3},{"#),
        "{text}"
    );
    assert!(text.contains(entry.digest.as_str()), "{text}");
    assert!(matches!(
        merge_fallback_index(Some(b"nope"), entry),
        Err(Error::Json { .. })
    ));
}
