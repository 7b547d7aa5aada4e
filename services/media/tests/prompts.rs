//! The shipped prompts, the embedded copy, and rejection of bad files.

use std::time::Duration;

use callgrid_media::{position_announcement, Codec, MediaError, Prompts};

const SHIPPED: &[&str] = &[
    "hold",
    "welcome",
    "you-are-number",
    "in-the-queue",
    "expected-wait",
    "minutes",
    "minute",
    "recorded",
    "goodbye",
    "beep",
    "hundred",
];

#[test]
fn shipped_prompts_load_and_match_the_embedded_copy() {
    let dir = Prompts::load_dir(Prompts::shipped_dir()).unwrap();
    let embedded = Prompts::embedded().unwrap();
    assert_eq!(dir.names(), embedded.names(), "embedded list out of date");
    for name in SHIPPED {
        assert!(dir.get(name).is_ok(), "{name} missing");
    }
    for d in 0..10 {
        dir.get(&format!("digit-{d}")).unwrap();
    }
    for name in dir.names() {
        let a = dir.get(name).unwrap();
        let b = embedded.get(name).unwrap();
        assert_eq!(a.frame_count(), b.frame_count(), "{name}");
        assert!(a.frame_count() > 0, "{name} is empty");
        assert_eq!(a.frame(Codec::Pcmu, 0), b.frame(Codec::Pcmu, 0));
    }
    let hold = dir.get("hold").unwrap();
    assert!(
        hold.duration() >= Duration::from_secs(15),
        "hold music is {:?}",
        hold.duration()
    );
    let welcome = dir.get("welcome").unwrap();
    assert!(welcome.duration() >= Duration::from_secs(4));
    // not silent
    let loud = (0..welcome.frame_count())
        .filter_map(|i| welcome.frame(Codec::Pcmu, i))
        .flatten()
        .filter(|&&b| callgrid_media::g711::ulaw_to_linear(b).abs() > 2000)
        .count();
    assert!(loud > 1000);
}

#[test]
fn every_announcement_part_exists() {
    let prompts = Prompts::embedded().unwrap();
    for position in (1..=120).chain([999, 1000, 4321]) {
        for wait in [None, Some(1), Some(60_000), Some(61_000), Some(3_600_000)] {
            let names = position_announcement(position, wait);
            let sequence = prompts.sequence(&names).unwrap();
            assert_eq!(sequence.len(), names.len());
        }
    }
    let e = prompts.sequence(&["welcome", "nope"]).unwrap_err();
    assert_eq!(e.to_string(), "unknown prompt \"nope\"");
}

fn write_wav(path: &std::path::Path, channels: u16, sample_rate: u32) {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..1000 {
        w.write_sample((i % 100) as i16 * 100).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn a_directory_of_good_prompts_loads_by_stem() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(&dir.path().join("menu.wav"), 1, 8000);
    write_wav(&dir.path().join("Other.WAV"), 1, 8000);
    std::fs::write(dir.path().join("README.md"), "not a prompt").unwrap();
    let prompts = Prompts::load_dir(dir.path()).unwrap();
    assert_eq!(prompts.names(), vec!["Other", "menu"]);
    let menu = prompts.get("menu").unwrap();
    assert_eq!(menu.frame_count(), 7); // 1000 samples = 6.25 frames, padded
    assert_eq!(menu.duration(), Duration::from_millis(125));
}

#[test]
fn a_bad_wav_is_rejected_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(&dir.path().join("good.wav"), 1, 8000);
    let stereo = dir.path().join("stereo.wav");
    write_wav(&stereo, 2, 44100);
    let e = Prompts::load_dir(dir.path()).unwrap_err();
    assert!(matches!(e, MediaError::BadPrompt { ref path, .. } if path == &stereo));
    assert_eq!(
        e.to_string(),
        format!(
            "prompt {}: expected 16-bit pcm mono 8000 hz, got 16-bit pcm 2 channel(s) 44100 hz",
            stereo.display()
        )
    );
    std::fs::remove_file(&stereo).unwrap();
    let garbage = dir.path().join("garbage.wav");
    std::fs::write(&garbage, b"RIFF nonsense").unwrap();
    let e = Prompts::load_dir(dir.path()).unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("prompt {}: not a wav file", garbage.display())),
        "{message}"
    );
    let e = Prompts::load_dir(dir.path().join("missing")).unwrap_err();
    assert!(e.to_string().starts_with("prompt directory "), "{e}");
}
