//! Everything that can go wrong with a number, a table or a choice, in one enum.

use crate::class::DestinationClass;

/// A number, a data file or an outbound choice that cannot be taken, and why. Every message
/// names the number, entry or field concerned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// A default region that is not an ISO 3166 country code with numbering metadata.
    #[error("region {region:?} is not a country code with numbering metadata (e.g. \"VN\")")]
    UnknownRegion {
        /// The region as given.
        region: String,
    },
    /// A dialled or configured number that is not a number one can call.
    #[error("invalid number {number:?}: {reason}")]
    Invalid {
        /// The number as written.
        number: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A destination of a class the tenant's agents may not dial.
    #[error("number {number} is {class}, which this tenant's agents may not dial")]
    ClassRefused {
        /// The destination's class.
        class: DestinationClass,
        /// The number as it would be dialled.
        number: String,
    },
    /// A carrier id that is not one.
    #[error("carrier id {id:?} is not lowercase letters, digits, - and _ (at most 32)")]
    InvalidCarrierId {
        /// The id as written.
        id: String,
    },
    /// A line of a carrier table that cannot be read.
    #[error("carrier table line {line}, field {field}: {reason}")]
    CarrierData {
        /// Line number, from 1.
        line: usize,
        /// The field (`prefix`, `carrier`) or `line` for the line as a whole.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A blocklist entry that cannot be read.
    #[error("blocklist entry {entry:?}: {reason}")]
    BlocklistEntry {
        /// The entry as written.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A tenant's outbound numbers that contradict each other or themselves.
    #[error("numbers: {field}: {reason}")]
    NumbersConfig {
        /// The field, e.g. `numbers[2].short_code` or `fallback`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// `*code*destination` with a code no number has.
    #[error("no number has the short code {code:?} (dialled {dialled:?})")]
    UnknownShortCode {
        /// The code between the stars.
        code: String,
        /// The whole dial string.
        dialled: String,
    },
    /// A dial string that starts like a forced number but is not one.
    #[error("malformed dial string {dialled:?}: {reason}")]
    MalformedDialString {
        /// The whole dial string.
        dialled: String,
        /// What is wrong.
        reason: String,
    },
    /// A forced number the agent may not call out with.
    #[error("number {number} may not be used: {reason}")]
    NotPermitted {
        /// The forced number.
        number: String,
        /// Why not.
        reason: String,
    },
    /// No number of the tenant can carry the call.
    #[error("no number can call out for this agent: {reason}")]
    NoUsableNumber {
        /// Why none.
        reason: String,
    },
}

impl NumberError {
    pub(crate) fn invalid(number: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            number: number.to_owned(),
            reason: reason.into(),
        }
    }
}
