//! The work pool: a fixed number of scoped threads taking items from a shared
//! counter. Layers are built, compressed, copied and verified on it (`--jobs`
//! threads each time, see docs/architecture.md "Threads and runtimes"); scoped
//! threads let the work borrow the source, store and reporter without `Arc`.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `work` over `items` on up to `jobs` threads; stops handing out new items
/// after the first error, which is returned.
pub(crate) fn parallel<T: Sync, R: Send, E: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    parallel_by(items, jobs, |_| 0, work)
}

/// [`parallel`], starting the items with the largest `cost` first (longest
/// processing time first keeps the workers busy to the end); results stay in
/// `items` order.
pub(crate) fn parallel_by<T: Sync, R: Send, E: Send>(
    items: &[T],
    jobs: usize,
    cost: impl Fn(&T) -> u64,
    work: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost(&items[i])));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R, E>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= items.len() {
                    break;
                }
                let i = order[k];
                let r = work(&items[i]);
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                results
                    .lock()
                    .expect("no worker panics while holding the lock")[i] = Some(r);
            });
        }
    });
    let mut out = Vec::with_capacity(items.len());
    let mut first_err = None;
    for r in results.into_inner().expect("workers joined") {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) if first_err.is_none() => first_err = Some(e),
            Some(Err(_)) | None => {}
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// [`parallel`] for work that cannot fail.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    match parallel(items, jobs, |x| Ok::<R, std::convert::Infallible>(f(x))) {
        Ok(v) => v,
        Err(never) => match never {},
    }
}
