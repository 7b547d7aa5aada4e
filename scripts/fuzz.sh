#!/usr/bin/env bash
# Runs callgrid's fuzz targets (fuzz/fuzz_targets/, docs/DECISIONS.md "Fuzzing") with cargo fuzz
# and libFuzzer, each for a bounded time or number of runs, one process at a time.
#
# Usage:
#   scripts/fuzz.sh [--seconds S] [--runs N] [--sanitizer address|none] [TARGET...]
#   scripts/fuzz.sh --build-only [TARGET...]
#   scripts/fuzz.sh --repro TARGET FILE     # run one input (a crash's reproducer)
#   scripts/fuzz.sh --list
# Targets: sip sdp rtp tenant_yaml envelope access_record http (all by default).
# Each runs until S seconds (default 60) or N executions, whichever comes first, with
# -malloc_limit_mb=512 (an allocation over 512 MB is a failure) and -rss_limit_mb=512 (1024
# for http: its fixture is a whole supervisor over file-backed SQLite, whose page caches and
# ASan's shadow of them held 420-520 MB with 36 MB of live heap), a
# per-input timeout (5 s; 15 s for http), the target's -max_len and dictionary
# (fuzz/dict/TARGET.dict), the committed seeds (fuzz/corpus/TARGET, read only) and a working
# corpus outside the clone that later runs go on from.
#
# Prints per target: executions, exec/s, CPU seconds (user + system), corpus size, peak RSS,
# and whether it failed; exits non-zero if any target crashed, timed out or ran out of memory,
# naming the reproducer.
#
# Installs cargo-fuzz if missing (`cargo install cargo-fuzz --locked`). Builds on the stable
# toolchain with RUSTC_BOOTSTRAP=1 (cargo fuzz needs nightly flags) into
# CALLGRID_FUZZ_TARGET_DIR, else CARGO_TARGET_DIR, else ~/.cache/callgrid/fuzz-target (outside
# the clone; the first build takes a while: every dependency is instrumented). Working corpora,
# crash artifacts and logs go to CALLGRID_FUZZ_WORK (default ~/.cache/callgrid/fuzz-work).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(sip sdp rtp tenant_yaml envelope access_record http)

max_len() {
  case "$1" in
    rtp) echo 1500 ;;
    sip | sdp) echo 4096 ;;
    access_record | http) echo 8192 ;;
    tenant_yaml | envelope) echo 16384 ;;
    *) echo 4096 ;;
  esac
}
rss_limit() {
  case "$1" in
    http) echo 1024 ;;
    *) echo 512 ;;
  esac
}
timeout_of() {
  case "$1" in
    http) echo 15 ;;
    *) echo 5 ;;
  esac
}

seconds=60
runs=""
sanitizer=address
build_only=0
repro=()
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --sanitizer) sanitizer="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --repro) repro=("$2" "$3"); shift 3 ;;
    --list) printf '%s\n' "${ALL[@]}"; exit 0 ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
if [ ${#repro[@]} -gt 0 ]; then
  names=("${repro[0]}")
fi
if [ ${#names[@]} -eq 0 ]; then
  names=("${ALL[@]}")
fi
for n in "${names[@]}"; do
  if [ ! -f "fuzz/fuzz_targets/$n.rs" ]; then
    echo "fuzz.sh: no target $n (targets: ${ALL[*]})" >&2
    exit 2
  fi
done

export RUSTC_BOOTSTRAP=1
target_dir="${CALLGRID_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/callgrid/fuzz-target}}"
work="${CALLGRID_FUZZ_WORK:-$HOME/.cache/callgrid/fuzz-work}"
mkdir -p "$target_dir" "$work"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
build_flags=(--release --debug-assertions --sanitizer "$sanitizer" --target-dir "$target_dir")
echo "== build (${sanitizer} sanitizer, debug assertions) into $target_dir"
if [ ${#names[@]} -eq ${#ALL[@]} ]; then
  cargo fuzz build "${build_flags[@]}"
else
  for n in "${names[@]}"; do
    cargo fuzz build "${build_flags[@]}" "$n"
  done
fi
bin_dir="$target_dir/$triple/release"
if [ "$build_only" -eq 1 ]; then
  exit 0
fi

if [ ${#repro[@]} -gt 0 ]; then
  export ASAN_OPTIONS="detect_odr_violation=0:quarantine_size_mb=64${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  n="${repro[0]}"
  exec "$bin_dir/$n" -rss_limit_mb="$(rss_limit "$n")" -malloc_limit_mb=512 -timeout="$(timeout_of "$n")" "${repro[1]}"
fi

# the bundled SQLite amalgamation has function-local statics of one name (`aiOff`), which
# ASan's one-definition-rule check takes for one global defined twice: a false report. A
# smaller quarantine than ASan's 256 MB leaves the 512 MB limit to the target itself.
export ASAN_OPTIONS="detect_odr_violation=0:quarantine_size_mb=64${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

# Sets children_cpu to the CPU seconds (user + system) this script's ended children used so
# far, from `times`; called in this shell (in a command substitution `times` would count
# the subshell's children).
times_file="$(mktemp)"
trap 'rm -f "$times_file"' EXIT
read_children_cpu() {
  times >"$times_file"
  children_cpu="$(sed -n 2p "$times_file" | awk '{
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    printf "%.0f", t
  }')"
}

failed=0
summary=()
for n in "${names[@]}"; do
  corpus="$work/corpus/$n"
  artifacts="$work/artifacts/$n"
  log="$work/logs/$n.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  args=(
    -rss_limit_mb="$(rss_limit "$n")" -malloc_limit_mb=512
    -timeout="$(timeout_of "$n")"
    -max_len="$(max_len "$n")"
    -max_total_time="$seconds"
    -print_final_stats=1
    -artifact_prefix="$artifacts/"
  )
  if [ -f "fuzz/dict/$n.dict" ]; then
    args+=(-dict="fuzz/dict/$n.dict")
  fi
  if [ -n "$runs" ]; then
    args+=(-runs="$runs")
  fi
  echo "== $n: up to ${seconds} s${runs:+ or $runs runs} (log: $log)"
  status=0
  read_children_cpu
  cpu_before=$children_cpu
  "$bin_dir/$n" "${args[@]}" "$corpus" "fuzz/corpus/$n" >"$log" 2>&1 || status=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  execs="$(stat number_of_executed_units)"
  rate="$(stat average_exec_per_sec)"
  rss="$(stat peak_rss_mb)"
  files="$(find "$corpus" -type f | wc -l)"
  read_children_cpu
  cpu=$((children_cpu - cpu_before))
  if [ "$status" -eq 0 ]; then
    verdict="ok"
  else
    failed=1
    kind="$(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|panicked at [^ ]+' "$log" || echo "exit $status")"
    unit="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
    verdict="FAILED ($kind) reproducer: ${unit:-none written}; log: $log"
    tail -n 40 "$log"
  fi
  line="$(printf '%-14s execs %-10s exec/s %-8s CPU %-6s s corpus %-6s peak RSS %-5s MB  %s' \
    "$n" "${execs:--}" "${rate:--}" "$cpu" "$files" "${rss:--}" "$verdict")"
  echo "$line"
  summary+=("$line")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "fuzz.sh: a target failed; rerun one input with: scripts/fuzz.sh --repro TARGET FILE" >&2
  exit 1
fi
