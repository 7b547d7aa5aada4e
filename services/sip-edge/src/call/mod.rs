//! One inbound call: the caller's dialog (we are its UAS), the router's stream, agent legs
//! (we are their UAC) and the media between them. One task owns all of it, so the order of
//! what happens on the call is the order of its select loop.

mod media;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use callgrid_proto::api::v1 as api;
use futures::StreamExt;
use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, DialogStateSender, TerminatedReason, TransactionHandle,
};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Request, StatusCode, Transport};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::{self, Checked};
use crate::digest;
use crate::directory::TrunkEntry;
use crate::dispatch::source_of;
use crate::metrics::Metrics;
use crate::Shared;

use callgrid_media::LegEventKind;
pub(crate) use media::MediaContext;
use media::{Leg, LegEvent, Recording};

use api::edge_report::Report;
use api::router_instruction::Instruction;

/// A new INVITE (no To tag): admit it, then run the call.
pub(crate) async fn inbound(shared: Arc<Shared>, mut tx: Transaction) {
    let req = tx.original.clone();
    let dialled = dialled_number(&req);
    let directory = shared.directory.get();
    let Some(number) = directory.number(&dialled).cloned() else {
        Metrics::inc(&shared.metrics.calls_unknown_number);
        tracing::info!(number = %dialled, "call to an unknown number refused");
        let _ = tx.reply(StatusCode::NotFound).await;
        return;
    };
    let Some(trunk) = trunk_of(&shared, &mut tx, &number.tenant).await else {
        return; // answered already (407 or 403)
    };
    if !trunk.try_acquire() {
        Metrics::inc(&shared.metrics.calls_over_trunk_limit);
        tracing::info!(tenant = %trunk.tenant, trunk = %trunk.id, "call over the trunk's limit refused");
        let _ = tx
            .reply_with(
                StatusCode::ServiceUnavailable,
                vec![reason(
                    503,
                    &format!(
                        "trunk {} is at its limit of {} concurrent calls",
                        trunk.id,
                        trunk.max_calls.unwrap_or(0)
                    ),
                )],
                None,
            )
            .await;
        return;
    }
    let _place = TrunkPlace(trunk.clone());
    // the caller's media is taken from its SDP's address, or from this IP (strict RTP)
    let caller_peer = source_of(&tx).map(|(addr, _)| addr.ip());

    let (state_tx, state_rx) = shared.dialogs.new_dialog_state_channel();
    let mut contact = shared.contact.clone();
    if source_of(&tx).is_some_and(|(_, t)| t == Transport::Tcp) {
        // the trunk's in-dialog requests (ACK, BYE) come back over TCP too
        contact
            .params
            .push(rsipstack::sip::Param::Transport(Transport::Tcp));
    }
    let caller_dialog =
        match shared
            .dialogs
            .get_or_create_server_invite(&tx, state_tx.clone(), None, Some(contact))
        {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "cannot create the caller's dialog");
                let _ = tx.reply(StatusCode::BadRequest).await;
                return;
            }
        };
    let mut handler = caller_dialog.clone();
    tokio::spawn(async move {
        let _ = handler.handle(&mut tx).await;
    });

    let call_id = new_call_id();
    let caller = req
        .from_header()
        .ok()
        .and_then(|f| f.typed().ok())
        .and_then(|f| f.uri.user().map(str::to_owned))
        .unwrap_or_default();
    Metrics::inc(&shared.metrics.calls_arrived);
    shared
        .metrics
        .calls_active
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut call = Call {
        id: call_id,
        tenant: number.tenant.clone(),
        shared: shared.clone(),
        caller_dialog,
        caller_offer: req.body.clone(),
        caller_peer,
        caller_answered: false,
        caller_ended: false,
        caller_leg: None,
        state_tx,
        agents: HashMap::new(),
        bridged: None,
        caller_held: false,
        record: false,
        recording: None,
        collect: None,
        hold_prompt: None,
        reports: None,
        seq: 0,
        media_events: mpsc::channel(64),
        transfer: None,
    };
    call.run(number.number.to_string(), caller, state_rx).await;
    shared
        .metrics
        .calls_active
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    Metrics::inc(&shared.metrics.calls_ended);
}

/// Holds a place under the trunk's limit for as long as the call lives.
struct TrunkPlace(Arc<TrunkEntry>);
impl Drop for TrunkPlace {
    fn drop(&mut self) {
        self.0.release();
    }
}

fn new_call_id() -> String {
    format!("{:016x}{:016x}", crate::random_u64(), crate::random_u64())
}

/// The number dialled: the Request-URI's user part, else the To header's.
pub(crate) fn dialled_number(req: &Request) -> String {
    let from_uri = req.uri.user().map(str::to_owned);
    from_uri
        .or_else(|| {
            req.to_header()
                .ok()
                .and_then(|t| t.typed().ok())
                .and_then(|t| t.uri.user().map(str::to_owned))
        })
        .unwrap_or_default()
}

/// The value of a `Reason` header (RFC 3326).
fn reason_value(code: u16, text: &str) -> String {
    format!("SIP;cause={code};text=\"{}\"", text.replace('"', "'"))
}

/// A `Reason` header (RFC 3326).
fn reason(code: u16, text: &str) -> Header {
    Header::Reason(reason_value(code, text).into())
}

/// Which trunk of `tenant` the INVITE comes from: by source address, or by digest
/// authentication with a trunk account (in the edge's realm, for this Request-URI, not a
/// replay; failures counted and banned as for phones, `auth.rs`). Answers 407/403 itself
/// when there is none.
async fn trunk_of(shared: &Shared, tx: &mut Transaction, tenant: &str) -> Option<Arc<TrunkEntry>> {
    let directory = shared.directory.get();
    let source = source_of(tx);
    if let Some((source, _)) = source {
        if let Some(t) = directory.trunk_by_source(source, tenant) {
            return Some(t);
        }
    }
    let from = source.map_or(shared.local.ip(), |(s, _)| s.ip());
    let credentials = tx.original.headers.iter().find_map(|h| match h {
        Header::ProxyAuthorization(a) => digest::parse_authorization(a.value()).ok(),
        _ => None,
    });
    let user_key = credentials
        .as_ref()
        .map(|c| format!("trunk:{}", c.username));
    if user_key
        .as_deref()
        .is_some_and(|k| shared.defences.user_banned(k))
    {
        Metrics::inc(&shared.metrics.banned_user_requests);
        Metrics::inc(&shared.metrics.calls_forbidden);
        let _ = tx
            .reply_with(
                StatusCode::Forbidden,
                vec![auth::reason(auth::BANNED)],
                None,
            )
            .await;
        return None;
    }
    let checked = auth::check(shared, credentials.as_ref(), &tx.original.uri, from, |c| {
        directory
            .trunks_by_username(&c.username)
            .iter()
            .find(|t| {
                &*t.tenant == tenant
                    && t.password
                        .as_deref()
                        .is_some_and(|p| digest::verify(c, "INVITE", p))
            })
            .cloned()
    });
    match checked {
        Checked::Verified(trunk) => {
            if let Some(k) = &user_key {
                shared.defences.success(k);
            }
            Some(trunk)
        }
        Checked::Challenge { stale } => {
            // no credentials, a nonce that is not fresh, or a replay: challenge (the
            // number's tenant is known)
            let value = shared.nonces.challenge(&shared.options.realm, stale, from);
            let _ = tx
                .reply_with(
                    StatusCode::ProxyAuthenticationRequired,
                    vec![Header::ProxyAuthenticate(value.into())],
                    None,
                )
                .await;
            None
        }
        Checked::UriMismatch => {
            Metrics::inc(&shared.metrics.calls_forbidden);
            let _ = tx
                .reply_with(
                    StatusCode::Forbidden,
                    vec![auth::reason(auth::URI_MISMATCH)],
                    None,
                )
                .await;
            None
        }
        Checked::Failed => {
            Metrics::inc(&shared.metrics.calls_forbidden);
            shared.defences.failure(from, user_key.as_deref());
            tracing::info!(tenant, src = %from, "call from an unknown source refused");
            let _ = tx.reply(StatusCode::Forbidden).await;
            None
        }
    }
}

/// One agent being rung (on every registered device).
struct AgentRing {
    agent: String,
    legs: Vec<AgentLeg>,
    deadline: Instant,
    ringing_reported: bool,
    /// The device that answered.
    answered: Option<usize>,
    media: Leg,
    /// Failures seen so far (SIP codes), to report the most telling one.
    failures: Vec<u16>,
    /// The agent's phone holds the bridged call (its last re-INVITE was sendonly/inactive).
    held: bool,
}

struct AgentLeg {
    dialog: InviteDialog,
    call_id: String,
    over: bool,
    /// The device's IP address (where its INVITE went): its media may come from another
    /// port of it (strict RTP).
    peer: Option<IpAddr>,
}

impl AgentRing {
    /// The IP address of the device of the dialog `call_id`.
    fn peer_of(&self, call_id: &str) -> Option<IpAddr> {
        self.legs
            .iter()
            .find(|l| l.call_id == call_id)
            .and_then(|l| l.peer)
    }
}

struct Collect {
    max_digits: usize,
    timeout: Duration,
    digits: String,
    /// Set once the prompt ended.
    deadline: Option<Instant>,
}

/// A blind transfer asked for by an agent's REFER, waiting for the router's word.
struct PendingTransfer {
    agent: String,
    /// The report that carried it (its result says whether the router took it).
    seq: u64,
    /// When the REFER was answered 202; its NOTIFY waits for [`NOTIFY_AFTER_202`] past it.
    accepted: Instant,
}

/// How long a transfer's NOTIFY waits after the REFER's 202 was handed to the transaction.
/// RFC 6665 lets the NOTIFY come first, but the 202 leaves from the transaction's own task
/// with no word back when it has, and phones that see the outcome before the 202 may
/// mishandle it: the NOTIFY gives the 202 this head start (the router usually decides
/// sooner, so the phone hears the outcome at most this much later).
const NOTIFY_AFTER_202: Duration = Duration::from_millis(50);

struct Call {
    id: String,
    tenant: Arc<str>,
    shared: Arc<Shared>,
    caller_dialog: InviteDialog,
    caller_offer: Vec<u8>,
    /// The IP address the caller's INVITE came from (its SIP peer, for strict RTP).
    caller_peer: Option<IpAddr>,
    caller_answered: bool,
    caller_ended: bool,
    caller_leg: Option<Leg>,
    state_tx: DialogStateSender,
    agents: HashMap<String, AgentRing>,
    bridged: Option<String>,
    /// The caller's phone holds the bridged call (as the router was told).
    caller_held: bool,
    record: bool,
    recording: Option<Recording>,
    collect: Option<Collect>,
    hold_prompt: Option<String>,
    reports: Option<mpsc::Sender<api::EdgeReport>>,
    seq: u64,
    media_events: (mpsc::Sender<LegEvent>, mpsc::Receiver<LegEvent>),
    transfer: Option<PendingTransfer>,
}

/// How long the edge waits for the router's end of the stream after the call ended.
const LINGER: Duration = Duration::from_secs(5);

impl Call {
    async fn run(&mut self, number: String, caller: String, mut states: DialogStateReceiver) {
        // open the router's stream with the arrival
        let (tx, rx) = mpsc::channel::<api::EdgeReport>(32);
        self.seq = 1;
        let _ = tx
            .send(api::EdgeReport {
                call_id: self.id.clone(),
                seq: 1,
                ack: false,
                report: Some(Report::Arrived(api::Arrived {
                    number,
                    caller,
                    tenant: self.tenant.to_string(),
                    traceparent: String::new(),
                })),
            })
            .await;
        let opened = tokio::time::timeout(
            self.shared.options.router_timeout,
            self.shared.router.call(ReceiverStream::new(rx)),
        )
        .await;
        let mut instructions = match opened {
            Ok(Ok(instructions)) => instructions,
            Ok(Err(status)) => {
                self.refuse(&status).await;
                return;
            }
            Err(_) => {
                Metrics::inc(&self.shared.metrics.calls_router_failed);
                tracing::warn!(call = %self.id, "router did not answer in time; call refused");
                self.reject_caller(StatusCode::ServiceUnavailable, "router unavailable");
                return;
            }
        };
        self.reports = Some(tx);

        let mut stream_open = true;
        let mut linger_until: Option<Instant> = None;
        loop {
            if self.caller_ended && self.agents.is_empty() {
                if !stream_open {
                    break;
                }
                let until = *linger_until.get_or_insert_with(|| Instant::now() + LINGER);
                if Instant::now() >= until {
                    break;
                }
            }
            let deadline = self.next_deadline(linger_until);
            tokio::select! {
                ins = instructions.next(), if stream_open => match ins {
                    Some(Ok(i)) => {
                        if let Some(i) = i.instruction {
                            self.instruction(i).await;
                        }
                    }
                    None | Some(Err(_)) => {
                        stream_open = false;
                        if !self.caller_ended {
                            // the router is gone: never leave the caller hanging
                            tracing::warn!(call = %self.id, "router stream ended; hanging up");
                            self.hang_up_all(500, "router stream lost").await;
                        }
                    }
                },
                st = states.recv() => match st {
                    Some(st) => self.dialog_state(st).await,
                    None => break,
                },
                Some(ev) = self.media_events.1.recv() => self.media_event(ev).await,
                _ = sleep_until(deadline) => self.timeouts().await,
            }
        }
        self.finish_recording().await;
        // release every media port and forget every dialog
        self.caller_leg = None;
        self.shared.dialogs.remove_dialog(&self.caller_dialog.id());
    }

    fn next_deadline(&self, linger: Option<Instant>) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let rings = self
            .agents
            .values()
            .filter(|r| r.answered.is_none())
            .map(|r| r.deadline);
        let collect = self.collect.as_ref().and_then(|c| c.deadline);
        rings.chain(collect).chain(linger).min().unwrap_or(far)
    }

    async fn report(&mut self, r: Report) {
        self.send_report(r, false).await;
    }

    /// Sends a report; with `ack` the router answers it with a result either way. Returns
    /// its number.
    async fn send_report(&mut self, r: Report, ack: bool) -> u64 {
        self.seq += 1;
        if let Some(tx) = &self.reports {
            let _ = tx
                .send(api::EdgeReport {
                    call_id: self.id.clone(),
                    seq: self.seq,
                    ack,
                    report: Some(r),
                })
                .await;
        }
        self.seq
    }

    /// The router refused the arrival: tell the caller why.
    async fn refuse(&mut self, status: &tonic::Status) {
        use tonic::Code;
        let (code, counter) = match status.code() {
            Code::NotFound => (
                StatusCode::NotFound,
                &self.shared.metrics.calls_unknown_number,
            ),
            Code::ResourceExhausted => (
                StatusCode::ServiceUnavailable,
                &self.shared.metrics.calls_over_tenant_limit,
            ),
            Code::PermissionDenied => (StatusCode::Forbidden, &self.shared.metrics.calls_forbidden),
            Code::Unavailable => (
                StatusCode::ServiceUnavailable,
                &self.shared.metrics.calls_overloaded,
            ),
            _ => (
                StatusCode::ServiceUnavailable,
                &self.shared.metrics.calls_router_failed,
            ),
        };
        Metrics::inc(counter);
        tracing::info!(call = %self.id, code = ?status.code(), reason = %status.message(), "router refused the call");
        self.reject_caller(code, status.message());
    }

    fn reject_caller(&mut self, code: StatusCode, text: &str) {
        let numeric = u16::from(code.clone());
        let _ = self
            .caller_dialog
            .reject(Some(code), Some(reason_value(numeric, text)));
        self.caller_ended = true;
    }

    // ------------------------------------------------------------------ instructions

    async fn instruction(&mut self, i: Instruction) {
        match i {
            Instruction::Result(r) => {
                if r.code != 0 {
                    tracing::debug!(call = %self.id, seq = r.seq, code = r.code, message = %r.message, "router refused a report");
                }
                if self.transfer.as_ref().is_some_and(|t| t.seq == r.seq) {
                    self.transfer_result(&r).await;
                }
            }
            Instruction::Answer(_) => {
                self.answer_caller().await;
            }
            Instruction::PlayHoldMusic(p) => {
                let prompt = if p.prompt.is_empty() {
                    "hold".to_owned()
                } else {
                    p.prompt
                };
                self.hold_prompt = Some(prompt.clone());
                if self.bridged.is_none() {
                    if let Some(leg) = &self.caller_leg {
                        leg.loop_prompt(&prompt);
                    }
                }
            }
            Instruction::Announce(a) => {
                if self.bridged.is_none() {
                    let parts = media::announcement(a.position, a.expected_wait_ms);
                    let then = self.hold_prompt.clone();
                    if let Some(leg) = &self.caller_leg {
                        leg.play(parts, then);
                    }
                }
            }
            Instruction::CollectDigits(c) => {
                self.answer_caller().await;
                self.collect = Some(Collect {
                    max_digits: c.max_digits.max(1) as usize,
                    timeout: Duration::from_millis(c.timeout_ms.max(1)),
                    digits: String::new(),
                    deadline: None,
                });
                match &self.caller_leg {
                    Some(leg) if !c.prompt.is_empty() => leg.play(vec![c.prompt], None),
                    _ => {
                        if let Some(col) = &mut self.collect {
                            col.deadline = Some(Instant::now() + col.timeout);
                        }
                    }
                }
            }
            Instruction::Ring(r) => self.ring(r).await,
            Instruction::CancelRing(c) => self.cancel_ring(&c.agent).await,
            Instruction::Bridge(b) => self.bridge(&b.agent).await,
            Instruction::Record(_) => {
                self.record = true;
                if self.bridged.is_some() {
                    self.start_recording().await;
                }
            }
            Instruction::Hangup(h) => {
                let cause = if h.cause.is_empty() {
                    "normal".to_owned()
                } else {
                    h.cause
                };
                let code = hangup_code(&cause);
                self.hang_up_all(code, &cause).await;
            }
        }
    }

    async fn answer_caller(&mut self) {
        if self.caller_answered || self.caller_ended {
            return;
        }
        let leg = match self.shared.media.leg(self.media_events.0.clone()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(call = %self.id, error = %e, "no media port for the caller");
                self.reject_caller(StatusCode::ServiceUnavailable, "no media resources");
                self.report(Report::Hangup(api::Hangup {
                    party: api::Party::Caller as i32,
                    sip_code: 503,
                }))
                .await;
                return;
            }
        };
        let body = if self.caller_offer.is_empty() {
            // late offer: ours goes in the 200, the caller's answer comes with the ACK
            Ok(leg.offer())
        } else {
            leg.answer_offer(&self.caller_offer, self.caller_peer)
        };
        match body {
            Ok(sdp) => {
                let headers = vec![Header::ContentType("application/sdp".into())];
                if self.caller_dialog.accept(Some(headers), Some(sdp)).is_ok() {
                    self.caller_answered = true;
                    self.caller_leg = Some(leg);
                }
            }
            Err(e) => {
                tracing::info!(call = %self.id, error = %e, "caller's offer not acceptable");
                self.reject_caller(StatusCode::NotAcceptableHere, &e);
                self.report(Report::Hangup(api::Hangup {
                    party: api::Party::Caller as i32,
                    sip_code: 488,
                }))
                .await;
            }
        }
    }

    async fn ring(&mut self, r: api::Ring) {
        if self.caller_ended {
            return;
        }
        if self.agents.contains_key(&r.agent) {
            return; // already ringing
        }
        let key = (self.tenant.clone(), Arc::<str>::from(r.agent.as_str()));
        let mut targets: Vec<(String, SipAddr)> = self
            .shared
            .registrar
            .lookup(&key, std::time::Instant::now())
            .into_iter()
            .map(|b| (b.contact, SipAddr::new(b.transport, b.target.into())))
            .collect();
        if targets.is_empty() {
            // no registered phone: the login's SIP devices, if any (never ourselves)
            for d in r.devices.iter().filter(|d| d.starts_with("sip:")) {
                let Ok(uri) = rsipstack::sip::Uri::try_from(d.as_str()) else {
                    continue;
                };
                let Ok(addr) = SipAddr::try_from(&uri) else {
                    continue;
                };
                match addr.get_socketaddr() {
                    Ok(sa) if sa != self.shared.local => targets.push((d.clone(), addr)),
                    _ => {}
                }
            }
        }
        if targets.is_empty() {
            tracing::debug!(call = %self.id, agent = %r.agent, "agent has no registered device");
            self.offer_failed(r.agent, api::FailureCause::Unreachable, 480)
                .await;
            return;
        }
        let media = match self.shared.media.leg(self.media_events.0.clone()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(call = %self.id, error = %e, "no media port for the agent leg");
                self.offer_failed(r.agent, api::FailureCause::Unreachable, 503)
                    .await;
                return;
            }
        };
        let offer = media.offer();
        let caller_uri = self
            .caller_dialog
            .initial_request()
            .from_header()
            .ok()
            .and_then(|f| f.typed().ok())
            .map(|f| f.uri)
            .unwrap_or_else(|| self.shared.contact.clone());
        let mut legs = Vec::new();
        for (contact, dest) in targets {
            let Ok(callee) = rsipstack::sip::Uri::try_from(contact.as_str()) else {
                continue;
            };
            let transport = dest.r#type.unwrap_or(Transport::Udp);
            let peer = dest.get_socketaddr().ok().map(|a| a.ip());
            let mut our_contact = self.shared.contact.clone();
            if transport == Transport::Tcp {
                our_contact
                    .params
                    .push(rsipstack::sip::Param::Transport(Transport::Tcp));
            }
            let opt = InviteOption {
                caller: rsipstack::sip::Uri {
                    host_with_port: std::net::SocketAddr::new(
                        self.shared.advertise_ip,
                        self.shared.local.port(),
                    )
                    .into(),
                    ..caller_uri.clone()
                },
                callee,
                destination: Some(dest),
                contact: our_contact,
                offer: Some(offer.clone()),
                content_type: Some("application/sdp".into()),
                headers: Some(vec![Header::Other(
                    "X-Callgrid-Call".into(),
                    self.id.clone(),
                )]),
                ..Default::default()
            };
            match self
                .shared
                .dialogs
                .do_invite_async(opt, self.state_tx.clone())
            {
                Ok((dialog, _join)) => {
                    Metrics::inc(&self.shared.metrics.agent_legs);
                    let call_id = dialog.id().call_id.clone();
                    legs.push(AgentLeg {
                        dialog,
                        call_id,
                        over: false,
                        peer,
                    });
                }
                Err(e) => tracing::debug!(call = %self.id, error = %e, "cannot invite a device"),
            }
        }
        if legs.is_empty() {
            self.offer_failed(r.agent, api::FailureCause::Unreachable, 480)
                .await;
            return;
        }
        let timeout = Duration::from_millis(if r.timeout_ms == 0 {
            20_000
        } else {
            r.timeout_ms
        });
        self.agents.insert(
            r.agent.clone(),
            AgentRing {
                agent: r.agent,
                legs,
                deadline: Instant::now() + timeout,
                ringing_reported: false,
                answered: None,
                held: false,
                media,
                failures: Vec::new(),
            },
        );
    }

    /// Ends every leg toward an agent (CANCEL before an answer, BYE after).
    async fn cancel_ring(&mut self, agent: &str) {
        if let Some(ring) = self.agents.remove(agent) {
            if self.bridged.as_deref() == Some(agent) {
                self.bridged = None;
                if let Some(caller) = &self.caller_leg {
                    media::unbridge(caller, &ring.media);
                }
            }
            if let Some(t) = self.transfer.take_if(|t| t.agent == agent) {
                // the router took the agent's transfer: tell its phone (RFC 3515 NOTIFY with
                // a sipfrag) before the BYE, without holding the call up meanwhile
                Metrics::inc(&self.shared.metrics.transfers);
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    if let Some(leg) = ring.answered.map(|i| &ring.legs[i]) {
                        sleep_until(t.accepted + NOTIFY_AFTER_202).await;
                        let _ = leg
                            .dialog
                            .notify_refer(StatusCode::OK, "terminated;reason=noresource")
                            .await;
                    }
                    end_agent_legs(&shared, ring).await;
                });
                return;
            }
            end_agent_legs(&self.shared, ring).await;
        }
    }

    /// An agent's phone asks to hand the call on (blind transfer, RFC 3515 REFER): accepted
    /// at once (202), then the router decides; the NOTIFY tells the phone how it went.
    async fn refer(&mut self, agent: &str, req: &Request, handle: TransactionHandle) {
        let refused = |code: u16, text: &str| (StatusCode::from(code), vec![reason(code, text)]);
        let refer_to = req.headers.iter().find_map(|h| match h {
            Header::ReferTo(r) => Some(r.value().to_owned()),
            _ => None,
        });
        let problem = if self.bridged.as_deref() != Some(agent) {
            Some(refused(
                403,
                "only the agent talking to the caller can transfer",
            ))
        } else if self.transfer.is_some() {
            Some(refused(491, "a transfer is already in progress"))
        } else {
            match refer_to.as_deref().map(refer_target) {
                None | Some(Err(ReferProblem::Malformed)) => {
                    Some(refused(400, "Refer-To is missing or not a SIP URI"))
                }
                Some(Err(ReferProblem::Attended)) => Some(refused(
                    501,
                    "attended transfer (Replaces) is not supported; transfer blind",
                )),
                Some(Ok(_)) => None,
            }
        };
        if let Some((code, headers)) = problem {
            let _ = handle.respond(code, Some(headers), None).await;
            return;
        }
        let Some(Ok(target)) = refer_to.as_deref().map(refer_target) else {
            return;
        };
        let _ = handle.reply(StatusCode::Accepted).await;
        let accepted = Instant::now();
        tracing::info!(call = %self.id, agent, target = %target, "agent transfers the call");
        let seq = self
            .send_report(
                Report::Transfer(api::TransferRequest {
                    tenant: String::new(),
                    agent: agent.to_owned(),
                    target,
                }),
                true,
            )
            .await;
        self.transfer = Some(PendingTransfer {
            agent: agent.to_owned(),
            seq,
            accepted,
        });
    }

    /// The router's word on a pending transfer. Taken: its instructions (CancelRing first)
    /// came before this result, so there is nothing left to do. Refused: the phone hears why
    /// and the call stays as it was.
    async fn transfer_result(&mut self, r: &api::ReportResult) {
        let Some(t) = self.transfer.take() else {
            return;
        };
        if r.code == 0 {
            return;
        }
        tracing::info!(call = %self.id, agent = %t.agent, reason = %r.message, "transfer refused by the router");
        Metrics::inc(&self.shared.metrics.transfers_refused);
        let code = match tonic::Code::from_i32(r.code) {
            tonic::Code::NotFound => StatusCode::NotFound,
            tonic::Code::InvalidArgument => StatusCode::BadRequest,
            tonic::Code::FailedPrecondition | tonic::Code::PermissionDenied => {
                StatusCode::Forbidden
            }
            _ => StatusCode::ServiceUnavailable,
        };
        match self
            .agents
            .get(&t.agent)
            .and_then(|ring| ring.answered.map(|i| ring.legs[i].dialog.clone()))
        {
            Some(leg) => {
                tokio::spawn(async move {
                    sleep_until(t.accepted + NOTIFY_AFTER_202).await;
                    let _ = leg.notify_refer(code, "terminated;reason=noresource").await;
                });
            }
            None => {
                // the phone hung up after its REFER and the transfer did not happen: the
                // agent has left the call, as a plain hang-up would have said
                self.report(Report::Hangup(api::Hangup {
                    party: api::Party::Agent as i32,
                    sip_code: 0,
                }))
                .await;
            }
        }
    }

    async fn bridge(&mut self, agent: &str) {
        let answered = self.agents.get(agent).is_some_and(|r| r.answered.is_some());
        if !answered {
            tracing::warn!(call = %self.id, agent, "bridge to an agent whose phone has not answered");
            return;
        }
        // the caller may not be answered yet (a direct ring): answer now
        self.answer_caller().await;
        self.collect = None;
        let (Some(caller), Some(ring)) = (&self.caller_leg, self.agents.get(agent)) else {
            return;
        };
        caller.stop_playing();
        media::bridge(caller, &ring.media);
        self.bridged = Some(agent.to_owned());
        // a new bridge starts off hold (the router forgets holds on answer and transfer)
        self.caller_held = false;
        if self.record {
            self.start_recording().await;
        }
    }

    async fn start_recording(&mut self) {
        if self.recording.is_some() {
            return;
        }
        let (Some(caller), Some(agent)) = (
            &self.caller_leg,
            self.bridged.as_ref().and_then(|a| self.agents.get(a)),
        ) else {
            return;
        };
        match self
            .shared
            .media
            .record(&self.tenant, &self.id, caller, &agent.media)
            .await
        {
            Ok(rec) => {
                let path = rec.path().display().to_string();
                self.recording = Some(rec);
                self.report(Report::Recording(api::RecordingStarted { path }))
                    .await;
            }
            Err(e) => tracing::warn!(call = %self.id, error = %e, "recording could not start"),
        }
    }

    async fn finish_recording(&mut self) {
        if let Some(rec) = self.recording.take() {
            match rec.finish().await {
                Ok((path, secs)) => {
                    Metrics::inc(&self.shared.metrics.recordings);
                    tracing::info!(call = %self.id, path = %path.display(), seconds = secs, "recording written");
                }
                Err(e) => {
                    tracing::warn!(call = %self.id, error = %e, "recording could not be finished")
                }
            }
        }
    }

    /// Ends the call from our side: caller and every agent leg.
    async fn hang_up_all(&mut self, code: u16, cause: &str) {
        self.end_all_rings().await;
        if !self.caller_ended {
            self.caller_ended = true;
            if self.caller_answered {
                let _ = self
                    .caller_dialog
                    .bye_with_reason(reason_value(code, cause))
                    .await;
            } else {
                let status = StatusCode::from(code);
                let _ = self
                    .caller_dialog
                    .reject(Some(status), Some(reason_value(code, cause)));
            }
        }
        if let Some(leg) = &self.caller_leg {
            leg.stop_playing();
        }
    }

    /// Ends every agent leg of the call; nothing is bridged any more.
    async fn end_all_rings(&mut self) {
        let rings: Vec<AgentRing> = self.agents.drain().map(|(_, r)| r).collect();
        for ring in rings {
            end_agent_legs(&self.shared, ring).await;
        }
        self.bridged = None;
    }

    /// Tells the router that offering the call to `agent` failed.
    async fn offer_failed(&mut self, agent: String, cause: api::FailureCause, sip_code: u16) {
        self.report(Report::OfferFailed(api::OfferFailed {
            agent,
            cause: cause as i32,
            sip_code: u32::from(sip_code),
        }))
        .await;
    }

    // ------------------------------------------------------------------ dialog events

    async fn dialog_state(&mut self, st: DialogState) {
        let caller_call_id = self.caller_dialog.id().call_id.clone();
        let id_call = st.id().call_id.clone();
        if id_call == caller_call_id {
            self.caller_state(st).await;
        } else if let Some(agent) = self
            .agents
            .iter()
            .find(|(_, r)| r.legs.iter().any(|l| l.call_id == id_call))
            .map(|(a, _)| a.clone())
        {
            self.agent_state(&agent, &id_call, st).await;
        } else {
            // a leg we already let go of: answer whatever it asks so it does not hang
            match st {
                DialogState::Info(_, _, h) | DialogState::Updated(_, _, h) => {
                    let _ = h.reply(StatusCode::OK).await;
                }
                other => answer_unserved(other).await,
            }
        }
    }

    async fn caller_state(&mut self, st: DialogState) {
        match st {
            DialogState::Terminated(_, why) => {
                if self.caller_ended {
                    return;
                }
                self.caller_ended = true;
                let code = match why {
                    TerminatedReason::UacCancel => 487,
                    TerminatedReason::Timeout => 408,
                    _ => 0,
                };
                self.report(Report::Hangup(api::Hangup {
                    party: api::Party::Caller as i32,
                    sip_code: code,
                }))
                .await;
                self.end_all_rings().await;
                if let Some(leg) = &self.caller_leg {
                    leg.stop_playing();
                }
            }
            DialogState::Confirmed(_, _) if self.caller_offer.is_empty() => {
                // late offer: the caller's answer came with the ACK
                if let (Some(ack), Some(leg)) =
                    (self.caller_dialog.last_remote_ack(), &self.caller_leg)
                {
                    if !ack.body.is_empty() {
                        let _ = leg.apply_answer(&ack.body, self.caller_peer);
                    }
                }
            }
            DialogState::Info(_, req, handle) => {
                self.info(&req, handle).await;
            }
            DialogState::Updated(_, req, handle) => {
                // re-INVITE (hold/unhold) or UPDATE from the caller
                let answer = match &self.caller_leg {
                    Some(leg) if !req.body.is_empty() => leg.reoffer(&req.body, self.caller_peer),
                    Some(leg) => Ok((leg.current_answer(), false)),
                    None => Err("no session".into()),
                };
                // an offer without a body (a session refresh) changes no hold
                let hold = match &answer {
                    Ok((_, hold)) if !req.body.is_empty() => Some(*hold),
                    _ => None,
                };
                respond_sdp(handle, answer).await;
                if let Some(hold) = hold {
                    if self.bridged.is_some() && hold != self.caller_held {
                        self.caller_held = hold;
                        self.report(hold_report(api::Party::Caller, hold)).await;
                    }
                }
            }
            other => answer_unserved(other).await,
        }
    }

    async fn agent_state(&mut self, agent: &str, call_id: &str, st: DialogState) {
        match st {
            DialogState::Early(_, resp) => {
                let report = {
                    let Some(ring) = self.agents.get_mut(agent) else {
                        return;
                    };
                    if !resp.body.is_empty() {
                        // early media toward the agent is not used, but an answer may come here
                        let _ = ring.media.apply_answer(&resp.body, ring.peer_of(call_id));
                    }
                    let first = !ring.ringing_reported;
                    ring.ringing_reported = true;
                    first
                };
                if report {
                    if !self.caller_answered && !self.caller_ended {
                        // a caller not yet answered (a direct ring) hears ringing
                        let _ = self.caller_dialog.ringing(None, None);
                    }
                    self.report(Report::Ringing(api::AgentRinging {
                        agent: agent.to_owned(),
                    }))
                    .await;
                }
            }
            DialogState::Confirmed(_, resp) => {
                let Some(ring) = self.agents.get_mut(agent) else {
                    return;
                };
                let Some(index) = ring.legs.iter().position(|l| l.call_id == call_id) else {
                    return;
                };
                if ring.answered.is_some() {
                    // a second device answered too: it is not needed
                    let leg = &mut ring.legs[index];
                    if ring.answered != Some(index) && !leg.over {
                        leg.over = true;
                        let _ = leg.dialog.bye().await;
                    }
                    return;
                }
                ring.answered = Some(index);
                if let Err(e) = ring.media.apply_answer(&resp.body, ring.legs[index].peer) {
                    tracing::info!(call = %self.id, agent, error = %e, "agent's answer not usable");
                }
                Metrics::inc(&self.shared.metrics.agent_legs_answered);
                // the other devices stop ringing
                for (i, l) in ring.legs.iter_mut().enumerate() {
                    if i != index && !l.over {
                        l.over = true;
                        let _ = l.dialog.hangup().await;
                    }
                }
                self.report(Report::Answered(api::AgentAnswered {
                    agent: agent.to_owned(),
                }))
                .await;
            }
            DialogState::Terminated(_, why) => {
                let Some(ring) = self.agents.get_mut(agent) else {
                    return;
                };
                let Some(index) = ring.legs.iter().position(|l| l.call_id == call_id) else {
                    return;
                };
                let leg = &mut ring.legs[index];
                let by_us = leg.over;
                leg.over = true;
                self.shared.dialogs.remove_dialog(&leg.dialog.id());
                if ring.answered == Some(index) {
                    if by_us {
                        return;
                    }
                    if self.transfer.as_ref().is_some_and(|t| t.agent == agent) {
                        // a phone that hangs up right after its REFER: the transfer goes on,
                        // the router's word decides what the caller gets
                        if let Some(ring) = self.agents.remove(agent) {
                            if let Some(caller) = &self.caller_leg {
                                media::unbridge(caller, &ring.media);
                            }
                        }
                        if self.bridged.as_deref() == Some(agent) {
                            self.bridged = None;
                        }
                        return;
                    }
                    // the agent hung up an answered call
                    let was_bridged = self.bridged.as_deref() == Some(agent);
                    if let Some(ring) = self.agents.remove(agent) {
                        drop(ring);
                    }
                    if was_bridged {
                        self.bridged = None;
                        self.report(Report::Hangup(api::Hangup {
                            party: api::Party::Agent as i32,
                            sip_code: 0,
                        }))
                        .await;
                        // the router decides what follows; by default it ends the call
                    } else {
                        self.offer_failed(agent.to_owned(), api::FailureCause::Rejected, 0)
                            .await;
                    }
                    return;
                }
                if by_us {
                    return;
                }
                ring.failures.push(terminated_code(&why));
                let all_over = ring.answered.is_none() && ring.legs.iter().all(|l| l.over);
                if all_over {
                    let (cause, code) = failure_of(&ring.failures);
                    self.agents.remove(agent);
                    self.offer_failed(agent.to_owned(), cause, code).await;
                }
            }
            DialogState::Info(_, req, handle) => self.info(&req, handle).await,
            DialogState::Refer(_, req, handle) => self.refer(agent, &req, handle).await,
            DialogState::Updated(_, req, handle) => {
                // the agent holds or resumes: the caller hears hold music meanwhile (C5)
                let (answer, hold) = match self.agents.get(agent) {
                    Some(ring) if !req.body.is_empty() => {
                        match ring.media.reoffer(&req.body, ring.peer_of(call_id)) {
                            Ok((a, hold)) => (Ok((a.clone(), hold)), Some(hold)),
                            Err(e) => (Err(e), None),
                        }
                    }
                    // an offer without a body (a session refresh) changes no hold
                    Some(ring) => (Ok((ring.media.current_answer(), false)), None),
                    None => (Err("no session".into()), None),
                };
                let bridged = self.bridged.as_deref() == Some(agent);
                let mut changed = false;
                if let (Some(hold), true) = (hold, bridged) {
                    if let (Some(caller), Some(ring)) =
                        (&self.caller_leg, self.agents.get_mut(agent))
                    {
                        if hold {
                            media::unbridge(caller, &ring.media);
                            caller.loop_prompt(self.hold_prompt.as_deref().unwrap_or("hold"));
                        } else {
                            caller.stop_playing();
                            media::bridge(caller, &ring.media);
                        }
                        changed = ring.held != hold;
                        ring.held = hold;
                    }
                }
                respond_sdp(handle, answer).await;
                if let (Some(hold), true) = (hold, changed) {
                    self.report(hold_report(api::Party::Agent, hold)).await;
                }
            }
            other => answer_unserved(other).await,
        }
    }

    /// DTMF by SIP INFO (application/dtmf-relay or application/dtmf).
    async fn info(&mut self, req: &Request, handle: TransactionHandle) {
        match info_digit(req) {
            InfoDigit::Digit(d) => {
                let _ = handle.reply(StatusCode::OK).await;
                self.digit(d).await;
            }
            InfoDigit::Unsupported => {
                let _ = handle.reply(StatusCode::UnsupportedMediaType).await;
            }
            InfoDigit::Bad => {
                let _ = handle.reply(StatusCode::BadRequest).await;
            }
        }
    }

    async fn digit(&mut self, d: char) {
        Metrics::inc(&self.shared.metrics.digits);
        let Some(c) = &mut self.collect else {
            return; // digits outside a collection are not routing input
        };
        if c.digits.is_empty() {
            if let Some(leg) = &self.caller_leg {
                leg.stop_playing(); // barge-in
            }
        }
        c.digits.push(d);
        if c.digits.len() >= c.max_digits {
            let digits = std::mem::take(&mut c.digits);
            self.collect = None;
            self.report(Report::Digits(api::Digits { digits })).await;
        } else {
            c.deadline = Some(Instant::now() + c.timeout);
        }
    }

    async fn media_event(&mut self, ev: LegEvent) {
        let Some(caller) = &self.caller_leg else {
            return;
        };
        if caller.id() != ev.leg {
            return; // agents' digits and prompts do not route
        }
        match ev.kind {
            LegEventKind::Digit(d) => self.digit(d).await,
            LegEventKind::PlayDone(id) if !caller.play_done(id) => {
                // the menu prompt ended: the digit timeout starts now
                if let Some(c) = &mut self.collect {
                    if c.deadline.is_none() {
                        c.deadline = Some(Instant::now() + c.timeout);
                    }
                }
            }
            _ => {}
        }
    }

    async fn timeouts(&mut self) {
        let now = Instant::now();
        if let Some(c) = &self.collect {
            if c.deadline.is_some_and(|d| d <= now) {
                let digits = c.digits.clone();
                self.collect = None;
                if digits.is_empty() {
                    self.report(Report::CollectTimeout(api::CollectTimeout {}))
                        .await;
                } else {
                    self.report(Report::Digits(api::Digits { digits })).await;
                }
            }
        }
        let expired: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, r)| r.answered.is_none() && r.deadline <= now)
            .map(|(a, _)| a.clone())
            .collect();
        for agent in expired {
            if let Some(ring) = self.agents.remove(&agent) {
                end_agent_legs(&self.shared, ring).await;
                self.report(Report::OfferFailed(api::OfferFailed {
                    agent,
                    cause: api::FailureCause::NoAnswer as i32,
                    sip_code: 408,
                }))
                .await;
            }
        }
    }
}

/// CANCEL what rings, BYE what answered; forget the dialogs.
async fn end_agent_legs(shared: &Shared, mut ring: AgentRing) {
    for (i, leg) in ring.legs.iter_mut().enumerate() {
        if leg.over {
            continue;
        }
        leg.over = true;
        if ring.answered == Some(i) {
            let _ = leg.dialog.bye().await;
        } else {
            let _ = leg.dialog.hangup().await;
        }
        shared.dialogs.remove_dialog(&leg.dialog.id());
    }
    tracing::trace!(agent = %ring.agent, "agent legs ended");
}

/// The report of a party's hold (`true`) or resume.
fn hold_report(party: api::Party, hold: bool) -> Report {
    let party = party as i32;
    if hold {
        Report::Held(api::Held { party })
    } else {
        Report::Resumed(api::Resumed { party })
    }
}

async fn respond_sdp(handle: TransactionHandle, answer: Result<(Vec<u8>, bool), String>) {
    match answer {
        Ok((sdp, _)) => {
            let _ = handle
                .respond(
                    StatusCode::OK,
                    Some(vec![Header::ContentType("application/sdp".into())]),
                    Some(sdp),
                )
                .await;
        }
        Err(_) => {
            let _ = handle.reply(StatusCode::NotAcceptableHere).await;
        }
    }
}

/// What an INFO request carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InfoDigit {
    /// A DTMF key: `0-9`, `*` or `#`.
    Digit(char),
    /// Neither application/dtmf-relay nor application/dtmf: 415.
    Unsupported,
    /// A DTMF body without a key: 400.
    Bad,
}

/// The key of an INFO request's DTMF body (application/dtmf-relay `Signal=5`, or
/// application/dtmf `5`).
pub(crate) fn info_digit(req: &Request) -> InfoDigit {
    let content_type = req
        .headers
        .iter()
        .find_map(|h| match h {
            Header::ContentType(c) => Some(c.value().to_ascii_lowercase()),
            _ => None,
        })
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&req.body);
    let digit = if content_type.starts_with("application/dtmf-relay") {
        body.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Signal=")
                    .or_else(|| l.trim().strip_prefix("Signal ="))
            })
            .and_then(|s| s.trim().chars().next())
    } else if content_type.starts_with("application/dtmf") {
        body.trim().chars().next()
    } else {
        return InfoDigit::Unsupported;
    };
    match digit {
        Some(d) if d.is_ascii_digit() || d == '*' || d == '#' => InfoDigit::Digit(d),
        _ => InfoDigit::Bad,
    }
}

/// Why a Refer-To cannot be followed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReferProblem {
    Malformed,
    /// It names a dialog to replace (attended transfer, RFC 3891).
    Attended,
}

/// The target of a blind transfer: the user part of the Refer-To URI (`<sip:201@host>` →
/// `201`), percent-decoded; the router resolves it (extension, queue, agent, number...).
pub(crate) fn refer_target(value: &str) -> Result<String, ReferProblem> {
    let v = value.trim();
    let uri = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or_default(),
    };
    if uri.to_ascii_lowercase().contains("replaces=") {
        return Err(ReferProblem::Attended);
    }
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .ok_or(ReferProblem::Malformed)?;
    let user = match rest.split_once('@') {
        Some((user, _)) => user,
        None if uri.starts_with("tel:") => rest,
        None => return Err(ReferProblem::Malformed),
    };
    let user = user.split([';', '?', ':']).next().unwrap_or_default();
    let decoded = percent_decode(user);
    if decoded.is_empty() {
        return Err(ReferProblem::Malformed);
    }
    Ok(decoded)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers the in-dialog requests a call does not act on: OPTIONS gets 200; REFER, NOTIFY,
/// MESSAGE and PUBLISH get 405. Other states need no answer.
async fn answer_unserved(st: DialogState) {
    match st {
        DialogState::Options(_, _, h) => {
            let _ = h.reply(StatusCode::OK).await;
        }
        DialogState::Refer(_, _, h)
        | DialogState::Notify(_, _, h)
        | DialogState::Message(_, _, h)
        | DialogState::Publish(_, _, h) => {
            let _ = h.reply(StatusCode::MethodNotAllowed).await;
        }
        _ => {}
    }
}

fn terminated_code(why: &TerminatedReason) -> u16 {
    match why {
        TerminatedReason::Timeout => 408,
        TerminatedReason::UasBusy | TerminatedReason::UacBusy => 486,
        TerminatedReason::UasDecline => 603,
        TerminatedReason::UasOther(c)
        | TerminatedReason::UacOther(c)
        | TerminatedReason::ProxyError(c) => u16::from(c.clone()),
        TerminatedReason::ProxyAuthRequired => 407,
        TerminatedReason::UacCancel => 487,
        TerminatedReason::UacBye | TerminatedReason::UasBye => 0,
    }
}

/// What the router hears when every device of an agent failed: busy wins, then a decline,
/// then no answer; anything else is "unreachable".
fn failure_of(codes: &[u16]) -> (api::FailureCause, u16) {
    use api::FailureCause as F;
    let has = |c: u16| codes.contains(&c);
    if has(486) || has(600) {
        (F::Busy, 486)
    } else if has(603) {
        (F::Rejected, 603)
    } else if has(480) || has(408) || has(487) {
        (F::NoAnswer, if has(480) { 480 } else { 408 })
    } else {
        (F::Unreachable, codes.first().copied().unwrap_or(500))
    }
}

/// The SIP status for a router hang-up cause when the caller was never answered.
fn hangup_code(cause: &str) -> u16 {
    match cause {
        "queue_full" | "busy" => 486,
        "closed" | "no_agents" | "queue_timeout" | "no_answer" => 480,
        "invalid_input" | "no_input" => 404,
        "edge_lost" => 500,
        _ => 480,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_wins_over_no_answer_and_decline() {
        assert_eq!(failure_of(&[408, 486]), (api::FailureCause::Busy, 486));
        assert_eq!(failure_of(&[603, 480]), (api::FailureCause::Rejected, 603));
        assert_eq!(failure_of(&[480]), (api::FailureCause::NoAnswer, 480));
        assert_eq!(failure_of(&[408]), (api::FailureCause::NoAnswer, 408));
        assert_eq!(failure_of(&[503]), (api::FailureCause::Unreachable, 503));
    }

    #[test]
    fn refer_to_names_the_transfer_target() {
        assert_eq!(refer_target("<sip:201@10.0.0.1:5060>"), Ok("201".into()));
        assert_eq!(
            refer_target("\"Sales\" <sip:%2B15550000200@edge;user=phone>;x=1"),
            Ok("+15550000200".into())
        );
        assert_eq!(refer_target("sip:10003@edge"), Ok("10003".into()));
        assert_eq!(
            refer_target("<tel:+15550000200>"),
            Ok("+15550000200".into())
        );
        assert_eq!(
            refer_target("<sip:ann@edge?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>"),
            Err(ReferProblem::Attended)
        );
        assert_eq!(refer_target("<http://x>"), Err(ReferProblem::Malformed));
        assert_eq!(refer_target("<sip:@edge>"), Err(ReferProblem::Malformed));
        assert_eq!(refer_target(""), Err(ReferProblem::Malformed));
    }
}
