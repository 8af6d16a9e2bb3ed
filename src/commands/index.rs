//! `soci index list|info|rm`: SOCI indexes in the local store.
use super::image::open_store;
use crate::cli::{GlobalArgs, IndexCommand};
use crate::output::{print_json, write_stdout};
use anyhow::{bail, Context, Result};
use serde_json::json;

pub(super) fn run(cmd: IndexCommand, global: &GlobalArgs) -> Result<u8> {
    match cmd {
        IndexCommand::List(a) => {
            let store = open_store(a.store.as_deref())?;
            let list = super::listing::matching_indexes(
                &store,
                a.image_ref.as_deref(),
                a.platform.as_deref(),
            )?;
            if global.json {
                print_json(&serde_json::to_value(&list)?)?;
            } else if a.digests_only || global.quiet {
                for r in &list {
                    println!("{}", r.digest);
                }
            } else {
                println!(
                    "{:<72} {:>8}  {:<40} {:<14} {:<8} CREATED",
                    "DIGEST", "SIZE", "IMAGE REF", "PLATFORM", "VERSION"
                );
                for r in &list {
                    let platform = r.platform.as_ref().map(|p| {
                        if p.variant.is_empty() {
                            format!("{}/{}", p.os, p.architecture)
                        } else {
                            format!("{}/{}/{}", p.os, p.architecture, p.variant)
                        }
                    });
                    println!(
                        "{:<72} {:>8}  {:<40} {:<14} {:<8} {}",
                        r.digest,
                        r.size,
                        r.image_ref.as_deref().unwrap_or("-"),
                        platform.as_deref().unwrap_or("-"),
                        r.manifest_version
                            .map(|v| v.as_str().to_string())
                            .unwrap_or_default(),
                        r.created_at
                    );
                }
            }
            Ok(crate::exit::OK)
        }
        IndexCommand::Info(a) => {
            let store = open_store(a.store.as_deref())?;
            let all = store.artifacts()?;
            let digest = resolve_index(&a.digest, &all)
                .with_context(|| format!("in the local store {}", store.dir().display()))?;
            let recs: Vec<_> = all.into_iter().filter(|r| r.digest == digest).collect();
            if recs
                .iter()
                .all(|r| r.kind != soci_index::store::ArtifactKind::Index)
            {
                bail!(
                    "{} is not a SOCI index (it is a {}); use `soci ztoc info` for zTOCs",
                    digest,
                    recs[0].kind
                );
            }
            let bytes = store.get_blob(&digest)?;
            serde_json::from_slice::<serde_json::Value>(&bytes)?; // valid JSON
            let mut s = go_indent(&bytes);
            s.push(b'\n');
            write_stdout(&s)?;
            Ok(crate::exit::OK)
        }
        IndexCommand::Rm(a) => {
            if a.digests.is_empty() && a.image_ref.is_none() {
                bail!("give the digests of the indexes to remove, or --ref REF (see `soci index list`)");
            }
            let store = open_store(a.store.as_deref())?;
            let all = store.artifacts()?;
            // Every digest is checked before anything is removed.
            let mut digests = a
                .digests
                .iter()
                .map(|d| resolve_index(d, &all))
                .collect::<Result<Vec<_>>>()?;
            if let Some(r) = &a.image_ref {
                let found = super::listing::matching_indexes(&store, Some(r), None)?;
                if found.is_empty() {
                    bail!(
                        "no SOCI index in the local store {} was built for or pushed to {r}",
                        store.dir().display()
                    );
                }
                for rec in found {
                    if !digests.contains(&rec.digest) {
                        digests.push(rec.digest);
                    }
                }
            }
            let mut removed = Vec::new();
            for d in &digests {
                let blobs = store.remove_index(d)?;
                if !global.json {
                    println!("removed {d} ({} blobs deleted)", blobs.len());
                }
                removed.push(json!({"digest": d, "blobs_deleted": blobs}));
            }
            if global.json {
                print_json(&json!(removed))?;
            }
            Ok(crate::exit::OK)
        }
    }
}

/// The SOCI index `typed` names (a digest or a unique prefix) among the
/// indexes; failing that among all artifacts, so that a zTOC's digest gets
/// "is not a SOCI index" rather than "no such index".
fn resolve_index(
    typed: &str,
    all: &[soci_index::store::ArtifactRecord],
) -> Result<soci_oci::spec::Digest> {
    let indexes = all
        .iter()
        .filter(|r| r.kind == soci_index::store::ArtifactKind::Index)
        .map(|r| &r.digest);
    crate::digest::resolve(typed, indexes, "SOCI index").or_else(|e| {
        crate::digest::resolve(typed, all.iter().map(|r| &r.digest), "SOCI index").map_err(|_| e)
    })
}

/// Go's `json.Indent(dst, src, "", "  ")` on compact JSON: the stored bytes with
/// their key order, one member per line (`{}` and `[]` stay on one line).
fn go_indent(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() * 2);
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if in_str {
            out.push(c);
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => {
                    in_str = true;
                    out.push(c);
                }
                b'{' | b'[' => {
                    out.push(c);
                    let close = if c == b'{' { b'}' } else { b']' };
                    if src.get(i + 1) == Some(&close) {
                        out.push(close);
                        i += 1;
                    } else {
                        depth += 1;
                        newline(&mut out, depth);
                    }
                }
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                    out.push(c);
                }
                b',' => {
                    out.push(c);
                    newline(&mut out, depth);
                }
                b':' => out.extend_from_slice(b": "),
                b' ' | b'\n' | b'\t' | b'\r' => {}
                _ => out.push(c),
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_indent_keeps_order() {
        let got = super::go_indent(br#"{"b":[1,{"x":"a,b:{"}],"a":{},"c":[]}"#);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "{\n  \"b\": [\n    1,\n    {\n      \"x\": \"a,b:{\"\n    }\n  ],\n  \"a\": {},\n  \"c\": []\n}"
        );
    }
}
