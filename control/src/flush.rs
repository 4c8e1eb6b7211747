//! Group commit: requests leave their changes pending in the live state; this task
//! commits whatever has accumulated in one store transaction and then releases the
//! requests waiting on it. Many requests, one fsync.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tonic::Status;

use crate::live::Durability;
use crate::service::Shared;

/// Runs until aborted.
pub fn spawn_flusher(shared: Arc<Shared>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (signal, taken, store) = match shared.live.lock() {
                Ok(mut live) => (
                    live.flush_signal(),
                    live.take_pending(),
                    live.shared_store(),
                ),
                Err(_) => return,
            };
            let Some((batch, upto)) = taken else {
                // Re-read the signal now and then: a new leader replaces the live state.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(100), signal.notified())
                        .await;
                continue;
            };
            // Committed on this worker thread: a batch takes well under a millisecond
            // (WAL append), and handing it to the blocking pool costs two thread wake-ups
            // per batch, which is most of a small batch's cost on two cores.
            let result = tokio::task::block_in_place(|| match store.lock() {
                Ok(mut s) => s.commit(&batch),
                Err(_) => Err(crate::store::StoreError::Other(
                    "store lock poisoned".into(),
                )),
            });
            if let Ok(mut live) = shared.live.lock() {
                live.finish_flush(batch, upto, result);
            }
        }
    })
}

/// Waits until the request with `ticket` is durable; UNAVAILABLE if its commit failed.
pub async fn durable(
    ticket: u64,
    mut rx: tokio::sync::watch::Receiver<Durability>,
) -> Result<(), Status> {
    loop {
        match rx.borrow_and_update().outcome(ticket) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(Status::unavailable(
                    "the store could not make this change durable; nothing was changed, retry",
                ))
            }
            None => {}
        }
        if rx.changed().await.is_err() {
            return Err(Status::unavailable(
                "the scheduler restarted before this change was durable; retry",
            ));
        }
    }
}
