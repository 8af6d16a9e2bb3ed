//! In-process claims on the layers being indexed.
//!
//! `soci create A B C` indexes several images at once; images built on one
//! base share its layers. The local store already dedups what is stored, but
//! two images reaching the same layer at the same moment would both find the
//! store empty and both download and inflate it. A claim makes the second one
//! wait until the first has stored the zTOC, then find it in the store (or,
//! under `--force`, take the one built earlier in this process instead of
//! rebuilding it: `--force` distrusts what was stored before the run, not what
//! the run itself just built).
//!
//! A claim is held only while one layer is indexed, and indexing a layer never
//! takes another claim, so waiting cannot deadlock. Across processes nothing
//! is claimed: the store's writes are atomic and content-addressed, so two
//! processes building one layer waste work but agree on the result.
use crate::Reporter;
use soci_digest::Digest;
use std::collections::HashSet;
use std::sync::{Condvar, Mutex, OnceLock};

/// Claimed keys, and keys built by this process.
#[derive(Default)]
struct Claims {
    busy: HashSet<String>,
    built: HashSet<String>,
}

fn claims() -> &'static (Mutex<Claims>, Condvar) {
    static CLAIMS: OnceLock<(Mutex<Claims>, Condvar)> = OnceLock::new();
    CLAIMS.get_or_init(Default::default)
}

/// The right to index one layer (digest, span size, options key) in this
/// process; released when dropped.
pub(crate) struct Claim {
    key: String,
}

impl Claim {
    /// Waits until no other thread of this process indexes the same layer
    /// with the same options, then claims it. A wait is announced to
    /// `reporter` (`layer_wait`, then `layer_wait_over` once claimed), so a
    /// run of many images can start another image while this one only waits.
    pub(crate) fn take(
        layer: &Digest,
        span_size: u64,
        options: &str,
        reporter: &dyn Reporter,
    ) -> Claim {
        let key = format!("{layer}\n{span_size}\n{options}");
        let (lock, cv) = claims();
        let mut c = lock.lock().unwrap_or_else(|p| p.into_inner());
        if !c.busy.contains(&key) {
            c.busy.insert(key.clone());
            return Claim { key };
        }
        // Not under the lock: the reporter may block (for a free image slot).
        drop(c);
        reporter.layer_wait(layer);
        let mut c = lock.lock().unwrap_or_else(|p| p.into_inner());
        while c.busy.contains(&key) {
            c = cv.wait(c).unwrap_or_else(|p| p.into_inner());
        }
        c.busy.insert(key.clone());
        drop(c);
        let claim = Claim { key };
        // Claimed first: whoever waits for a slot holds no lock, and the
        // claim is released (dropped) even if the reporter panics.
        reporter.layer_wait_over(layer);
        claim
    }

    /// Whether this process already built (and stored) this layer's zTOC.
    pub(crate) fn built_here(&self) -> bool {
        let c = claims().0.lock().unwrap_or_else(|p| p.into_inner());
        c.built.contains(&self.key)
    }

    /// Records that the zTOC was built and stored.
    pub(crate) fn mark_built(&self) {
        let mut c = claims().0.lock().unwrap_or_else(|p| p.into_inner());
        c.built.insert(self.key.clone());
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let (lock, cv) = claims();
        let mut c = lock.lock().unwrap_or_else(|p| p.into_inner());
        c.busy.remove(&self.key);
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Threads claiming one key run one at a time; other keys are not held up.
    #[test]
    fn one_holder_per_key() {
        let layer = Digest::of(b"claim test layer");
        let other = Digest::of(b"claim test other layer");
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let c = Claim::take(&layer, 1, "k", &crate::Silent);
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Another key is free meanwhile.
                    drop(Claim::take(&other, 1, "k", &crate::Silent));
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    if !c.built_here() {
                        c.mark_built();
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(Claim::take(&layer, 1, "k", &crate::Silent).built_here());
        assert!(!Claim::take(&layer, 2, "k", &crate::Silent).built_here());
    }

    /// Counts the waits announced to it.
    #[derive(Default)]
    struct Waits {
        started: AtomicUsize,
        over: AtomicUsize,
    }
    impl Reporter for Waits {
        fn layer_wait(&self, _: &Digest) {
            self.started.fetch_add(1, Ordering::SeqCst);
        }
        fn layer_wait_over(&self, _: &Digest) {
            self.over.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A claim taken while another thread holds the key is announced (so a
    /// many-images run can start another image meanwhile), and its end too;
    /// a free key is taken without a word.
    #[test]
    fn waits_are_announced() {
        let layer = Digest::of(b"claim test announced wait");
        let waits = Waits::default();
        drop(Claim::take(&layer, 1, "k", &waits));
        assert_eq!(waits.started.load(Ordering::SeqCst), 0);
        let held = Claim::take(&layer, 1, "k", &crate::Silent);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| drop(Claim::take(&layer, 1, "k", &waits)));
            while waits.started.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            // Announced while the key is still held: not yet over.
            assert_eq!(waits.over.load(Ordering::SeqCst), 0);
            drop(held);
            waiter.join().unwrap();
        });
        assert_eq!(waits.started.load(Ordering::SeqCst), 1);
        assert_eq!(waits.over.load(Ordering::SeqCst), 1);
    }
}
