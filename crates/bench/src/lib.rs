#![allow(clippy::manual_is_multiple_of)] // rust-version 1.85
//! soci-bench: how much sooner a container can start with a SOCI index.
//!
//! A local registry (Debian's docker-registry) behind a traffic-shaping proxy
//! ([`proxy`]); for each image and network profile a full pull (every layer
//! downloaded, verified, unpacked) and lazy starts (SOCI index and zTOCs, then only
//! the spans holding the files a real startup trace touches), every lazily
//! materialised byte checked against the full pull ([`startup`]); results as a
//! table, JSON and an SVG chart ([`report`]).
pub mod fixtures;
pub mod main_entry;
pub mod proxy;
pub mod real;
pub mod report;
pub mod run;
pub mod startup;
pub mod synthetic;
pub mod trace;

pub use proxy::{Profile, Proxy, Traffic};
pub use real::RealRun;
pub use run::{run, ImageSpec, Report, RunOptions};
pub use trace::Trace;

pub(crate) fn ser_secs<S: serde::Serializer>(
    d: &std::time::Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
pub use main_entry::{startup, StartupConfig};
