//! The gRPC services of `rustci.v1`, one file each: thin layers that authenticate, check
//! what is the wire's business (resource names, page tokens, batch sizes), call the live
//! state ([`crate::server::live::Live`]) through [`crate::server::state::Shared`], and
//! for a change wait until it is durable before answering. Errors become statuses in
//! [`crate::server::status`].

pub mod fleet;
pub mod jobs;
pub mod pipelines;
pub mod runners;
mod wire;
