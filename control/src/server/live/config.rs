//! What `rustci serve` sets up the live driver with.

use std::collections::BTreeMap;

use rustci_scheduler::{Millis, PolicyConfig, QosSpec, ScalePolicy};

/// Job versions the change log keeps unless told otherwise (`--change-log-keep`).
pub const DEFAULT_CHANGE_LOG_KEEP: u64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub policy: PolicyConfig,
    pub qos: Vec<QosSpec>,
    /// Fair-share weights by tenant (the auth file's `weight`); a tenant not named weighs
    /// 1.
    pub tenant_weights: BTreeMap<String, f64>,
    /// A runner silent this long loses its leases; its jobs go back to the queue.
    pub lease_ttl_ms: Millis,
    /// Estimate for jobs without a requested time.
    pub default_estimate_ms: Millis,
    /// Finished jobs this recent are replayed into fair-share usage on restart.
    pub usage_window_ms: Millis,
    /// Keep every core decision (parity tests).
    pub record_decisions: bool,
    /// Group commit: requests leave changes pending for a flusher task
    /// ([`crate::server::flush`]) and wait until they are durable. Off: each request
    /// commits.
    pub group_commit: bool,
    /// Change-log entries kept for `WatchJobs` to resume from (older ones are pruned
    /// by `tick`).
    pub change_log_keep: u64,
    /// Run-time estimates from a trained model (`rustci serve --model DIR`); the
    /// requested time (or `default_estimate_ms`) without one.
    pub model: Option<rustci_models::ModelHandle>,
    /// The policy of `GetScalingAdvice` and the scale hook (`rustci serve --autoscaler`).
    pub autoscaler: ScalePolicy,
    /// Runners of a pool idle this long may be released (reported in the advice's reason).
    pub scale_idle_timeout_ms: Millis,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            policy: PolicyConfig::named("fairshare").unwrap_or_default(),
            tenant_weights: BTreeMap::new(),
            qos: vec![
                QosSpec {
                    name: "urgent".into(),
                    priority: 10,
                    wait_target_ms: 60_000,
                },
                QosSpec {
                    name: "standard".into(),
                    priority: 5,
                    wait_target_ms: 300_000,
                },
                QosSpec {
                    name: "batch".into(),
                    priority: 0,
                    wait_target_ms: 1_800_000,
                },
            ],
            lease_ttl_ms: 15_000,
            default_estimate_ms: 600_000,
            usage_window_ms: 28 * 24 * 3_600_000,
            record_decisions: false,
            group_commit: false,
            change_log_keep: DEFAULT_CHANGE_LOG_KEEP,
            model: None,
            autoscaler: ScalePolicy::Reactive,
            scale_idle_timeout_ms: 300_000,
        }
    }
}
