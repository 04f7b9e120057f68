#!/usr/bin/env bash
# Side-by-side timing of numasim replay and Nova's replayer on the same inputs.
# Usage: benches/replay-vs-nova.sh ORACLE_DIR FLEET TRACE FLAVORS [STRATEGY] [HOST_CHECK]
# ORACLE_DIR holds nova_replay.py and its .venv (shared/oracle, after install.sh).
set -euo pipefail
oracle=$1 fleet=$2 trace=$3 flavors=$4 strategy=${5:-spread} check=${6:-all}
tmp=$(mktemp -d)
cargo build --release --quiet
start=$(date +%s.%N)
./target/release/numasim replay --fleet "$fleet" --trace "$trace" --flavors "$flavors" \
  --strategy "$strategy" --host-check "$check" --out "$tmp/numasim.jsonl" 2>/dev/null
mid=$(date +%s.%N)
"$oracle/.venv/bin/python" "$oracle/nova_replay.py" --fleet "$fleet" --trace "$trace" --flavors "$flavors" \
  --strategy "$strategy" --host-check "$check" --out "$tmp/nova.jsonl" 2>/dev/null
end=$(date +%s.%N)
ours=$(echo "$mid - $start" | bc -l); nova=$(echo "$end - $mid" | bc -l)
same=$(cmp -s "$tmp/numasim.jsonl" "$tmp/nova.jsonl" && echo identical || echo DIFFERENT)
printf 'numasim %.3f s   nova %.1f s   ratio %.0fx   outputs %s\n' "$ours" "$nova" "$(echo "$nova / $ours" | bc -l)" "$same"
rm -rf "$tmp"
