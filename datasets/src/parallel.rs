//! Reading several inputs at once (the files of a directory, the workflows of a folder).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::DatasetError;

/// `f` of every item on up to 4 threads; the results (or the first error) in item order.
pub(crate) fn map_in_order<T, R, F>(items: &[T], f: F) -> Result<Vec<R>, DatasetError>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Result<R, DatasetError> + Sync,
{
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<R, DatasetError>>>> =
        items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = f(item);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(items.len());
    for slot in slots {
        let result = slot
            .into_inner()
            .ok()
            .flatten()
            .ok_or_else(|| DatasetError::Unsupported {
                path: String::new(),
                message: "a reader thread failed".to_string(),
            })?;
        out.push(result?);
    }
    Ok(out)
}
