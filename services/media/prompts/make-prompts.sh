#!/usr/bin/env bash
# Regenerates the prompts of callgrid-media: 16-bit PCM, 8000 Hz, mono WAV files.
#
# Needs espeak-ng and sox:
#   apt-get install -y --no-install-recommends espeak-ng sox
# Usage: services/media/prompts/make-prompts.sh [output-dir]   (default: this script's folder)
#
# Speech is synthesised by espeak-ng (22,050 Hz), then trimmed, normalised and resampled by
# sox. Hold music is a Pachelbel-style progression of plucked arpeggios over a soft bass.
set -euo pipefail

out="${1:-$(cd "$(dirname "$0")" && pwd)}"
voice="${VOICE:-en-us}"
speed="${SPEED:-150}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# repeatable mode: fixed seeds for dither and the pluck synthesiser, so reruns are identical
sox() { command sox -R "$@"; }

# to_8k IN OUT [sox effects...]: 16-bit, 8 kHz, mono, normalised to -3 dBFS
to_8k() {
    local in="$1" out_file="$2"
    shift 2
    sox "$in" -r 8000 -c 1 -b 16 -e signed-integer "$out_file" "$@" gain -n -3
}

# say NAME TEXT [PAD_BEFORE PAD_AFTER]: a spoken prompt, leading and trailing silence trimmed,
# then padded (seconds) so that parts chained into one announcement sound natural
say() {
    local name="$1" text="$2" before="${3:-0.05}" after="${4:-0.1}"
    espeak-ng -v "$voice" -s "$speed" -w "$work/$name.raw.wav" "$text"
    to_8k "$work/$name.raw.wav" "$out/$name.wav" \
        silence 1 0.02 0.3% reverse silence 1 0.02 0.3% reverse \
        pad "$before" "$after"
}

# sentences
say welcome "Welcome to the demo call centre. Press 1 for sales, 2 for support, 9 for English, 0 for the operator." 0.2 0.3
say recorded "This call will be recorded." 0.1 0.2
say goodbye "Thank you for calling. Goodbye." 0.1 0.3
# parts of the position and expected-wait announcement
say you-are-number "You are number" 0.2 0.08
say in-the-queue "in the queue." 0.05 0.4
say expected-wait "Your expected waiting time is about" 0.05 0.08
say minutes "minutes." 0.05 0.3
say minute "minute." 0.05 0.3
say hundred "hundred" 0.05 0.08
words=(zero one two three four five six seven eight nine)
for i in "${!words[@]}"; do
    say "digit-$i" "${words[$i]}" 0.05 0.08
done
teens=(ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen)
for i in "${!teens[@]}"; do
    say "number-$((10 + i))" "${teens[$i]}" 0.05 0.08
done
tens=(twenty thirty forty fifty sixty seventy eighty ninety)
for i in "${!tens[@]}"; do
    say "number-$((20 + 10 * i))" "${tens[$i]}" 0.05 0.08
done

# ringback: what an agent hears while the customer of a call out rings and the carrier sends
# no early media: 425 Hz (ITU-T E.180, Vietnam's ringing tone), 1 s on, 4 s off, looped
sox -n -r 8000 -c 1 -b 16 -e signed-integer "$out/ringback.wav" \
    synth 1 sine 425 fade 0.02 1 0.02 gain -9 pad 0 4

# beep: 300 ms of 1 kHz with short ramps
sox -n -r 8000 -c 1 -b 16 -e signed-integer "$out/beep.wav" \
    synth 0.3 sine 1000 fade q 0.01 0.3 0.01 gain -6

# hold music: eight bars of C G Am Em F C F G (semitones from A4 = 440 Hz), each an
# up-and-down arpeggio of plucked notes (8 x 0.3 s) over a soft sine bass
chords=(
    "-9 -2 3 7"   # C  : C4 G4 C5 E5
    "-14 -7 -2 2" # G  : G3 D4 G4 B4
    "-12 -5 0 3"  # Am : A3 E4 A4 C5
    "-17 -10 -5 -2" # Em : E3 B3 E4 G4
    "-16 -9 -4 0" # F  : F3 C4 F4 A4
    "-9 -2 3 7"   # C
    "-16 -9 -4 0" # F
    "-14 -7 -2 2" # G
)
note=0
bar=0
for chord in "${chords[@]}"; do
    read -r a b c d <<<"$chord"
    for n in "$a" "$b" "$c" "$d" "$((b + 12))" "$d" "$c" "$b"; do
        sox -n -r 22050 -c 1 -b 16 "$work/note-$(printf %03d $note).wav" \
            synth 0.3 pluck "%$n" fade q 0.005 0.3 0.12 gain -8
        note=$((note + 1))
    done
    sox -n -r 22050 -c 1 -b 16 "$work/bass-$(printf %02d $bar).wav" \
        synth 2.4 sine "%$((a - 12))" fade h 0.3 2.4 0.5 gain -22
    bar=$((bar + 1))
done
sox "$work"/note-*.wav "$work/melody.wav"
sox "$work"/bass-*.wav "$work/bass.wav"
sox -m "$work/melody.wav" "$work/bass.wav" "$work/hold.raw.wav" lowpass 2500 reverb 40 50 60 pad 0 0.6
to_8k "$work/hold.raw.wav" "$out/hold.wav" fade t 0.4 -0 1.5

echo "prompts written to $out:"
ls -l "$out"/*.wav | awk '{ total += $5; print "  " $9 " " $5 } END { print "total bytes: " total }'
