//! Load and simulation programs for callgrid, and the models they share.
//!
//! - `erlang`: the Erlang C formula (the yardstick the simulator must agree with);
//! - `sim`: a seeded discrete-event simulation of a call centre that drives the pure domain
//!   state machines (`TenantCore`) in virtual time;
//! - `machine`: a description of the machine a benchmark ran on, printed with every figure.

pub mod erlang;
pub mod machine;
pub mod sim;
