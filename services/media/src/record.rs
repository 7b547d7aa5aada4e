//! Call recording: both legs into one stereo 16-bit PCM 8 kHz WAV (caller left, agent right),
//! written by a dedicated thread so the async runtime never blocks on the disk.
//!
//! Legs feed the recorder through [`RecordTap`]s ([`crate::MediaLeg::set_tap`]): each audio
//! packet a leg receives is stamped with its arrival time and queued (never blocking; a full
//! queue drops the packet and counts it). The recorder thread writes on a 20 ms clock: for
//! each tick, a channel takes the audio that arrived before the tick began (one tick of
//! playout delay absorbs jitter), and a channel with nothing gets silence, so the two
//! channels stay aligned with each other and with the wall clock.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::g711::Codec;
use crate::prompts::FRAME_SAMPLES;
use crate::MediaError;

/// Length of one tick of the recorder's clock.
const TICK: Duration = Duration::from_millis(20);
/// Packets that may wait for the recorder thread (10 s of two legs at 50 packets/s).
const QUEUE: usize = 1000;
/// Samples a channel may hold ahead of the clock before the oldest are dropped (200 ms).
const MAX_BACKLOG: usize = 10 * FRAME_SAMPLES;

/// A channel of the stereo recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordChannel {
    /// Left: by convention the caller.
    Left,
    /// Right: by convention the agent.
    Right,
}

impl RecordChannel {
    fn index(self) -> usize {
        match self {
            RecordChannel::Left => 0,
            RecordChannel::Right => 1,
        }
    }
}

#[derive(Debug)]
struct TapFrame {
    channel: RecordChannel,
    at: Instant,
    codec: Codec,
    payload: Vec<u8>,
}

/// Feeds one channel of a recording; give it to a leg with [`crate::MediaLeg::set_tap`].
#[derive(Debug, Clone)]
pub struct RecordTap {
    channel: RecordChannel,
    queue: SyncSender<TapFrame>,
    dropped: Arc<AtomicU64>,
}

impl RecordTap {
    /// Queues one received audio payload; false once the recording is finished (the leg
    /// then forgets the tap).
    pub(crate) fn push(&self, codec: Codec, payload: &[u8]) -> bool {
        let frame = TapFrame {
            channel: self.channel,
            at: Instant::now(),
            codec,
            payload: payload.to_vec(),
        };
        match self.queue.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// The channel this tap feeds.
    pub fn channel(&self) -> RecordChannel {
        self.channel
    }
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The WAV file.
    pub path: PathBuf,
    /// Its duration (a whole number of 20 ms ticks).
    pub duration: Duration,
    /// Stereo sample frames written (8,000 per second).
    pub frames: u64,
    /// Packets lost because the recorder thread fell behind.
    pub dropped_packets: u64,
}

/// A recording in progress. [`Recorder::finalize`] stops it and returns the file; dropping
/// the recorder also stops it and finalises the file (without reporting).
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    queue: SyncSender<TapFrame>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    done: Option<oneshot::Receiver<Result<Recording, MediaError>>>,
}

impl Recorder {
    /// Starts recording into `path` (e.g. `recordings/<tenant>/<yyyy-mm-dd>/<call-id>.wav`):
    /// creates the parent directories and the file on the recorder thread, and returns once
    /// the file is open. The recording's clock starts now.
    pub async fn start(path: impl Into<PathBuf>) -> Result<Recorder, MediaError> {
        let path = path.into();
        let (queue, frames) = mpsc::sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let writer = Writer {
            path: path.clone(),
            frames,
            stop: Arc::clone(&stop),
            dropped: Arc::clone(&dropped),
            start: Instant::now(),
        };
        std::thread::Builder::new()
            .name("callgrid-recorder".to_owned())
            .spawn(move || writer.run(ready_tx, done_tx))
            .map_err(|e| MediaError::Record {
                path: path.clone(),
                reason: format!("cannot start the recorder thread: {e}"),
            })?;
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(MediaError::Record {
                    path,
                    reason: "the recorder thread ended before opening the file".to_owned(),
                })
            }
        }
        tracing::debug!(path = %path.display(), "recording started");
        Ok(Recorder {
            path,
            queue,
            stop,
            dropped,
            done: Some(done_rx),
        })
    }

    /// A tap feeding `channel`.
    pub fn tap(&self, channel: RecordChannel) -> RecordTap {
        RecordTap {
            channel,
            queue: self.queue.clone(),
            dropped: Arc::clone(&self.dropped),
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the recording, writes the remaining ticks, finalises the WAV header and returns
    /// the path and duration.
    pub async fn finalize(mut self) -> Result<Recording, MediaError> {
        self.stop.store(true, Ordering::Release);
        let done = self.done.take();
        let path = self.path.clone();
        match done {
            Some(done) => done.await.unwrap_or_else(|_| {
                Err(MediaError::Record {
                    path,
                    reason: "the recorder thread ended without finalising".to_owned(),
                })
            }),
            None => Err(MediaError::Record {
                path,
                reason: "already finalised".to_owned(),
            }),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The recorder thread's state.
struct Writer {
    path: PathBuf,
    frames: Receiver<TapFrame>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    start: Instant,
}

type WavFile = hound::WavWriter<std::io::BufWriter<std::fs::File>>;

impl Writer {
    fn error(&self, what: &str, e: impl std::fmt::Display) -> MediaError {
        MediaError::Record {
            path: self.path.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    fn open(&self) -> Result<WavFile, MediaError> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| self.error("cannot create the directory", e))?;
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        hound::WavWriter::create(&self.path, spec).map_err(|e| self.error("cannot create", e))
    }

    fn run(
        self,
        ready: oneshot::Sender<Result<(), MediaError>>,
        done: oneshot::Sender<Result<Recording, MediaError>>,
    ) {
        let wav = match self.open() {
            Ok(wav) => {
                let _ = ready.send(Ok(()));
                wav
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let result = self.record(wav);
        // close the queue first, so taps see the end as soon as `finalize` returns
        drop(self);
        match &result {
            Ok(r) => tracing::debug!(
                path = %r.path.display(),
                duration_ms = r.duration.as_millis() as u64,
                dropped = r.dropped_packets,
                "recording finalised"
            ),
            Err(e) => tracing::warn!(error = %e, "recording failed"),
        }
        let _ = done.send(result);
    }

    fn record(&self, mut wav: WavFile) -> Result<Recording, MediaError> {
        let mut pending: [VecDeque<(Instant, Vec<i16>)>; 2] = Default::default();
        let mut fifo: [VecDeque<i16>; 2] = Default::default();
        let mut written: u64 = 0;
        let mut decoded = Vec::with_capacity(FRAME_SAMPLES);
        loop {
            let mut stopping = self.stop.load(Ordering::Acquire);
            let mut first = Some(self.frames.recv_timeout(TICK * 2));
            loop {
                let next = match first.take() {
                    Some(r) => r,
                    None => self.frames.try_recv().map_err(|e| match e {
                        mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                        mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                    }),
                };
                match next {
                    Ok(frame) => {
                        decoded.clear();
                        frame.codec.decode(&frame.payload, &mut decoded);
                        pending[frame.channel.index()].push_back((frame.at, decoded.clone()));
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        stopping = true;
                        break;
                    }
                }
            }
            let due = (self.start.elapsed().as_micros() / TICK.as_micros()) as u64;
            while written < due {
                // one tick of playout delay: audio that arrived before this tick began
                let boundary = self.start + TICK * (written as u32);
                for ch in 0..2 {
                    while pending[ch].front().is_some_and(|(at, _)| *at < boundary) {
                        if let Some((_, samples)) = pending[ch].pop_front() {
                            fifo[ch].extend(samples);
                        }
                    }
                    let excess = fifo[ch].len().saturating_sub(MAX_BACKLOG);
                    fifo[ch].drain(..excess);
                }
                for _ in 0..FRAME_SAMPLES {
                    for queue in &mut fifo {
                        wav.write_sample(queue.pop_front().unwrap_or(0))
                            .map_err(|e| self.error("write failed", e))?;
                    }
                }
                written += 1;
            }
            if stopping {
                break;
            }
        }
        wav.finalize()
            .map_err(|e| self.error("cannot finalise", e))?;
        let frames = written * FRAME_SAMPLES as u64;
        Ok(Recording {
            path: self.path.clone(),
            duration: Duration::from_micros(frames * 125),
            frames,
            dropped_packets: self.dropped.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn taps_fill_their_channel_and_silence_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/call.wav");
        let rec = Recorder::start(&path).await.unwrap();
        let left = rec.tap(RecordChannel::Left);
        let mut loud = Vec::new();
        Codec::Pcmu.encode(&[8000; FRAME_SAMPLES], &mut loud);
        for _ in 0..10 {
            assert!(left.push(Codec::Pcmu, &loud));
            tokio::time::sleep(TICK).await;
        }
        let r = rec.finalize().await.unwrap();
        assert_eq!(r.path, path);
        assert!(r.duration >= Duration::from_millis(200), "{r:?}");
        assert_eq!(r.frames * 125, r.duration.as_micros() as u64);
        let mut wav = hound::WavReader::open(&path).unwrap();
        assert_eq!(wav.spec().channels, 2);
        assert_eq!(u64::from(wav.duration()), r.frames);
        let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
        let left_loud = samples.iter().step_by(2).filter(|s| s.abs() > 4000).count();
        let right_loud = samples
            .iter()
            .skip(1)
            .step_by(2)
            .filter(|s| **s != 0)
            .count();
        assert!(
            left_loud >= 8 * FRAME_SAMPLES,
            "left has {left_loud} loud samples"
        );
        assert_eq!(right_loud, 0);
        // the recording is over: taps report it
        assert!(!left.push(Codec::Pcmu, &loud));
    }

    #[tokio::test]
    async fn an_unwritable_path_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = Recorder::start(file.join("call.wav")).await.unwrap_err();
        assert!(e.to_string().contains("cannot create the directory"), "{e}");
    }
}
