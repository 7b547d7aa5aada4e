//! SIPp (Debian `sip-tester`) playing the carrier or a phone, with a scenario of
//! `loadtest/sipp/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::Child;
use crate::ports::free_rtp_port;

/// The path of a scenario of `loadtest/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../loadtest/sipp")
        .join(name)
}

/// Starts SIPp with the scenario `name` toward `target`, its output in files of `dir` (and
/// `dir` as its working directory, for the files a scenario writes); `args` are SIPp's.
/// Panics when `sipp` is not installed, saying how to install it.
pub fn sipp(target: SocketAddr, name: &str, args: &[&str], dir: &Path) -> Child {
    let log = dir.join(format!(
        "sipp-{name}-{}.log",
        Instant::now().elapsed().as_nanos()
    ));
    let media = free_rtp_port();
    let file = |p: &Path| std::fs::File::create(p).expect("a sipp log file");
    Child::spawn(
        Command::new("sipp")
            .arg(target.to_string())
            .args(["-i", "127.0.0.1", "-mp", &media.to_string()])
            .args(["-nostdin", "-timeout", "40s", "-timeout_error"])
            .arg("-sf")
            .arg(scenario(name))
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file(&log))
            .stderr(file(&log.with_extension("err"))),
    )
    .unwrap_or_else(|e| {
        panic!("sipp does not run ({e}): run scripts/install-sip-tools.sh (scripts/test.sh does)")
    })
    .with_log(&log)
    .with_log(log.with_extension("err"))
}

/// Runs SIPp to its end (at most 60 s): whether it succeeded, and its output. A SIPp that
/// could not bind its media ports (taken by another test between [`free_rtp_port`] and its
/// bind; it also binds the port after the one given, for video) sent nothing: it is run
/// again on other ports, at most three times.
pub fn sipp_ok(target: SocketAddr, name: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (ok, out) = sipp(target, name, args, dir).wait_for_exit(Duration::from_secs(60));
        let port_taken = out.contains("Unable to bind") && out.contains("Address already in use");
        if ok || !port_taken || attempt == 3 {
            return (ok, out);
        }
    }
}

/// Waits (at most 30 s) until a UDP socket on `port` exists, read from /proc/net/udp
/// (binding the port to find out could take it from the SIPp starting there); false if
/// `proc` exited first.
pub fn wait_udp_bound(port: u16, proc: &mut Child) -> bool {
    let hex = format!(":{port:04X} ");
    crate::eventually_blocking(
        &format!("something to listen on udp {port}"),
        Duration::from_secs(30),
        || {
            let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
            if table.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").ends_with(&hex))
            }) {
                return Some(true);
            }
            proc.exited().map(|_| false)
        },
    )
}
