#!/usr/bin/env bash
# Builds callgrid and runs it on one node with embedded storage and the demo tenant.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
bash scripts/install-build-deps.sh
cargo build --release --locked -p callgrid
exec target/release/callgrid serve --data-dir "${CALLGRID_DATA_DIR:-data}" "$@"
