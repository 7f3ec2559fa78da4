//! The native kernel's threads: helpers kept alive between calls, asleep on a channel while there is
//! nothing to do (they never spin). A call's items are taken from one shared counter by the calling
//! thread and the helpers; the caller never waits for a helper: once the counter is spent it takes the
//! helpers' finished results and computes itself any item a helper still holds (a helper the OS
//! preempted mid-item, on a loaded machine). Items are pure functions of their index, so who computed
//! one does not change the result, and the output is in index order (deterministic).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

type Task = Box<dyn FnOnce() + Send>;

/// Name prefix of the helper threads (also how tests tell a helper from the caller).
pub(crate) const HELPER_NAME: &str = "vecdream-raster";

struct Pool {
    tasks: Sender<Task>,
    queue: Arc<Mutex<Receiver<Task>>>,
    helpers: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pool() -> &'static Mutex<Pool> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tasks, queue) = channel();
        Mutex::new(Pool {
            tasks,
            queue: Arc::new(Mutex::new(queue)),
            helpers: 0,
        })
    })
}

/// Hands `count` copies of a task to the helpers, starting helpers until there are `count`.
fn submit(count: usize, task: impl Fn() + Send + Sync + 'static) {
    let task = Arc::new(task);
    let mut p = lock(pool());
    while p.helpers < count {
        let queue = Arc::clone(&p.queue);
        let name = format!("{HELPER_NAME}-{}", p.helpers + 1);
        let started = std::thread::Builder::new().name(name).spawn(move || {
            loop {
                // The lock is held only while waiting for the next task, not while running it.
                let next = lock(&queue).recv();
                let Ok(task) = next else { break };
                // A panicking item leaves its slot empty; the caller recomputes it and panics there.
                let _ = catch_unwind(AssertUnwindSafe(task));
            }
        });
        if started.is_err() {
            break; // no more threads: the caller does the work itself
        }
        p.helpers += 1;
    }
    for _ in 0..count.min(p.helpers) {
        let task = Arc::clone(&task);
        let _ = p.tasks.send(Box::new(move || task()));
    }
}

enum Slot<T> {
    Empty,
    Ready(T),
    /// The caller has its result (a helper that finishes it late drops its own).
    Taken,
}

struct Job<T> {
    n: usize,
    next: AtomicUsize,
    f: Box<dyn Fn(usize) -> T + Send + Sync>,
    slots: Vec<Mutex<Slot<T>>>,
}

impl<T> Job<T> {
    fn claim(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.n).then_some(i)
    }
}

/// `f(0..n)` on the calling thread and up to `threads − 1` helpers, results in index order.
pub(crate) fn par_map<T: Send + 'static>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let threads = threads.min(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let job = Arc::new(Job {
        n,
        next: AtomicUsize::new(0),
        f: Box::new(f),
        slots: (0..n).map(|_| Mutex::new(Slot::Empty)).collect(),
    });
    let helper_job = Arc::clone(&job);
    submit(threads - 1, move || {
        while let Some(i) = helper_job.claim() {
            let v = (helper_job.f)(i);
            let mut slot = lock(&helper_job.slots[i]);
            if matches!(*slot, Slot::Empty) {
                *slot = Slot::Ready(v);
            }
        }
    });
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(i) = job.claim() {
        out[i] = Some((job.f)(i));
    }
    for (i, o) in out.iter_mut().enumerate() {
        if o.is_some() {
            continue;
        }
        let held = std::mem::replace(&mut *lock(&job.slots[i]), Slot::Taken);
        *o = Some(match held {
            Slot::Ready(v) => v,
            Slot::Empty | Slot::Taken => (job.f)(i),
        });
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;
    use std::time::Duration;

    #[test]
    fn native_par_map_keeps_index_order() {
        let seq = par_map(97, 1, |i| i * i);
        for threads in [2, 3, 8] {
            assert_eq!(par_map(97, threads, |i| i * i), seq);
        }
        assert!(par_map(0, 4, |i| i).is_empty());
    }

    fn on_helper() -> bool {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(HELPER_NAME))
    }

    /// A helper that is stuck inside an item (as when the OS preempts it) does not hold the
    /// caller: the caller computes that item itself and returns while the helper is still stuck.
    #[test]
    fn native_par_map_does_not_wait_for_a_stuck_helper() {
        // (a helper holds an item, the test has released it, a helper has finished an item)
        let state = Arc::new((Mutex::new((false, false, false)), Condvar::new()));
        let s = Arc::clone(&state);
        let out = par_map(64, 2, move |i| {
            let (m, cv) = &*s;
            if on_helper() {
                let mut g = lock(m);
                g.0 = true;
                cv.notify_all();
                // Stuck until the test releases it (10 s at most, so a failure cannot hang).
                let (mut g, _) = cv
                    .wait_timeout_while(g, Duration::from_secs(10), |g| !g.1)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                g.2 = true;
            } else if i == 0 {
                // The caller's first item waits until a helper has taken one.
                let g = lock(m);
                let _ = cv.wait_timeout_while(g, Duration::from_secs(10), |g| !g.0);
            }
            i + 1
        });
        let (m, cv) = &*state;
        let mut g = lock(m);
        assert!(g.0, "no helper took an item");
        assert!(
            !g.2,
            "the caller waited for the helper's item instead of computing it"
        );
        g.1 = true;
        cv.notify_all();
        assert_eq!(out, (1..=64).collect::<Vec<_>>());
    }

    #[test]
    fn native_par_map_panics_in_the_caller() {
        let r = catch_unwind(|| par_map(16, 2, |i| if i == 7 { panic!("item 7") } else { i }));
        assert!(r.is_err());
        // The helpers survive a panicking item.
        assert_eq!(par_map(16, 2, |i| i), (0..16).collect::<Vec<_>>());
    }
}
