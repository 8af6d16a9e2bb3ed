//! The integration tests of the `soci` binary: one test binary (one link, one
//! process whose harness schedules every test on its threads), one module per
//! area, one helper tree. Run one area with a filter, e.g.
//! `cargo test --test cli registry::` or `cargo test --test cli hardening::`.
//!
//! The tests share this process: they pass settings to the `soci` child
//! through `Command::env`, never `std::env::set_var`, and never change the
//! working directory, the umask or signal handlers of the test process.

/// Commands that need no registry (or only a local one): output, closed pipes,
/// digest prefixes, the reference CLI's forms, other sources, `soci bench`.
mod commands;
/// Faults, interruptions, limits, full disks, stale temporaries, the store
/// under races, fuzz smoke runs, and image integrity.
mod hardening;
/// `soci mount`: real FUSE mounts of a layered fixture image (tree and
/// metadata, concurrent reads, --record, a dying registry, SIGKILL).
mod mount;
/// Round trips against a real `docker-registry`: v1 and v2 indexes,
/// destinations, blob mounts, multi-platform images, credentials, referrers.
mod registry;
/// `soci run`: real containers (runc, chroot fallback) on full and lazy roots.
mod run;
/// Shared helpers: running `soci`, reading the registry, the fault proxy.
mod support;
/// `soci ztoc`: golden zTOCs, the ztoc commands, lazy `get-file --image`.
mod ztoc;
