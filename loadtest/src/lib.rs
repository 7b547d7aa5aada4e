//! Load and simulation programs for callgrid, and the models they share.
//!
//! - `agenda`: the event list both simulators run on;
//! - `erlang`: the Erlang C formula (the yardstick the simulator must agree with);
//! - `sim`: a seeded discrete-event simulation of a call centre that drives the pure domain
//!   state machines (`TenantCore`) in virtual time;
//! - `dialsim`: a predictive campaign in virtual time, the dialer core's pacers side by side
//!   over the domain's agent state machines (`dialer-sim`);
//! - `machine`: a description of the machine a benchmark ran on, printed with every figure;
//! - `harness`: what the SIPp-driven benchmarks (`sip-rate`, `media-load`) share: child
//!   processes and their CPU time, kernel UDP counters, free ports, the load tenant with its
//!   SIPp agents, SIPp statistics files, `/metrics` scrapes.

pub mod agenda;
pub mod day;
pub mod dialsim;
pub mod erlang;
pub mod harness;
pub mod machine;
pub mod sim;
