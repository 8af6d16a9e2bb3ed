//! `soci ztoc build|info|get-file` on local files.
use super::image::open_store;
use crate::cli::{
    CompressionArg, GlobalArgs, ZtocBuildArgs, ZtocCommand, ZtocGetFileArgs, ZtocInfoArgs,
    ZtocListArgs,
};
use crate::output::{print_json, write_atomic, write_stdout};
use crate::progress::{self, LayerBar};
use anyhow::{bail, Context, Result};
use serde_json::json;
use soci_index::store::{ArtifactKind, ArtifactRecord, ZtocFilter};
use soci_ztoc::build::{build_ztoc, BuildOptions, LayerCompression};
use soci_ztoc::Zinfo;
use soci_ztoc::{codec, Ztoc};
use std::io::Read;
use std::path::{Path, PathBuf};

pub(super) fn run(cmd: ZtocCommand, global: &GlobalArgs) -> Result<u8> {
    match cmd {
        ZtocCommand::Build(a) => build(a, global),
        ZtocCommand::List(a) => list(a, global),
        ZtocCommand::Info(a) => info(a, global),
        ZtocCommand::GetFile(a) => get_file(a, global),
    }
}

/// Entry point for `soci ztoc build`.
fn build(args: ZtocBuildArgs, global: &GlobalArgs) -> Result<u8> {
    let layer = &args.layer;
    let mut file = std::fs::File::open(layer)
        .with_context(|| format!("cannot open layer {}", layer.display()))?;
    let size = file.metadata().map(|m| m.len()).ok();
    let compression = match args.compression {
        CompressionArg::Gzip => LayerCompression::Gzip,
        CompressionArg::Tar => LayerCompression::Uncompressed,
        CompressionArg::Auto => {
            let mut head = [0u8; 2];
            let n = file
                .read(&mut head)
                .with_context(|| format!("cannot read {}", layer.display()))?;
            drop(file);
            file = std::fs::File::open(layer)?;
            LayerCompression::sniff(&head[..n])
        }
    };
    let mut opts = BuildOptions::new(compression);
    opts.span_size = args.span_size;
    opts.build_tool_identifier = args.build_tool_identifier.clone();
    opts.max_uncompressed_size = args.limits.max_uncompressed_size;
    opts.max_files = args.limits.max_files;

    let label = layer
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut bar = LayerBar::new(&label, size, progress::enabled(global.quiet));
    let built = build_ztoc(file, &opts, &mut bar)
        .with_context(|| format!("cannot build the zTOC of {}", layer.display()));
    bar.finish();
    let built = built?;
    let bytes = codec::encode(&built.ztoc);
    let digest = codec::sha256_digest(&bytes);

    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    let out_path = args.output.clone().unwrap_or_else(|| {
        let mut p = layer.clone().into_os_string();
        p.push(".ztoc");
        PathBuf::from(p)
    });
    if to_stdout {
        write_stdout(&bytes)?;
    } else {
        write_atomic(&out_path, &bytes)?;
    }
    let z = &built.ztoc;
    let summary = json!({
        "ztoc": if to_stdout { serde_json::Value::Null } else { json!(out_path.display().to_string()) },
        "digest": digest,
        "size": bytes.len(),
        "layer_digest": built.blob_digest,
        "layer_size": built.blob_size,
        "compression": z.compression_info.compression_algorithm.name(),
        "span_size": args.span_size,
        "num_spans": z.compression_info.span_digests.len(),
        "num_files": z.toc.entries.len(),
        "uncompressed_archive_size": z.uncompressed_archive_size,
    });
    if global.json && !to_stdout {
        print_json(&summary)?;
    } else if !to_stdout {
        println!(
            "layer {} -> ztoc {} ({} bytes, {} spans, {} files) written to {}",
            built.blob_digest,
            digest,
            bytes.len(),
            z.compression_info.span_digests.len(),
            z.toc.entries.len(),
            out_path.display()
        );
    } else if global.json {
        eprintln!("{summary}");
    }
    Ok(crate::exit::OK)
}

/// Reads a zTOC given as a file path or as the digest of a zTOC in the store.
fn load_ztoc(arg: &str, store: Option<&Path>) -> Result<(Ztoc, Vec<u8>, Option<ArtifactRecord>)> {
    let path = Path::new(arg);
    // A file that exists wins; else a digest, or a unique prefix of one.
    if crate::digest::looks_like_digest(arg) && !path.exists() {
        let store = open_store(store)?;
        let ztocs = store.list_ztocs(&ZtocFilter::default())?;
        let digest = crate::digest::resolve(arg, ztocs.iter().map(|r| &r.digest), "zTOC")
            .with_context(|| format!("in the local store {}", store.dir().display()))?;
        let rec = ztocs
            .into_iter()
            .find(|r| r.digest == digest && r.kind == ArtifactKind::Layer)
            .ok_or_else(|| {
                anyhow::anyhow!("no zTOC {arg} in the local store {}", store.dir().display())
            })?;
        let bytes = store.get_blob(&digest)?;
        // The lazy reader trusts the zTOC's span digests to check what a
        // registry sends: the zTOC must be the one its digest names.
        let actual = soci_oci::spec::sha256_digest(&bytes);
        if digest != actual {
            bail!(
                "stored zTOC {digest} is damaged: its bytes have digest {actual}; run `soci create --force` to rebuild it"
            );
        }
        let ztoc =
            codec::decode(&bytes).with_context(|| format!("stored zTOC {digest} is not valid"))?;
        return Ok((ztoc, bytes, Some(rec)));
    }
    let (z, b) = read_ztoc(path)?;
    Ok((z, b, None))
}

/// Entry point for `soci ztoc list`.
fn list(args: ZtocListArgs, global: &GlobalArgs) -> Result<u8> {
    let store = open_store(args.store.as_deref())?;
    let filter = ZtocFilter {
        layer_digest: args.layer_digest.clone(),
        ztoc_digest: args.ztoc_digest.clone(),
    };
    let mut list = store.list_ztocs(&filter)?;
    if let Some(r) = &args.image_ref {
        // The zTOCs the image's SOCI indexes list (as the reference does).
        let mut wanted = std::collections::HashSet::new();
        let indexes = super::listing::matching_indexes(&store, Some(r), None)?;
        if indexes.is_empty() {
            bail!(
                "no SOCI index in the local store {} was built for or pushed to {r}",
                store.dir().display()
            );
        }
        for rec in &indexes {
            for b in super::listing::index_blobs(&store, rec.digest.as_str())? {
                wanted.insert(b.digest);
            }
        }
        list.retain(|z| wanted.contains(&z.digest));
        if let (Some(d), true) = (&args.ztoc_digest, list.is_empty()) {
            bail!("zTOC {d} is not in the local store or not in a SOCI index of {r}");
        }
    }
    if global.json {
        print_json(&serde_json::to_value(&list)?)?;
    } else if args.digests_only || global.quiet {
        for r in &list {
            println!("{}", r.digest);
        }
    } else {
        println!(
            "{:<72} {:>10}  {:<72} SPAN SIZE",
            "DIGEST", "SIZE", "LAYER DIGEST"
        );
        for r in &list {
            println!(
                "{:<72} {:>10}  {:<72} {}",
                r.digest,
                r.size,
                r.layer_digest.as_ref().map_or("-", |d| d.as_str()),
                r.span_size.map(|s| s.to_string()).unwrap_or_default()
            );
        }
    }
    Ok(crate::exit::OK)
}

/// Reads and decodes a zTOC file, with an error naming the file.
fn read_ztoc(path: &Path) -> Result<(Ztoc, Vec<u8>)> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot open zTOC {}", path.display()))?;
    if meta.len() > MAX_ZTOC_SIZE {
        bail!(
            "{} is {} bytes, larger than any zTOC we accept ({MAX_ZTOC_SIZE})",
            path.display(),
            meta.len()
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read zTOC {}", path.display()))?;
    let ztoc =
        codec::decode(&bytes).with_context(|| format!("{} is not a valid zTOC", path.display()))?;
    Ok((ztoc, bytes))
}

/// zTOCs hold a 32 KiB window per checkpoint; 1 GiB is far beyond any real one.
const MAX_ZTOC_SIZE: u64 = 1 << 30;

#[derive(Default)]
struct Stats {
    min: u64,
    max: u64,
    total: u64,
    n: u64,
}
impl Stats {
    fn add(&mut self, v: u64) {
        if self.n == 0 || v < self.min {
            self.min = v;
        }
        self.max = self.max.max(v);
        self.total += v;
        self.n += 1;
    }
    fn json(&self) -> serde_json::Value {
        json!({"min": self.min, "max": self.max, "mean": self.total.checked_div(self.n).unwrap_or(0), "total": self.total})
    }
}

/// Entry point for `soci ztoc info`: the reference's JSON, plus span statistics.
fn info(args: ZtocInfoArgs, _global: &GlobalArgs) -> Result<u8> {
    let (z, bytes, _) = load_ztoc(&args.ztoc, args.store.as_deref())?;
    let zinfo = z
        .zinfo()
        .with_context(|| format!("{}: invalid zinfo", args.ztoc))?;
    let span_size = match &zinfo {
        Zinfo::Gzip(g) => g.span_size,
        Zinfo::Tar(t) => t.span_size,
    };
    let blob_size = z.compressed_archive_size.max(0) as u64;
    let usize_ = z.uncompressed_archive_size.max(0) as u64;
    let mut files = Vec::with_capacity(z.toc.entries.len());
    let mut multi = 0;
    for e in &z.toc.entries {
        let off = e.uncompressed_offset.max(0) as u64;
        let start = zinfo.span_of(off);
        let end = zinfo.span_of(off.saturating_add(e.uncompressed_size.max(0) as u64));
        if start != end {
            multi += 1;
        }
        files.push(json!({
            "filename": e.name_lossy(),
            "offset": e.uncompressed_offset,
            "size": e.uncompressed_size,
            "type": e.entry_type.as_str(),
            "start_span": start,
            "end_span": end,
        }));
    }
    let (mut cstats, mut ustats) = (Stats::default(), Stats::default());
    for i in 0..zinfo.num_spans() {
        let c = zinfo.span_compressed_range(i, blob_size);
        let u = zinfo.span_uncompressed_range(i, usize_);
        cstats.add(c.end.saturating_sub(c.start));
        ustats.add(u.end.saturating_sub(u.start));
    }
    let v = json!({
        "version": z.version,
        "build_tool": z.build_tool_identifier,
        "size": bytes.len(),
        "span_size": span_size,
        "num_spans": z.compression_info.max_span_id as i64 + 1,
        "num_files": z.toc.entries.len(),
        "num_multi_span_files": multi,
        "compression": z.compression_info.compression_algorithm.name(),
        "compressed_archive_size": z.compressed_archive_size,
        "uncompressed_archive_size": z.uncompressed_archive_size,
        "span_compressed_bytes": cstats.json(),
        "span_uncompressed_bytes": ustats.json(),
        "files": if files.is_empty() { serde_json::Value::Null } else { json!(files) },
    });
    print_json(&v)?;
    Ok(crate::exit::OK)
}

/// Entry point for `soci ztoc get-file`.
fn get_file(args: ZtocGetFileArgs, global: &GlobalArgs) -> Result<u8> {
    let (z, _, record) = load_ztoc(&args.ztoc, args.image_args.store.as_deref())?;
    let zinfo = z
        .zinfo()
        .with_context(|| format!("{}: invalid zinfo", args.ztoc))?;
    let (layer_file, path) = match (args.rest.as_slice(), &args.image) {
        ([layer, path], None) => (Some(PathBuf::from(layer)), path.clone()),
        ([path], Some(_)) => (None, path.clone()),
        ([_], None) => bail!(
            "give the layer blob file before PATH, or --image SRC to read the layer from an image"
        ),
        (_, Some(_)) => bail!("with --image give only the zTOC and PATH"),
        _ => bail!("give ZTOC LAYER_BLOB PATH"),
    };
    // Check the layer file matches before looking anything up in it.
    let blob = match &layer_file {
        Some(layer) => {
            let blob = std::fs::File::open(layer)
                .with_context(|| format!("cannot open layer {}", layer.display()))?;
            let actual = blob.metadata()?.len();
            if actual != z.compressed_archive_size.max(0) as u64 {
                bail!(soci_ztoc::extract::ExtractError::WrongLayerSize {
                    expected: z.compressed_archive_size,
                    actual
                });
            }
            Some(blob)
        }
        None => None,
    };
    let entry = find_entry(&z, &path)?;
    let mut fetched = None;
    let data = match (layer_file, blob) {
        (Some(layer), Some(mut blob)) => z
            .extract_entry(&zinfo, entry, &mut blob)
            .with_context(|| format!("cannot extract {path:?} from {}", layer.display()))?,
        _ => {
            let image = args.image.as_deref().expect("checked above");
            let src = super::image::parse_ref(image)?;
            let source = super::image::open(&src, &args.image_args)?;
            let layer = find_layer(&*source, &z, record.as_ref(), &args.image_args)?;
            let (data, stats) = soci_image::lazy::read_entry(&*source, &layer, &z, &zinfo, entry)
                .with_context(|| format!("cannot read {path:?} from {image}"))?;
            if !global.quiet && !global.json {
                eprintln!(
                    "fetched {} of {} bytes of layer {} ({:.2}%) in {} request(s), {} span(s)",
                    stats.bytes,
                    layer.size,
                    layer.digest,
                    100.0 * stats.bytes as f64 / layer.size.max(1) as f64,
                    stats.requests,
                    stats.spans
                );
            }
            fetched = Some((stats, layer));
            data
        }
    };
    let fetched_json = fetched.as_ref().map(|(s, l)| json!({"bytes": s.bytes, "requests": s.requests, "spans": s.spans, "layer": l.digest, "layer_size": l.size}));
    match &args.output {
        Some(out) => {
            write_atomic(out, &data)?;
            if global.json {
                print_json(
                    &json!({"path": path, "output": out.display().to_string(), "size": data.len(), "fetched": fetched_json}),
                )?;
            }
        }
        None => {
            write_stdout(&data)?;
            if global.json {
                eprintln!(
                    "{}",
                    json!({"path": path, "size": data.len(), "fetched": fetched_json})
                );
            }
        }
    }
    Ok(crate::exit::OK)
}

/// The entry `path` names: as stored, else the same path written the other
/// usual ways (`/etc/os-release`, `etc/os-release`, `./etc/os-release`), since
/// layers store names without a leading slash (docker) or with `./` (tar -C).
fn find_entry<'z>(z: &'z Ztoc, path: &str) -> Result<&'z soci_ztoc::model::TocEntry> {
    use soci_ztoc::extract::ExtractError;
    let first = match z.find_regular(path.as_bytes()) {
        Err(e @ ExtractError::NotFound(_)) => e,
        other => return Ok(other?),
    };
    let bare = path.trim_start_matches("./").trim_start_matches('/');
    for alt in [bare.to_string(), format!("./{bare}"), format!("/{bare}")] {
        if alt == path || bare.is_empty() {
            continue;
        }
        match z.find_regular(alt.as_bytes()) {
            Err(ExtractError::NotFound(_)) => continue,
            other => return Ok(other?),
        }
    }
    Err(first.into())
}

/// The layer of `source` a zTOC belongs to: from the store record, else the one
/// layer whose size matches the zTOC's compressed archive size.
fn find_layer(
    source: &dyn soci_oci::source::ImageSource,
    z: &Ztoc,
    record: Option<&ArtifactRecord>,
    image_args: &crate::cli::ImageArgs,
) -> Result<soci_oci::spec::Descriptor> {
    // A zTOC belongs to one layer, whatever the platform: without --platform,
    // look in every platform of a multi-platform image (not just the host's).
    let choice = match super::image::platform_choice(image_args)? {
        soci_oci::source::PlatformChoice::Host => soci_oci::source::PlatformChoice::All,
        c => c,
    };
    let images = soci_oci::source::select_manifests(source, &choice)?;
    let layers = images.iter().flat_map(|m| m.manifest.layers.iter());
    let candidates: Vec<_> = match record.and_then(|r| r.layer_digest.clone()) {
        Some(d) => layers.filter(|l| l.digest == d).collect(),
        None => layers
            .filter(|l| l.size == z.compressed_archive_size)
            .collect(),
    };
    match candidates.as_slice() {
        [one, ..] if candidates.iter().all(|c| c.digest == one.digest) => Ok((*one).clone()),
        [] => bail!("no layer of {} matches this zTOC", source.reference()),
        _ => bail!("several layers of {} could match this zTOC: give the zTOC's digest from the local store", source.reference()),
    }
}
