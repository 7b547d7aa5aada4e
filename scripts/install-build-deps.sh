#!/usr/bin/env bash
# Installs the C libraries callgrid's build links: OpenSSL's headers (libssl-dev, found with
# pkg-config) for librdkafka's TLS and SASL toward Kafka brokers that require them.
#
# Idempotent: does nothing when `pkg-config --exists openssl` already holds. Needs root (or
# sudo) and apt-get otherwise. Usage: scripts/install-build-deps.sh
set -euo pipefail

if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl; then
  echo "build dependencies present: openssl $(pkg-config --modversion openssl)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-build-deps: need root or sudo to install libssl-dev and pkg-config" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-build-deps: apt-get not found; install OpenSSL's headers and pkg-config by hand" >&2
  exit 1
fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libssl-dev pkg-config
pkg-config --exists openssl && echo "installed: openssl $(pkg-config --modversion openssl)"
