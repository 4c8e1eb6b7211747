//! The client side of `rustci.v1`: gRPC clients on one channel ([`client`]), the
//! reference runner ([`runner`]) and the supervisor of its jobs ([`job_guard`]), the
//! load generator behind `rustci bench`
//! ([`loadgen`]), the GitLab CI file reader behind `rustci pipeline submit`
//! ([`ci_file`]) and what `rustci pipeline` sends and prints ([`pipeline`]).

pub mod ci_file;
pub mod client;
pub mod job_guard;
pub mod loadgen;
pub mod pipeline;
pub mod runner;
