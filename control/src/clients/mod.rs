//! The client side of `rustci.v1`: gRPC clients on one channel ([`client`]), the
//! reference runner ([`runner`]) and the load generator behind `rustci bench`
//! ([`loadgen`]).

pub mod client;
pub mod loadgen;
pub mod runner;
