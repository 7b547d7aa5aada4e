#!/usr/bin/env bash
# The SIP rate against Kamailio of two builds of callgrid, alternated (issue 18's
# no-regression line: the new build's ratio ≥ 0.95× the old build's, median of 3). Each round
# runs each build's own `sip-rate --target both --find-max` (Kamailio, then callgrid, on the
# same scenarios and Kamailio configuration: this checkout's), old first, and takes the ratio
# of the highest rates held (or, when no rate held, of the last run's achieved rates). Each
# directory holds that build's `callgrid` and `sip-rate` (target/release of
# `cargo build --release -p callgrid -p callgrid-loadtest`). Needs a quiet machine: about 17
# minutes a round.
#
#   loadtest/kamratio.sh OLD_DIR NEW_DIR [ROUNDS] [LOG_DIR]
set -euo pipefail
old=$1 new=$2 rounds=${3:-3} logs=${4:-/tmp/kamratio}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$logs"
grep -m1 "model name" /proc/cpuinfo; nproc
ratio_of() {
  # the ratio line under "== callgrid / kamailio": held rates first, achieved rates else
  awk '/^== callgrid \/ kamailio/ {on = 1} on && /highest rate held/ {print $NF; found = 1; exit}
       on && /achieved rate/ && !found {r = $NF} END {if (!found && r != "") print r}' "$1"
}
declare -A ratios
for i in $(seq 1 "$rounds"); do
  for b in old new; do
    dir=${!b}
    log="$logs/$b-$i.log"
    "$dir/sip-rate" --target both --callgrid-bin "$dir/callgrid" --scenarios "$here/sipp" \
      --kamailio-cfg "$here/kamailio/kamailio.cfg" --find-max --start-rate 400 \
      --step-factor 1.2 --step-duration 6 --refine 2 --agents 1500 --final-duration 20 \
      --latency-duration 3 > "$log" 2>&1 || true
    r=$(ratio_of "$log")
    ratios[$b]="${ratios[$b]:-} ${r:-?}"
    echo "round $i $b: $(grep -A1 '^== callgrid / kamailio' "$log" | tail -1 | sed 's/^ *//') -> ratio ${r:-?}"
  done
done
median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{v[NR] = $1} END {if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
mo=$(echo "${ratios[old]}" | median)
mn=$(echo "${ratios[new]}" | median)
echo "old ratios:${ratios[old]} (median ${mo:-?})"
echo "new ratios:${ratios[new]} (median ${mn:-?})"
if [ -n "$mo" ] && [ -n "$mn" ]; then
  echo "new / old: $(echo "scale=3; $mn / $mo" | bc)"
fi
