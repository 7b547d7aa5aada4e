//! The shell of one call: the task that owns its IO — the caller's dialog (we are its UAS),
//! the agents' dialogs (we are their UAC), the RTP legs, the recording and the router's
//! stream — and runs the call's core (`core.rs`) over it. It turns what the SIP stack, the
//! media engine, the router and the clock say into the core's inputs, and carries out the
//! core's actions. One task owns all of it, so the order of what happens on the call is the
//! order of its select loop.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use callgrid_media::LegEventKind;
use callgrid_proto::api::v1 as api;
use futures::StreamExt;
use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, DialogStateSender, TerminatedReason, TransactionHandle,
};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Request, StatusCode, Transport};
use rsipstack::transport::SipAddr;
use tokio::sync::mpsc;

use super::core::{Action, CallCore, CallerMedia, Input, LegKey, Notify};
use super::media::{self, Leg, LegEvent, Recording};
use super::sip::{info_digit, reason, reason_value, terminated_code, InfoDigit};
use crate::metrics::Metrics;
use crate::Shared;

/// An agent's part of the call: its media leg and the dialogs toward its devices.
struct AgentIo {
    media: Leg,
    legs: HashMap<LegKey, DeviceLeg>,
}

struct DeviceLeg {
    dialog: InviteDialog,
    /// The device's IP address (where its INVITE went): its media may come from another
    /// port of it (strict RTP).
    peer: Option<IpAddr>,
    /// A phone that dialled out (we are its UAS): the SDP its 183 and 200 carry, and whether
    /// it is our offer (the phone's INVITE had none: its answer comes with the ACK).
    dialled: Option<(Vec<u8>, bool)>,
}

impl AgentIo {
    fn peer_of(&self, leg: &str) -> Option<IpAddr> {
        self.legs.get(leg).and_then(|l| l.peer)
    }
}

/// One call's IO, and its core.
pub(super) struct CallTask {
    pub(super) id: String,
    pub(super) tenant: Arc<str>,
    pub(super) shared: Arc<Shared>,
    /// The caller's dialog (we are its UAS); for a call out, the customer's (we are its UAC),
    /// once dialled.
    pub(super) caller_dialog: Option<InviteDialog>,
    /// A call out: the trunk carrying the customer's leg now, holding a place under its limit.
    customer_trunk: Option<(String, Arc<crate::directory::TrunkEntry>)>,
    /// A call out (the router placed it).
    outbound: bool,
    /// A call out's customer answered.
    customer_answered: bool,
    pub(super) caller_offer: Vec<u8>,
    /// The IP address the caller's INVITE came from (its SIP peer, for strict RTP).
    pub(super) caller_peer: Option<IpAddr>,
    pub(super) state_tx: DialogStateSender,
    caller_leg: Option<Leg>,
    agents: HashMap<String, AgentIo>,
    recording: Option<Recording>,
    reports: mpsc::Sender<api::EdgeReport>,
    media_events: (mpsc::Sender<LegEvent>, mpsc::Receiver<LegEvent>),
    /// In-dialog requests the core answers (`Action::Respond`).
    requests: HashMap<u64, TransactionHandle>,
    next_request: u64,
    core: CallCore,
}

/// The caller's side of a new call, as admission left it.
pub(super) struct Caller {
    pub(super) dialog: InviteDialog,
    pub(super) offer: Vec<u8>,
    pub(super) peer: Option<IpAddr>,
    pub(super) state_tx: DialogStateSender,
}

impl CallTask {
    /// A call whose arrival the router took; `reports` is the router's stream.
    pub(super) fn new(
        id: String,
        tenant: Arc<str>,
        shared: Arc<Shared>,
        caller: Caller,
        reports: mpsc::Sender<api::EdgeReport>,
    ) -> CallTask {
        CallTask {
            caller_dialog: Some(caller.dialog),
            outbound: false,
            caller_offer: caller.offer,
            caller_peer: caller.peer,
            ..CallTask::outbound(id, tenant, shared, caller.state_tx, reports)
        }
    }

    /// A call `agent`'s phone dialled (`caller` is the phone's side).
    pub(super) fn dialled(
        id: String,
        tenant: Arc<str>,
        shared: Arc<Shared>,
        caller: Caller,
        agent: &str,
        reports: mpsc::Sender<api::EdgeReport>,
    ) -> CallTask {
        let leg = caller.dialog.id().call_id.clone();
        CallTask {
            core: CallCore::dialled(id.clone(), agent.to_owned(), leg),
            ..CallTask::new(id, tenant, shared, caller, reports)
        }
    }

    /// A call out the router placed (click-to-call): no caller yet; the customer's leg is
    /// dialled when the core says so.
    pub(super) fn outbound(
        id: String,
        tenant: Arc<str>,
        shared: Arc<Shared>,
        state_tx: DialogStateSender,
        reports: mpsc::Sender<api::EdgeReport>,
    ) -> CallTask {
        CallTask {
            core: CallCore::new(id.clone()),
            id,
            tenant,
            shared,
            caller_dialog: None,
            customer_trunk: None,
            outbound: true,
            customer_answered: false,
            caller_offer: Vec::new(),
            caller_peer: None,
            state_tx,
            caller_leg: None,
            agents: HashMap::new(),
            recording: None,
            reports,
            media_events: mpsc::channel(64),
            requests: HashMap::new(),
            next_request: 0,
        }
    }

    /// Runs the call until it is over.
    pub(super) async fn run(
        mut self,
        mut instructions: crate::Instructions,
        mut states: DialogStateReceiver,
    ) {
        let mut stream_open = true;
        loop {
            if self.core.finished(Instant::now()) {
                break;
            }
            let deadline = tokio::time::Instant::from_std(self.core.next_deadline(Instant::now()));
            tokio::select! {
                ins = instructions.next(), if stream_open => match ins {
                    Some(Ok(i)) => {
                        if let Some(i) = i.instruction {
                            self.feed(Input::Router(i)).await;
                        }
                    }
                    None | Some(Err(_)) => {
                        stream_open = false;
                        self.feed(Input::RouterGone).await;
                    }
                },
                st = states.recv() => match st {
                    Some(st) => self.dialog_state(st).await,
                    None => break,
                },
                Some(ev) = self.media_events.1.recv() => self.media_event(ev).await,
                _ = tokio::time::sleep_until(deadline) => self.feed(Input::Tick).await,
            }
        }
        self.finish_recording().await;
        // release every media port and forget every dialog
        self.caller_leg = None;
        self.release_trunk();
        if let Some(d) = &self.caller_dialog {
            self.shared.dialogs.remove_dialog(&d.id());
        }
    }

    /// Runs `input` through the core and carries out its actions; what an action's outcome
    /// tells goes back in before anything else.
    async fn feed(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            for action in self.core.handle(input, Instant::now()) {
                if let Some(outcome) = self.act(action).await {
                    inputs.push_back(outcome);
                }
            }
        }
    }

    // ------------------------------------------------------------------ actions

    async fn act(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Report { seq, report, ack } => {
                let _ = self
                    .reports
                    .send(api::EdgeReport {
                        call_id: self.id.clone(),
                        seq,
                        ack,
                        report: Some(report),
                    })
                    .await;
            }
            Action::AnswerCaller => return self.answer_caller().await,
            Action::RejectCaller { code, reason } => match &self.caller_dialog {
                Some(d) if self.outbound => {
                    // a call out not answered: CANCEL the customer's INVITE
                    let _ = d.hangup_with_reason(reason_value(code, &reason)).await;
                }
                Some(d) => {
                    let _ = d.reject(
                        Some(StatusCode::from(code)),
                        Some(reason_value(code, &reason)),
                    );
                }
                None => {}
            },
            Action::ByeCaller { code, reason } => {
                if let Some(d) = &self.caller_dialog {
                    let _ = d.bye_with_reason(reason_value(code, &reason)).await;
                }
            }
            Action::CallerRinging => {
                if let Some(d) = &self.caller_dialog {
                    let _ = d.ringing(None, None);
                }
            }
            Action::AgentRingback { agent, on } => {
                if let Some(a) = self.agents.get(&agent) {
                    if on {
                        a.media.loop_prompt("ringback");
                    } else {
                        a.media.stop_playing();
                    }
                }
            }
            Action::DialCustomer {
                trunk,
                destination,
                number,
            } => {
                if let Err(code) = self.dial_customer(&trunk, &destination, &number).await {
                    return Some(Input::CustomerFailed { trunk, code });
                }
            }
            Action::Caller(m) => {
                if let Some(leg) = &self.caller_leg {
                    match m {
                        CallerMedia::Loop(prompt) => leg.loop_prompt(&prompt),
                        CallerMedia::Play { parts, then } => leg.play(parts, then),
                        CallerMedia::Announce {
                            position,
                            expected_wait_ms,
                            then,
                        } => leg.play(media::announcement(position, expected_wait_ms), then),
                        CallerMedia::Stop => leg.stop_playing(),
                    }
                }
            }
            Action::Bridge { agent } => {
                if let (Some(caller), Some(a)) = (&self.caller_leg, self.agents.get(&agent)) {
                    media::bridge(caller, &a.media);
                }
            }
            Action::Unbridge { agent } => {
                if let (Some(caller), Some(a)) = (&self.caller_leg, self.agents.get(&agent)) {
                    media::unbridge(caller, &a.media);
                }
            }
            Action::Ring {
                agent,
                devices,
                timeout,
            } => {
                return Some(match self.ring(&agent, &devices).await {
                    Ok(legs) => Input::RingStarted {
                        agent,
                        legs,
                        timeout,
                    },
                    Err(code) => Input::RingFailed { agent, code },
                })
            }
            Action::UseAnswer { agent, leg, body } => {
                if let Some(a) = self.agents.get(&agent) {
                    if let Err(e) = a.media.apply_answer(&body, a.peer_of(&leg)) {
                        tracing::info!(call = %self.id, agent, error = %e, "agent's answer not usable");
                    }
                }
                Metrics::inc(&self.shared.metrics.agent_legs_answered);
            }
            Action::ByeLeg { agent, leg } => {
                if let Some(l) = self.device(&agent, &leg) {
                    let _ = l.bye().await;
                }
            }
            Action::CancelLeg { agent, leg } => {
                if let Some(l) = self.device(&agent, &leg) {
                    let _ = l.hangup().await;
                }
            }
            Action::EndAgent {
                agent,
                answered,
                ringing,
                notify,
            } => {
                if let Some(a) = self.agents.remove(&agent) {
                    self.end_agent(a, answered, ringing, notify).await;
                }
            }
            Action::ForgetAgent { agent } => {
                self.agents.remove(&agent);
            }
            Action::NotifyRefer { agent, leg, notify } => {
                Metrics::inc(&self.shared.metrics.transfers_refused);
                if let Some(dialog) = self.device(&agent, &leg) {
                    tokio::spawn(async move {
                        tokio::time::sleep_until(notify.not_before.into()).await;
                        let _ = dialog
                            .notify_refer(
                                StatusCode::from(notify.code),
                                "terminated;reason=noresource",
                            )
                            .await;
                    });
                }
            }
            Action::Respond {
                request,
                code,
                reason: text,
            } => {
                if let Some(handle) = self.requests.remove(&request) {
                    let headers = text.map(|t| vec![reason(code, &t)]);
                    let _ = handle.respond(StatusCode::from(code), headers, None).await;
                }
            }
            Action::PhoneToAgent { agent, leg } => return self.phone_to_agent(agent, leg).await,
            Action::AcceptPhone { agent, leg } => {
                let dialled = self.agents.get(&agent).and_then(|a| a.legs.get(&leg));
                if let Some((l, (sdp, _))) = dialled.and_then(|l| Some((l, l.dialled.as_ref()?))) {
                    let headers = vec![Header::ContentType("application/sdp".into())];
                    if let Err(e) = l.dialog.accept(Some(headers), Some(sdp.clone())) {
                        tracing::info!(call = %self.id, agent, error = %e, "cannot answer the phone that dialled");
                    }
                }
            }
            Action::RejectPhone {
                agent,
                leg,
                code,
                reason: text,
            } => {
                if let Some(d) = self.device(&agent, &leg) {
                    let _ = d.reject(
                        Some(StatusCode::from(code)),
                        Some(reason_value(code, &text)),
                    );
                }
            }
            Action::StartRecording { agent } => {
                return Some(match self.start_recording(&agent).await {
                    Some(path) => Input::RecordingStarted { path },
                    None => Input::RecordingFailed,
                })
            }
        }
        None
    }

    /// The phone that dialled out becomes `agent`'s leg: the caller's dialog moves to the
    /// agent's side, with a media leg answering its offer (or offering ours, when it made
    /// none) in a 183, so ringback and the carrier's early media reach it. A failure rejects
    /// the phone and comes back as the leg's end.
    async fn phone_to_agent(&mut self, agent: String, leg: LegKey) -> Option<Input> {
        let dialog = self.caller_dialog.take_if(|d| d.id().call_id == leg)?;
        self.outbound = true;
        let offer = std::mem::take(&mut self.caller_offer);
        let peer = self.caller_peer.take();
        let fail = |code: u16, text: &str| {
            let _ = dialog.reject(Some(StatusCode::from(code)), Some(reason_value(code, text)));
            Some(Input::AgentLegEnded {
                agent: agent.clone(),
                leg: leg.clone(),
                code,
            })
        };
        let media = match self.shared.media.leg(self.media_events.0.clone()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(call = %self.id, error = %e, "no media port for the phone that dialled");
                return fail(503, "no media resources");
            }
        };
        let (sdp, ours) = if offer.is_empty() {
            (media.offer(), true)
        } else {
            match media.answer_offer(&offer, peer) {
                Ok(sdp) => (sdp, false),
                Err(e) => {
                    tracing::info!(call = %self.id, error = %e, "the phone's offer is not acceptable");
                    return fail(488, &e);
                }
            }
        };
        // early media needs an answer in the 183; a phone that made no offer hears its own
        // ringing until the 200 OK carries ours
        let early = if ours {
            dialog.ringing(None, None)
        } else {
            let headers = vec![Header::ContentType("application/sdp".into())];
            dialog.ringing(Some(headers), Some(sdp.clone()))
        };
        if let Err(e) = early {
            tracing::debug!(call = %self.id, error = %e, "cannot send the phone its 183");
        }
        let device = DeviceLeg {
            dialog,
            peer,
            dialled: Some((sdp, ours)),
        };
        let legs = HashMap::from([(leg, device)]);
        self.agents.insert(agent, AgentIo { media, legs });
        None
    }

    /// A device's dialog of an agent, if the call still has it.
    fn device(&self, agent: &str, leg: &str) -> Option<InviteDialog> {
        self.agents
            .get(agent)
            .and_then(|a| a.legs.get(leg))
            .map(|l| l.dialog.clone())
    }

    /// Answers the caller: a media port, our SDP (an answer to its offer, or an offer of
    /// ours when it made none), 200 OK. A failure rejects the caller and comes back to the
    /// core.
    async fn answer_caller(&mut self) -> Option<Input> {
        let leg = match self.shared.media.leg(self.media_events.0.clone()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(call = %self.id, error = %e, "no media port for the caller");
                return Some(self.reject_caller(503, "no media resources"));
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
                let accepted = self
                    .caller_dialog
                    .as_ref()
                    .is_some_and(|d| d.accept(Some(headers), Some(sdp)).is_ok());
                if accepted {
                    self.caller_leg = Some(leg);
                }
                None
            }
            Err(e) => {
                tracing::info!(call = %self.id, error = %e, "caller's offer not acceptable");
                Some(self.reject_caller(488, &e))
            }
        }
    }

    fn reject_caller(&mut self, code: u16, text: &str) -> Input {
        if let Some(d) = &self.caller_dialog {
            let _ = d.reject(Some(StatusCode::from(code)), Some(reason_value(code, text)));
        }
        Input::CallerAnswerFailed { code }
    }

    /// INVITEs a call out's customer on `trunk_id`: the trunk must be known at this edge,
    /// have an address and room under its call limit; the customer's media leg is made once
    /// and offered on every attempt. `From` carries the hotline number (or the trunk's
    /// account, as the trunk says), `P-Asserted-Identity` the number when the trunk wants
    /// it; digest challenges (401/407) are answered with the trunk's account. The SIP code
    /// of why no INVITE left otherwise (503: the next trunk is tried).
    async fn dial_customer(
        &mut self,
        trunk_id: &str,
        destination: &str,
        number: &str,
    ) -> Result<(), u16> {
        self.release_trunk();
        let directory = self.shared.directory.get();
        let Some(trunk) = directory.trunk(&self.tenant, trunk_id) else {
            tracing::info!(call = %self.id, trunk = trunk_id, "no such trunk at this edge");
            return Err(503);
        };
        let Some(addr) = trunk.addr else {
            tracing::info!(call = %self.id, trunk = trunk_id, "the trunk's host name is not resolved by this edge");
            return Err(503);
        };
        if !trunk.up.load(std::sync::atomic::Ordering::Acquire) {
            tracing::info!(call = %self.id, trunk = trunk_id, "the trunk is down (OPTIONS unanswered)");
            return Err(503);
        }
        if !trunk.try_acquire() {
            tracing::info!(call = %self.id, trunk = trunk_id, "the trunk is at its call limit");
            return Err(503);
        }
        self.customer_trunk = Some((trunk_id.to_owned(), trunk.clone()));
        if self.caller_leg.is_none() {
            match self.shared.media.leg(self.media_events.0.clone()).await {
                Ok(l) => self.caller_leg = Some(l),
                Err(e) => {
                    tracing::warn!(call = %self.id, error = %e, "no media port for the customer");
                    return Err(503);
                }
            }
        }
        let offer = self
            .caller_leg
            .as_ref()
            .map(|l| l.offer())
            .unwrap_or_default();
        let transport = match trunk.transport {
            callgrid_config::TrunkTransport::Tcp => Transport::Tcp,
            _ => Transport::Udp,
        };
        let host = |user: &str, at: std::net::SocketAddr| {
            rsipstack::sip::Uri::try_from(format!("sip:{user}@{at}").as_str()).ok()
        };
        let ours = std::net::SocketAddr::new(self.shared.advertise_ip, self.shared.local.port());
        let account = trunk.username.clone().unwrap_or_default();
        let from_user = if trunk.from_account && !account.is_empty() {
            account.as_str()
        } else if number.is_empty() {
            "anonymous"
        } else {
            number
        };
        let (Some(caller), Some(callee)) = (host(from_user, ours), host(destination, addr)) else {
            return Err(484);
        };
        let mut headers = vec![Header::Other("X-Callgrid-Call".into(), self.id.clone())];
        if trunk.p_asserted_identity && !number.is_empty() {
            headers.push(Header::Other(
                "P-Asserted-Identity".into(),
                format!("<sip:{number}@{}>", self.shared.advertise_ip),
            ));
        }
        let mut contact = self.shared.contact.clone();
        if transport == Transport::Tcp {
            contact
                .params
                .push(rsipstack::sip::Param::Transport(Transport::Tcp));
        }
        let credential = match (&trunk.username, &trunk.password) {
            (Some(u), Some(p)) => Some(rsipstack::dialog::authenticate::Credential {
                username: u.clone(),
                password: p.clone(),
                realm: None,
                auth_username: None,
            }),
            _ => None,
        };
        let opt = InviteOption {
            caller,
            callee,
            destination: Some(SipAddr::new(transport, addr.into())),
            contact,
            offer: Some(offer),
            content_type: Some("application/sdp".into()),
            headers: Some(headers),
            credential,
            ..Default::default()
        };
        match self
            .shared
            .dialogs
            .do_invite_async(opt, self.state_tx.clone())
        {
            Ok((dialog, _join)) => {
                Metrics::inc(&self.shared.metrics.customer_legs);
                self.caller_peer = Some(addr.ip());
                if let Some(old) = self.caller_dialog.replace(dialog) {
                    self.shared.dialogs.remove_dialog(&old.id());
                }
                Ok(())
            }
            Err(e) => {
                tracing::info!(call = %self.id, trunk = trunk_id, error = %e, "cannot invite on the trunk");
                Err(503)
            }
        }
    }

    /// Gives the trunk's place back (the call out ended, or goes to the next trunk).
    fn release_trunk(&mut self) {
        if let Some((_, t)) = self.customer_trunk.take() {
            t.release();
        }
    }

    /// Invites the agent's devices: its registered phones, else the SIP devices it logged in
    /// with (never ourselves). The devices' dialogs, or the SIP code of why none was invited.
    async fn ring(&mut self, agent: &str, devices: &[String]) -> Result<Vec<LegKey>, u16> {
        let key = (self.tenant.clone(), Arc::<str>::from(agent));
        let mut targets: Vec<(String, SipAddr)> = self
            .shared
            .registrar
            .lookup(&key, std::time::Instant::now())
            .into_iter()
            .map(|b| (b.contact, SipAddr::new(b.transport, b.target.into())))
            .collect();
        if targets.is_empty() {
            for d in devices.iter().filter(|d| d.starts_with("sip:")) {
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
            tracing::debug!(call = %self.id, agent, "agent has no registered device");
            return Err(480);
        }
        let media = match self.shared.media.leg(self.media_events.0.clone()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(call = %self.id, error = %e, "no media port for the agent leg");
                return Err(503);
            }
        };
        let offer = media.offer();
        // the agent's phone shows the caller (a call out: the platform)
        let caller_uri = self
            .caller_dialog
            .as_ref()
            .filter(|_| !self.outbound)
            .and_then(|d| {
                d.initial_request()
                    .from_header()
                    .ok()
                    .and_then(|f| f.typed().ok())
            })
            .map(|f| f.uri)
            .unwrap_or_else(|| self.shared.contact.clone());
        let mut legs = HashMap::new();
        let mut keys = Vec::new();
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
                    keys.push(call_id.clone());
                    let leg = DeviceLeg {
                        dialog,
                        peer,
                        dialled: None,
                    };
                    legs.insert(call_id, leg);
                }
                Err(e) => tracing::debug!(call = %self.id, error = %e, "cannot invite a device"),
            }
        }
        if legs.is_empty() {
            return Err(480);
        }
        self.agents
            .insert(agent.to_owned(), AgentIo { media, legs });
        Ok(keys)
    }

    /// CANCEL what rings, BYE what answered (after the transfer's NOTIFY, if any, without
    /// holding the call up meanwhile); forget the dialogs.
    async fn end_agent(
        &self,
        agent: AgentIo,
        answered: Option<LegKey>,
        ringing: Vec<LegKey>,
        notify: Option<Notify>,
    ) {
        let shared = self.shared.clone();
        let transfer = notify.is_some();
        let end = async move {
            for key in &ringing {
                if let Some(l) = agent.legs.get(key) {
                    let _ = l.dialog.hangup().await;
                    shared.dialogs.remove_dialog(&l.dialog.id());
                }
            }
            if let Some(l) = answered.as_ref().and_then(|k| agent.legs.get(k)) {
                if let Some(n) = &notify {
                    tokio::time::sleep_until(n.not_before.into()).await;
                    let _ = l
                        .dialog
                        .notify_refer(StatusCode::from(n.code), "terminated;reason=noresource")
                        .await;
                }
                let _ = l.dialog.bye().await;
                shared.dialogs.remove_dialog(&l.dialog.id());
            }
        };
        if transfer {
            Metrics::inc(&self.shared.metrics.transfers);
            tokio::spawn(end);
        } else {
            end.await;
        }
    }

    async fn start_recording(&mut self, agent: &str) -> Option<String> {
        let (Some(caller), Some(a)) = (&self.caller_leg, self.agents.get(agent)) else {
            return None;
        };
        match self
            .shared
            .media
            .record(&self.tenant, &self.id, caller, &a.media)
            .await
        {
            Ok(rec) => {
                let path = rec.path().display().to_string();
                self.recording = Some(rec);
                Some(path)
            }
            Err(e) => {
                tracing::warn!(call = %self.id, error = %e, "recording could not start");
                None
            }
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

    // ------------------------------------------------------------------ dialog events

    async fn dialog_state(&mut self, st: DialogState) {
        let id_call = st.id().call_id.clone();
        let caller = self.caller_dialog.as_ref().map(|d| d.id().call_id);
        if caller.as_ref() == Some(&id_call) && self.outbound {
            self.customer_state(st).await;
        } else if caller.as_ref() == Some(&id_call) {
            self.caller_state(st).await;
        } else if let Some(agent) = self
            .agents
            .iter()
            .find(|(_, a)| a.legs.contains_key(&id_call))
            .map(|(a, _)| a.clone())
        {
            self.agent_state(agent, id_call, st).await;
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
                let code = match why {
                    TerminatedReason::UacCancel => 487,
                    TerminatedReason::Timeout => 408,
                    _ => 0,
                };
                self.feed(Input::CallerEnded { code }).await;
            }
            DialogState::Confirmed(_, _) if self.caller_offer.is_empty() => {
                // late offer: the caller's answer came with the ACK
                if let (Some(ack), Some(leg)) = (
                    self.caller_dialog
                        .as_ref()
                        .and_then(|d| d.last_remote_ack()),
                    &self.caller_leg,
                ) {
                    if !ack.body.is_empty() {
                        let _ = leg.apply_answer(&ack.body, self.caller_peer);
                    }
                }
            }
            DialogState::Info(_, req, handle) => self.info(&req, handle).await,
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
                    self.feed(Input::CallerHold(hold)).await;
                }
            }
            other => answer_unserved(other).await,
        }
    }

    /// A call out's customer dialog: early media and the answer's SDP go to the customer's
    /// media leg; the attempt's end before an answer is its failure, after it a hang-up.
    async fn customer_state(&mut self, st: DialogState) {
        let trunk = self
            .customer_trunk
            .as_ref()
            .map(|(id, _)| id.clone())
            .unwrap_or_default();
        match st {
            DialogState::Early(_, resp) => {
                if let (false, Some(leg)) = (resp.body.is_empty(), &self.caller_leg) {
                    if let Err(e) = leg.apply_answer(&resp.body, self.caller_peer) {
                        tracing::info!(call = %self.id, error = %e, "customer's early media not usable");
                    }
                }
                let media = !resp.body.is_empty();
                self.feed(Input::CustomerEarly { trunk, media }).await;
            }
            DialogState::Confirmed(_, resp) => {
                if let (false, Some(leg)) = (resp.body.is_empty(), &self.caller_leg) {
                    if let Err(e) = leg.apply_answer(&resp.body, self.caller_peer) {
                        tracing::info!(call = %self.id, error = %e, "customer's answer not usable");
                    }
                }
                self.customer_answered = true;
                self.feed(Input::CustomerAnswered { trunk }).await;
            }
            DialogState::Terminated(_, why) => {
                let code = terminated_code(&why);
                if self.customer_answered || code == 0 {
                    self.feed(Input::CallerEnded { code: 0 }).await;
                } else {
                    self.release_trunk();
                    self.feed(Input::CustomerFailed { trunk, code }).await;
                }
            }
            other => self.caller_state(other).await,
        }
    }

    async fn agent_state(&mut self, agent: String, leg: LegKey, st: DialogState) {
        match st {
            DialogState::Early(_, resp) => {
                if !resp.body.is_empty() {
                    // early media toward the agent is not used, but an answer may come here
                    if let Some(a) = self.agents.get(&agent) {
                        let _ = a.media.apply_answer(&resp.body, a.peer_of(&leg));
                    }
                }
                self.feed(Input::AgentEarly { agent }).await;
            }
            DialogState::Confirmed(_, resp) => {
                let dialled = self
                    .agents
                    .get(&agent)
                    .and_then(|a| Some((a, a.legs.get(&leg)?.dialled.as_ref()?)));
                if let Some((a, (_, ours))) = dialled {
                    // the phone that dialled acknowledged its 200 OK: with our offer in it,
                    // its answer came with the ACK
                    if *ours {
                        let ack = a.legs.get(&leg).and_then(|l| l.dialog.last_remote_ack());
                        if let Some(ack) = ack.filter(|a| !a.body.is_empty()) {
                            let _ = a.media.apply_answer(&ack.body, a.peer_of(&leg));
                        }
                    }
                    return;
                }
                let body = resp.body;
                self.feed(Input::AgentAnswered { agent, leg, body }).await;
            }
            DialogState::Terminated(_, why) => {
                if let Some(d) = self.device(&agent, &leg) {
                    self.shared.dialogs.remove_dialog(&d.id());
                }
                let code = terminated_code(&why);
                self.feed(Input::AgentLegEnded { agent, leg, code }).await;
            }
            DialogState::Info(_, req, handle) => self.info(&req, handle).await,
            DialogState::Refer(_, req, handle) => {
                let refer_to = req.headers.iter().find_map(|h| match h {
                    Header::ReferTo(r) => Some(r.value().to_owned()),
                    _ => None,
                });
                self.next_request += 1;
                let request = self.next_request;
                self.requests.insert(request, handle);
                self.feed(Input::AgentRefer {
                    agent,
                    request,
                    refer_to,
                })
                .await;
            }
            DialogState::Updated(_, req, handle) => {
                let (answer, hold) = match self.agents.get(&agent) {
                    Some(a) if !req.body.is_empty() => {
                        match a.media.reoffer(&req.body, a.peer_of(&leg)) {
                            Ok((sdp, hold)) => (Ok((sdp, hold)), Some(hold)),
                            Err(e) => (Err(e), None),
                        }
                    }
                    // an offer without a body (a session refresh) changes no hold
                    Some(a) => (Ok((a.media.current_answer(), false)), None),
                    None => (Err("no session".into()), None),
                };
                respond_sdp(handle, answer).await;
                if let Some(hold) = hold {
                    self.feed(Input::AgentHold { agent, hold }).await;
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
        self.feed(Input::Digit(d)).await;
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
                self.feed(Input::PromptDone).await;
            }
            _ => {}
        }
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
