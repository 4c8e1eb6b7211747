//! Generated protobuf messages and gRPC stubs of `rustci.v1`.
#![allow(missing_docs, missing_debug_implementations, clippy::all)]

tonic::include_proto!("rustci.v1");

/// The encoded descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rustci_v1_descriptor.bin"));
