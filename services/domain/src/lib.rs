//! The pure domain of callgrid: ids, commands, events and the state machines of call, agent
//! and queue, the eight routing strategies and the minimal routing plan.
//!
//! No IO, no clock, no async runtime: every command carries `now`, randomness comes in as a
//! number, and a state machine is `handle(&state, command, now) -> Result<Vec<Event>,
//! Rejection>` plus `apply(&mut state, &event)`. Recovery is `apply` over the log, so the
//! same events always rebuild the same state.

pub mod agent;
pub mod call;
pub mod core;
pub mod dial;
pub mod event;
pub mod ids;
pub mod outbound;
pub mod queue;
pub mod react;
pub mod rejection;
pub mod setup;

/// `callgrid-numbers`, whose types [`OutboundSetup`] holds, for users of the domain.
pub use callgrid_numbers as numbers;

pub use agent::{Agent, AgentCommand, AgentState, AgentView};
pub use call::{
    Call, CallCommand, CallPhase, OutboundCall, CAUSE_AGENT_NOT_REACHED, CAUSE_BLOCKED,
};
pub use core::{Output, TenantCore};
pub use dial::{decide, decide_dialled, decide_for_campaign, dial_result, DialDecision};
pub use event::{
    AggregateRef, CampaignCall, EndCause, Event, EventBody, MemberSet, OfferFailure, Party,
};
pub use ids::*;
pub use outbound::{CallerIdFrom, OutboundSetup, TrunkRegister, TrunkSetup};
pub use queue::{Queue, QueueCommand};
pub use react::{Command, Instruction};
pub use rejection::Rejection;
pub use setup::{sip_uri_host, DeviceDomain, Internal, Strategy, Target, TenantSetup};
