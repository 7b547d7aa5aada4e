#!/usr/bin/env bash
# Installs the SIP test tools: SIPp (Debian package `sip-tester`, binary `sipp`), Kamailio
# (the comparison proxy for loadtest/src/bin/sip-rate.rs) and baresip (`baresip-core`, a real
# softphone for services/callgrid/tests/sipp.rs).
#
# Idempotent: does nothing when `sipp`, `kamailio` and `baresip` are already on PATH. Otherwise runs
# `apt-get update` and installs both packages behind a /usr/sbin/policy-rc.d that exits 101,
# so that the kamailio package does not start its system service (which would listen on
# 5060 with /etc/kamailio/kamailio.cfg). Any policy-rc.d that was there before is restored.
#
# Needs root (or sudo) and a Debian/Ubuntu apt. Usage: scripts/install-sip-tools.sh
set -euo pipefail

# kamailio lives in /usr/sbin, which is not on every user's PATH
PATH="$PATH:/usr/sbin:/sbin"

if command -v sipp >/dev/null 2>&1 && command -v kamailio >/dev/null 2>&1 \
  && command -v baresip >/dev/null 2>&1; then
  echo "sipp, kamailio and baresip already installed: $(command -v sipp), $(command -v kamailio), $(command -v baresip)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-sip-tools: need root or sudo to install sip-tester, kamailio and baresip-core" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-sip-tools: apt-get not found; install SIPp 3.6.x and Kamailio 5.6 by hand" >&2
  exit 1
fi

POLICY=/usr/sbin/policy-rc.d
BACKUP=""
restore_policy() {
  if [ -n "$BACKUP" ]; then
    $SUDO mv -f "$BACKUP" "$POLICY"
  else
    $SUDO rm -f "$POLICY"
  fi
}
if [ -e "$POLICY" ]; then
  BACKUP="$POLICY.install-sip-tools.$$"
  $SUDO cp -p "$POLICY" "$BACKUP"
fi
trap restore_policy EXIT
printf '#!/bin/sh\n# written by callgrid scripts/install-sip-tools.sh: do not start services\nexit 101\n' \
  | $SUDO tee "$POLICY" >/dev/null
$SUDO chmod 755 "$POLICY"

echo "== apt-get update"
$SUDO apt-get update
echo "== apt-get install sip-tester kamailio baresip-core"
$SUDO env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends sip-tester kamailio baresip-core

command -v sipp >/dev/null && command -v kamailio >/dev/null && command -v baresip >/dev/null
sipp_version=$({ sipp -v 2>&1 || true; } | grep -m1 -o 'SIPp v[^ ]*' || true)
kamailio_version=$({ kamailio -v 2>&1 || true; } | head -1)
echo "installed: ${sipp_version:-sipp}; ${kamailio_version:-kamailio}"
