//! Why a command was refused. A refused command changes nothing.

use crate::ids::{AgentId, CallId, QueueId, ReasonCode};

/// A command that cannot be carried out, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No such agent in the tenant's configuration.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// No such queue.
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    /// No such call (never arrived, or already forgotten).
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    /// No such number.
    #[error("unknown number {0}")]
    UnknownNumber(String),
    /// A call id that is already in use.
    #[error("call {0} already exists")]
    CallExists(CallId),
    /// Not a reason code of the tenant.
    #[error("unknown reason code {0}")]
    UnknownReason(ReasonCode),
    /// The command does not apply in the aggregate's current state.
    #[error("{what} is not allowed while {state}")]
    IllegalTransition {
        /// The command.
        what: &'static str,
        /// The current state.
        state: String,
    },
    /// The agent is not free for an offer.
    #[error("agent {agent} is not available ({state})")]
    NotAvailable {
        /// Agent.
        agent: AgentId,
        /// Its state.
        state: String,
    },
    /// The call was never offered to that agent (or the offer is over).
    #[error("call {call} is not offered to agent {agent}")]
    NotOffered {
        /// Call.
        call: CallId,
        /// Agent.
        agent: AgentId,
    },
    /// The call is not waiting in that queue.
    #[error("call {call} is not waiting in queue {queue}")]
    NotWaiting {
        /// Call.
        call: CallId,
        /// Queue.
        queue: QueueId,
    },
    /// The report repeats one already taken into account.
    #[error("duplicate report: {0}")]
    Duplicate(&'static str),
    /// The call already ended.
    #[error("call {0} has ended")]
    CallEnded(CallId),
    /// A transfer to something the tenant does not have.
    #[error("unknown transfer target {0:?}: not an extension, agent, queue, group, menu or number of the tenant")]
    UnknownTarget(String),
    /// An agent's phone dialled an internal number that is no extension of the tenant.
    #[error("no extension {0} in the tenant")]
    UnknownExtension(String),
    /// A digit that is not 0-9, * or #.
    #[error("invalid digit {0:?}")]
    InvalidDigit(char),
    /// A login device the tenant does not allow (a SIP URI off loopback and outside its
    /// device domains).
    #[error("devices: {0:?} is not a sip: URI on loopback or in the tenant's device_domains")]
    DeviceNotAllowed(String),
    /// A destination that cannot be called out to as written, or not by this agent: the
    /// numbers crate's reason, naming the number (issue 18).
    #[error("{0}")]
    Number(#[from] crate::numbers::NumberError),
    /// A destination on the tenant's blocklist (R7): never dialled.
    #[error("number {number} is on the tenant's blocklist ({entry})")]
    Blocked {
        /// The destination as it would be dialled.
        number: String,
        /// The blocklist entry that matched.
        entry: String,
    },
    /// The events of the command would not fit in one record of the event log: refused
    /// before anything changes, so the log never holds a record it cannot take.
    #[error("the command's events take {bytes} bytes, more than the event log's {max} per event")]
    TooLarge {
        /// Encoded size of the largest event.
        bytes: usize,
        /// The log's limit.
        max: usize,
    },
}
