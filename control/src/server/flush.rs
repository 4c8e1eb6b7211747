//! Group commit: requests leave their changes pending in the live state; this thread
//! commits whatever has accumulated in one store transaction and then releases the
//! requests waiting on it. Many requests, one fsync.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::server::state::Shared;

/// Commits made by flushers of this process, and the job versions in them (see
/// [`stats`]).
static COMMITS: AtomicU64 = AtomicU64::new(0);
static VERSIONS: AtomicU64 = AtomicU64::new(0);
static COMMIT_NANOS: AtomicU64 = AtomicU64::new(0);
static MAX_COMMIT_NANOS: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// What the flushers of this process did so far (benchmarks print it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub commits: u64,
    /// Job versions in those commits.
    pub versions: u64,
    /// Time spent in the store's commit (fsync included), in nanoseconds.
    pub commit_nanos: u64,
    /// The longest commit so far, in nanoseconds.
    pub max_commit_nanos: u64,
    /// Group commits that failed after the store's own retries: each made the live state
    /// rebuild from the store.
    pub failed: u64,
}

pub fn stats() -> FlushStats {
    FlushStats {
        commits: COMMITS.load(Ordering::Relaxed),
        versions: VERSIONS.load(Ordering::Relaxed),
        commit_nanos: COMMIT_NANOS.load(Ordering::Relaxed),
        max_commit_nanos: MAX_COMMIT_NANOS.load(Ordering::Relaxed),
        failed: FAILED.load(Ordering::Relaxed),
    }
}

/// Starts the flusher on a thread of its own; it runs until the returned task is
/// aborted (or dropped with its runtime).
///
/// A dedicated thread rather than a task: a commit blocks in `fsync`, and a task would
/// have to leave its worker thread for that at every commit (`block_in_place` hands the
/// worker's queue to another thread, `spawn_blocking` costs two thread wake-ups). The
/// thread sleeps until a request leaves a change (the live state's flush signal) and is
/// woken directly by it.
pub fn spawn_flusher(shared: Arc<Shared>) -> JoinHandle<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Handle::current();
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("rustci-flush".into())
        .spawn(move || {
            // Stores that drive async clients (MongoDB) find the runtime through this.
            let _runtime = runtime.enter();
            run(&shared, &thread_stop);
        });
    let thread = match thread {
        Ok(t) => Some(t.thread().clone()),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the group-commit thread");
            None
        }
    };
    tokio::spawn(async move {
        // Aborting this task drops the guard, which stops the thread.
        let _guard = StopGuard { stop, thread };
        std::future::pending::<()>().await
    })
}

struct StopGuard {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::Thread>,
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = &self.thread {
            t.unpark();
        }
    }
}

fn run(shared: &Shared, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let (signal, taken, store) = match shared.live.lock() {
            Ok(mut live) => (
                live.flush_signal(),
                live.take_pending(),
                live.shared_store(),
            ),
            Err(_) => return,
        };
        let Some(flush) = taken else {
            // Re-read the signal now and then: a new leader replaces the live state.
            wait(&signal, stop, Duration::from_millis(100));
            continue;
        };
        let started = Instant::now();
        let result = match store.lock() {
            Ok(mut s) => s.commit(&flush.batch),
            Err(_) => Err(crate::store::StoreError::Other(
                "store lock poisoned".into(),
            )),
        };
        let took = started.elapsed().as_nanos() as u64;
        COMMIT_NANOS.fetch_add(took, Ordering::Relaxed);
        MAX_COMMIT_NANOS.fetch_max(took, Ordering::Relaxed);
        if result.is_ok() {
            COMMITS.fetch_add(1, Ordering::Relaxed);
            VERSIONS.fetch_add(flush.batch.jobs.len() as u64, Ordering::Relaxed);
        } else {
            FAILED.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut live) = shared.live.lock() {
            live.finish_flush(flush, result);
        }
    }
}

/// Wakes the waiting thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Blocks this (non-runtime) thread until `signal` is notified, `stop` is set or
/// `timeout` passes. A permit stored by an earlier `notify_one` returns at once.
fn wait(signal: &Notify, stop: &AtomicBool, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut notified = pin!(signal.notified());
    loop {
        if let Poll::Ready(()) = notified.as_mut().poll(&mut cx) {
            return;
        }
        let now = Instant::now();
        if now >= deadline || stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::park_timeout(deadline - now);
    }
}
