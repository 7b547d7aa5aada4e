//! Media for the callgrid SIP edge (a B2BUA): everything below SIP.
//!
//! - [`g711`]: PCMU/PCMA encode and decode, µ-law ↔ A-law transcoding.
//! - [`sdp`]: a minimal SDP parser/writer and offer/answer for one G.711 audio stream with
//!   telephone-events; hold detection.
//! - [`rfc4733`]: DTMF over RTP — payloads, a once-per-press detector, packet building.
//! - [`prompts`]: WAV prompts encoded once into 20 ms frames; the position announcement.
//! - [`rtp`]: [`MediaEngine`] (port pool, global counters) and [`MediaLeg`] (one RTP endpoint
//!   of a call leg, run by a tokio task: play, loop, silence, bridge, hold, digits, taps).
//! - [`record`]: stereo call recording on a dedicated thread.
//!
//! **Invariants**: no SIP here (the edge owns dialogs and converts SDP bodies); no blocking
//! IO on the async runtime during a call (prompts are loaded at start-up, recordings are
//! written by their own thread); one task per leg and no channel hop per relayed packet.
//!
//! # Usage from a call task
//!
//! ```no_run
//! use std::sync::Arc;
//! use callgrid_media::{
//!     position_announcement, sdp, LegEventKind, MediaConfig, MediaEngine, Prompts,
//!     RecordChannel, Recorder,
//! };
//!
//! # async fn call(invite_sdp: &[u8], agent_answer_sdp: &[u8]) -> Result<(), callgrid_media::MediaError> {
//! let engine = MediaEngine::new(MediaConfig::default())?;          // once per edge
//! let prompts = Arc::new(Prompts::embedded()?);                     // once per edge
//! let our_ip = "203.0.113.5".parse().unwrap();
//! // where the INVITE came from, and the agent's phone (strict RTP: media only from the SDP's
//! // address, or once from another port of this IP: a phone behind NAT)
//! let caller_sip_ip = Some("198.51.100.7".parse().unwrap());
//! let agent_sip_ip = Some("192.0.2.44".parse().unwrap());
//!
//! // caller leg: answer the INVITE's offer
//! let (events_tx, mut events) = tokio::sync::mpsc::channel(64);
//! let caller = engine.open_leg(events_tx.clone()).await?;
//! let offer = sdp::Sdp::parse(invite_sdp)?;
//! let mut caller_local = sdp::LocalMedia::new(our_ip, caller.port());
//! let answer = sdp::answer(&offer, &caller_local)?;
//! caller.set_params(answer.remote.params().signalled_by(caller_sip_ip))?;
//! let _body_of_200_ok = answer.sdp.to_string();
//!
//! // menu, then the queue announcement (router: Announce { position, expected_wait_ms })
//! caller.play(prompts.sequence(&["welcome"])?)?;
//! while let Some(event) = events.recv().await {
//!     match event.kind {
//!         LegEventKind::Digit(key) => { let _ = key; /* report to the router */ break; }
//!         LegEventKind::PlayDone(_) => break,
//!         LegEventKind::RemoteLearned(_) => {}
//!     }
//! }
//! caller.play(prompts.sequence(&position_announcement(3, Some(120_000)))?)?;
//! caller.play_loop(prompts.get("hold")?)?;
//!
//! // agent leg: offer, then the agent's answer
//! let agent = engine.open_leg(events_tx).await?;
//! let agent_local = sdp::LocalMedia::new(our_ip, agent.port());
//! let _body_of_invite = sdp::offer(&agent_local).to_string();
//! let agent_remote = sdp::Sdp::parse(agent_answer_sdp)?.remote_media()?;
//! agent.set_params(agent_remote.params().signalled_by(agent_sip_ip))?;
//!
//! // bridge and record (caller left, agent right)
//! caller.stop_playing()?;
//! caller.bridge(&agent)?;
//! let recorder = Recorder::start("recordings/acme/2025-01-31/call-1.wav").await?;
//! caller.set_tap(Some(recorder.tap(RecordChannel::Left)))?;
//! agent.set_tap(Some(recorder.tap(RecordChannel::Right)))?;
//!
//! // the caller's re-INVITE puts the agent on hold: answer recvonly, stop sending to the
//! // caller, play hold music to the agent
//! # let reinvite_sdp: &[u8] = b"";
//! let reoffer = sdp::Sdp::parse(reinvite_sdp)?;
//! caller_local.next_version();
//! let reanswer = sdp::answer(&reoffer, &caller_local)?;
//! caller.set_params(reanswer.remote.params().signalled_by(caller_sip_ip))?;
//! caller.set_paused(reanswer.remote.is_hold())?;
//! if sdp::is_hold(&reoffer) {
//!     agent.play_loop(prompts.get("hold")?)?;
//! } else {
//!     agent.stop_playing()?;
//! }
//!
//! // hang-up
//! let recording = recorder.finalize().await?;
//! println!("{} ({:?})", recording.path.display(), recording.duration);
//! println!("{:?} {:?}", caller.counters(), engine.counters());
//! caller.close().await;
//! agent.close().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod g711;
pub mod prompts;
pub mod record;
pub mod rfc4733;
pub mod rtp;
pub mod sdp;

pub use error::MediaError;
pub use g711::Codec;
pub use prompts::{number_words, position_announcement, Prompt, Prompts};
pub use record::{RecordChannel, RecordTap, Recorder, Recording};
pub use rfc4733::{DtmfDetector, TelephoneEvent};
pub use rtp::{
    CounterSnapshot, DropReason, LegEvent, LegEventKind, LegId, MediaConfig, MediaEngine, MediaLeg,
    MediaParams, PlayId, PortPool, RtpHeader,
};
pub use sdp::{Direction, Sdp};
