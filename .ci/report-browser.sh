#!/usr/bin/env bash
# The run report in a real browser: Debian's Chromium, headless, loads
# report.html from a file (no network), must render the verdict, the table
# and the charts with no console error; a screenshot is kept under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NUMASIM_BIN:-target/release/numasim}
OUT=target/ci-report
rm -rf "$OUT"; mkdir -p "$OUT"
if ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
fi
"$BIN" run scenarios/quickstart.toml --out "$OUT/run" >/dev/null
FLAGS=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --hide-scrollbars --user-data-dir="$OUT/profile" --enable-logging=stderr --v=0)
URL="file://$PWD/$OUT/run/report.html"
timeout 120 chromium "${FLAGS[@]}" --dump-dom "$URL" >"$OUT/dom.html" 2>"$OUT/chromium.log"
timeout 120 chromium "${FLAGS[@]}" --window-size=1200,2400 --screenshot="$PWD/$OUT/report.png" "$URL" \
  >/dev/null 2>>"$OUT/chromium.log"
dom=$(cat "$OUT/dom.html")
for needle in "<h2>Verdict</h2>" "lowest rejection rate: " "Policies side by side" "Glossary"; do
  grep -qF "$needle" <<<"$dom" || { echo "report.html: '$needle' not rendered"; exit 1; }
done
svgs=$(grep -o "<svg" <<<"$dom" | wc -l)
[ "$svgs" -ge 5 ] || { echo "report.html: $svgs charts rendered, expected 5"; exit 1; }
if grep -q "CONSOLE" "$OUT/chromium.log"; then
  grep "CONSOLE" "$OUT/chromium.log"; echo "report.html: console errors"; exit 1
fi
size=$(stat -c %s "$OUT/report.png")
[ "$size" -gt 50000 ] || { echo "screenshot too small ($size bytes)"; exit 1; }
echo "report in Chromium: ok ($svgs charts; screenshot $OUT/report.png)"
