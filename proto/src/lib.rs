//! Generated protobuf and gRPC code of callgrid.
//!
//! - `events::v1`: the event envelope and payloads (the log's persistence contract);
//! - `api::v1`: the agent, call-control, admin and read services.
//!
//! Wire types stay here and in the one conversion module of each service that speaks them.
#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// Event schema.
pub mod events {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("callgrid.events.v1");
    }
}

/// gRPC services.
pub mod api {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("callgrid.api.v1");
    }
}

/// The file descriptor set of every .proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/callgrid_descriptor.bin"));

/// Version of the event schema written by this build (stored in every envelope).
/// 2: a routing decision's candidates are a member bitmap (`candidate_members`), no longer
/// names; 1 was never released.
pub const EVENT_SCHEMA_VERSION: u32 = 2;
