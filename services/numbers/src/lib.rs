//! Phone numbers for callgrid (issue 18): what the router's domain and the SIP edge need to
//! know about a number, with no IO, no clock and no async runtime.
//!
//! - [`Normalizer`]: a tenant's default region and internal numbering; turns what was
//!   written or dialled into a [`Dialled`] — a public number in [`E164`], a national
//!   service number kept as dialled (emergency, toll-free, premium), or an internal
//!   extension — and classifies it ([`DestinationClass`]).
//! - [`ClassPolicy`]: which classes a tenant's agents may dial; emergency is never refused.
//! - [`CarrierTable`]: the carrier of a number by its longest listed prefix (N4), from an
//!   editable table ([`VN_CARRIERS`] is the shipped Vietnamese one).
//! - [`OutboundNumbers`]: the caller number of an outbound call (N2, N4, N7: forced by
//!   `*code*` or a short prefix, else adaptive) and [`OutboundNumber::trunk_order`] (N5).

mod carrier;
mod class;
mod dialled;
mod e164;
mod error;
mod outbound;

pub use carrier::{CarrierId, CarrierTable, VN_CARRIERS};
pub use class::{ClassPolicy, DestinationClass, Permit};
pub use dialled::{Dialled, InternalRule, Normalizer, ServiceKind};
pub use e164::E164;
pub use error::NumberError;
pub use outbound::{
    Choice, ChoiceReason, Dialling, NumberKind, OutboundNumber, OutboundNumbers, TrunkChoice,
};
