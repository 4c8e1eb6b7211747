//! Taking a std mutex from a tokio worker thread without stalling the runtime.
//!
//! The live state and the store sit behind std mutexes, held only for short, synchronous
//! work. But a MongoDB commit (on the flusher thread, holding the store's lock) waits on
//! the driver's I/O, which runs as tasks on the same runtime's workers: a worker blocked
//! on that lock in the plain way takes its queued tasks with it, and with every worker so
//! blocked the commit never ends (a deadlock seen under load with two workers).

use std::sync::{LockResult, Mutex, MutexGuard, TryLockError};

use tokio::runtime::{Handle, RuntimeFlavor};

/// Locks `m`: at once when it is free; else, on a multi-thread runtime, inside
/// [`tokio::task::block_in_place`], which hands the worker's other tasks to another
/// thread while this one waits.
pub fn lock<T>(m: &Mutex<T>) -> LockResult<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(guard) => Ok(guard),
        Err(TryLockError::Poisoned(p)) => Err(p),
        Err(TryLockError::WouldBlock) => {
            let multi_thread = Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
            if multi_thread {
                tokio::task::block_in_place(|| m.lock())
            } else {
                m.lock()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// A task the holder of the lock waits for still runs while every worker but one
    /// waits for the lock: with plain `lock()` the task never runs and this test fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_workers_leave_the_runtime_free_for_what_the_holder_waits_on() {
        let m = Arc::new(Mutex::new(0u32));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let held = m.clone();
        let handle = Handle::current();
        // The holder: a thread outside the runtime that keeps the lock until a task on
        // the runtime has run (as the flusher waits on the driver's I/O).
        let holder = std::thread::spawn(move || {
            let mut g = held.lock().expect("lock");
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            tx.send(()).expect("held");
            handle.spawn(async move {
                done_tx.send(()).expect("done");
            });
            done_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the runtime ran the task while workers waited for the lock");
            *g += 1;
        });
        rx.recv().expect("held");
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    *lock(&m).expect("lock") += 1;
                })
            })
            .collect();
        for w in waiters {
            w.await.expect("waiter");
        }
        holder.join().expect("holder");
        assert_eq!(*m.lock().expect("lock"), 5);
    }
}
