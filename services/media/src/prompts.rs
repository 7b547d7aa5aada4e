//! Voice prompts: WAV files (16-bit PCM, mono, 8 kHz) loaded once into a catalogue by file
//! stem and encoded once per codec into 20 ms frames of 160 bytes.
//!
//! The prompts shipped in `services/media/prompts/` are embedded in the crate
//! ([`Prompts::embedded`]) and can also be loaded from a directory ([`Prompts::load_dir`],
//! [`Prompts::shipped_dir`]), e.g. to let an operator replace them. Loading reads files with
//! blocking IO: do it at start-up or in `spawn_blocking`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::g711::Codec;
use crate::MediaError;

/// Samples (and G.711 bytes) in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// One prompt, encoded in both G.711 codecs as whole 160-byte frames (the last one padded
/// with silence).
#[derive(Debug)]
pub struct Prompt {
    name: String,
    samples: usize,
    pcmu: Box<[u8]>,
    pcma: Box<[u8]>,
}

impl Prompt {
    /// Encodes samples (8 kHz) into a prompt.
    pub fn from_samples(name: impl Into<String>, samples: &[i16]) -> Prompt {
        let frames = samples.len().div_ceil(FRAME_SAMPLES);
        let mut padded = samples.to_vec();
        padded.resize(frames * FRAME_SAMPLES, 0);
        let mut pcmu = Vec::with_capacity(padded.len());
        let mut pcma = Vec::with_capacity(padded.len());
        Codec::Pcmu.encode(&padded, &mut pcmu);
        Codec::Pcma.encode(&padded, &mut pcma);
        Prompt {
            name: name.into(),
            samples: samples.len(),
            pcmu: pcmu.into_boxed_slice(),
            pcma: pcma.into_boxed_slice(),
        }
    }

    /// The prompt's name (the file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of 20 ms frames.
    pub fn frame_count(&self) -> usize {
        self.pcmu.len() / FRAME_SAMPLES
    }

    /// Frame `index` (160 bytes) in `codec`.
    pub fn frame(&self, codec: Codec, index: usize) -> Option<&[u8]> {
        let bytes = match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        };
        bytes.get(index * FRAME_SAMPLES..(index + 1) * FRAME_SAMPLES)
    }

    /// Duration of the audio (before padding).
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples as u64 * 125)
    }
}

/// A catalogue of prompts by name.
#[derive(Debug, Default, Clone)]
pub struct Prompts {
    prompts: HashMap<String, Arc<Prompt>>,
}

/// The prompts shipped with the crate, embedded at compile time.
const EMBEDDED: &[(&str, &[u8])] = &[
    ("beep", include_bytes!("../prompts/beep.wav")),
    ("digit-0", include_bytes!("../prompts/digit-0.wav")),
    ("digit-1", include_bytes!("../prompts/digit-1.wav")),
    ("digit-2", include_bytes!("../prompts/digit-2.wav")),
    ("digit-3", include_bytes!("../prompts/digit-3.wav")),
    ("digit-4", include_bytes!("../prompts/digit-4.wav")),
    ("digit-5", include_bytes!("../prompts/digit-5.wav")),
    ("digit-6", include_bytes!("../prompts/digit-6.wav")),
    ("digit-7", include_bytes!("../prompts/digit-7.wav")),
    ("digit-8", include_bytes!("../prompts/digit-8.wav")),
    ("digit-9", include_bytes!("../prompts/digit-9.wav")),
    (
        "expected-wait",
        include_bytes!("../prompts/expected-wait.wav"),
    ),
    ("goodbye", include_bytes!("../prompts/goodbye.wav")),
    ("hold", include_bytes!("../prompts/hold.wav")),
    ("hundred", include_bytes!("../prompts/hundred.wav")),
    (
        "in-the-queue",
        include_bytes!("../prompts/in-the-queue.wav"),
    ),
    ("minute", include_bytes!("../prompts/minute.wav")),
    ("minutes", include_bytes!("../prompts/minutes.wav")),
    ("number-10", include_bytes!("../prompts/number-10.wav")),
    ("number-11", include_bytes!("../prompts/number-11.wav")),
    ("number-12", include_bytes!("../prompts/number-12.wav")),
    ("number-13", include_bytes!("../prompts/number-13.wav")),
    ("number-14", include_bytes!("../prompts/number-14.wav")),
    ("number-15", include_bytes!("../prompts/number-15.wav")),
    ("number-16", include_bytes!("../prompts/number-16.wav")),
    ("number-17", include_bytes!("../prompts/number-17.wav")),
    ("number-18", include_bytes!("../prompts/number-18.wav")),
    ("number-19", include_bytes!("../prompts/number-19.wav")),
    ("number-20", include_bytes!("../prompts/number-20.wav")),
    ("number-30", include_bytes!("../prompts/number-30.wav")),
    ("number-40", include_bytes!("../prompts/number-40.wav")),
    ("number-50", include_bytes!("../prompts/number-50.wav")),
    ("number-60", include_bytes!("../prompts/number-60.wav")),
    ("number-70", include_bytes!("../prompts/number-70.wav")),
    ("number-80", include_bytes!("../prompts/number-80.wav")),
    ("number-90", include_bytes!("../prompts/number-90.wav")),
    ("recorded", include_bytes!("../prompts/recorded.wav")),
    ("ringback", include_bytes!("../prompts/ringback.wav")),
    ("welcome", include_bytes!("../prompts/welcome.wav")),
    (
        "you-are-number",
        include_bytes!("../prompts/you-are-number.wav"),
    ),
];

fn read_wav<R: Read>(reader: R, path: &Path) -> Result<Vec<i16>, MediaError> {
    let bad = |reason: String| MediaError::BadPrompt {
        path: path.to_owned(),
        reason,
    };
    let wav = hound::WavReader::new(reader).map_err(|e| bad(format!("not a wav file: {e}")))?;
    let spec = wav.spec();
    if spec.channels != 1
        || spec.sample_rate != 8000
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        let format = match spec.sample_format {
            hound::SampleFormat::Int => "pcm",
            hound::SampleFormat::Float => "float",
        };
        return Err(bad(format!(
            "expected 16-bit pcm mono 8000 hz, got {}-bit {format} {} channel(s) {} hz",
            spec.bits_per_sample, spec.channels, spec.sample_rate
        )));
    }
    wav.into_samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(|e| bad(format!("unreadable samples: {e}")))
}

impl Prompts {
    /// An empty catalogue.
    pub fn new() -> Prompts {
        Prompts::default()
    }

    /// The directory of the prompts shipped with the crate (`<crate>/prompts`). Only valid on
    /// the machine that built the crate; deployments use [`Prompts::embedded`] or their own
    /// directory.
    pub fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
    }

    /// The prompts shipped with the crate, embedded in the binary (no file IO).
    pub fn embedded() -> Result<Prompts, MediaError> {
        let mut prompts = Prompts::new();
        for (name, bytes) in EMBEDDED {
            let path = Prompts::shipped_dir().join(format!("{name}.wav"));
            let samples = read_wav(std::io::Cursor::new(bytes), &path)?;
            prompts.insert(Prompt::from_samples(*name, &samples));
        }
        Ok(prompts)
    }

    /// Loads every `*.wav` file of a directory (other files are ignored), named by file stem.
    /// A file that is not 16-bit PCM mono 8 kHz fails the whole load with an error naming it.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Prompts, MediaError> {
        let dir = dir.as_ref();
        let dir_err = |source| MediaError::PromptDir {
            path: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_err)? {
            let path = entry.map_err(dir_err)?.path();
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
            {
                paths.push(path);
            }
        }
        paths.sort();
        let mut prompts = Prompts::new();
        for path in paths {
            prompts.load_file(&path)?;
        }
        tracing::debug!(dir = %dir.display(), count = prompts.len(), "prompts loaded");
        Ok(prompts)
    }

    /// Loads one WAV file under its file stem (replacing a prompt of the same name).
    pub fn load_file(&mut self, path: impl AsRef<Path>) -> Result<Arc<Prompt>, MediaError> {
        let path = path.as_ref();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| MediaError::BadPrompt {
                path: path.to_owned(),
                reason: "the file name is not valid utf-8".to_owned(),
            })?
            .to_owned();
        let file = std::fs::File::open(path).map_err(|e| MediaError::BadPrompt {
            path: path.to_owned(),
            reason: format!("cannot open: {e}"),
        })?;
        let samples = read_wav(std::io::BufReader::new(file), path)?;
        Ok(self.insert(Prompt::from_samples(name, &samples)))
    }

    /// Adds a prompt (replacing one of the same name) and returns it.
    pub fn insert(&mut self, prompt: Prompt) -> Arc<Prompt> {
        let prompt = Arc::new(prompt);
        self.prompts
            .insert(prompt.name.clone(), Arc::clone(&prompt));
        prompt
    }

    /// The prompt of a name.
    pub fn get(&self, name: &str) -> Result<Arc<Prompt>, MediaError> {
        self.prompts
            .get(name)
            .cloned()
            .ok_or_else(|| MediaError::UnknownPrompt(name.to_owned()))
    }

    /// The prompts of a list of names, in order (e.g. from [`position_announcement`]).
    pub fn sequence<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<Arc<Prompt>>, MediaError> {
        names.iter().map(|n| self.get(n.as_ref())).collect()
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.prompts.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether the catalogue is empty.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

const DIGITS: [&str; 10] = [
    "digit-0", "digit-1", "digit-2", "digit-3", "digit-4", "digit-5", "digit-6", "digit-7",
    "digit-8", "digit-9",
];
const TEENS: [&str; 10] = [
    "number-10",
    "number-11",
    "number-12",
    "number-13",
    "number-14",
    "number-15",
    "number-16",
    "number-17",
    "number-18",
    "number-19",
];
const TENS: [&str; 8] = [
    "number-20",
    "number-30",
    "number-40",
    "number-50",
    "number-60",
    "number-70",
    "number-80",
    "number-90",
];

/// The prompt names that say a number: words up to 999 (`digit-3`, `hundred`, `number-40`,
/// `digit-2` for 342), digit by digit above.
pub fn number_words(n: u32) -> Vec<&'static str> {
    let mut out = Vec::new();
    push_number(n, &mut out);
    out
}

fn push_number(n: u32, out: &mut Vec<&'static str>) {
    let n_usize = n as usize;
    match n {
        0..=9 => out.push(DIGITS[n_usize]),
        10..=19 => out.push(TEENS[n_usize - 10]),
        20..=99 => {
            out.push(TENS[n_usize / 10 - 2]);
            if n % 10 != 0 {
                out.push(DIGITS[n_usize % 10]);
            }
        }
        100..=999 => {
            out.push(DIGITS[n_usize / 100]);
            out.push("hundred");
            if n % 100 != 0 {
                push_number(n % 100, out);
            }
        }
        _ => out.extend(n.to_string().bytes().map(|b| DIGITS[usize::from(b - b'0')])),
    }
}

/// The prompt names of the router's `Announce { position, expected_wait_ms }`: "You are number
/// N in the queue." then, if an estimate exists, "Your expected waiting time is about M
/// minutes." (M rounded up, at least 1).
pub fn position_announcement(position: u32, expected_wait_ms: Option<u64>) -> Vec<&'static str> {
    let mut out = vec!["you-are-number"];
    push_number(position, &mut out);
    out.push("in-the-queue");
    if let Some(ms) = expected_wait_ms {
        let minutes = ms.div_ceil(60_000).clamp(1, u64::from(u32::MAX)) as u32;
        out.push("expected-wait");
        push_number(minutes, &mut out);
        out.push(if minutes == 1 { "minute" } else { "minutes" });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_padded_and_encoded_per_codec() {
        let p = Prompt::from_samples("t", &[1000; 170]);
        assert_eq!(p.frame_count(), 2);
        assert_eq!(p.duration(), Duration::from_micros(21_250));
        let f = p.frame(Codec::Pcmu, 1).unwrap();
        assert_eq!(f.len(), 160);
        assert_eq!(f[9], crate::g711::linear_to_ulaw(1000));
        assert_eq!(f[10], Codec::Pcmu.silence());
        assert_eq!(p.frame(Codec::Pcma, 1).unwrap()[10], Codec::Pcma.silence());
        assert!(p.frame(Codec::Pcmu, 2).is_none());
    }

    #[test]
    fn numbers_in_words() {
        assert_eq!(number_words(0), ["digit-0"]);
        assert_eq!(number_words(7), ["digit-7"]);
        assert_eq!(number_words(13), ["number-13"]);
        assert_eq!(number_words(40), ["number-40"]);
        assert_eq!(number_words(42), ["number-40", "digit-2"]);
        assert_eq!(number_words(100), ["digit-1", "hundred"]);
        assert_eq!(number_words(315), ["digit-3", "hundred", "number-15"]);
        assert_eq!(
            number_words(1205),
            ["digit-1", "digit-2", "digit-0", "digit-5"]
        );
    }

    #[test]
    fn announcement_parts() {
        assert_eq!(
            position_announcement(3, None),
            ["you-are-number", "digit-3", "in-the-queue"]
        );
        assert_eq!(
            position_announcement(21, Some(90_000)),
            [
                "you-are-number",
                "number-20",
                "digit-1",
                "in-the-queue",
                "expected-wait",
                "digit-2",
                "minutes"
            ]
        );
        assert_eq!(
            position_announcement(1, Some(5_000))[3..],
            ["expected-wait", "digit-1", "minute"]
        );
    }
}
