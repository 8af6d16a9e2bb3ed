//! SIGINT and SIGTERM during a run: caught on a thread of their own (signal-hook:
//! its handlers only write to a pipe), so that every guard still runs: the signal is passed on
//! to the child that runs (the mount, runc, the chroot init), and after a
//! grace period the container is killed; the run then unwinds normally.
use crate::error::{Error, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a signalled container may take to exit before it is killed:
/// a container's PID 1 ignores SIGTERM unless it handles it.
pub const GRACE: Duration = Duration::from_secs(3);

/// Who gets a signal that arrives.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A process: gets the signal, then SIGKILL after [`GRACE`].
    Pid(i32),
    /// `runc run` of container `id`: gets the signal (runc passes it on to
    /// the container), then `runc kill --all ID KILL` after [`GRACE`].
    Runc {
        pid: i32,
        runc: std::path::PathBuf,
        id: String,
    },
}

/// Shared between a run and its signal thread: whether a signal came, and
/// where to pass it on.
#[derive(Debug, Default)]
pub struct Cancel {
    signal: AtomicI32,
    target: Mutex<Option<Target>>,
}

impl Cancel {
    /// A fresh, unsignalled cancel state.
    pub fn new() -> Arc<Cancel> {
        Arc::new(Cancel::default())
    }

    /// `Err(Interrupted)` once a signal came.
    pub fn check(&self) -> Result<()> {
        match self.signalled() {
            Some(s) => Err(Error::Interrupted(s)),
            None => Ok(()),
        }
    }

    /// The first signal that came, if any.
    pub fn signalled(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    pub(crate) fn set_target(self: &Arc<Self>, t: Option<Target>) {
        let pending = self.signalled();
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = t.clone();
        // A signal that came before the child existed reaches it now.
        if let (Some(sig), Some(t)) = (pending, t) {
            self.deliver(&t, sig);
        }
    }

    fn on_signal(self: &Arc<Self>, sig: i32) {
        let _ = self
            .signal
            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        let target = self
            .target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(t) = target {
            self.deliver(&t, sig);
        }
    }

    fn target_pid(&self) -> Option<i32> {
        match &*self.target.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(Target::Pid(p) | Target::Runc { pid: p, .. }) => Some(*p),
            None => None,
        }
    }

    /// Passes `sig` to `t`, and kills it after the grace period if it is still
    /// the target then (a target that exited is cleared by the run).
    fn deliver(self: &Arc<Self>, t: &Target, sig: i32) {
        let pid = match t {
            Target::Pid(p) | Target::Runc { pid: p, .. } => *p,
        };
        if let Ok(s) = Signal::try_from(sig) {
            let _ = kill(Pid::from_raw(pid), s);
        }
        let t = t.clone();
        let cancel = self.clone();
        std::thread::spawn(move || {
            std::thread::sleep(GRACE);
            if cancel.target_pid() != Some(pid) {
                return;
            }
            match &t {
                Target::Pid(p) => {
                    let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
                }
                Target::Runc { runc, id, .. } => {
                    let _ = std::process::Command::new(runc)
                        .args(["kill", "--all", id, "KILL"])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status();
                }
            }
        });
    }
}

/// While alive, SIGINT and SIGTERM go to `cancel` instead of ending the
/// process: signal-hook's handlers (which only write to a pipe) and a thread
/// reading it. No signal mask is changed: children inherit the mask, and a
/// blocked SIGTERM in one (the `soci mount` child) would never arrive; caught
/// signals return to their default action in a child at exec.
#[derive(Debug)]
pub struct SignalWatcher {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalWatcher {
    /// Installs the handlers and starts the watcher thread.
    pub fn install(cancel: Arc<Cancel>) -> Result<SignalWatcher> {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])
        .map_err(|e| Error::io("cannot handle", "SIGINT/SIGTERM", e))?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("soci-run-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    cancel.on_signal(sig);
                }
            })
            .map_err(|e| Error::io("cannot start a thread", "signals", e))?;
        Ok(SignalWatcher {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for SignalWatcher {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
