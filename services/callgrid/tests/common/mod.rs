//! Helpers shared by the integration tests of the binary beyond the test kit
//! (`callgrid-testkit`): the events a node wrote.

use std::path::Path;

use callgrid_eventlog::{EventLog, SqliteLog, SqliteLogOptions};
use callgrid_proto::events::v1 as pb;
use callgrid_router::journal::EVENTS_TOPIC;
use prost::Message;

/// Every event of the embedded log at `path` (`DATA_DIR/events.sqlite`), partition by
/// partition, in log order.
pub(crate) async fn read_events(path: &Path) -> Vec<pb::EventEnvelope> {
    let log = SqliteLog::open_async(path.to_owned(), SqliteLogOptions::default())
        .await
        .expect("the log opens");
    let mut out = Vec::new();
    for p in 0..log.partition_count(EVENTS_TOPIC).await.expect("topic") {
        for r in log
            .read(EVENTS_TOPIC, p, 0, usize::MAX)
            .await
            .expect("read")
        {
            out.push(pb::EventEnvelope::decode(r.value.as_slice()).expect("decodes"));
        }
    }
    log.close().await;
    out
}
