//! End-to-end tests across rustci's crates, one test binary with a module per topic (so
//! tonic, the stores' drivers and the simulator are linked once for all of them).
//!
//! A test lives here when it drives rustci from outside, as its users do: `rustci serve`
//! (in process or as a child process) over a real socket, the `rustci` and `rustci-sim`
//! binaries as processes, the HTML report in a browser, or what both drivers of the one
//! core decide (parity). Tests of one crate's parts from inside (the stores, the history
//! source, `Live` rebuilt from a store, Redis coordination) stay in that crate.
//!
//! Real data comes from `RUSTCI_DATASETS` (`rustci_datasets::testdata`); Redis, Chromium
//! and MongoDB are skipped with a visible `SKIPPED:` line when absent, unless
//! `RUSTCI_REQUIRE_REDIS=1` / `RUSTCI_REQUIRE_CHROMIUM=1` / `RUSTCI_REQUIRE_MONGODB=1`
//! (CI) make that a failure. The end-to-end, crash, failover and retrain scenarios run on
//! both stores, SQLite and MongoDB (`stores`). The binaries come from `bins`, which
//! refuses a missing or stale one.

mod bins;
mod common;
mod stores;
#[path = "../../control/tests/integration/support_mongo.rs"]
mod support_mongo;
#[path = "../../control/tests/integration/support_redis.rs"]
mod support_redis;

mod bad_input;
mod cdp;
mod closed_pipe;
mod crash;
mod dashboard;
mod dashboard_browser;
mod e2e;
mod eta;
mod export;
mod failover;
mod failover_process;
mod fleet_stats;
mod hardening;
mod html_report;
mod model;
mod parity;
mod pipeline_cli;
mod pipeline_jobs;
mod pipelines;
mod scaling;
mod soak;
mod tls_metrics;
mod untrusted_input;
