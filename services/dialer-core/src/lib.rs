//! The dialer's pure core (issue 19): pacing, what a campaign learns from its own results,
//! and its contacts (retry rules, callbacks, calling windows in the callee's local time). No
//! IO, no clock (time is passed in), no async runtime: CI proves it with `cargo tree`, as for
//! `callgrid-domain`. `dialer-sim` runs it in virtual time; the dialer service runs it on the
//! campaign's live floor.

pub mod campaign;
pub mod contacts;
pub mod error;
pub mod learn;
pub mod pacing;
pub mod window;

pub use campaign::{Campaign, CampaignEvent, CampaignStatus, Mode, Run, Settings};
pub use contacts::{
    Callback, Calling, Contact, ContactId, ContactList, Done, Effect, Ended, ListEvent, ListStats,
    NewContact, RetryRule, Rules, Skip, Status,
};
pub use error::CoreError;
pub use learn::{AbandonWindow, Durations, Learned, Ms, Outcome};
pub use pacing::{
    Adaptive, AgentNow, CallNow, Decision, Evidence, Floor, Pacer, Predictive, Progressive, Ratio,
};
pub use window::{zone, Frame, Window, Zones};
