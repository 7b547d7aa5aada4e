//! The crate's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::rtp::LegId;

/// Every error of `callgrid-media`.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The engine's own thread or runtime could not start.
    #[error("media runtime: {0}")]
    Runtime(String),
    /// An SDP body could not be parsed; `line` is 1-based (0 when the problem is the whole body).
    #[error("sdp line {line}: {reason}")]
    Sdp {
        /// 1-based line number, 0 for the body as a whole.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The SDP has no usable audio stream (no `m=audio` with `RTP/AVP` and a non-zero port).
    #[error("sdp has no usable audio stream: {0}")]
    NoAudio(String),
    /// None of the offered payload types is PCMU (0) or PCMA (8).
    #[error(
        "no common codec: offered payload types [{offered}], supported are pcmu (0) and pcma (8)"
    )]
    NoCommonCodec {
        /// The offered formats, space separated.
        offered: String,
    },
    /// A prompt file could not be read or has the wrong format.
    #[error("prompt {}: {reason}", path.display())]
    BadPrompt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No prompt of that name is loaded.
    #[error("unknown prompt {0:?}")]
    UnknownPrompt(String),
    /// A prompt directory could not be listed.
    #[error("prompt directory {}: {source}", path.display())]
    PromptDir {
        /// The directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The port range has no even port.
    #[error("invalid rtp port range {first}-{last}: it must contain an even port")]
    BadPortRange {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
    /// Every port of the pool is in use (or could not be bound).
    #[error("no free rtp port in {first}-{last}")]
    PortsExhausted {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
    /// Binding a UDP socket failed for a reason other than the port being taken.
    #[error("bind rtp socket {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
    /// A byte string is not a valid RTP packet.
    #[error("bad rtp packet: {0}")]
    BadRtp(&'static str),
    /// A byte string is not a valid RFC 4733 telephone-event payload.
    #[error("bad telephone-event payload: {0}")]
    BadTelephoneEvent(&'static str),
    /// A character that is not a DTMF key (`0-9 * # A-D`).
    #[error("not a dtmf key: {0:?}")]
    BadDigit(char),
    /// The leg's task has ended (the leg was closed).
    #[error("media leg {0} is closed")]
    LegClosed(LegId),
    /// A recording could not be created, written or finalised.
    #[error("recording {}: {reason}", path.display())]
    Record {
        /// The recording's path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
