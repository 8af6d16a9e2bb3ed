//! `soci ztoc build|info|get-file` on local files.
use crate::cli::{CompressionArg, GlobalArgs, ZtocBuildArgs, ZtocCommand, ZtocGetFileArgs, ZtocInfoArgs};
use crate::output::{print_json, write_atomic, write_stdout};
use crate::progress::{self, LayerBar};
use anyhow::{bail, Context, Result};
use serde_json::json;
use soci_zinfo::Zinfo;
use soci_ztoc::build::{build_ztoc, BuildOptions, LayerCompression};
use soci_ztoc::{codec, Ztoc};
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn run(cmd: ZtocCommand, global: &GlobalArgs) -> Result<u8> {
    match cmd {
        ZtocCommand::Build(a) => build(a, global),
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
            let n = file.read(&mut head).with_context(|| format!("cannot read {}", layer.display()))?;
            drop(file);
            file = std::fs::File::open(layer)?;
            LayerCompression::sniff(&head[..n])
        }
    };
    let mut opts = BuildOptions::new(compression);
    opts.span_size = args.span_size;
    opts.build_tool_identifier = args.build_tool_identifier.clone();

    let label = layer.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut bar = LayerBar::new(&label, size, progress::enabled(global.quiet));
    let built = build_ztoc(std::io::BufReader::with_capacity(1 << 20, file), &opts, &mut bar)
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

/// Reads and decodes a zTOC file, with an error naming the file.
fn read_ztoc(path: &Path) -> Result<(Ztoc, Vec<u8>)> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot open zTOC {}", path.display()))?;
    if meta.len() > MAX_ZTOC_SIZE {
        bail!("{} is {} bytes, larger than any zTOC we accept ({MAX_ZTOC_SIZE})", path.display(), meta.len());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read zTOC {}", path.display()))?;
    let ztoc = codec::decode(&bytes).with_context(|| format!("{} is not a valid zTOC", path.display()))?;
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
        json!({"min": self.min, "max": self.max, "mean": if self.n == 0 { 0 } else { self.total / self.n }, "total": self.total})
    }
}

/// Entry point for `soci ztoc info`: the reference's JSON, plus span statistics.
fn info(args: ZtocInfoArgs, _global: &GlobalArgs) -> Result<u8> {
    let (z, bytes) = read_ztoc(&args.ztoc)?;
    let zinfo = z.zinfo().with_context(|| format!("{}: invalid zinfo", args.ztoc.display()))?;
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
            "type": e.entry_type,
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
    let (z, _) = read_ztoc(&args.ztoc)?;
    let zinfo = z.zinfo().with_context(|| format!("{}: invalid zinfo", args.ztoc.display()))?;
    let mut blob = std::fs::File::open(&args.layer)
        .with_context(|| format!("cannot open layer {}", args.layer.display()))?;
    let actual = blob.metadata()?.len();
    if actual != z.compressed_archive_size.max(0) as u64 {
        bail!(soci_ztoc::extract::ExtractError::WrongLayerSize { expected: z.compressed_archive_size, actual });
    }
    let entry = z.find_regular(args.path.as_bytes())?;
    let data = z
        .extract_entry(&zinfo, entry, &mut blob)
        .with_context(|| format!("cannot extract {:?} from {}", args.path, args.layer.display()))?;
    match &args.output {
        Some(out) => {
            write_atomic(out, &data)?;
            if global.json {
                print_json(&json!({"path": args.path, "output": out.display().to_string(), "size": data.len()}))?;
            }
        }
        None => write_stdout(&data)?,
    }
    Ok(crate::exit::OK)
}
