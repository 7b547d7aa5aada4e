//! What the integration tests of callgrid share, so that each test says only what it tests:
//!
//! - [`free_tcp_port`], [`free_udp_port`], [`free_rtp_port`]: ports free on 127.0.0.1 now;
//! - [`Child`]: a child process killed and reaped when dropped (also when a test fails), with
//!   its log files;
//! - [`Node`]: `callgrid serve` (or `router`, `projector`) started on free ports in a
//!   temporary directory, returned once it serves;
//! - [`admin_token`], [`connect`], [`authed`], [`unauthed`]: gRPC connections showing a token;
//! - [`http`]: one HTTP/1.0 request;
//! - [`sipp`], [`sipp_ok`]: a SIPp scenario of `loadtest/sipp/` run against an edge;
//!   [`answers_options`]: whether an edge answers;
//! - [`eventually`], [`eventually_every`], [`eventually_blocking`]: waiting for a condition,
//!   with a deadline.
//!
//! The kit cannot know where cargo built the binary: a test passes
//! `env!("CARGO_BIN_EXE_callgrid")`, as in `Node::serve(env!("CARGO_BIN_EXE_callgrid"))`.

mod child;
mod grpc;
mod http;
mod node;
mod ports;
mod sipp;
mod wait;

pub use child::{tail, Child};
pub use grpc::{admin_token, authed, connect, try_connect, unauthed, Authed, Bearer};
pub use http::{http, lists_tenant, HttpResponse};
pub use node::{answers_options, Node, NodeBuilder, Ready};
pub use ports::{free_rtp_port, free_tcp_port, free_udp_port};
pub use sipp::{scenario, sipp, sipp_ok, wait_udp_bound};
pub use wait::{eventually, eventually_blocking, eventually_every, Outcome};
