//! The report as a terminal table, markdown, JSON and an SVG chart.
use crate::real::range;
use crate::run::Report;
use std::fmt::Write;

fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1e6)
}

/// The main table (markdown, readable on a terminal too).
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| image | profile | strategy | ready (s) | MB down | requests | x full time | x full bytes | x own floor |");
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|");
    for img in &r.images {
        for p in &img.results {
            let row = |s: &mut String, name: &str, m: &crate::run::Measure| {
                // each lazy strategy against its own floor (ranges-only needs fewer spans)
                let floor = m
                    .lazy
                    .as_ref()
                    .map(|l| l.floor_span_bytes + l.index_bytes + l.pulled_bytes)
                    .unwrap_or(p.floor_bytes);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2} | {} | {} | {:.2} | {:.3} | {:.2} |",
                    img.name,
                    p.profile.name,
                    name,
                    m.secs,
                    mb(m.bytes),
                    m.requests,
                    m.secs / p.full.secs,
                    m.bytes as f64 / p.full.bytes.max(1) as f64,
                    m.bytes as f64 / floor.max(1) as f64
                );
            };
            row(&mut s, "full pull", &p.full);
            row(&mut s, "lazy", &p.lazy);
            row(&mut s, "lazy+prefetch", &p.prefetch);
            if let Some(m) = &p.ranges {
                row(&mut s, "lazy, read ranges only", m);
            }
            if let Some(r) = &p.real {
                // Real runs: medians of the rounds (range in brackets), ratios
                // against the real full pull + run.
                let f = &r.full.median.measure;
                for (name, m) in [
                    ("real: full pull + run", &r.full),
                    ("real: lazy mount + run", &r.lazy),
                    ("real: lazy + recorded prefetch + run", &r.prefetch),
                ] {
                    let (lo, hi) = m.range();
                    let x = &m.median.measure;
                    let over_floor = match r.floor_bytes {
                        Some(fl) if name != "real: full pull + run" => {
                            format!("{:.2}", x.bytes as f64 / fl.max(1) as f64)
                        }
                        _ => "-".into(),
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {:.2} ({:.2}-{:.2}, {} rounds) | {} | {} | {:.2} | {:.3} | {} |",
                        img.name,
                        p.profile.name,
                        name,
                        x.secs,
                        lo,
                        hi,
                        m.rounds_secs.len(),
                        mb(x.bytes),
                        x.requests,
                        x.secs / f.secs.max(1e-9),
                        x.bytes as f64 / f.bytes.max(1) as f64,
                        over_floor,
                    );
                }
                // The workload alone (root filesystem ready to the first line):
                // on the unpacked image, and on a mount whose spans are all cached.
                let mut alone = vec![
                    ("real: unpacked, workload only", &r.full),
                    (
                        "real: warm lazy mount (new mount, spans cached), workload only",
                        &r.warm,
                    ),
                ];
                if let Some(k) = &r.kept {
                    alone.push((
                        "real: warm lazy mount kept between runs (page cache), workload only",
                        k,
                    ));
                }
                for (name, m) in alone {
                    let (lo, hi) = range(&m.rounds_workload_secs);
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {:.2} ({:.2}-{:.2}, {} rounds) | {} | {} | {:.2} of unpacked | - | - |",
                        img.name,
                        p.profile.name,
                        name,
                        m.median_workload(),
                        lo,
                        hi,
                        m.rounds_workload_secs.len(),
                        mb(m.median.measure.bytes),
                        m.median.measure.requests,
                        m.median_workload() / r.full.median_workload().max(1e-9),
                    );
                }
                if let Some(rss) = r.lazy.median.mount["peak_rss_bytes"].as_u64() {
                    let _ = writeln!(
                        s,
                        "| {} | {} | real: `soci mount` peak RSS (VmHWM) in the lazy run, MB | {} | - | - | - | - | - |",
                        img.name,
                        p.profile.name,
                        mb(rss),
                    );
                }
                if let Some(l) = &r.mount_ls {
                    let _ = writeln!(
                        s,
                        "| {} | {} | real: soci mount to the first `ls /` ({} entries; {} KB index + zTOCs) | {:.2} | {} | {} | - | - | - |",
                        img.name,
                        p.profile.name,
                        l.entries,
                        l.index_bytes / 1000,
                        l.secs,
                        mb(l.measure.bytes),
                        l.measure.requests,
                    );
                }
                if let Some(fl) = r.floor_bytes {
                    let _ = writeln!(
                        s,
                        "| {} | {} | floor of the recorded read ranges (spans + index) | - | {} | - | - | - | 1.00 |",
                        img.name,
                        p.profile.name,
                        mb(fl)
                    );
                }
            }
        }
    }
    s
}

/// Per-image facts: sizes, index build, floor.
pub fn image_table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| image | layers (lazy) | image MB | index build (s) | index KB | index / image | traced files | traced MB (files) | traced MB (read ranges) | floor MB |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for img in &r.images {
        let floor = img.results.first().map(|p| p.floor_bytes).unwrap_or(0);
        let _ = writeln!(
            s,
            "| {} | {} ({}) | {} | {:.2} | {:.0} | {:.2}% | {} | {} | {} | {} |",
            img.name,
            img.layers,
            img.lazy_layers,
            mb(img.image_bytes),
            img.index_build_secs,
            img.index_bytes as f64 / 1e3,
            img.index_share * 100.0,
            img.trace_files,
            mb(img.trace_file_bytes),
            mb(img.trace_range_bytes),
            mb(floor)
        );
    }
    s
}

/// Markdown table of the sweep points; empty when the run had no sweep.
pub fn sweep_table(r: &Report) -> String {
    if r.sweeps.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let _ = writeln!(s, "| image | profile | span | --min-layer-size | lazy layers | index KB | lazy ready (s) | lazy MB | requests | floor MB |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for w in &r.sweeps {
        let _ = writeln!(
            s,
            "| {} | {} | {} MiB | {} MiB | {} | {:.0} | {:.2} | {} | {} | {} |",
            w.image,
            w.profile,
            w.span_size >> 20,
            w.min_layer_size >> 20,
            w.lazy_layers,
            w.index_bytes as f64 / 1e3,
            w.lazy.secs,
            mb(w.lazy.bytes),
            w.lazy.requests,
            mb(w.floor_bytes)
        );
    }
    s
}

/// The whole report as Markdown: image table, results, sweeps, verdict.
pub fn text(r: &Report) -> String {
    format!(
        "{}\n{}\n{}{}",
        image_table(r),
        table(r),
        sweep_table(r),
        verdict(r)
    )
}

/// One plain line per image and profile where the lazy start was not faster
/// than a full pull, saying why (a table of ratios does not).
pub fn verdict(r: &Report) -> String {
    let mut s = String::new();
    for i in &r.images {
        for p in &i.results {
            if p.lazy_full_time < 1.0 {
                continue;
            }
            let why = if i.lazy_layers == 0 {
                "no layer was indexed (all under --min-layer-size), so the lazy start pulls every layer whole".to_string()
            } else if p.lazy_full_bytes > 0.8 {
                format!(
                    "the traced files lie in spans holding {:.0}% of the image's bytes, so it fetches about what a full pull does, in more requests (try a smaller --span-size)",
                    100.0 * p.lazy_full_bytes
                )
            } else {
                format!(
                    "it fetched only {:.0}% of the bytes, but its {} requests at {} ms round trip cost more than the {} MB it saved",
                    100.0 * p.lazy_full_bytes,
                    p.lazy.requests,
                    p.profile.rtt.as_millis(),
                    mb(p.full.bytes.saturating_sub(p.lazy.bytes))
                )
            };
            let _ = writeln!(
                s,
                "note: {} on {}: the lazy start took {:.2}x the time of a full pull: {why}.",
                i.name, p.profile.name, p.lazy_full_time
            );
        }
    }
    s
}

/// Grouped bars: time to ready and MB transferred per image and profile.
pub fn svg(r: &Report) -> String {
    let groups: Vec<(String, [f64; 3], [f64; 3])> = r
        .images
        .iter()
        .flat_map(|i| {
            i.results.iter().map(move |p| {
                (
                    format!("{} {}", i.name, p.profile.name),
                    [p.full.secs, p.lazy.secs, p.prefetch.secs],
                    [
                        p.full.bytes as f64 / 1e6,
                        p.lazy.bytes as f64 / 1e6,
                        p.prefetch.bytes as f64 / 1e6,
                    ],
                )
            })
        })
        .collect();
    let colors = ["#8c8c8c", "#2b7bba", "#e08a1e"];
    let names = ["full pull", "lazy", "lazy + prefetch"];
    let (w, panel_h, top, left) = (900.0, 260.0, 40.0, 70.0);
    let gw = (w - left - 20.0) / groups.len().max(1) as f64;
    let bw = gw * 0.8 / 3.0;
    let mut s = String::new();
    let h = top + 2.0 * (panel_h + 90.0);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="20" font-size="14">soci-rs startup benchmark: full pull vs lazy start (span {} MiB)</text>"#,
        r.span_size >> 20
    );
    for (k, n) in names.iter().enumerate() {
        let x = w - 330.0 + k as f64 * 110.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="28" width="10" height="10" fill="{}"/><text x="{}" y="37">{n}</text>"#,
            colors[k],
            x + 14.0
        );
    }
    for (panel, title) in [(0usize, "time to ready (s)"), (1, "MB transferred")] {
        let y0 = top + panel as f64 * (panel_h + 90.0) + 20.0;
        let max = groups
            .iter()
            .flat_map(|g| if panel == 0 { g.1 } else { g.2 })
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let _ = writeln!(s, r#"<text x="10" y="{}" >{title}</text>"#, y0 - 6.0);
        let _ = writeln!(
            s,
            r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
            y0 + panel_h,
            w - 20.0,
            y0 + panel_h
        );
        for t in 0..=4 {
            let v = max * t as f64 / 4.0;
            let y = y0 + panel_h - panel_h * t as f64 / 4.0;
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#e5e5e5"/><text x="{}" y="{}" text-anchor="end">{v:.1}</text>"##,
                w - 20.0,
                left - 4.0,
                y + 4.0
            );
        }
        for (gi, g) in groups.iter().enumerate() {
            let vals = if panel == 0 { g.1 } else { g.2 };
            let gx = left + gi as f64 * gw + gw * 0.1;
            for (k, v) in vals.iter().enumerate() {
                let bh = panel_h * v / max;
                let x = gx + k as f64 * bw;
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} {}: {v:.2}</title></rect>"#,
                    y0 + panel_h - bh,
                    bw - 1.0,
                    colors[k],
                    g.0,
                    names[k]
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"#,
                    x + bw / 2.0,
                    y0 + panel_h - bh - 2.0,
                    if *v >= 10.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.1}")
                    }
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                gx + gw * 0.4,
                y0 + panel_h + 14.0,
                g.0.split(' ').next().unwrap_or("")
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="9">{}</text>"#,
                gx + gw * 0.4,
                y0 + panel_h + 26.0,
                g.0.split(' ').nth(1).unwrap_or("")
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Writes `startup.json`, `startup.svg` and `startup.md` into `dir`.
pub fn write_all(r: &Report, dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("startup.json"), serde_json::to_vec_pretty(r)?)?;
    std::fs::write(dir.join("startup.svg"), svg(r))?;
    std::fs::write(
        dir.join("startup.md"),
        format!("Command: `{}`\n\n{}", r.command, text(r)),
    )?;
    Ok(())
}
