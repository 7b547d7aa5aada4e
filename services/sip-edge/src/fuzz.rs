//! The fuzz target of the edge (docs/DECISIONS.md "Fuzzing"): everything that reads a SIP
//! datagram from anyone, before a dialog or the router is involved. Run by libFuzzer
//! (`fuzz/fuzz_targets/sip.rs`, `scripts/fuzz.sh sip`) and smoked by the test below.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Method, Request, SipMessage, Transport};

use crate::auth::{Checked, Checker};
use crate::call::{InfoDigit, ReferProblem};
use crate::digest::{self, CountCheck, NonceCheck};
use crate::directory::{AgentLookup, Directory, TrunkCounters};
use crate::metrics::Metrics;
use crate::transport::{screen, Screen};

/// Where the fuzzed datagram "came from".
const SOURCE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 40123);

/// What the helpers need that lasts across inputs: the demo tenant's directory, nonces.
struct Fixture {
    directory: Directory,
    nonces: digest::Nonces,
    metrics: Metrics,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let demo = callgrid_config::load_str("demo.yaml", callgrid_config::DEMO_TENANT_YAML)
            .unwrap_or_else(|e| panic!("demo tenant: {e}"));
        Fixture {
            directory: Directory::build(&[demo], &TrunkCounters::default(), None),
            nonces: digest::Nonces::new(),
            metrics: Metrics::default(),
        }
    })
}

/// One datagram through the edge's screening, rsipstack's parser and the edge's own readers
/// of untrusted header text. Panics only on a broken invariant.
pub fn sip(data: &[u8]) {
    let screened = screen(data);
    if let Screen::NotImplemented(reply) = &screened {
        // the 501 we send back is a SIP response
        assert!(
            matches!(
                SipMessage::try_from(reply.as_slice()),
                Ok(SipMessage::Response(_))
            ),
            "our 501 does not parse: {:?}",
            String::from_utf8_lossy(reply)
        );
    }
    if let Screen::NewCall(call_id) = &screened {
        // the stateless 503 of the front door is a SIP response too, when it can be built
        if let Some(reply) = crate::transport::shed_reply(data, call_id) {
            assert!(
                matches!(
                    SipMessage::try_from(reply.as_slice()),
                    Ok(SipMessage::Response(_))
                ),
                "our 503 does not parse: {:?}",
                String::from_utf8_lossy(&reply)
            );
        }
    }
    let Ok(msg) = SipMessage::try_from(data) else {
        // only keep-alives (whitespace) pass without parsing
        assert!(
            screened != Screen::Pass || data.iter().all(u8::is_ascii_whitespace),
            "a datagram the stack cannot parse passed the screen"
        );
        return;
    };
    // what the dispatcher reads of every message
    let _ = msg.max_forwards_header().map(|m| m.value().trim() == "0");
    let _ = msg.to_header().and_then(|t| t.tag());
    let _ = msg.from_header().and_then(|f| f.typed());
    let _ = msg.call_id_header().map(|c| c.value().to_owned());
    let _ = msg.cseq_header().and_then(|c| c.seq());
    if let SipMessage::Request(req) = &msg {
        request(req, request_uri_text(data));
    }
    if !req_or_resp_body(&msg).is_empty() {
        if let Ok(sdp) = callgrid_media::Sdp::parse(req_or_resp_body(&msg)) {
            let _ = sdp.remote_media();
        }
    }
}

fn req_or_resp_body(msg: &SipMessage) -> &[u8] {
    match msg {
        SipMessage::Request(r) => &r.body,
        SipMessage::Response(r) => &r.body,
    }
}

/// The Request-URI as the datagram writes it (what a phone puts in its digest `uri`), when
/// the request line is RFC 3261's `Method SP Request-URI SP SIP-Version`: the parser also
/// takes other whitespace between them (found by the fuzzer: `REGISTER\r\r\t\r\r127.0...`),
/// and then what the URI "is as written" is not defined.
fn request_uri_text(data: &[u8]) -> Option<&str> {
    let line = data.split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (_method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != b"SIP/2.0" {
        return None;
    }
    std::str::from_utf8(uri).ok()
}

fn request(req: &Request, written: Option<&str>) {
    let f = fixture();
    // a digest uri that repeats the Request-URI as written names the Request-URI
    if let Some(written) = written.filter(|w| w.bytes().all(|b| b.is_ascii_graphic())) {
        assert!(
            digest::uri_matches(written, &req.uri),
            "the request-uri {written:?} does not match itself ({})",
            req.uri
        );
    }
    // INVITE: the number, the caller, a trunk by digest account
    let dialled = crate::call::dialled_number(req);
    let _ = f.directory.number(&dialled);
    // credentials of REGISTER (Authorization) and trunk INVITEs (Proxy-Authorization)
    for h in req.headers.iter() {
        let value = match h {
            Header::Authorization(a) => a.value(),
            Header::ProxyAuthorization(a) => a.value(),
            _ => continue,
        };
        let Ok(c) = digest::parse_authorization(value) else {
            continue;
        };
        credentials(f, req, &c);
    }
    match req.method {
        Method::Register => register(f, req),
        Method::Info => {
            if let InfoDigit::Digit(d) = crate::call::info_digit(req) {
                assert!(
                    d.is_ascii_digit() || d == '*' || d == '#',
                    "INFO digit {d:?}"
                );
            }
        }
        Method::Refer => {
            for h in req.headers.iter() {
                if let Header::ReferTo(r) = h {
                    match crate::call::refer_target(r.value()) {
                        Ok(target) => assert!(!target.is_empty(), "an empty transfer target"),
                        Err(ReferProblem::Malformed | ReferProblem::Attended) => {}
                    }
                }
            }
        }
        _ => {}
    }
}

fn credentials(f: &Fixture, req: &Request, c: &digest::Credentials) {
    let method = req.method.to_string();
    let _ = digest::uri_matches(&c.uri, &req.uri);
    let _ = digest::verify(c, &method, "secret");
    assert_eq!(
        f.nonces.check(&c.nonce, SOURCE.ip()),
        NonceCheck::Forged,
        "a nonce we never issued was taken: {:?}",
        c.nonce
    );
    // the nonce-count record takes any credentials without panicking
    let counts = digest::NonceCounts::new(2);
    if counts.admit(c) == CountCheck::Fresh && c.qop.is_some() {
        assert_ne!(counts.admit(c), CountCheck::Fresh, "a replay was taken");
    }
    let checked = Checker {
        nonces: &f.nonces,
        counts: &counts,
        realm: "callgrid",
        metrics: &f.metrics,
    }
    .check(Some(c), &req.uri, SOURCE.ip(), |_| Some(()));
    assert_eq!(
        checked,
        Checked::Challenge { stale: false },
        "credentials with a forged nonce were not challenged"
    );
    // the lookups a digest username drives
    let _ = f.directory.trunks_by_username(&c.username);
    let domain = req.uri.host_with_port.host.to_string();
    if let AgentLookup::Found(a) = f.directory.agent(&c.username, &domain) {
        if let Some(ha1) = a.ha1(&c.username, &c.realm) {
            let _ = digest::verify_ha1(c, &method, &ha1);
        }
    }
}

fn register(f: &Fixture, req: &Request) {
    let Ok(to) = req.to_header().and_then(|t| t.typed()) else {
        return;
    };
    let user = to.uri.user().unwrap_or_default().to_owned();
    let domain = to.uri.host_with_port.host.to_string();
    let _ = f.directory.agent(&user, &domain);
    let default_expires = req
        .expires_header()
        .and_then(|e| e.value().trim().parse::<u64>().ok())
        .unwrap_or(3600);
    let _ = req
        .contact_headers()
        .iter()
        .any(|c| c.value().trim() == "*");
    let Ok(contacts) = req.typed_contact_headers() else {
        return;
    };
    let limits = (Duration::from_secs(60), Duration::from_secs(3_600));
    for transport in [Transport::Udp, Transport::Tcp] {
        if let Ok(updates) = crate::dispatch::contact_updates(
            &contacts,
            default_expires,
            (SOURCE, transport),
            limits,
        ) {
            assert_eq!(updates.len(), contacts.len());
            for u in &updates {
                // a phone is reached where its REGISTER came from, never where it says
                assert_eq!(u.target, SOURCE, "binding {} not at the source", u.contact);
                assert_eq!(u.transport, transport);
                assert!(
                    u.expires <= limits.1,
                    "expires {:?} over the cap",
                    u.expires
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_smoke_sip() {
        let r = callgrid_fuzz_smoke::run("sip", 20_000, 4_096, super::sip);
        assert!(r.seeds > 0);
    }
}
