//! `rustci serve --scale-hook CMD`: when a pool's desired runner count changes, run `CMD`
//! (`sh -c`) with `RUSTCI_POOL`, `RUSTCI_DESIRED`, `RUSTCI_CURRENT` and `RUSTCI_REASON`
//! set, so the advice can drive a cloud autoscaling group or a Kubernetes deployment.
//!
//! The hook runs as a child process on the runtime (never blocking it), at most one per
//! pool at a time; its output is logged and a failure is logged, not fatal. A change seen
//! while that pool's hook still runs is picked up at the first check after it ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::server::state::Shared;

/// What one hook run is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCall {
    pub pool: String,
    pub current: u32,
    pub desired: u32,
    pub reason: String,
}

/// Checks the advice every `every` and runs `cmd` for each pool whose desired count
/// changed (for a pool seen the first time: whose desired count differs from its
/// current one).
pub fn spawn(shared: Arc<Shared>, cmd: String, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sent: HashMap<String, u32> = HashMap::new();
        let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            // The lock guard must be gone before the next await.
            let advice = match shared.live() {
                // A standby (or a poisoned state) has no advice to give.
                Err(_) => continue,
                Ok(mut live) => live.scaling_advice(),
            };
            let advice = match advice {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "scale hook: no scaling advice");
                    continue;
                }
            };
            running.retain(|_, h| !h.is_finished());
            for (pool, current, desired, reason) in advice {
                if running.contains_key(&pool) {
                    continue;
                }
                let changed = sent
                    .get(&pool)
                    .map_or(desired != current, |&d| d != desired);
                if !changed {
                    continue;
                }
                sent.insert(pool.clone(), desired);
                let call = HookCall {
                    pool: pool.clone(),
                    current,
                    desired,
                    reason,
                };
                running.insert(pool, tokio::spawn(run(cmd.clone(), call)));
            }
        }
    })
}

/// Runs the hook once and logs what happened.
pub async fn run(cmd: String, call: HookCall) {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .env("RUSTCI_POOL", &call.pool)
        .env("RUSTCI_DESIRED", call.desired.to_string())
        .env("RUSTCI_CURRENT", call.current.to_string())
        .env("RUSTCI_REASON", &call.reason)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) => {
            let stdout = String::from_utf8_lossy(&o.stdout);
            let stderr = String::from_utf8_lossy(&o.stderr);
            if o.status.success() {
                tracing::info!(pool = %call.pool, desired = call.desired, current = call.current,
                    stdout = %stdout.trim_end(), stderr = %stderr.trim_end(), "scale hook ran");
            } else {
                tracing::warn!(pool = %call.pool, desired = call.desired, status = %o.status,
                    stdout = %stdout.trim_end(), stderr = %stderr.trim_end(), "scale hook failed");
            }
        }
        Err(e) => {
            tracing::warn!(pool = %call.pool, error = %e, "scale hook could not start");
        }
    }
}
