//! Errors of the SIP edge.

use std::net::SocketAddr;

/// What can stop the edge from starting.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A socket could not be bound.
    #[error("cannot bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The SIP stack refused to start.
    #[error("sip stack: {0}")]
    Sip(String),
    /// The media layer (prompts, ports) could not start.
    #[error("media: {0}")]
    Media(String),
}
