//! The fuzz targets' bodies, shared by the libFuzzer binaries in
//! `fuzz/fuzz_targets/` (run with `cargo fuzz`) and by the stable-Rust smoke
//! run in `tests/cli/hardening/fuzz_smoke.rs` (which includes this file with
//! `#[path]`). Every function must return normally on any input: a panic, an
//! abort or an unbounded allocation is a bug.
//!
//! Only crates the root `soci-rs` package also depends on may be used here.
#![allow(dead_code)]

use soci_zinfo::{GzipCheckpointer, GzipZinfo, TarZinfo, Zinfo};
use soci_ztoc::tar_walk::TarWalker;
use soci_ztoc::{codec, Ztoc};
use std::io::Cursor;

/// Most bytes we let a target inflate or extract (the targets must stay fast
/// and small; the library itself has its own limits).
const MAX_OUT: usize = 4 << 20;

/// Splits fuzz input into two parts at a position given by its first 4 bytes.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 4 {
        return (data, &[]);
    }
    let k = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
    let rest = &data[4..];
    let k = if rest.is_empty() {
        0
    } else {
        k % (rest.len() + 1)
    };
    rest.split_at(k)
}

/// What `soci ztoc info` computes from a zTOC (without printing it).
pub fn ztoc_info(z: &Ztoc) {
    let Ok(zinfo) = z.zinfo() else { return };
    let blob_size = z.compressed_archive_size.max(0) as u64;
    let usize_ = z.uncompressed_archive_size.max(0) as u64;
    for e in &z.toc.entries {
        let off = e.uncompressed_offset.max(0) as u64;
        let _ = zinfo.span_of(off);
        let _ = zinfo.span_of(off.saturating_add(e.uncompressed_size.max(0) as u64));
        let _ = e.name_lossy();
        let _ = e.xattrs().count();
    }
    // As `info` does: every span's ranges (bounded, the count comes from the input).
    for i in 0..zinfo.num_spans().min(1 << 16) {
        let c = zinfo.span_compressed_range(i, blob_size);
        let u = zinfo.span_uncompressed_range(i, usize_);
        let _ = (c.end.saturating_sub(c.start), u.end.saturating_sub(u.start));
    }
    let _ = zinfo.max_span_id();
}

/// What `soci ztoc get-file ZTOC LAYER PATH` does, for every regular file of
/// the zTOC (at most a few), with `layer` as the layer blob.
pub fn ztoc_get_file(z: &Ztoc, layer: &[u8]) {
    let Ok(zinfo) = z.zinfo() else { return };
    if layer.len() as i64 != z.compressed_archive_size {
        // The CLI refuses a layer of the wrong size before extracting; the
        // library must cope anyway, so go on with what we have.
    }
    for e in z.toc.entries.iter().take(8) {
        if let Ok(entry) = z.find_regular(&e.name) {
            let mut blob = Cursor::new(layer);
            if let Ok(data) = z.extract_entry(&zinfo, entry, &mut blob) {
                assert_eq!(data.len() as i64, entry.uncompressed_size);
            }
        }
    }
}

/// zTOC decoding, then `info` and `get-file` on what decoded. Input: 4 bytes
/// of split position, zTOC bytes, layer bytes.
pub fn ztoc(data: &[u8]) {
    let (ztoc_bytes, layer) = split(data);
    ztoc_bytes_only(ztoc_bytes);
    if let Ok(z) = codec::decode(ztoc_bytes) {
        ztoc_get_file(&z, layer);
    }
}

/// zTOC decoding of the whole input; a decoded zTOC must re-encode to bytes
/// that decode to the same zTOC.
pub fn ztoc_bytes_only(data: &[u8]) {
    let Ok(z) = codec::decode(data) else { return };
    let again = codec::encode(&z);
    let z2 = codec::decode(&again).expect("re-encoded zTOC must decode");
    assert_eq!(z, z2, "decode(encode(z)) != z");
    ztoc_info(&z);
}

/// The zinfo blob readers (gzip v1/v2 checkpoints, tar flatbuffer): parse,
/// re-serialise, span arithmetic, and inflating from a checkpoint over the
/// rest of the input.
pub fn zinfo_blob(data: &[u8]) {
    let (blob, compressed) = split(data);
    if let Ok(g) = GzipZinfo::from_blob(blob) {
        let again = GzipZinfo::from_blob(&g.to_blob()).expect("re-serialised zinfo must parse");
        assert_eq!(again.checkpoints.len(), g.checkpoints.len());
        let z = Zinfo::Gzip(g.clone());
        for i in 0..z.num_spans().min(64) {
            let _ = z.span_compressed_range(i, compressed.len() as u64);
            let _ = z.span_uncompressed_range(i, u64::MAX);
        }
        let _ = z.span_of(u64::MAX);
        let _ = z.span_of(0);
        let mut out = vec![0u8; 4096];
        for cp in g.checkpoints.iter().take(4) {
            let _ = soci_zinfo::extract_from_checkpoint(cp, compressed, 0, &mut out);
        }
        let mut cur = Cursor::new(compressed);
        let _ = soci_zinfo::extract_range(&g, &mut cur, 0, 4096);
    }
    if let Ok(t) = TarZinfo::from_blob(blob) {
        let again = TarZinfo::from_blob(&t.to_blob()).expect("re-serialised tar zinfo must parse");
        assert_eq!(again, t);
        let z = Zinfo::Tar(t);
        for i in 0..z.num_spans().min(64) {
            let _ = z.span_compressed_range(i, compressed.len() as u64);
            let _ = z.span_uncompressed_range(i, u64::MAX);
        }
        let _ = z.span_of(u64::MAX);
    }
}

/// The checkpoint engine and the tar walk on arbitrary "compressed" input,
/// as the one-pass builder drives them. The first byte picks the span size
/// and the feeding chunk size. Whatever inflates, every checkpoint must
/// resume to the same bytes as the straight inflate.
pub fn checkpoint_tar(data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let span = [0u64, 1, 512, 4096, 32768, 65536, 1 << 20, 4 << 20][(ctl & 7) as usize];
    let chunk = [1usize, 7, 512, 4096, 65536, 1 << 20, 3, 100][((ctl >> 3) & 7) as usize];

    // Uncompressed layer: the tar walk alone.
    let mut walker = TarWalker::new();
    for c in input.chunks(chunk) {
        if walker.feed(c).is_err() {
            break;
        }
    }
    let _ = walker.finish();
    let _ = walker.take_entries();

    // Gzip layer: inflate with checkpoints, tar walk on the output.
    let Ok(mut cp) = GzipCheckpointer::new(span) else {
        return;
    };
    let mut walker = TarWalker::new();
    let mut plain = Vec::new();
    let mut tar_ok = true;
    let mut ok = true;
    for c in input.chunks(chunk) {
        let r = cp.feed(c, &mut |out: &[u8]| {
            if tar_ok {
                tar_ok = walker.feed(out).is_ok();
            }
            if plain.len() < MAX_OUT {
                let n = out.len().min(MAX_OUT - plain.len());
                plain.extend_from_slice(&out[..n]);
            }
        });
        if r.is_err() {
            ok = false;
            // Poisoned from here on.
            assert!(cp.feed(b"x", &mut |_| {}).is_err());
            break;
        }
        if cp.total_out() > 64 << 20 {
            return; // a zip bomb: fine, but not for a fuzz iteration
        }
    }
    if tar_ok {
        let _ = walker.finish();
    }
    if !ok {
        return;
    }
    let Ok(zinfo) = cp.finish() else { return };
    // Resume from a few checkpoints and compare with the straight inflate.
    for c in zinfo.checkpoints.iter().take(4) {
        let start = c.uncompressed_offset as usize;
        if start >= plain.len() {
            continue;
        }
        let want = &plain[start..plain.len().min(start + 4096)];
        let mut out = vec![0u8; want.len()];
        let from = c.span_start() as usize;
        if from > input.len() {
            panic!(
                "checkpoint span start {from} past the input ({})",
                input.len()
            );
        }
        let n = soci_zinfo::extract_from_checkpoint(c, &input[from..], 0, &mut out)
            .expect("resuming from a checkpoint the engine recorded must work");
        assert_eq!(&out[..n], want, "resume from checkpoint at {start} differs");
    }
    let blob = zinfo.to_blob();
    GzipZinfo::from_blob(&blob).expect("engine's zinfo must parse back");
}

/// The JSON documents soci-rs reads from registries, layouts and its store:
/// SOCI index manifests, image manifests, image indexes, and the referrers
/// fallback index merge (which must keep every existing entry).
pub fn json_docs(data: &[u8]) {
    use soci_oci::spec::{Descriptor, Index, Manifest, MaybeDigest};
    if let Ok(p) = soci_index::manifest::parse_index_manifest(data) {
        let _ = p.ztocs().count();
        let _ = p.prefetches().count();
        let _ = p.manifest.annotations.len();
    }
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let again = soci_oci::spec::to_go_json(&m);
        let m2: Manifest = serde_json::from_slice(&again).expect("re-serialised manifest parses");
        assert_eq!(m, m2);
    }
    if let Ok(i) = serde_json::from_slice::<Index>(data) {
        let again = soci_oci::spec::to_go_json(&i);
        let i2: Index = serde_json::from_slice(&again).expect("re-serialised index parses");
        assert_eq!(i, i2);
    }
    // The fallback index is read with `MaybeDigest` (Go's zero descriptor may be in it).
    if let Ok(i) = serde_json::from_slice::<Index<MaybeDigest>>(data) {
        let again = soci_oci::spec::to_go_json(&i);
        let i2: Index<MaybeDigest> =
            serde_json::from_slice(&again).expect("re-serialised index parses");
        assert_eq!(i, i2);
        // The fallback-tag merge keeps every existing non-empty entry.
        let entry = Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            soci_oci::spec::Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            1,
        );
        // A document that is not an index is refused (never overwritten).
        let Ok(merged) = soci_index::fallback::merge_fallback_index(Some(data), entry.clone())
        else {
            return;
        };
        let merged: Index<MaybeDigest> =
            serde_json::from_slice(&merged).expect("merged index parses");
        for d in &i.manifests {
            if *d != Descriptor::default() {
                assert!(
                    merged.manifests.iter().any(|m| m.media_type == d.media_type
                        && m.digest == d.digest
                        && m.size == d.size),
                    "merge dropped an entry"
                );
            }
        }
        let entry = entry.into_maybe();
        assert!(merged.manifests.iter().any(|m| m.digest == entry.digest));
    }
}
