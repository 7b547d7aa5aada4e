//! One source of tenant configuration (docs/DECISIONS.md, "Outbound calling (issue 18):
//! making room"): a `callgrid sip-edge` running apart from its router keeps no tenant files;
//! a tenant loaded through `Admin/LoadTenant` (here `callgrid tenant load`, the CLI over it),
//! and a new version of it, reach the edge without a restart, and its calls reach the
//! router. SIPp plays the carrier.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use callgrid_proto::events::v1 as pb;
use callgrid_testkit::{answers_options, eventually, free_udp_port, sipp_ok, Child, Node};

const SIPTEST: &str = "tests/sip/siptest.yaml";
const SALES: &str = "+15550000200";
const ADDED: &str = "+15550000298";

fn callgrid(args: &[&str], token: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(args)
        .env("CALLGRID_TOKEN_FILE", token)
        .output()
        .expect("callgrid runs")
}

/// `callgrid tenant load FILE` against the router at `url`, which must succeed.
fn load(url: &str, file: &Path, token: &Path) -> std::process::Output {
    let out = callgrid(
        &[
            "tenant",
            "load",
            "--router",
            url,
            file.to_str().expect("utf-8"),
        ],
        token,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether a call from the carrier to `number` is taken by the edge and the router (SIPp's
/// caller hangs up after a second, while it waits in the queue); the edge's 404 otherwise.
async fn call(edge: SocketAddr, number: &str, dir: &Path) -> bool {
    let (edge, number, dir) = (edge, number.to_owned(), dir.to_owned());
    tokio::task::spawn_blocking(move || {
        sipp_ok(
            edge,
            "caller_abandon.xml",
            &["-s", &number, "-m", "1", "-d", "1000"],
            &dir,
        )
        .0
    })
    .await
    .expect("sipp ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_loaded_through_the_api_reaches_a_separate_edge_without_a_restart() {
    assert!(
        Command::new("sipp").arg("-v").output().is_ok(),
        "sipp is not installed: run scripts/install-sip-tools.sh (scripts/test.sh does)"
    );
    let mut router = Node::serve(env!("CARGO_BIN_EXE_callgrid")).start().await;
    let token = router.data_dir().join("admin.token");
    let url = format!("http://127.0.0.1:{}", router.grpc_port());
    // the edge's own token, role edge, as an operator makes it
    let out = callgrid(
        &["token", "create", "--router", &url, "--role", "edge"],
        &token,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edge_token = router.dir().join("edge.token");
    std::fs::write(&edge_token, &out.stdout).expect("edge token");

    let sip = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let rtp = 40_000 + (sip.port() % 50) * 100;
    let edge_dir = router.dir().join("edge");
    let log = router.dir().join("edge.log");
    let mut edge = Child::spawn(
        Command::new(env!("CARGO_BIN_EXE_callgrid"))
            .args(["sip-edge", "--router", &url])
            .arg("--token-file")
            .arg(&edge_token)
            .args(["--sip-listen", &sip.to_string()])
            .args(["--rtp-ports", &format!("{rtp}-{}", rtp + 99)])
            .arg("--data-dir")
            .arg(&edge_dir)
            // siptest's trunk secrets are kept encrypted with the router's key
            .arg("--secrets-key-file")
            .arg(router.data_dir().join("secrets.key"))
            .env("RUST_LOG", "info,rsipstack=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("edge log")),
    )
    .expect("callgrid sip-edge starts")
    .with_log(&log);
    let mut probe = 0;
    eventually(
        "the separate edge answers OPTIONS",
        Duration::from_secs(60),
        async || {
            probe += 1;
            answers_options(sip, probe).await
        },
    )
    .await;
    assert!(
        edge.exited().is_none(),
        "the edge stopped:\n{}",
        edge.tail(40)
    );

    // siptest is not loaded yet: its number is unknown at the edge
    let (unknown, out) = tokio::task::spawn_blocking({
        let dir = router.dir().to_owned();
        move || {
            sipp_ok(
                sip,
                "caller_expect_404.xml",
                &["-s", SALES, "-m", "1"],
                &dir,
            )
        }
    })
    .await
    .expect("sipp ran");
    assert!(unknown, "a number of no tenant was not refused 404:\n{out}");

    // loaded through the API: the edge takes it from the router, no restart
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(SIPTEST);
    let out = load(&url, &file, &token);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tenant siptest version 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dir = router.dir().to_owned();
    eventually(
        "a call to siptest's number through the separate edge",
        Duration::from_secs(60),
        async || call(sip, SALES, &dir).await,
    )
    .await;

    // a new version with a new number reaches it too
    let v2 = router.dir().join("siptest-v2.yaml");
    let yaml = std::fs::read_to_string(&file).expect("siptest.yaml").replace(
        "numbers:\n",
        &format!("numbers:\n  - {{ number: \"{ADDED}\", name: Added line, route: {{ queue: \"200\" }} }}\n"),
    );
    std::fs::write(&v2, yaml).expect("v2");
    load(&url, &v2, &token);
    eventually(
        "a call to the added number through the separate edge",
        Duration::from_secs(60),
        async || call(sip, ADDED, &dir).await,
    )
    .await;
    assert!(
        edge.exited().is_none(),
        "the edge stopped:\n{}",
        edge.tail(40)
    );

    // the calls reached the router through the edge: they are in its log
    let events = common::read_events(&router.data_dir().join("events.sqlite")).await;
    let arrived: Vec<String> = events
        .iter()
        .filter_map(|e| match e.event.as_ref()?.kind.as_ref()? {
            pb::event::Kind::CallArrived(a) => Some(a.number.clone()),
            _ => None,
        })
        .collect();
    for number in [SALES, ADDED] {
        assert!(
            arrived.iter().any(|n| n == number),
            "no call to {number} arrived: {arrived:?}"
        );
    }
    let out = callgrid(&["tenant", "list", "--router", &url], &token);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("siptest") && listed.contains("version 2"),
        "{listed}"
    );

    // N6: the sales line gets a backup number on a trunk where SIPp plays the carrier; the
    // tenant marked out of service, the edge forwards its calls there without the router (a
    // number without a backup is refused 503)
    let carrier = free_udp_port();
    let v3 = router.dir().join("siptest-v3.yaml");
    let yaml = std::fs::read_to_string(&v2)
        .expect("v2")
        .replace("127.0.0.1:5080", &format!("127.0.0.1:{carrier}"))
        .replace(
            "name: Sales line,",
            &format!("name: Sales line, backup_number: \"{BACKUP}\","),
        );
    std::fs::write(&v3, format!("{yaml}\nout_of_service: true\n")).expect("v3");
    load(&url, &v3, &token);
    eventually(
        "the out-of-service tenant's number without a backup refused 503",
        Duration::from_secs(60),
        async || {
            let (edge, dir) = (sip, router.dir().to_owned());
            tokio::task::spawn_blocking(move || {
                let (ok, out) = sipp_ok(
                    edge,
                    "caller_expect_503.xml",
                    &["-s", ADDED, "-m", "1"],
                    &dir,
                );
                if !ok {
                    eprintln!("not yet: {}", &out[out.len().saturating_sub(1500)..]);
                }
                ok
            })
            .await
            .expect("sipp ran")
        },
    )
    .await;
    forwarded(sip, carrier, router.dir(), "out of service").await;

    // back in service, then the router stops: the edge cannot reach it and forwards again
    std::fs::write(&v3, &yaml).expect("v4");
    load(&url, &v3, &token);
    eventually(
        "the tenant back in service",
        Duration::from_secs(60),
        async || call(sip, ADDED, &dir).await,
    )
    .await;
    router.stop();
    forwarded(sip, carrier, router.dir(), "unreachable router").await;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    for why in ["the tenant is out of service", "the router is unavailable"] {
        assert!(
            log.contains(why) && log.contains("forwarded to the number's backup"),
            "{why}: {log}"
        );
    }
}

/// The backup number of the sales line (N6).
const BACKUP: &str = "+84903456789";

/// A carrier's call to the sales line is answered by the backup number, which SIPp plays on
/// the trunk at `carrier`: the INVITE there is for the backup number and presents the line.
async fn forwarded(edge: SocketAddr, carrier: u16, dir: &Path, case: &str) {
    let dir = dir.join(case.replace(' ', "-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let target = SocketAddr::from(([127, 0, 0, 1], 9)); // a UAS sends nothing first
    let port = carrier.to_string();
    let mut uas = callgrid_testkit::sipp(
        target,
        "agent_answer.xml",
        &["-p", &port, "-m", "1", "-trace_msg"],
        &dir,
    );
    assert!(
        callgrid_testkit::wait_udp_bound(carrier, &mut uas),
        "carrier: {}",
        uas.log()
    );
    let caller_dir = dir.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        sipp_ok(
            edge,
            "caller.xml",
            &["-s", SALES, "-m", "1", "-d", "500"],
            &caller_dir,
        )
    })
    .await
    .expect("sipp ran");
    assert!(
        ok,
        "{case}: the caller was not answered by the backup:\n{out}"
    );
    let (done, log) = uas.wait_for_exit(Duration::from_secs(30));
    assert!(done, "{case}: carrier: {log}");
    let trace: String = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().ends_with("_messages.log"))
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
        .collect();
    assert!(
        trace.contains(&format!("INVITE sip:{BACKUP}@")) && trace.contains("sip:+15550000200@"),
        "{case}: {trace}"
    );
}
