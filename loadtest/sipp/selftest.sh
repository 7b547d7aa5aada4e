#!/usr/bin/env bash
# Checks the SIPp scenarios of this directory against each other and through Kamailio
# (loadtest/kamailio/kamailio.cfg), one call each, on 127.0.0.1 ports 15060-15199.
# Needs sipp and kamailio (scripts/install-sip-tools.sh); the media scenarios need root or
# CAP_NET_RAW (SIPp plays pcaps through a raw socket).
#
#   loadtest/sipp/selftest.sh            # all checks
#   KEEP=1 loadtest/sipp/selftest.sh     # keep the work directory (SIPp logs) at the end
#
# Prints one line per check and exits non-zero if any failed.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PATH="$PATH:/usr/sbin:/sbin"
WORK="$(mktemp -d /tmp/sipp-selftest.XXXXXX)"
cd "$WORK"
PIDS=()
FAILED=0
KAM_PORT=15070
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "${KEEP:-}" ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# uas NAME SCENARIO PORT [sipp args...]: starts a UAS in the background, records its pid
uas() {
  local name=$1 sf=$2 port=$3
  shift 3
  sipp -sf "$HERE/$sf" -i 127.0.0.1 -p "$port" -nostdin -trace_err \
    -timeout 30s -timeout_error "$@" >"$name.out" 2>&1 &
  echo $! >"$name.pid"
  PIDS+=("$!")
}
# uac NAME SCENARIO TARGET_PORT [sipp args...]: runs a UAC in the foreground, returns its code
uac() {
  local name=$1 sf=$2 port=$3
  shift 3
  timeout 60 sipp "127.0.0.1:$port" -sf "$HERE/$sf" -i 127.0.0.1 -m 1 -nostdin -trace_err \
    -timeout 30s -timeout_error "$@" >"$name.out" 2>&1
}
# wait_uas NAME: waits for a UAS started with -m 1 to finish, returns its code
wait_uas() {
  local pid
  pid=$(cat "$1.pid")
  wait "$pid"
}
check() {
  local what=$1 want=$2 got=$3
  if [ "$got" = "$want" ]; then
    echo "ok    $what"
  else
    echo "FAIL  $what (exit $got, wanted $want; logs: $WORK)"
    FAILED=1
    KEEP=1
  fi
}

# scenario UAC_NAME UAC_SF UAS_NAME UAS_SF VIA "uac args" "uas args" WANT_UAC WANT_UAS
# VIA = direct | kamailio
pair() {
  local un=$1 usf=$2 an=$3 asf=$4 via=$5 uargs=$6 aargs=$7 want_uac=$8 want_uas=$9
  local aport=15080 target
  if [ "$via" = direct ]; then target=$aport; else target=$KAM_PORT; fi
  # shellcheck disable=SC2086
  uas "$an" "$asf" "$aport" -m 1 $aargs
  sleep 0.3
  # shellcheck disable=SC2086
  uac "$un" "$usf" "$target" $uargs
  local rc_uac=$?
  wait_uas "$an"
  local rc_uas=$?
  check "$usf -> ${via} -> $asf: caller" "$want_uac" "$rc_uac"
  check "$usf -> ${via} -> $asf: agent" "$want_uas" "$rc_uas"
}

sipp -v 2>&1 | grep -m1 'SIPp v'
kamailio -v | head -1

printf 'SEQUENTIAL\na0001;secret1;15081\n' >agents.csv
# caller_rtp.xml streams this file (raw A-law) from the working directory: 1 s of silence
head -c 8000 /dev/zero | tr '\0' '\325' >caller_audio.alaw
for sf in "$HERE"/*.xml; do
  # loads the scenario and exits at once (-m 0: no calls); -key is for caller_dtmf_digit.xml
  if sipp 127.0.0.1:1 -sf "$sf" -key dtmf_pcap /usr/share/sip-tester/dtmf_2833_5.pcap \
    -inf agents.csv -m 0 -nostdin -i 127.0.0.1 -timeout 2s >"load.out" 2>&1; then
    echo "ok    $(basename "$sf") loads"
  else
    echo "FAIL  $(basename "$sf") does not load: $(grep -v '^ *$' load.out | tail -1)"
    FAILED=1
  fi
done

mkdir -p kam-run
kamailio -f "$ROOT/loadtest/kamailio/kamailio.cfg" -DD -E -m 64 -M 8 -Y "$WORK/kam-run" \
  -P "$WORK/kam-run/kamailio.pid" -A SIP_PORT=$KAM_PORT -A AGENT_PORT=15080 \
  -A 'AGENT_PASSWORD="secret1"' >kamailio.out 2>&1 &
PIDS+=("$!")
sleep 1

for via in direct kamailio; do
  pair caller caller.xml agent agent_answer.xml $via "-s +15550000001 -p 15090 -d 200" "" 0 0
  pair caller_media caller.xml agent_echo agent_answer.xml $via \
    "-s +15550000001 -p 15090 -d 1500 -set media 1" "-mp 16000 -rtp_echo" 0 0
  pair abandon caller_abandon.xml agent agent_answer.xml $via "-s +15550000001 -p 15090 -d 500" "" 0 0
  pair cancel caller_cancel.xml noanswer agent_noanswer.xml $via "-s +15550000001 -p 15090" "" 0 0
  pair cancel_ring caller_cancel.xml agent_ringing agent_ring.xml $via \
    "-s +15550000001 -p 15090" "-d 3000" 0 0
  pair ring caller.xml agent_ringing agent_ring.xml $via "-s +15550000001 -p 15090 -d 200" "-d 500" 0 0
  pair caller_rtp caller_rtp.xml agent_echo agent_answer.xml $via \
    "-s +15550000001 -p 15090 -d 1000" "-mp 16000 -rtp_echo" 0 0
  pair remote_bye caller.xml hangup agent_hangup.xml $via "-s +15550000001 -p 15090 -d 5000" "-d 300" 0 0
  pair dtmf caller_dtmf.xml agent_echo agent_answer.xml $via \
    "-s +15550000001 -p 15090 -d 300" "-mp 16000 -rtp_echo" 0 0
  pair dtmf_digit caller_dtmf_digit.xml agent_echo agent_answer.xml $via \
    "-s +15550000001 -p 15090 -d 300 -key dtmf_pcap /usr/share/sip-tester/dtmf_2833_pound.pcap" \
    "-mp 16000 -rtp_echo" 0 0
  pair info caller_info_dtmf.xml agent_aa agent_answer.xml $via "-s +15550000001 -p 15090 -d 300 -set digit 7" "-aa" 0 0
  # the caller expects a 200: a 486 fails its call (exit 1), the agent succeeds
  pair busy caller.xml busy agent_busy.xml $via "-s +15550000001 -p 15090" "" 1 0
done

uac register agent_register.xml $KAM_PORT -inf agents.csv -p 15091
check "agent_register.xml -> kamailio (right password)" 0 $?
uac register_wrong agent_register_wrong.xml $KAM_PORT -inf agents.csv -p 15091
check "agent_register_wrong.xml -> kamailio (rejected)" 0 $?
printf 'SEQUENTIAL\na0001;secret1-wrong;15081\n' >wrong.csv
uac register_bad agent_register.xml $KAM_PORT -inf wrong.csv -p 15091
check "agent_register.xml -> kamailio (wrong password: must fail)" 1 $?

if [ "$FAILED" = 0 ]; then echo "all checks passed"; fi
exit "$FAILED"
