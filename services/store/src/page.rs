//! Keyset paging of the history reads (call records, agent states, intervals).
//!
//! A read returns at most `limit` rows in its key order, and a [`Page::next_cursor`] when
//! there are more: the key of the page's last row, encoded. The next read passes it back and
//! gets the rows whose key comes after it. The order is total (each read's key is its table's
//! primary key, so ties of time are broken by id), so paging through returns every row
//! exactly once, and rows written between two reads never shift a page: a row written at an
//! earlier key is simply not seen by this pass, one at a later key is. Cost is one indexed
//! seek and `limit` rows per page however deep the page (an offset would rescan every row
//! before it).
//!
//! The cursor is opaque to callers: URL-safe base64 (no padding) of a version byte, the kind
//! of read and the key. A cursor that does not decode, or is of another kind of read, is
//! [`StoreError::Invalid`] naming `cursor`; a limit of 0 or over [`MAX_PAGE_LIMIT`], naming
//! `limit`.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::rows::{AgentStateRecord, CallRecord, IntervalRow, Subject};
use crate::StoreError;

/// Rows a page holds when the request names no limit.
pub const DEFAULT_PAGE_LIMIT: u64 = 500;
/// The most rows a page may hold.
pub const MAX_PAGE_LIMIT: u64 = 5_000;
/// The longest cursor accepted (a key with a 256-byte id encodes to under 400 characters).
const MAX_CURSOR_LEN: usize = 1_024;
/// The first byte of every cursor: its format.
const CURSOR_VERSION: u8 = 1;

/// Which page of a history read to return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Most rows to return, 1 to [`MAX_PAGE_LIMIT`]; `None`: [`DEFAULT_PAGE_LIMIT`].
    pub limit: Option<u64>,
    /// The previous page's [`Page::next_cursor`]; `None` for the first page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page, of at most `limit` rows.
    pub fn first(limit: u64) -> PageRequest {
        PageRequest {
            limit: Some(limit),
            cursor: None,
        }
    }

    /// The page after `cursor`, of at most `limit` rows.
    pub fn after(limit: u64, cursor: impl Into<String>) -> PageRequest {
        PageRequest {
            limit: Some(limit),
            cursor: Some(cursor.into()),
        }
    }

    /// The checked limit and the decoded cursor, which must be of `kind`.
    pub(crate) fn check(&self, kind: KeyKind) -> Result<(usize, Option<Key>), StoreError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        if limit == 0 || limit > MAX_PAGE_LIMIT {
            return Err(StoreError::Invalid {
                field: "limit",
                message: format!("{limit} is not within 1 to {MAX_PAGE_LIMIT}"),
            });
        }
        let key = self.cursor.as_deref().map(Key::decode).transpose()?;
        if let Some(k) = &key {
            if k.kind() != kind {
                return Err(StoreError::Invalid {
                    field: "cursor",
                    message: format!("a cursor of {}, not of {}", k.kind(), kind),
                });
            }
        }
        // bounded by MAX_PAGE_LIMIT
        Ok((limit as usize, key))
    }
}

/// One page of a history read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows, in the read's key order.
    pub rows: Vec<T>,
    /// Where the next page starts (pass it as [`PageRequest::cursor`]); absent on the last
    /// page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page of the first `limit` of `rows` (read with one more than `limit`, so that a
    /// further row says there is a next page), its cursor the key of its last row.
    pub(crate) fn of(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> Key) -> Page<T> {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|r| key(r).encode())
        } else {
            None
        };
        Page { rows, next_cursor }
    }
}

/// Every row of a paged read, page after page (`read` gets each page's request): for tests
/// and offline tools. A server answers one page per request instead.
pub async fn read_all<T, F, Fut>(limit: u64, mut read: F) -> Result<Vec<T>, StoreError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, StoreError>>,
{
    let mut out = Vec::new();
    let mut request = PageRequest::first(limit);
    loop {
        let page = read(request.clone()).await?;
        out.extend(page.rows);
        match page.next_cursor {
            Some(c) => request.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// The kinds of paged reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Call,
    AgentState,
    Interval,
}

impl KeyKind {
    fn tag(self) -> u8 {
        match self {
            KeyKind::Call => b'c',
            KeyKind::AgentState => b's',
            KeyKind::Interval => b'i',
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::Call => "call records",
            KeyKind::AgentState => "agent states",
            KeyKind::Interval => "intervals",
        })
    }
}

/// The key of a row of a paged read, in the read's order (what a cursor holds).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    /// A call record: arrival, call id.
    Call { start_ms: u64, call: String },
    /// An agent's state span (of the agent read): start, offset of the opening event.
    AgentState { start_ms: u64, start_offset: u64 },
    /// An interval row: start, subject, id.
    Interval {
        start_ms: u64,
        subject: Subject,
        id: String,
    },
}

fn bad_cursor(message: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field: "cursor",
        message: message.into(),
    }
}

impl Key {
    pub(crate) fn of_call(r: &CallRecord) -> Key {
        Key::Call {
            start_ms: r.start_ms,
            call: r.call.clone(),
        }
    }

    pub(crate) fn of_state(r: &AgentStateRecord) -> Key {
        Key::AgentState {
            start_ms: r.start_ms,
            start_offset: r.start_offset,
        }
    }

    pub(crate) fn of_interval(r: &IntervalRow) -> Key {
        Key::Interval {
            start_ms: r.start_ms,
            subject: r.subject,
            id: r.id.clone(),
        }
    }

    pub(crate) fn kind(&self) -> KeyKind {
        match self {
            Key::Call { .. } => KeyKind::Call,
            Key::AgentState { .. } => KeyKind::AgentState,
            Key::Interval { .. } => KeyKind::Interval,
        }
    }

    /// The time every kind of key starts with.
    pub(crate) fn start_ms(&self) -> u64 {
        match self {
            Key::Call { start_ms, .. }
            | Key::AgentState { start_ms, .. }
            | Key::Interval { start_ms, .. } => *start_ms,
        }
    }

    pub(crate) fn encode(&self) -> String {
        let mut b = vec![CURSOR_VERSION, self.kind().tag()];
        b.extend_from_slice(&self.start_ms().to_be_bytes());
        match self {
            Key::Call { call, .. } => b.extend_from_slice(call.as_bytes()),
            Key::AgentState { start_offset, .. } => {
                b.extend_from_slice(&start_offset.to_be_bytes())
            }
            Key::Interval { subject, id, .. } => {
                b.push(match subject {
                    Subject::Agent => 0,
                    Subject::Queue => 1,
                });
                b.extend_from_slice(id.as_bytes());
            }
        }
        base64url::encode(&b)
    }

    pub(crate) fn decode(cursor: &str) -> Result<Key, StoreError> {
        if cursor.is_empty() {
            return Err(bad_cursor("empty (leave it out for the first page)"));
        }
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(bad_cursor(format!(
                "{} characters, more than a cursor has ({MAX_CURSOR_LEN})",
                cursor.len()
            )));
        }
        let not_ours = || bad_cursor("not a cursor this server gave");
        let b = base64url::decode(cursor).ok_or_else(not_ours)?;
        let (head, rest) = b.split_at_checked(10).ok_or_else(not_ours)?;
        if head[0] != CURSOR_VERSION {
            return Err(not_ours());
        }
        let start_ms = u64::from_be_bytes(head[2..10].try_into().map_err(|_| not_ours())?);
        let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| not_ours());
        match head[1] {
            b'c' => Ok(Key::Call {
                start_ms,
                call: text(rest)?,
            }),
            b's' => {
                let offset: [u8; 8] = rest.try_into().map_err(|_| not_ours())?;
                Ok(Key::AgentState {
                    start_ms,
                    start_offset: u64::from_be_bytes(offset),
                })
            }
            b'i' => {
                let (subject, id) = rest.split_first().ok_or_else(not_ours)?;
                let subject = match subject {
                    0 => Subject::Agent,
                    1 => Subject::Queue,
                    _ => return Err(not_ours()),
                };
                Ok(Key::Interval {
                    start_ms,
                    subject,
                    id: text(id)?,
                })
            }
            _ => Err(not_ours()),
        }
    }
}

/// URL-safe base64 without padding (RFC 4648 §5), strict: only the canonical encoding of
/// some bytes decodes.
mod base64url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            }
        }
        out
    }

    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        }))
    }

    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        let text = text.as_bytes();
        if text.len() % 4 == 1 {
            return None;
        }
        let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
        for chunk in text.chunks(4) {
            let mut n = 0u32;
            for (i, c) in chunk.iter().enumerate() {
                n |= value(*c)? << (18 - 6 * i);
            }
            let bytes = chunk.len() - 1;
            // the bits past the last whole byte must be zero (one encoding per byte string)
            if n & (0xFF_FFFF >> (8 * bytes)) != 0 {
                return None;
            }
            for i in 0..bytes {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_and_is_strict() {
        for len in 0..40usize {
            let bytes: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(97) ^ 0xA5)
                .collect();
            let text = base64url::encode(&bytes);
            assert!(text
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(base64url::decode(&text), Some(bytes), "{text}");
        }
        // RFC 4648 test vectors, unpadded
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url::encode(plain.as_bytes()), coded);
            assert_eq!(base64url::decode(coded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(base64url::encode(&[0xFB, 0xFF]), "-_8");
        for bad in ["Z", "Zg==", "Zh", "Zm9vY", "Zm9v+g", "Zm9v/g", "Zm 9", "é"] {
            assert_eq!(base64url::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_round_trip_through_cursors() {
        for key in [
            Key::Call {
                start_ms: 1_700_000_000_123,
                call: "c-1/ä?&=".into(),
            },
            Key::Call {
                start_ms: u64::MAX,
                call: String::new(),
            },
            Key::AgentState {
                start_ms: 5,
                start_offset: 77,
            },
            Key::Interval {
                start_ms: 900_000,
                subject: Subject::Queue,
                id: "200".into(),
            },
            Key::Interval {
                start_ms: 0,
                subject: Subject::Agent,
                id: "ann".into(),
            },
        ] {
            let cursor = key.encode();
            assert!(
                cursor
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
                "{cursor} is URL-safe"
            );
            assert_eq!(Key::decode(&cursor).expect("decodes"), key);
        }
    }

    #[test]
    fn a_bad_cursor_or_limit_is_refused_by_name() {
        let field = |r: Result<(usize, Option<Key>), StoreError>| match r {
            Err(StoreError::Invalid { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        };
        for limit in [0, MAX_PAGE_LIMIT + 1, u64::MAX] {
            assert_eq!(
                field(PageRequest::first(limit).check(KeyKind::Call)),
                "limit"
            );
        }
        let state = Key::AgentState {
            start_ms: 1,
            start_offset: 2,
        }
        .encode();
        let long = "A".repeat(MAX_CURSOR_LEN + 4);
        let mut truncated = Key::AgentState {
            start_ms: 1,
            start_offset: 2,
        }
        .encode();
        truncated.truncate(truncated.len() - 4);
        for bad in [
            "",
            "garbage!",
            "not a cursor",
            "Zm9vYmFy",
            "AQ",
            long.as_str(),
            truncated.as_str(),
            state.as_str(), // of another kind of read
        ] {
            assert_eq!(
                field(PageRequest::after(10, bad).check(KeyKind::Call)),
                "cursor",
                "{bad:?}"
            );
        }
        // any bytes after a version and a kind either decode or are refused, never panic
        for version in [0, CURSOR_VERSION, 255] {
            for tag in [0u8, b'c', b's', b'i', 255] {
                for len in 0..=20usize {
                    for fill in [0u8, 1, 2, b'a', 0xC3, 0xFF] {
                        let mut bytes = vec![version, tag];
                        bytes.extend(std::iter::repeat_n(fill, len));
                        let _ = Key::decode(&base64url::encode(&bytes));
                    }
                }
            }
        }
        let (limit, key) = PageRequest::default()
            .check(KeyKind::AgentState)
            .expect("the default");
        assert_eq!((limit, key), (DEFAULT_PAGE_LIMIT as usize, None));
        let (limit, key) = PageRequest::after(MAX_PAGE_LIMIT, state)
            .check(KeyKind::AgentState)
            .expect("the largest page");
        assert_eq!(limit, MAX_PAGE_LIMIT as usize);
        assert_eq!(
            key,
            Some(Key::AgentState {
                start_ms: 1,
                start_offset: 2
            })
        );
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_follow() {
        let key = |n: &u64| Key::AgentState {
            start_ms: *n,
            start_offset: 0,
        };
        let page = Page::of(vec![1u64, 2, 3], 2, key);
        assert_eq!(page.rows, [1, 2]);
        assert_eq!(page.next_cursor, Some(key(&2).encode()));
        let page = Page::of(vec![1u64, 2], 2, key);
        assert_eq!((page.rows, page.next_cursor), (vec![1, 2], None));
        let page = Page::of(Vec::<u64>::new(), 2, key);
        assert_eq!((page.rows, page.next_cursor), (vec![], None));
        let json = serde_json::to_string(&Page::of(vec![7u64], 1, key)).expect("json");
        assert_eq!(json, r#"{"rows":[7]}"#, "no next_cursor on the last page");
    }
}
