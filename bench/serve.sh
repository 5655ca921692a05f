#!/usr/bin/env bash
# `metergate serve` under load on loopback: single-record requests/s with p50/p99 latency,
# and records/s with 100-record JSON batches. Every accepted record is committed to the
# ledger (WAL, synchronous=FULL) before its answer; every record has a key of its own, so
# every one is really written.
#
#   bash bench/serve.sh            20,000 single requests, 5,000 batches of 100 (500,000 records)
#   bash bench/serve.sh --quick    5,000 single requests, 1,000 batches
#
# Builds the release CLI and bench/serve-load (std only) when missing, starts the server on
# 127.0.0.1:0 with a fresh ledger in a temp dir, runs both phases, prints the results and
# writes them into the "metergate serve" section of bench/RESULTS.md (that section only).
# SERVE_CONNECTIONS (default 32) sets the client connections.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
say() { echo "serve.sh: $*" >&2; }

single=20000
batches=5000
case "${1:-}" in
    --quick) single=5000; batches=1000 ;;
    "") ;;
    *) echo "usage: bash bench/serve.sh [--quick]" >&2; exit 2 ;;
esac
conns="${SERVE_CONNECTIONS:-32}"
dims=50
customers=$(( (single + batches * 100) / (dims * 5) + 10 ))

say "building the release CLI and the load generator"
cargo build --release -p metergate >&2
cargo build --release --manifest-path bench/serve-load/Cargo.toml >&2
bin="$root/target/release/metergate"
load="$root/bench/serve-load/target/release/serve-load"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

"$load" contracts "$work/contracts.json" --customers "$customers" --dims "$dims"
token="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
# No marketplace is reached: the send loop waits a day, and its endpoint is a closed port.
METERGATE_API_TOKEN="$token" AWS_ENDPOINT_URL="http://127.0.0.1:9" METERGATE_LOG=warn \
    "$bin" serve --listen 127.0.0.1:0 --ledger "$work/ledger.sqlite" \
    --contracts "$work/contracts.json" --send-interval 1d \
    >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
for _ in $(seq 1 300); do
    if grep -q 'listening on' "$work/stdout" 2>/dev/null; then break; fi
    sleep 0.1
done
addr="$(sed -n 's/^metergate: listening on http:\/\///p' "$work/stdout" | head -1)"
[ -n "$addr" ] || { say "the server did not start:"; cat "$work/stderr" >&2; exit 1; }
say "server on $addr (pid $server_pid), $customers customers x $dims dimensions"

# Warm-up (not counted), then the two phases on fresh keys.
"$load" run --addr "$addr" --token "$token" --mode single --requests 500 --connections 8 \
    --dims "$dims" --record-offset 0 >/dev/null
single_out="$("$load" run --addr "$addr" --token "$token" --mode single --requests "$single" \
    --connections "$conns" --dims "$dims" --record-offset 500)"
echo "$single_out"
batch_out="$("$load" run --addr "$addr" --token "$token" --mode batch --batch 100 \
    --requests "$batches" --connections "$conns" --dims "$dims" --record-offset $((500 + single)))"
echo "$batch_out"

rows="$(sqlite3 "$work/ledger.sqlite" 'SELECT COUNT(*) FROM records' 2>/dev/null || echo '?')"
expected=$((500 + single + batches * 100))
say "ledger rows: $rows (expected $expected)"
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
cpu="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
cores="$(nproc)"
section="$(cat <<MD
<!-- serve:begin (bench/serve.sh writes this section) -->
## metergate serve (bench/serve.sh)

$(date -u +%Y-%m-%d), $cores cores ($cpu), loopback, $conns keep-alive connections, release build.
Every record has a key of its own and is committed to the ledger (WAL, synchronous=FULL) before
its answer (group commit). Ledger rows at the end: $rows of $expected sent.

| phase | requests | records | requests/s | records/s | p50 ms | p99 ms | target |
|---|---:|---:|---:|---:|---:|---:|---|
| single record | $(field "$single_out" requests) | $(field "$single_out" records) | $(field "$single_out" requests_per_s) | $(field "$single_out" records_per_s) | $(field "$single_out" p50_ms) | $(field "$single_out" p99_ms) | >= 2,000 req/s, p99 < 25 ms |
| 100-record batches | $(field "$batch_out" requests) | $(field "$batch_out" records) | $(field "$batch_out" requests_per_s) | $(field "$batch_out" records_per_s) | $(field "$batch_out" p50_ms) | $(field "$batch_out" p99_ms) | >= 50,000 records/s |
<!-- serve:end -->
MD
)"
results="$here/RESULTS.md"
if grep -q '<!-- serve:begin' "$results"; then
    python3 - "$results" "$section" <<'PY'
import sys, re
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r"<!-- serve:begin.*?<!-- serve:end -->", lambda m: section, text, flags=re.S)
open(path, "w").write(text)
PY
else
    printf '\n%s\n' "$section" >> "$results"
fi
say "written to bench/RESULTS.md"
