//! What the dialer's core refuses, each naming what was wrong.

use crate::campaign::Run;
use crate::contacts::{ContactId, Ended};

/// An error of the dialer's core.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A calling window that does not parse.
    #[error("calling window `{text}`: {why}")]
    Window {
        /// The text given.
        text: String,
        /// What is wrong with it.
        why: String,
    },
    /// A line of a zone table that does not parse.
    #[error("zone table, line {line}: {why}")]
    ZoneTable {
        /// Its line (from 1).
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// A time zone name the tz database does not know.
    #[error("unknown time zone `{0}` (an IANA name such as Asia/Ho_Chi_Minh)")]
    UnknownZone(String),
    /// A contact the list does not hold.
    #[error("no contact {0} in this list")]
    UnknownContact(ContactId),
    /// A contact id given twice.
    #[error("contact {0} is already in this list")]
    DuplicateContact(ContactId),
    /// A contact's number is not in E.164 form (the service normalises numbers first).
    #[error("contact {id}: number `{number}` is not in E.164 form (+, a country code, at most 15 digits)")]
    NotE164 {
        /// The contact.
        id: ContactId,
        /// Its number as given.
        number: String,
    },
    /// A result or wrap-up for an attempt that is not the contact's current one.
    #[error("contact {id}: attempt {attempt} is not in progress ({state})")]
    NotInProgress {
        /// The contact.
        id: ContactId,
        /// The attempt named.
        attempt: u32,
        /// What the contact is doing instead.
        state: String,
    },
    /// A wrap-up for an attempt no agent talked on.
    #[error("contact {id}: attempt {attempt} was not answered, there is nothing to wrap up")]
    NotConnected {
        /// The contact.
        id: ContactId,
        /// The attempt named.
        attempt: u32,
    },
    /// A campaign setting the rules do not allow.
    #[error("campaign setting `{field}`: {why}")]
    Setting {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A change of a stopped campaign.
    #[error("the campaign is stopped")]
    Stopped,
    /// A run state change that is not allowed.
    #[error("a campaign cannot go from {from:?} to {to:?}")]
    Run {
        /// Its state.
        from: Run,
        /// The state asked for.
        to: Run,
    },
    /// A request that needs a running campaign.
    #[error("the campaign is not running ({0:?})")]
    NotRunning(Run),
    /// A report about a call that is not in the state it needs.
    #[error("contact {id}, attempt {attempt}: {state}")]
    CallState {
        /// The contact.
        id: ContactId,
        /// Its attempt.
        attempt: u32,
        /// What the call is instead.
        state: String,
    },
    /// `not_answered` with an end that means an answer.
    #[error("{0:?} is not an end of an unanswered call")]
    NotAnEnd(Ended),
}
