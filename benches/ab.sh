#!/usr/bin/env bash
# A/B timing of two numasim binaries on one command, alternated so that
# drifts of a shared machine hit both alike; prints the median wall times.
#   benches/ab.sh OLD_BIN NEW_BIN ROUNDS -- ARGS...
set -euo pipefail
old=$1 new=$2 rounds=$3
shift 4
declare -a a b
for _ in $(seq "$rounds"); do
  for which in old new; do
    bin=${!which}
    start=$(date +%s%N)
    "$bin" "$@" >/dev/null 2>&1
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    if [ "$which" = old ]; then a+=("$ms"); else b+=("$ms"); fi
  done
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mo=$(median "${a[@]}"); mn=$(median "${b[@]}")
echo "old: ${a[*]} ms (median $mo)"
echo "new: ${b[*]} ms (median $mn)"
awk -v o="$mo" -v n="$mn" 'BEGIN {printf "new/old: %.3f\n", n / o}'
