#!/usr/bin/env bash
# Thread scaling of `numasim sweep`: the shipped quickstart sweep (225 runs)
# with 1 and 2 worker threads, alternated so that drifts of the machine's
# speed hit both alike; prints every pair and the median ratio.
#   benches/sweep-scaling.sh [ROUNDS] [SWEEP]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
sweep=${2:-scenarios/quickstart-sweep.toml}
cargo build --release --quiet
bin=target/release/numasim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ratios=()
for r in $(seq "$rounds"); do
  t=()
  for threads in 1 2; do
    rm -rf "$tmp/out"
    start=$(date +%s.%N)
    "$bin" sweep "$sweep" --out "$tmp/out" --threads "$threads" >/dev/null 2>&1
    t+=("$(echo "$(date +%s.%N) - $start" | bc -l)")
  done
  ratio=$(echo "${t[0]} / ${t[1]}" | bc -l)
  ratios+=("$ratio")
  printf 'round %d: 1 thread %.2f s, 2 threads %.2f s, speed-up %.2fx\n' "$r" "${t[0]}" "${t[1]}" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median speed-up over %d rounds: %.2fx\n", NR, a[int((NR+1)/2)]}'
