//! rustci's live control plane: the gRPC services of `rustci.v1` on the same scheduling
//! core as the simulator, durable stores, Redis coordination, and the `rustci` CLI.
//!
//! By role: [`server`] (what `rustci serve` runs: start-up, the shared state, one
//! module per gRPC service, the live driver of the core, group commit, Redis
//! coordination), [`store`] (the durable stores and history records), [`clients`] (the
//! client side: gRPC clients, the reference runner, the load generator) and [`pb`] (the
//! generated protocol). The `rustci` binary (`src/bin/rustci/`) has one module per
//! subcommand.
//!
//! A request's path: `server::services` (authenticate, parse names) →
//! [`server::live::Live`] (core events and decisions, one store batch) → [`store`];
//! errors become statuses in `server::status`.

pub mod clients;
pub mod local_token;
pub mod pb;
pub mod perms;
pub mod server;
pub mod store;
