//! rustci's live control plane: the gRPC services of `rustci.v1` on the same scheduling
//! core as the simulator, durable stores, Redis coordination, and the `rustci` CLI.
//!
//! A request's path: [`service`] (authenticate, parse names) → [`live::Live`] (core
//! events and decisions, one store batch) → [`store`]; errors become statuses in
//! [`status`].

pub mod auth;
pub mod client;
pub mod coord;
pub mod flush;
pub mod live;
pub mod loadgen;
pub mod metrics;
pub mod model_reload;
pub mod pb;
pub mod runner;
pub mod scale_hook;
pub mod server;
pub mod service;
pub mod status;
pub mod store;
