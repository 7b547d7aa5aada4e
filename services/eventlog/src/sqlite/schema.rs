//! The database layout, the connection settings and loading the state at open.
//!
//! ```sql
//! topics(id INTEGER PRIMARY KEY, name TEXT UNIQUE, partitions INTEGER)
//! records(topic_id, partition_id, record_offset, ts, key BLOB, value BLOB,
//!         PRIMARY KEY(topic_id, partition_id, record_offset)) WITHOUT ROWID
//! offsets(group_name, topic_id, partition_id, next_offset,
//!         PRIMARY KEY(group_name, topic_id, partition_id)) WITHOUT ROWID
//! ```
//!
//! `records` is clustered on its key, so an append adds to the right edge of
//! its partition's key range and a read is one range scan.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{Durability, TopicState};
use crate::LogError;

/// The layout version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const CREATE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS topics (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    partitions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    topic_id      INTEGER NOT NULL,
    partition_id  INTEGER NOT NULL,
    record_offset INTEGER NOT NULL,
    ts            INTEGER NOT NULL,
    key           BLOB    NOT NULL,
    value         BLOB    NOT NULL,
    PRIMARY KEY (topic_id, partition_id, record_offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    group_name   TEXT    NOT NULL,
    topic_id     INTEGER NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL,
    PRIMARY KEY (group_name, topic_id, partition_id)
) WITHOUT ROWID;
";

pub(super) const INSERT_RECORD: &str = "INSERT INTO records \
    (topic_id, partition_id, record_offset, ts, key, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub(super) const INSERT_TOPIC: &str = "INSERT INTO topics (name, partitions) VALUES (?1, ?2)";

pub(super) const UPSERT_OFFSET: &str = "INSERT INTO offsets \
    (group_name, topic_id, partition_id, next_offset) VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (group_name, topic_id, partition_id) DO UPDATE SET next_offset = excluded.next_offset";

pub(super) const SELECT_RECORDS: &str = "SELECT record_offset, ts, key, value FROM records \
    WHERE topic_id = ?1 AND partition_id = ?2 AND record_offset >= ?3 \
    ORDER BY record_offset LIMIT ?4";

pub(super) const SELECT_OFFSET: &str = "SELECT next_offset FROM offsets \
    WHERE group_name = ?1 AND topic_id = ?2 AND partition_id = ?3";

const SELECT_TOPICS: &str = "SELECT id, name, partitions FROM topics ORDER BY id";

const SELECT_LAST_OFFSET: &str =
    "SELECT MAX(record_offset) FROM records WHERE topic_id = ?1 AND partition_id = ?2";

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> LogError {
    move |e| LogError::storage(context, e)
}

/// Opens the write connection: WAL mode, the durability's `synchronous`
/// level, the schema; then loads every topic with its partitions' end offsets.
pub(super) fn open_writer(
    path: &Path,
    durability: Durability,
) -> Result<(Connection, Vec<Arc<TopicState>>), LogError> {
    let conn = Connection::open(path)
        .map_err(|e| LogError::storage(&format!("cannot open database {}", path.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql("cannot set busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sql("cannot enable WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LogError::Storage(format!(
            "cannot enable WAL mode: journal mode is {mode}"
        )));
    }
    set_synchronous(&conn, durability)?;
    // 32 MiB of page cache keeps the right edge of every partition hot.
    conn.pragma_update(None, "cache_size", -32_768)
        .map_err(sql("cannot set cache size"))?;
    // Truncate the WAL back to 64 MiB after checkpoints.
    conn.pragma_update(None, "journal_size_limit", 64 << 20)
        .map_err(sql("cannot set journal size limit"))?;
    conn.set_prepared_statement_cache_capacity(32);

    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql("cannot read schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(LogError::Storage(format!(
            "database {} has schema version {version}, newer than the supported {SCHEMA_VERSION}",
            path.display()
        )));
    }
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {CREATE_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(sql("cannot create schema"))?;
    }

    let topics = load_topics(&conn)?;
    Ok((conn, topics))
}

fn load_topics(conn: &Connection) -> Result<Vec<Arc<TopicState>>, LogError> {
    let rows: Vec<(i64, String, i64)> = conn
        .prepare(SELECT_TOPICS)
        .and_then(|mut stmt| {
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
        })
        .map_err(sql("cannot load topics"))?;
    let mut last = conn
        .prepare(SELECT_LAST_OFFSET)
        .map_err(sql("cannot load end offsets"))?;
    let mut topics = Vec::with_capacity(rows.len());
    for (id, name, partitions) in rows {
        let partitions = u32::try_from(partitions)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| {
                LogError::Storage(format!(
                    "corrupt database: topic {name} has {partitions} partitions"
                ))
            })?;
        let mut ends = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            // One index lookup per partition, however long the log.
            let max: Option<i64> = last
                .query_row((id, partition), |row| row.get(0))
                .optional()
                .map_err(sql("cannot load end offsets"))?
                .flatten();
            let end = match max {
                None => 0,
                Some(max) => u64::try_from(max)
                    .ok()
                    .and_then(|max| max.checked_add(1))
                    .ok_or_else(|| {
                        LogError::Storage(format!(
                            "corrupt database: topic {name} partition {partition} ends at offset {max}"
                        ))
                    })?,
            };
            ends.push(end);
        }
        topics.push(Arc::new(TopicState::new(id, name, &ends)));
    }
    Ok(topics)
}

fn set_synchronous(conn: &Connection, durability: Durability) -> Result<(), LogError> {
    let synchronous = match durability {
        Durability::Fsync => "FULL",
        Durability::ProcessCrashSafe => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(sql("cannot set synchronous"))
}

/// Stops the write connection from checkpointing in its commits (the
/// checkpointer thread does it).
pub(super) fn disable_autocheckpoint(conn: &Connection) -> Result<(), LogError> {
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(sql("cannot disable automatic checkpoints"))
}

/// Opens the checkpointer's connection to the database the writer created.
pub(super) fn open_checkpointer(
    path: &Path,
    durability: Durability,
) -> Result<Connection, LogError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| LogError::storage(&format!("cannot open database {}", path.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql("cannot set busy timeout"))?;
    set_synchronous(&conn, durability)?;
    Ok(conn)
}

/// Opens a read-only connection to the database the writer created.
pub(super) fn open_reader(path: &Path) -> Result<Connection, LogError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| LogError::storage(&format!("cannot open database {}", path.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sql("cannot set busy timeout"))?;
    conn.pragma_update(None, "cache_size", -16_384)
        .map_err(sql("cannot set cache size"))?;
    Ok(conn)
}
