//! The lazy root filesystem: `soci mount SRC MOUNTPOINT --json` as a child
//! process (the same binary), which serves the image's merged read-only tree
//! through FUSE, fetching spans as they are read.
//!
//! Contract: the child prints `{"event":"mounted",...}` once the mount
//! answers; on SIGTERM it unmounts, writes `--record FILE`, prints
//! `{"event":"unmounted","bytes_fetched":N,...}` and exits 0.
use crate::error::{Error, Result};
use crate::signals::{Cancel, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an unmounting child may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `soci mount`.
#[derive(Debug)]
pub struct LazyMount {
    child: Option<Child>,
    lines: Option<BufReader<ChildStdout>>,
    mountpoint: PathBuf,
}

/// What the mount reported when it stopped.
#[derive(Debug, Clone, Default)]
pub struct MountStats {
    /// `bytes_fetched` of its final line (0 if it printed none).
    pub bytes_fetched: u64,
    /// The final line as JSON (`null` when there was none).
    pub last: serde_json::Value,
}

impl LazyMount {
    /// Starts `cmd` (a `soci mount SRC MOUNTPOINT --json ...` command) and
    /// waits for its `mounted` line. `password`, if any, is written to its
    /// stdin (with `--password-stdin` in `cmd`). A signal in `cancel` stops it.
    pub fn start(
        mut cmd: Command,
        mountpoint: &Path,
        password: Option<&str>,
        cancel: &Arc<Cancel>,
    ) -> Result<LazyMount> {
        cmd.stdout(Stdio::piped()).stdin(if password.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io("cannot start", "soci mount", e))?;
        if let (Some(p), Some(mut stdin)) = (password, child.stdin.take()) {
            let _ = writeln!(stdin, "{p}");
        }
        cancel.set_target(Some(Target::Pid(child.id() as i32)));
        let mut m = LazyMount {
            lines: child.stdout.take().map(BufReader::new),
            child: Some(child),
            mountpoint: mountpoint.to_path_buf(),
        };
        let mut line = String::new();
        loop {
            line.clear();
            let n = m
                .lines
                .as_mut()
                .map(|r| r.read_line(&mut line))
                .unwrap_or(Ok(0))
                .map_err(|e| Error::io("cannot read from", "soci mount", e))?;
            if n == 0 {
                cancel.set_target(None);
                cancel.check()?;
                let status = m.child.as_mut().and_then(|c| c.wait().ok());
                return Err(Error::Child {
                    what: "soci mount".into(),
                    detail: format!(
                        "exited ({}) before mounting {}",
                        status.map(|s| s.to_string()).unwrap_or_default(),
                        mountpoint.display()
                    ),
                });
            }
            let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
            if v["event"] == "mounted" {
                break;
            }
        }
        cancel.set_target(None);
        Ok(m)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// SIGTERM, then its last JSON line and exit. Killed after 30 s.
    pub fn stop(mut self) -> Result<MountStats> {
        let mut child = self.child.take().expect("started");
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let reader = self.lines.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut last = serde_json::Value::Null;
            if let Some(r) = reader {
                for l in r.lines().map_while(|l| l.ok()) {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(l.trim()) {
                        if v.is_object() {
                            last = v;
                        }
                    }
                }
            }
            let _ = tx.send(last);
        });
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let _ = crate::mounts::unmount(&self.mountpoint);
        let last = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(MountStats {
                bytes_fetched: last["bytes_fetched"].as_u64().unwrap_or(0),
                last,
            }),
            other => Err(Error::Child {
                what: "soci mount".into(),
                detail: match other {
                    Some(s) => format!("ended with {s} while unmounting"),
                    None => "did not unmount within 30 s; killed".into(),
                },
            }),
        }
    }
}

impl Drop for LazyMount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Last resort for a mount its process could not remove.
        let _ = crate::mounts::unmount(&self.mountpoint);
    }
}
