//! Reads: a small pool of read-only connections, used on blocking threads.
//! WAL mode lets them read while the writer writes.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension};

use super::schema::{self, SELECT_OFFSET, SELECT_RECORDS};
use crate::{LogError, StoredRecord};

/// Idle read connections; a reader takes one (or opens one if none is idle)
/// and puts it back unless enough are idle already.
pub(super) struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReaderPool {
    pub(super) fn new(path: PathBuf, max_idle: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// Runs `f` with a read connection. Blocking: call from a blocking thread.
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
        result
    }
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> LogError {
    move |e| LogError::storage(context, e)
}

fn to_offset(value: i64) -> rusqlite::Result<u64> {
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, value))
}

/// Up to `max` records of a partition from offset `from`, in offset order.
pub(super) fn read_records(
    conn: &Connection,
    topic_id: i64,
    partition: u32,
    from: u64,
    max: usize,
) -> Result<Vec<StoredRecord>, LogError> {
    let Ok(from) = i64::try_from(from) else {
        // Beyond any offset SQLite can hold.
        return Ok(Vec::new());
    };
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(SELECT_RECORDS)
        .map_err(sql("cannot prepare read"))?;
    let rows = stmt
        .query_map((topic_id, partition, from, limit), |row| {
            Ok(StoredRecord {
                partition,
                offset: to_offset(row.get(0)?)?,
                timestamp_ms: row.get(1)?,
                key: row.get(2)?,
                value: row.get(3)?,
            })
        })
        .map_err(sql("cannot read records"))?;
    let mut records = Vec::with_capacity(max.min(4096));
    for row in rows {
        records.push(row.map_err(sql("cannot read records"))?);
    }
    Ok(records)
}

/// The committed offset of a consumer group for a topic partition.
pub(super) fn read_committed(
    conn: &Connection,
    group: &str,
    topic_id: i64,
    partition: u32,
) -> Result<Option<u64>, LogError> {
    let mut stmt = conn
        .prepare_cached(SELECT_OFFSET)
        .map_err(sql("cannot prepare committed offset read"))?;
    stmt.query_row((group, topic_id, partition), |row| to_offset(row.get(0)?))
        .optional()
        .map_err(sql("cannot read committed offset"))
}
