//! The call task's view of media: one [`Leg`] per SIP leg (an RTP endpoint with its SDP
//! state), over `callgrid-media`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use callgrid_media::rtp::{LegId, MediaConfig, MediaEngine, MediaLeg};
use callgrid_media::sdp::{self, LocalMedia, Sdp};
use callgrid_media::{position_announcement, PlayId, Prompts, RecordChannel, Recorder};
use tokio::sync::mpsc;

use crate::error::EdgeError;
use crate::EdgeOptions;

pub(crate) use callgrid_media::LegEvent;

/// The shipped hold music.
const DEFAULT_HOLD: &str = "hold";

/// Media shared by every call of the edge.
pub(crate) struct MediaContext {
    engine: MediaEngine,
    prompts: Arc<Prompts>,
    ip: IpAddr,
    recordings: PathBuf,
}

impl MediaContext {
    pub(crate) fn new(options: &EdgeOptions, ip: IpAddr) -> Result<MediaContext, EdgeError> {
        let media = |e: callgrid_media::MediaError| EdgeError::Media(e.to_string());
        let engine = MediaEngine::new_on_own_thread(MediaConfig {
            bind_ip: options.listen.ip(),
            ports: options.rtp_ports.0..=options.rtp_ports.1,
            symmetric_rtp: true,
            latch_window: callgrid_media::rtp::LATCH_WINDOW,
        })
        .map_err(media)?;
        let mut prompts = Prompts::embedded().map_err(media)?;
        if let Some(dir) = &options.prompts_dir {
            // own prompts replace the shipped ones of the same name
            let entries = std::fs::read_dir(dir)
                .map_err(|e| EdgeError::Media(format!("prompts {}: {e}", dir.display())))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) == Some("wav") {
                    prompts.load_file(&path).map_err(media)?;
                }
            }
        }
        Ok(MediaContext {
            engine,
            prompts: Arc::new(prompts),
            ip,
            recordings: options.recordings_dir.clone(),
        })
    }

    /// A new RTP endpoint; its events go to `events`.
    pub(crate) async fn leg(&self, events: mpsc::Sender<LegEvent>) -> Result<Leg, String> {
        let leg = self
            .engine
            .open_leg(events)
            .await
            .map_err(|e| e.to_string())?;
        let local = LocalMedia::new(self.ip, leg.port());
        Ok(Leg {
            prompts: self.prompts.clone(),
            inner: leg,
            local: Mutex::new(local),
            last_sdp: Mutex::new(Vec::new()),
            then_loop: Mutex::new(None),
        })
    }

    /// Starts recording both legs into `recordings/<tenant>/<date>/<call>.wav`.
    pub(crate) async fn record(
        &self,
        tenant: &str,
        call: &str,
        caller: &Leg,
        agent: &Leg,
    ) -> Result<Recording, String> {
        let path = self
            .recordings
            .join(tenant)
            .join(today())
            .join(format!("{call}.wav"));
        let recorder = Recorder::start(path.clone())
            .await
            .map_err(|e| e.to_string())?;
        caller
            .inner
            .set_tap(Some(recorder.tap(RecordChannel::Left)))
            .map_err(|e| e.to_string())?;
        agent
            .inner
            .set_tap(Some(recorder.tap(RecordChannel::Right)))
            .map_err(|e| e.to_string())?;
        Ok(Recording { recorder, path })
    }

    /// Packet counters of every leg so far.
    pub(crate) fn counters(&self) -> callgrid_media::CounterSnapshot {
        self.engine.counters()
    }

    /// Legs open now (ports leased).
    pub(crate) fn legs_active(&self) -> usize {
        self.engine.ports().in_use()
    }
}

/// `yyyy-mm-dd` (UTC) for recording folders.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A recording in progress.
pub(crate) struct Recording {
    recorder: Recorder,
    path: PathBuf,
}

impl Recording {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops and writes the file; returns its path and length in seconds.
    pub(crate) async fn finish(self) -> Result<(PathBuf, f64), String> {
        let r = self.recorder.finalize().await.map_err(|e| e.to_string())?;
        Ok((r.path, r.duration.as_secs_f64()))
    }
}

/// One RTP endpoint of a call and its SDP state.
pub(crate) struct Leg {
    prompts: Arc<Prompts>,
    inner: MediaLeg,
    local: Mutex<LocalMedia>,
    /// Our last SDP (offer or answer), for re-INVITEs without an offer.
    last_sdp: Mutex<Vec<u8>>,
    /// After this play ends, loop that prompt.
    then_loop: Mutex<Option<(PlayId, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Leg {
    pub(crate) fn id(&self) -> LegId {
        self.inner.id()
    }

    /// Our offer (toward an agent, or in a 200 to a late-offer INVITE).
    pub(crate) fn offer(&self) -> Vec<u8> {
        let body = sdp::offer(&lock(&self.local)).to_string().into_bytes();
        *lock(&self.last_sdp) = body.clone();
        body
    }

    /// Answers the far end's offer and sends to it from now on. `peer` is the IP address the
    /// far end's SIP comes from: strict RTP takes media only from the offer's address, or
    /// once from another port of `peer` (a phone behind NAT; see `callgrid_media::rtp`).
    pub(crate) fn answer_offer(
        &self,
        offer: &[u8],
        peer: Option<IpAddr>,
    ) -> Result<Vec<u8>, String> {
        let parsed = Sdp::parse(offer).map_err(|e| e.to_string())?;
        let answer = {
            let mut local = lock(&self.local);
            local.next_version();
            sdp::answer(&parsed, &local).map_err(|e| e.to_string())?
        };
        self.inner
            .set_params(answer.remote.params().signalled_by(peer))
            .map_err(|e| e.to_string())?;
        let body = answer.sdp.to_string().into_bytes();
        *lock(&self.last_sdp) = body.clone();
        Ok(body)
    }

    /// Takes the far end's answer to our offer (`peer`: as for [`Leg::answer_offer`]).
    pub(crate) fn apply_answer(&self, answer: &[u8], peer: Option<IpAddr>) -> Result<(), String> {
        let parsed = Sdp::parse(answer).map_err(|e| e.to_string())?;
        let remote = parsed.remote_media().map_err(|e| e.to_string())?;
        self.inner
            .set_params(remote.params().signalled_by(peer))
            .map_err(|e| e.to_string())?;
        self.inner
            .set_paused(remote.is_hold())
            .map_err(|e| e.to_string())
    }

    /// A new offer in a re-INVITE: answer it; `true` when the far end puts us on hold.
    pub(crate) fn reoffer(
        &self,
        offer: &[u8],
        peer: Option<IpAddr>,
    ) -> Result<(Vec<u8>, bool), String> {
        let parsed = Sdp::parse(offer).map_err(|e| e.to_string())?;
        let hold = sdp::is_hold(&parsed);
        let body = self.answer_offer(offer, peer)?;
        self.inner.set_paused(hold).map_err(|e| e.to_string())?;
        Ok((body, hold))
    }

    /// Our last SDP again (a re-INVITE without an offer gets it as our offer).
    pub(crate) fn current_answer(&self) -> Vec<u8> {
        let last = lock(&self.last_sdp).clone();
        if last.is_empty() {
            self.offer()
        } else {
            last
        }
    }

    /// Plays prompts once, then loops `then_loop` if given. Unknown prompts are skipped with
    /// a warning (a missing file must not stop the call).
    pub(crate) fn play(&self, names: Vec<String>, then_loop: Option<String>) {
        let prompts: Vec<_> = names
            .iter()
            .filter_map(|n| match self.prompts.get(n) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(prompt = %n, error = %e, "prompt missing");
                    None
                }
            })
            .collect();
        if prompts.is_empty() {
            if let Some(l) = then_loop {
                self.loop_prompt(&l);
            }
            return;
        }
        if let Ok(id) = self.inner.play(prompts) {
            *lock(&self.then_loop) = then_loop.map(|l| (id, l));
        }
    }

    /// A play ended: start the loop that was to follow it. Returns whether `id` was the
    /// play the leg is waiting for.
    pub(crate) fn play_done(&self, id: PlayId) -> bool {
        let next = {
            let mut t = lock(&self.then_loop);
            match &*t {
                Some((pending, _)) if *pending == id => t.take().map(|(_, l)| l),
                _ => None,
            }
        };
        match next {
            Some(l) => {
                self.loop_prompt(&l);
                true
            }
            None => false,
        }
    }

    /// Loops a prompt (hold music). `default` (or a missing prompt, with a warning) is the
    /// shipped hold music: a waiting caller never hears silence.
    pub(crate) fn loop_prompt(&self, name: &str) {
        *lock(&self.then_loop) = None;
        let prompt = match name {
            "" | "default" => self.prompts.get(DEFAULT_HOLD),
            _ => self.prompts.get(name).or_else(|e| {
                tracing::warn!(prompt = %name, error = %e, "hold music missing, playing the default");
                self.prompts.get(DEFAULT_HOLD)
            }),
        };
        if let Ok(p) = prompt {
            let _ = self.inner.play_loop(p);
        }
    }

    /// Stops any prompt.
    pub(crate) fn stop_playing(&self) {
        *lock(&self.then_loop) = None;
        let _ = self.inner.stop_playing();
    }
}

/// Relays RTP between two legs.
pub(crate) fn bridge(a: &Leg, b: &Leg) {
    let _ = a.inner.bridge(&b.inner);
}

/// Ends the relay between two legs.
pub(crate) fn unbridge(a: &Leg, _b: &Leg) {
    let _ = a.inner.unbridge();
}

/// The prompts of a position / expected-wait announcement (R4).
pub(crate) fn announcement(position: u32, expected_wait_ms: u64) -> Vec<String> {
    position_announcement(position, (expected_wait_ms > 0).then_some(expected_wait_ms))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        let d = super::today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"), "{d}");
    }
}
