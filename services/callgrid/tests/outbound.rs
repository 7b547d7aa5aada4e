//! Calls out (issue 18, C1 click-to-call) against a real `callgrid serve`: SIPp plays the
//! agent's phone and two carrier trunks (answering, 503, busy, a 407 digest challenge);
//! `callgrid call` places the calls as an operator or a CRM would; the router's events and
//! the call records say what happened. Refusals (blocklist, class, unparseable number,
//! unknown or busy agent) come back to the CLI with the reason, and nothing is dialled.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use callgrid_proto::api::v1 as api;
use callgrid_proto::events::v1 as pb;
use callgrid_testkit::{eventually_blocking, free_rtp_port, free_udp_port, Child};
use pb::event::Kind as K;

/// The test tenant: agent ann, a Viettel hotline calling out on trunk `first` (with a digest
/// account, registered at `registrar`) then `second`; a Vinaphone hotline (forced with `*2*`)
/// on trunk `dead` (OPTIONS every second to `dead`, where nothing answers) then `second`; a
/// blocklisted number.
fn tenant_yaml(first: u16, second: u16, registrar: u16, dead: u16) -> String {
    format!(
        r#"tenant: outtest
name: Outbound test tenant
timezone: Asia/Ho_Chi_Minh
region: VN
defaults:
  wrapup_seconds: 1
  ring_timeout_seconds: 5
  max_missed_offers: 0
agents:
  - {{ id: ann, name: Ann Out, extension: "30001", sip_password: ann-out-secret }}
  - {{ id: ben, name: Ben Out, extension: "30002", sip_password: ben-out-secret }}
  - {{ id: cam, name: Cam Out, extension: "30001", sip_password: cam-out-secret }}
blocklist: ["0987 654 321"]
numbers:
  - number: "+842873000100"
    name: Viettel hotline
    route: {{ agent: ann }}
    carrier: viettel
    trunks: [first, second]
    record_outbound: false
  - number: "+842873000200"
    name: Vinaphone hotline
    route: {{ agent: ann }}
    carrier: vinaphone
    short_code: "2"
    trunks: [dead, second]
trunks:
  - {{ id: first, name: First carrier, address: "127.0.0.1:{first}", username: acct, password: acct-secret, keepalive_seconds: 0,
      register: {{ registrar: "127.0.0.1:{registrar}", expires_seconds: 60 }} }}
  - {{ id: second, name: Second carrier, address: "127.0.0.1:{second}", keepalive_seconds: 0 }}
  - {{ id: dead, name: Carrier out of reach, address: "127.0.0.1:{dead}", keepalive_seconds: 1 }}
"#
    )
}

struct Test {
    rt: tokio::runtime::Runtime,
    node: callgrid_testkit::Node,
    first: u16,
    second: u16,
    registrar: u16,
}

impl Test {
    fn start() -> Test {
        assert!(
            Command::new("sipp").arg("-v").output().is_ok(),
            "sipp is not installed: run scripts/install-sip-tools.sh (scripts/test.sh does)"
        );
        let (first, second) = (free_udp_port(), free_udp_port());
        let (registrar, dead) = (free_udp_port(), free_udp_port());
        let tenants = tempdir();
        let yaml = tenant_yaml(first, second, registrar, dead);
        std::fs::write(tenants.join("outtest.yaml"), yaml).expect("tenant");
        let sip_port = free_udp_port();
        let rtp = 32_000 + (sip_port % 50) * 100;
        let node = callgrid_testkit::Node::serve(env!("CARGO_BIN_EXE_callgrid"))
            .sip(sip_port)
            .arg("--tenants")
            .arg(&tenants)
            .args(["--rtp-ports", &format!("{rtp}-{}", rtp + 99)])
            .args(["--durability", "process"])
            .rust_log("info,rsipstack=warn")
            .wait_for_sip()
            .start_blocking();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Test {
            rt,
            node,
            first,
            second,
            registrar,
        }
    }

    /// SIPp as a UAS on `port` (a phone or a carrier) for `calls` calls.
    fn uas(&self, port: u16, scenario: &str, calls: u32, extra: &[&str]) -> Child {
        let target = SocketAddr::from(([127, 0, 0, 1], 9)); // a UAS sends nothing first
        let mut args = vec![
            "-p".to_owned(),
            port.to_string(),
            "-m".to_owned(),
            calls.to_string(),
            "-mp".to_owned(),
            free_rtp_port().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = callgrid_testkit::sipp(target, scenario, &args, self.node.dir());
        assert!(
            callgrid_testkit::wait_udp_bound(port, &mut child),
            "sipp exited: {}",
            child.log()
        );
        child
    }

    /// SIPp as `agent`'s phone (authenticating with `password`) dialling `number` at the
    /// edge: `agent_dial.xml` (answered; talk `extra` `-d`) or `agent_dial_refused.xml`.
    fn dial(
        &self,
        scenario: &str,
        agent: &str,
        password: &str,
        number: &str,
        extra: &[&str],
    ) -> Child {
        let csv = self
            .node
            .dir()
            .join(format!("{agent}-{}.csv", free_udp_port()));
        std::fs::write(&csv, format!("SEQUENTIAL\n{agent};{password}\n")).expect("csv");
        let csv = csv.display().to_string();
        let port = free_udp_port().to_string();
        // SIPp's digest uri is the Request-URI only when told
        let uri = format!("{number}@{}", self.node.sip_addr());
        let mut args = vec!["-inf", &csv, "-s", number, "-auth_uri", &uri];
        args.extend(["-m", "1", "-p", &port, "-trace_msg"]);
        args.extend_from_slice(extra);
        callgrid_testkit::sipp(self.node.sip_addr(), scenario, &args, self.node.dir())
    }

    /// `callgrid call` with the admin token: its success and output.
    fn call(&self, agent: &str, number: &str, extra: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
            .args(["call", "--tenant", "outtest", "--router"])
            .arg(format!("http://127.0.0.1:{}", self.node.grpc_port()))
            .args(extra)
            .args([agent, number])
            .env(
                "CALLGRID_TOKEN_FILE",
                self.node.data_dir().join("admin.token"),
            )
            .output()
            .expect("callgrid runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn login(&self, agent: &str, device_port: u16) {
        self.rt.block_on(async {
            api::agent_service_client::AgentServiceClient::new(self.node.connect().await)
                .login(api::LoginRequest {
                    tenant: "outtest".into(),
                    agent: agent.into(),
                    devices: vec![format!("sip:{agent}@127.0.0.1:{device_port}")],
                    not_ready_reason: String::new(),
                })
                .await
                .expect("login");
        });
    }

    fn agent_state(&self, agent: &str) -> String {
        self.rt.block_on(async {
            api::read_service_client::ReadServiceClient::new(self.node.connect().await)
                .get_agent(api::AgentRef {
                    tenant: "outtest".into(),
                    agent: agent.into(),
                })
                .await
                .expect("agent")
                .into_inner()
                .state
        })
    }

    fn calls_in_progress(&self) -> u32 {
        self.rt.block_on(async {
            api::admin_client::AdminClient::new(self.node.connect().await)
                .stats(api::StatsRequest::default())
                .await
                .expect("stats")
                .into_inner()
                .calls_in_progress
        })
    }

    /// Waits until no call is in progress and `agent` is available again.
    fn settle(&self, agent: &str) {
        eventually_blocking(
            "the call to end and the agent to be available",
            Duration::from_secs(40),
            || {
                let (calls, state) = (self.calls_in_progress(), self.agent_state(agent));
                if calls == 0 && state == "available" {
                    Ok(())
                } else {
                    Err(format!(
                        "{calls} calls, {agent} {state}\n{}",
                        self.node.tail(30)
                    ))
                }
            },
        );
    }
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "callgrid-outbound-{}-{}",
        std::process::id(),
        free_udp_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The events of call `call`, by kind, in order.
fn call_events<'e>(events: &'e [pb::EventEnvelope], call: &str) -> Vec<&'e K> {
    events
        .iter()
        .filter(|e| e.aggregate_kind == "call" && e.aggregate_id == call)
        .filter_map(|e| e.event.as_ref()?.kind.as_ref())
        .collect()
}

/// The call id `callgrid call` printed first.
fn call_id(out: &str) -> String {
    out.split_whitespace().next().unwrap_or_default().to_owned()
}

#[test]
fn click_to_call_rings_the_agent_dials_the_customer_fails_over_and_records_the_result() {
    let mut t = Test::start();
    // the edge registers trunk first's account with the carrier's registrar (401 challenge,
    // credentials checked by SIPp)
    let csv = t.node.dir().join("carrier.csv");
    std::fs::write(&csv, "SEQUENTIAL\nacct;acct-secret\n").expect("csv");
    let csv = csv.display().to_string();
    let registrar = t.uas(t.registrar, "carrier_registrar.xml", 1, &["-inf", &csv]);
    let (registered, log) = registrar.wait_for_exit(Duration::from_secs(30));
    assert!(registered, "registrar: {log}\n{}", t.node.tail(40));
    let phone_port = free_udp_port();
    // ann's phone answers every call and waits for the platform's BYE
    let _phone = t.uas(phone_port, "agent_answer.xml", 6, &[]);
    t.login("ann", phone_port);
    // cam shares ann's extension 30001 (A1: one of them calls out at a time)
    t.login("cam", phone_port);

    // 1. the first carrier challenges (401), takes the account's credentials, answers; the
    //    customer hangs up after a second
    let carrier = t.uas(
        t.first,
        "carrier_challenge.xml",
        1,
        &["-inf", &csv, "-d", "1000"],
    );
    let (ok, out) = t.call("ann", "0961 234 568", &["--correlation", "crm-42"]);
    assert!(ok, "{out}\n{}", t.node.tail(40));
    assert!(
        out.contains("to +84961234568 (mobile) as +842873000100 on first, second"),
        "{out}"
    );
    let answered = call_id(&out);
    // while ann's call out is on, cam (same extension) may not call out
    let (ok, refused) = t.call("cam", "0961234570", &[]);
    assert!(
        !ok && refused.contains("extension 30001 is calling out already (agent ann)"),
        "{refused}"
    );
    let (done, log) = carrier.wait_for_exit(Duration::from_secs(30));
    assert!(done, "carrier: {log}\n{}", t.node.tail(40));
    t.settle("ann");

    // 1b. a carrier that challenges as a proxy (407): the response is the account's digest
    let carrier = t.uas(
        t.first,
        "carrier_challenge_407.xml",
        1,
        &["-d", "500", "-trace_msg"],
    );
    let (ok, out) = t.call("ann", "0961234569", &[]);
    assert!(ok, "{out}");
    let proxied = call_id(&out);
    let (done, log) = carrier.wait_for_exit(Duration::from_secs(30));
    assert!(done, "carrier: {log}\n{}", t.node.tail(40));
    let trace = sipp_messages(t.node.dir(), "carrier_challenge_407");
    let auth = trace
        .lines()
        .find(|l| l.starts_with("Proxy-Authorization:"))
        .unwrap_or_else(|| panic!("no Proxy-Authorization: {trace}"));
    let field = |name: &str| {
        let start = auth.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        auth[start..].split('"').next().expect(name).to_owned()
    };
    assert_eq!(
        (field("username"), field("realm")),
        ("acct".into(), "carrier.test".into())
    );
    let ha1 = md5_hex("acct:carrier.test:acct-secret");
    let ha2 = md5_hex(&format!("INVITE:{}", field("uri")));
    assert_eq!(
        field("response"),
        md5_hex(&format!("{ha1}:callgrid407nonce:{ha2}")),
        "{auth}"
    );
    t.settle("ann");

    // 2. the first carrier is out of service (503): the second answers
    let first = t.uas(t.first, "carrier_503.xml", 1, &[]);
    let second = t.uas(t.second, "agent_hangup.xml", 1, &["-d", "1000"]);
    let (ok, out) = t.call("ann", "+84 96 123 4567", &[]);
    assert!(ok, "{out}");
    let failed_over = call_id(&out);
    assert!(first.wait_for_exit(Duration::from_secs(30)).0);
    assert!(second.wait_for_exit(Duration::from_secs(30)).0);
    t.settle("ann");

    // 2b. a trunk whose OPTIONS go unanswered is marked down and skipped: the call forced
    //     onto the Vinaphone hotline (*2*) goes out on its next trunk at once
    eventually_blocking(
        "trunk dead to be marked down",
        Duration::from_secs(30),
        || {
            let log = t.node.log();
            if log.contains("trunk does not answer OPTIONS: down") {
                Ok(())
            } else {
                Err(t.node.tail(20))
            }
        },
    );
    let second = t.uas(t.second, "agent_hangup.xml", 1, &["-d", "500"]);
    let (ok, out) = t.call("ann", "*2*0912345670", &[]);
    assert!(ok, "{out}");
    assert!(out.contains("as +842873000200 on dead, second"), "{out}");
    let skipped = call_id(&out);
    assert!(second.wait_for_exit(Duration::from_secs(30)).0);
    t.settle("ann");

    // 3. the customer is busy: no other trunk is tried
    let busy_carrier = t.uas(t.first, "agent_busy.xml", 1, &[]);
    let (ok, out) = t.call("ann", "0961234567", &[]);
    assert!(ok, "{out}");
    let busy = call_id(&out);
    assert!(busy_carrier.wait_for_exit(Duration::from_secs(30)).0);
    t.settle("ann");

    // 3b. nobody answers: the customer's phone rings, the carrier gives up (480)
    let ringing_carrier = t.uas(t.first, "carrier_480.xml", 1, &["-d", "1000"]);
    let (ok, out) = t.call("ann", "0961234566", &[]);
    assert!(ok, "{out}");
    let unanswered = call_id(&out);
    assert!(ringing_carrier.wait_for_exit(Duration::from_secs(30)).0);
    t.settle("ann");

    // 4. refusals: named, and nothing dialled
    for (agent, number, says) in [
        ("ann", "0987 654 321", "blocklist"),
        ("ann", "1900 1234", "premium"),
        ("ann", "+1 650 253 0000", "international"),
        ("ann", "09x12", "09x12"),
        ("nobody", "0912345678", "unknown agent nobody"),
        ("ben", "0912345678", "logged_out"),
    ] {
        let (ok, out) = t.call(agent, number, &[]);
        assert!(!ok && out.contains(says), "{agent} {number}: {out}");
    }

    t.node.stop();
    let events = t.rt.block_on(common::read_events(
        &t.node.data_dir().join("events.sqlite"),
    ));
    // 1: originated with the decisions and the correlation id, answered on the first trunk
    let e = call_events(&events, &answered);
    // (096 is Viettel's: the tenant's Viettel hotline, adaptively)
    assert!(
        matches!(e[0], K::CallOriginated(o)
        if o.agent == "ann" && o.destination == "+84961234568" && o.number == "+842873000100"
            && o.choice == "same_carrier" && o.class == "mobile"
            && o.correlation.as_deref() == Some("crm-42") && o.trunks == ["first", "second"]),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallCustomerAnswered(a) if a.trunk == "first")),
        "{e:#?}"
    );
    assert!(e.iter().any(|k| matches!(k, K::CallEnded(_))), "{e:#?}");
    let e = call_events(&events, &proxied);
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallCustomerAnswered(a) if a.trunk == "first")),
        "{e:#?}"
    );
    // 2: failed over from first (503) to second
    let e = call_events(&events, &failed_over);
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallTrunkFailed(f) if f.trunk == "first" && f.sip_code == 503)),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallCustomerAnswered(a) if a.trunk == "second")),
        "{e:#?}"
    );
    // 2b: the trunk marked down was not tried (a local 503), the next one answered
    let e = call_events(&events, &skipped);
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallOriginated(o) if o.choice == "forced")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallTrunkFailed(f) if f.trunk == "dead" && f.sip_code == 503)),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallCustomerAnswered(a) if a.trunk == "second")),
        "{e:#?}"
    );
    // 3: busy on the first trunk, the call's result busy
    let e = call_events(&events, &busy);
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallTrunkFailed(f) if f.trunk == "first" && f.sip_code == 486)),
        "{e:#?}"
    );
    assert!(e.iter().any(|k| matches!(k, K::CallEnded(c)
        if matches!(c.cause.as_ref().and_then(|c| c.kind.as_ref()), Some(pb::end_cause::Kind::Dial(r)) if r == "busy"))), "{e:#?}");
    assert!(!e.iter().any(|k| matches!(k, K::CallCustomerAnswered(_))));
    // 3b: rang, then 480 on the first trunk: no answer, no other trunk tried
    let e = call_events(&events, &unanswered);
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallCustomerRinging(r) if r.trunk == "first")),
        "{e:#?}"
    );
    assert!(e.iter().any(|k| matches!(k, K::CallEnded(c)
        if matches!(c.cause.as_ref().and_then(|c| c.kind.as_ref()), Some(pb::end_cause::Kind::Dial(r)) if r == "no_answer"))), "{e:#?}");
    assert!(!e
        .iter()
        .any(|k| matches!(k, K::CallTrunkFailed(f) if f.trunk == "second")));
    // no other call was placed
    let originated = events
        .iter()
        .filter(|e| {
            matches!(
                e.event.as_ref().and_then(|e| e.kind.as_ref()),
                Some(K::CallOriginated(_))
            )
        })
        .count();
    assert_eq!(originated, 6);

    // the call records: direction, correlation, trunk, SIP code, result
    let records = call_records(&t.node);
    let record = |call: &str| {
        records
            .iter()
            .find(|r| r.call == call)
            .unwrap_or_else(|| panic!("no record of {call}: {records:#?}"))
    };
    let r = record(&answered);
    assert_eq!(
        (
            r.direction.as_str(),
            r.correlation.as_str(),
            r.trunk.as_str(),
            r.sip_code,
            r.result.as_str()
        ),
        ("outbound", "crm-42", "first", 200, "answered"),
        "{r:#?}"
    );
    assert_eq!(
        (
            r.number.as_str(),
            r.caller.as_str(),
            r.agent.as_str(),
            r.carrier.as_str()
        ),
        ("+842873000100", "+84961234568", "ann", "viettel")
    );
    assert!(r.talk_ms > 0, "{r:#?}");
    let r = record(&failed_over);
    assert_eq!((r.trunk.as_str(), r.sip_code), ("second", 200), "{r:#?}");
    let r = record(&busy);
    assert_eq!(
        (
            r.result.as_str(),
            r.end_cause.as_str(),
            r.sip_code,
            r.talk_ms
        ),
        ("busy", "busy", 486, 0),
        "{r:#?}"
    );
}

/// Agents' phones dial (item 6): authenticated by digest as the agent (a 407 challenge
/// first); a number outside the tenant is a call out with the phone as the agent's leg —
/// decided, dialled on the carrier, its result heard by the phone (200, or 486 when busy);
/// an extension is an internal call to its agent; the blocklist, a wrong password and a
/// second agent of a shared extension calling out meanwhile (A1) are refused.
#[test]
fn agents_phones_dial_out_and_inside_the_tenant() {
    let mut t = Test::start();
    let ann_phone = free_udp_port();
    let ben_phone = free_udp_port();
    // ben's phone answers the internal call and waits for the BYE
    let ben = t.uas(ben_phone, "agent_answer.xml", 1, &[]);
    t.login("ann", ann_phone);
    t.login("ben", ben_phone);
    t.login("cam", ann_phone);

    // 1. ann's phone dials a mobile number: the Viettel hotline's first trunk answers
    let carrier = t.uas(t.first, "agent_answer.xml", 1, &[]);
    let out = t.dial(
        "agent_dial.xml",
        "outtest.ann",
        "ann-out-secret",
        "0961234567",
        &["-d", "4000"],
    );
    eventually_blocking("ann on her call out", Duration::from_secs(20), || {
        match t.agent_state("ann").as_str() {
            "on_call" => Ok(()),
            s => Err(format!(
                "ann is {s}\n{}\n{}\n{}",
                out.log(),
                sipp_messages(t.node.dir(), "agent_dial"),
                t.node.tail(20)
            )),
        }
    });
    // A1: cam shares ann's extension and may not call out meanwhile
    let cam = t.dial(
        "agent_dial_refused.xml",
        "outtest.cam",
        "cam-out-secret",
        "0961234570",
        &[],
    );
    let (refused, log) = cam.wait_for_exit(Duration::from_secs(30));
    assert!(refused, "cam: {log}\n{}", t.node.tail(30));
    let trace = sipp_messages(t.node.dir(), "agent_dial_refused");
    assert!(
        trace.contains("SIP/2.0 403") && trace.contains("calling out already (agent ann)"),
        "{trace}"
    );
    let (talked, log) = out.wait_for_exit(Duration::from_secs(30));
    assert!(talked, "ann's phone: {log}\n{}", t.node.tail(40));
    assert!(carrier.wait_for_exit(Duration::from_secs(30)).0);
    t.settle("ann");

    // 2. the customer is busy: the phone hears 486
    let busy = t.uas(t.first, "agent_busy.xml", 1, &[]);
    let phone = t.dial(
        "agent_dial_refused.xml",
        "outtest.ann",
        "ann-out-secret",
        "0961234568",
        &[],
    );
    let (done, log) = phone.wait_for_exit(Duration::from_secs(30));
    assert!(done, "ann's phone: {log}\n{}", t.node.tail(30));
    assert!(busy.wait_for_exit(Duration::from_secs(30)).0);
    t.settle("ann");

    // 3. refused before anything is dialled: a blocklisted number (403), a wrong password
    //    (403 after the challenge), an extension nobody has (404)
    for (password, number) in [
        ("ann-out-secret", "0987654321"),
        ("wrong-secret", "0961234569"),
        ("ann-out-secret", "30009"),
    ] {
        let phone = t.dial(
            "agent_dial_refused.xml",
            "outtest.ann",
            password,
            number,
            &[],
        );
        let (done, log) = phone.wait_for_exit(Duration::from_secs(30));
        assert!(done, "{number}: {log}\n{}", t.node.tail(30));
    }

    // 4. ann's phone dials ben's extension: an internal call, answered by ben's phone
    let internal = t.dial(
        "agent_dial.xml",
        "outtest.ann",
        "ann-out-secret",
        "30002",
        &["-d", "1000"],
    );
    let (done, log) = internal.wait_for_exit(Duration::from_secs(30));
    assert!(done, "internal call: {log}\n{}", t.node.tail(40));
    assert!(ben.wait_for_exit(Duration::from_secs(30)).0);
    t.settle("ben");

    let trace = sipp_messages(t.node.dir(), "agent_dial_refused");
    for code in ["486 Busy Here", "403 Forbidden", "404 Not Found"] {
        assert!(
            trace.contains(&format!("SIP/2.0 {code}")),
            "{code}: {trace}"
        );
    }
    assert!(trace.contains("blocklist"), "{trace}");
    assert!(trace.contains("no extension 30009"), "{trace}");

    t.node.stop();
    let events = t.rt.block_on(common::read_events(
        &t.node.data_dir().join("events.sqlite"),
    ));
    let originated: Vec<&pb::CallOriginated> = events
        .iter()
        .filter_map(|e| match e.event.as_ref()?.kind.as_ref()? {
            K::CallOriginated(o) => Some(o),
            _ => None,
        })
        .collect();
    // two calls out were placed (answered, busy); the refusals created none
    assert_eq!(originated.len(), 2, "{originated:#?}");
    assert!(originated
        .iter()
        .all(|o| o.agent == "ann" && o.correlation.is_none()));
    assert_eq!(originated[0].destination, "+84961234567");
    let answered = events
        .iter()
        .find(|e| matches!(e.event.as_ref().and_then(|e| e.kind.as_ref()), Some(K::CallOriginated(o)) if o.destination == "+84961234567"))
        .map(|e| e.aggregate_id.clone())
        .expect("the call out");
    let e = call_events(&events, &answered);
    assert!(
        e.iter().any(|k| matches!(k, K::CallRouted(r)
            if matches!(r.reason.as_ref().and_then(|r| r.kind.as_ref()), Some(pb::route_reason::Kind::Dialled(_))))),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallAnswered(a) if a.agent == "ann")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallCustomerAnswered(a) if a.trunk == "first")),
        "{e:#?}"
    );
    // the internal call: from ann's extension to ben's, answered by ben
    let internal = events
        .iter()
        .find(|e| matches!(e.event.as_ref().and_then(|e| e.kind.as_ref()), Some(K::CallArrived(a)) if a.number == "30002"))
        .unwrap_or_else(|| panic!("no internal call"));
    let K::CallArrived(arrived) = internal
        .event
        .as_ref()
        .and_then(|e| e.kind.as_ref())
        .expect("kind")
    else {
        unreachable!()
    };
    assert_eq!(arrived.caller, "30001");
    assert_eq!(arrived.from_agent.as_deref(), Some("ann"));
    // ann was on her internal call (no queue could offer her a customer) until it ended
    let ann_on_it: Vec<&str> = events
        .iter()
        .filter(|e| e.aggregate_id == "ann")
        .filter_map(|e| match e.event.as_ref()?.kind.as_ref()? {
            K::AgentAnswered(a) if a.call == internal.aggregate_id => Some("answered"),
            K::AgentCallEnded(a) if a.call == internal.aggregate_id => Some("ended"),
            _ => None,
        })
        .collect();
    assert_eq!(ann_on_it, ["answered", "ended"]);
    let e = call_events(&events, &internal.aggregate_id);
    assert!(
        e.iter().any(|k| matches!(k, K::CallRouted(r)
            if matches!(r.reason.as_ref().and_then(|r| r.kind.as_ref()), Some(pb::route_reason::Kind::Internal(_))))),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallAnswered(a) if a.agent == "ben")),
        "{e:#?}"
    );
    // the call records show the call out like a click-to-call, without a correlation id
    let records = call_records(&t.node);
    let r = records.iter().find(|r| r.call == answered).expect("record");
    assert_eq!(
        (
            r.direction.as_str(),
            r.agent.as_str(),
            r.trunk.as_str(),
            r.result.as_str()
        ),
        ("outbound", "ann", "first", "answered"),
        "{r:#?}"
    );
}

/// The messages SIPp traced (`-trace_msg`) for the scenario `name`, in the test's directory.
fn sipp_messages(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_dir(dir)
        .expect("the test's directory")
        .flatten()
        .filter(|f| {
            let n = f.file_name().to_string_lossy().into_owned();
            n.starts_with(name) && n.ends_with("_messages.log")
        })
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
        .collect()
}

fn md5_hex(text: &str) -> String {
    use md5::Digest;
    md5::Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tenant's call records, from a `callgrid projector --rebuild` over the stopped node's
/// log.
fn call_records(node: &callgrid_testkit::Node) -> Vec<callgrid_store::CallRecord> {
    let data = node.data_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["projector", "--rebuild", "--data-dir"])
        .arg(data)
        .output()
        .expect("callgrid projector runs");
    assert!(
        out.status.success(),
        "rebuild: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store =
        callgrid_store::SqliteStore::open(&data.join("projections.sqlite")).expect("projections");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(callgrid_store::ProjectionStore::call_records(
        &store,
        "outtest",
        callgrid_store::Span::all(),
        callgrid_store::PageRequest::default(),
    ))
    .map(|page| page.rows)
    .expect("records")
}

/// baresip (a real softphone) as ann's phone (registering with digest auth, answering
/// automatically), started with `commands` (`-e`): the process and its log.
fn baresip(t: &Test, commands: &[&str]) -> (Child, std::path::PathBuf) {
    assert!(
        Command::new("baresip").arg("-h").output().is_ok(),
        "baresip is not installed: run scripts/install-sip-tools.sh (scripts/test.sh does)"
    );
    let dir = t.node.dir().join("baresip");
    std::fs::create_dir_all(&dir).expect("baresip dir");
    let sip = free_udp_port();
    // no sound card needed: aubridge loops what it hears back as its microphone
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip}\naudio_source aubridge,loop\n\
             audio_player aubridge,loop\nmodule_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule aubridge.so\nmodule_app account.so\nmodule_app menu.so\n"
        ),
    )
    .expect("config");
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:outtest.ann@{};transport=udp>;auth_pass=ann-out-secret;regint=300;\
             answermode=auto\n",
            t.node.sip_addr()
        ),
    )
    .expect("accounts");
    let log = dir.join("baresip.log");
    let mut cmd = Command::new("baresip");
    cmd.args(["-f", &dir.display().to_string(), "-t", "60"]);
    for c in commands {
        cmd.args(["-e", c]);
    }
    let child = Child::spawn(
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::process::Stdio::null()),
    )
    .expect("baresip runs")
    .with_log(&log);
    (child, log)
}

/// Waits until baresip's log says `needle`.
fn wait_baresip(log: &std::path::Path, what: &str, needle: &str, node: &callgrid_testkit::Node) {
    eventually_blocking(
        &format!("baresip to say {needle:?} ({what})"),
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains(needle) {
                Ok(())
            } else {
                Err(format!("{text}\n--- callgrid:\n{}", node.tail(30)))
            }
        },
    );
}

/// baresip as ann's phone dials a customer (item 6): its INVITE is challenged (407) and sent
/// again with ann's credentials, the call goes out on the hotline's first trunk, where SIPp
/// answers as the customer and hangs up after two seconds; baresip's call ends with it.
#[test]
fn a_baresip_phone_dials_out() {
    let mut t = Test::start();
    t.login("ann", free_udp_port());
    let carrier = t.uas(t.first, "agent_hangup.xml", 1, &["-d", "2000"]);
    let dial = format!("/dial sip:0961234597@{}", t.node.sip_addr());
    let (_baresip, log) = baresip(&t, &[&dial]);
    wait_baresip(&log, "the customer answered", "Call established", &t.node);
    let (done, carrier_log) = carrier.wait_for_exit(Duration::from_secs(30));
    assert!(done, "carrier: {carrier_log}\n{}", t.node.tail(40));
    wait_baresip(&log, "the customer hung up", "terminated", &t.node);
    t.settle("ann");
    t.node.stop();
    let events = t.rt.block_on(common::read_events(
        &t.node.data_dir().join("events.sqlite"),
    ));
    let call = events
        .iter()
        .find(|e| matches!(e.event.as_ref().and_then(|e| e.kind.as_ref()), Some(K::CallOriginated(o)) if o.destination == "+84961234597" && o.agent == "ann"))
        .map(|e| e.aggregate_id.clone())
        .unwrap_or_else(|| panic!("no call out: {events:#?}"));
    let e = call_events(&events, &call);
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallCustomerAnswered(a) if a.trunk == "first")),
        "{e:#?}"
    );
}

/// baresip (a real softphone) as ann's phone takes a click-to-call: it registers with digest
/// auth, auto-answers, and is bridged to the customer the SIPp carrier answers; the customer
/// hangs up and baresip's call ends.
#[test]
fn a_baresip_phone_takes_a_click_to_call() {
    let mut t = Test::start();
    let (_baresip, log) = baresip(&t, &[]);
    let wait_log = |what: &str, needle: &str, node: &callgrid_testkit::Node| {
        wait_baresip(&log, what, needle, node)
    };
    wait_log("registered with digest auth", "[1 binding]", &t.node);
    // ann logged in without devices: the edge rings her registered phone
    t.rt.block_on(async {
        api::agent_service_client::AgentServiceClient::new(t.node.connect().await)
            .login(api::LoginRequest {
                tenant: "outtest".into(),
                agent: "ann".into(),
                devices: vec![],
                not_ready_reason: String::new(),
            })
            .await
            .expect("login");
    });
    let carrier = t.uas(t.first, "agent_hangup.xml", 1, &["-d", "2000"]);
    let (ok, out) = t.call("ann", "0961 234 599", &[]);
    assert!(ok, "{out}");
    let call = call_id(&out);
    wait_log("auto-answered", "Call established", &t.node);
    let (done, carrier_log) = carrier.wait_for_exit(Duration::from_secs(30));
    assert!(done, "carrier: {carrier_log}\n{}", t.node.tail(40));
    wait_log("the customer hung up", "terminated", &t.node);
    t.settle("ann");
    t.node.stop();
    let events = t.rt.block_on(common::read_events(
        &t.node.data_dir().join("events.sqlite"),
    ));
    let e = call_events(&events, &call);
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallAnswered(a) if a.agent == "ann")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|k| matches!(k, K::CallCustomerAnswered(a) if a.trunk == "first")),
        "{e:#?}"
    );
}
