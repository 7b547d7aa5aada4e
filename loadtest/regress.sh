#!/usr/bin/env bash
# Old and new builds of callgrid alternated on this machine (issue 18's no-regression line):
# SIP at a fixed rate (calls per CPU-second of the system under test, from sip-rate's step
# line) and gRPC routing at a fixed rate (calls completed per CPU-second of `callgrid serve`,
# from /proc). Each directory holds that build's `callgrid`, `sip-rate` and `traffic`
# (target/release of `cargo build --release -p callgrid -p callgrid-loadtest`).
#
#   loadtest/regress.sh OLD_DIR NEW_DIR [ROUNDS] [LOG_DIR]
set -euo pipefail
old=$1 new=$2 rounds=${3:-3} logs=${4:-/tmp/regress}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$logs"
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
grep -m1 "model name" /proc/cpuinfo; nproc
for i in $(seq 1 "$rounds"); do
  for b in old new; do
    dir=${!b}
    "$dir/sip-rate" --target callgrid --callgrid-bin "$dir/callgrid" --scenarios "$here/sipp" \
      --rate 700 --duration 15 --agents 1000 > "$logs/sip-$b-$i.log" 2>&1 || true
    echo "SIP $b $i: $(grep -E 'offered +700/s' "$logs/sip-$b-$i.log" | tail -1)"
    data=$(mktemp -d /tmp/regress-serve-XXXX)
    "$dir/callgrid" serve --data-dir "$data" --no-demo --no-sip --listen 127.0.0.1:7391 \
      --supervisor-listen 127.0.0.1:7392 > "$data/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do [ -s "$data/admin.token" ] && break; sleep 0.1; done
    sleep 1
    "$dir/traffic" --router http://127.0.0.1:7391 --token-file "$data/admin.token" --tenants 8 \
      --agents 1000 --rate 2000 --duration 3 > /dev/null 2>&1 || true
    c0=$(cpu "$pid")
    "$dir/traffic" --router http://127.0.0.1:7391 --token-file "$data/admin.token" --tenants 8 \
      --agents 1000 --rate 2000 --duration 15 --prefix m > "$logs/traffic-$b-$i.log" 2>&1 || true
    c1=$(cpu "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$data"
    completed=$(grep -oE '\(([0-9]+) completed' "$logs/traffic-$b-$i.log" | grep -oE '[0-9]+' | head -1)
    echo "routing $b $i: ${completed:-?} calls completed, serve CPU $(echo "$c1 - $c0" | bc) s"
  done
done
