//! `soci gc REPO`: SOCI indexes a repository keeps for images it no longer
//! has (see soci_image::gc for what is covered and in which order).
use super::image::{parse_ref, registry_options};
use crate::cli::{GcArgs, GlobalArgs};
use crate::output::print_json;
use anyhow::{bail, Context, Result};
use soci_oci::reference::ImageRef;
use soci_oci::registry::RegistryClient;

/// Entry point for `soci gc`.
pub(crate) fn run(a: GcArgs, global: &GlobalArgs) -> Result<u8> {
    // HOST/REPO alone parses as HOST/REPO:latest; only the repository counts.
    let ImageRef::Registry {
        registry,
        repository,
        ..
    } = parse_ref(&a.repository)?
    else {
        bail!(
            "{} is not a registry repository (give HOST/REPO)",
            a.repository
        );
    };
    let mut image = a.registry.to_image_args();
    // -u belongs to the one registry gc talks to.
    if image.registry.username.is_some() {
        image.user_registry = Some(registry.clone());
    }
    let client = RegistryClient::new(&registry, &registry_options(&image)?)
        .with_context(|| format!("cannot reach {registry}"))?;
    let report = soci_image::gc::gc(&client, &repository, a.delete)
        .with_context(|| format!("gc of {registry}/{repository}"))?;
    if global.json {
        print_json(&serde_json::to_value(&report)?)?;
        return Ok(crate::exit::OK);
    }
    let verb = if a.delete { "deleted" } else { "would delete" };
    for d in &report.dead_indexes {
        println!(
            "{verb} soci index {} (image {} is gone; listed in {})",
            d.digest, d.subject, d.fallback_tag
        );
    }
    for c in &report.fallback_changes {
        let what = match (c.action.as_str(), a.delete) {
            ("delete", true) => "deleted fallback tag".to_string(),
            ("delete", false) => "would delete fallback tag".to_string(),
            (_, true) => format!("rewrote fallback tag (kept {} other entries)", c.kept),
            (_, false) => format!(
                "would rewrite fallback tag (keeping {} other entries)",
                c.kept
            ),
        };
        println!("{what} {}", c.tag);
    }
    for (tag, why) in &report.skipped {
        eprintln!("warning: fallback tag {tag} left alone: {why}");
    }
    println!(
        "{}: {} tag(s), {} fallback tag(s), {} soci index(es) of images still there, {} of images gone{}",
        report.repository,
        report.tags,
        report.fallback_tags,
        report.live_indexes,
        report.dead_indexes.len(),
        if a.delete || report.dead_indexes.is_empty() {
            String::new()
        } else {
            " (dry run: --delete removes them)".to_string()
        }
    );
    Ok(crate::exit::OK)
}
