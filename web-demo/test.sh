#!/usr/bin/env bash
# End-to-end tests of the web demo in a real browser (Debian's Chromium, driven by
# playwright-core). Builds the demo's copy of the npm package if needed, builds the CLI if it
# is missing (one test compares the page's counts with the CLI's), starts serve.mjs on a free
# loopback port, and runs tests/*.test.mjs with node's test runner. Screenshots of each state
# go to ../target/e2e/. Exits non-zero when a test fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"

if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund
fi

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  echo "test.sh: $chromium_bin is missing: run scripts/setup.sh (it installs Debian's chromium)" >&2
  exit 1
fi
export CHROMIUM="$chromium_bin"

node build.mjs --if-needed

cli="${METERGATE_CLI:-$root/target/debug/metergate}"
if [ ! -x "$cli" ]; then
  echo "test.sh: building the CLI (cargo build -p metergate)"
  (cd "$root" && cargo build -p metergate --quiet)
fi
export METERGATE_CLI="$cli"

mkdir -p "$root/target/e2e"
export E2E_OUT="$root/target/e2e"

# The static server, on a free port picked by the OS.
log="$(mktemp)"
node serve.mjs --port 0 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  url="$(sed -n 's/^serving \(http[^ ]*\).*/\1/p' "$log")"
  [ -n "$url" ] && break
  if ! kill -0 "$server" 2>/dev/null; then cat "$log" >&2; exit 1; fi
  sleep 0.1
done
if [ -z "${url:-}" ]; then
  echo "test.sh: serve.mjs did not start" >&2
  cat "$log" >&2
  exit 1
fi
export DEMO_URL="$url"
echo "test.sh: serving the demo at $DEMO_URL"

node --test --test-concurrency=1 tests/*.test.mjs
