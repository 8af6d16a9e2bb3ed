//! `soci run`: an image as a container (see the soci-run crate), and the
//! hidden `soci run-init`, the chroot runtime's container init.
use crate::cli::{GlobalArgs, ImageArgs, RunArgs, RunInitArgs, RuntimeArg};
use anyhow::{bail, Context, Result};
use soci_oci::registry::Credentials;
use soci_run::{Cancel, RootfsMode, RunOptions, RunReport, RuntimeChoice, SignalWatcher};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Entry point for `soci run`.
pub(crate) fn run_cmd(a: RunArgs, global: &GlobalArgs) -> Result<u8> {
    let started = Instant::now();
    if !soci_run::is_root() {
        return Err(soci_run::Error::NotRoot.into());
    }
    if a.image.all_platforms || a.image.platform.len() > 1 {
        bail!("soci run runs one platform: give at most one --platform");
    }
    // Before anything is fetched: from here SIGINT and SIGTERM reach the
    // watcher, which passes them to the child that runs, and the run unwinds
    // through its guards.
    let cancel = Cancel::new();
    let watcher = SignalWatcher::install(cancel.clone())?;
    let src = super::image::parse_ref(&a.source)?;
    let image_args = super::image::bind_credentials(&a.image, &src, &src)?;
    let reg = super::image::registry_options(&image_args)?;
    let source = super::image::open(&src, &image_args)?;
    let exe = std::env::current_exe().context("cannot find the soci executable")?;
    let password = match &reg.credentials {
        Credentials::Basic { password, .. } => Some(password.clone()),
        _ => None,
    };
    let mode = if a.full {
        RootfsMode::Full
    } else if let Some(dir) = &a.rootfs {
        RootfsMode::Existing(dir.clone())
    } else {
        let mount_args = mount_args(&a, &image_args);
        let exe = exe.clone();
        RootfsMode::Lazy(Box::new(move |mountpoint: &Path| {
            let mut c = Command::new(&exe);
            c.arg("mount").arg(&mount_args[0]).arg(mountpoint);
            c.args(&mount_args[1..]);
            c
        }))
    };
    let opts = RunOptions {
        mode,
        platform: super::image::platform_choice(&a.image)?,
        runtime: match a.runtime {
            RuntimeArg::Auto => RuntimeChoice::Auto,
            RuntimeArg::Runc => RuntimeChoice::Runc,
            RuntimeArg::Chroot => RuntimeChoice::Chroot,
        },
        init_command: vec![exe.into_os_string(), "run-init".into()],
        entrypoint: a.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        cmd: a.cmd.clone(),
        tmp_dir: a.tmp_dir.clone(),
        upper_dir: a.upper.clone(),
        mount_password: password,
        inherit_stdin: a.interactive,
        started,
    };
    let mut stdout = std::io::stdout();
    let result = soci_run::run(&*source, &opts, &mut stdout, &cancel);
    drop(watcher);
    let report = match result {
        Ok(r) => r,
        Err(soci_run::Error::Interrupted(sig)) => {
            eprintln!(
                "soci run: interrupted by signal {sig} before the workload started; cleaned up"
            );
            return Ok((128 + sig) as u8);
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot run {}", a.source))),
    };
    print_report(&report, global);
    Ok(report.exit_code.clamp(0, 255) as u8)
}

/// `SRC` then the flags of the `soci mount` child (after the mount point):
/// `--json`, the mount's own options and the registry flags as given.
fn mount_args(a: &RunArgs, i: &ImageArgs) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![a.source.clone().into(), "--json".into()];
    let mut flag = |f: &str, val: Option<&std::ffi::OsStr>| {
        v.push(f.into());
        if let Some(x) = val {
            v.push(x.to_os_string());
        }
    };
    if let Some(p) = i.platform.first() {
        flag("--platform", Some(p.as_ref()));
    }
    if let Some(d) = &a.cache_dir {
        flag("--cache-dir", Some(d.as_os_str()));
    }
    if a.background_fetch {
        flag("--background-fetch", None);
    }
    if let Some(n) = a.read_ahead {
        flag("--read-ahead", Some(n.to_string().as_ref()));
    }
    if let Some(r) = &a.record {
        flag("--record", Some(r.as_os_str()));
    }
    match &i.registry.plain_http {
        Some(hosts) if hosts.is_empty() => flag("--plain-http", None),
        Some(hosts) => flag(&format!("--plain-http={}", hosts.join(",")), None),
        None => {}
    }
    if let Some(c) = &i.registry.tls_ca {
        flag("--tls-ca", Some(c.as_os_str()));
    }
    if i.registry.insecure {
        flag("--insecure", None);
    }
    if let (Some(c), Some(k)) = (&i.registry.tlscert, &i.registry.tlskey) {
        flag("--tlscert", Some(c.as_os_str()));
        flag("--tlskey", Some(k.as_os_str()));
    }
    if let Some(t) = i.registry.timeout {
        flag("--timeout", Some(t.as_secs_f64().to_string().as_ref()));
    }
    if i.registry.http_dump {
        flag("--http-dump", None);
    }
    if let Some(s) = &i.store {
        flag("--store", Some(s.as_os_str()));
    }
    if let Some(u) = &i.registry.username {
        // The password goes through the child's stdin, never its argv.
        let user = u.split_once(':').map(|(u, _)| u).unwrap_or(u);
        flag("--user", Some(user.as_ref()));
        flag("--password-stdin", None);
    }
    v
}

fn print_report(r: &RunReport, global: &GlobalArgs) {
    if global.json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        v["event"] = "exited".into();
        println!("{v}");
        // Which runtime ran is said on stderr in every mode.
        if !global.quiet {
            eprintln!(
                "soci run: runtime {}, root filesystem {}",
                r.runtime, r.rootfs
            );
        }
        return;
    }
    if global.quiet {
        return;
    }
    let mb = r.bytes_fetched as f64 / 1e6;
    eprintln!(
        "soci run: runtime {}, root filesystem {} ready at {:.3} s ({mb:.1} MB fetched)",
        r.runtime, r.rootfs, r.rootfs_secs
    );
    let first = match r.first_line_secs {
        Some(s) => format!("first output line at {s:.3} s"),
        None => "no output line".into(),
    };
    eprintln!(
        "soci run: {first}, exit {} at {:.3} s",
        r.exit_code, r.exit_secs
    );
}

/// Entry point for the hidden `soci run-init` (the chroot runtime's stages).
pub(crate) fn run_init_cmd(a: RunInitArgs) -> Result<u8> {
    if a.stage2 {
        let e = soci_run::chroot::stage2(&a.config);
        eprintln!("soci run: {e}");
        return Ok(127);
    }
    let exe = std::env::current_exe().context("cannot find the soci executable")?;
    let mut stage2 = Command::new(exe);
    stage2.arg("run-init").arg("--stage2").arg(&a.config);
    let code = soci_run::chroot::stage1(&a.config, stage2)
        .with_context(|| format!("cannot start the container of {}", a.config.display()))?;
    Ok(code.clamp(0, 255) as u8)
}
