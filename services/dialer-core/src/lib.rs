//! The dialer's pure core (issue 19): pacing, and what a campaign learns from its own
//! results. No IO, no clock (time is passed in), no async runtime: CI proves it with
//! `cargo tree`, as for `callgrid-domain`. `dialer-sim` runs it in virtual time; the dialer
//! service runs it on the campaign's live floor.

pub mod learn;
pub mod pacing;

pub use learn::{AbandonWindow, Durations, Learned, Ms, Outcome};
pub use pacing::{
    Adaptive, AgentNow, CallNow, Decision, Evidence, Floor, Pacer, Predictive, Progressive, Ratio,
};
