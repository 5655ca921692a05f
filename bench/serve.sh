#!/usr/bin/env bash
# `metergate serve` under load on loopback: single-record requests/s with p50/p99 latency,
# and records/s with 100-record JSON batches. Every accepted record is committed to the
# ledger (WAL, synchronous=FULL) before its answer; every record has a key of its own, so
# every one is really written.
#
#   bash bench/serve.sh            20,000 single requests, 5,000 batches of 100 (500,000 records)
#   bash bench/serve.sh --quick    5,000 single requests, 1,000 batches
#   bash bench/serve.sh --postgres [--quick]   the same on SQLite, then on PostgreSQL
#
# --postgres starts a throwaway PostgreSQL cluster the way the tests do (cli/tests/pg_support):
# initdb in a temp dir (as the user metergate-pg, else nobody, when root), 127.0.0.1 on a free
# port, default durability (fsync on, synchronous_commit on), stopped and removed at the end.
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
engines="sqlite"
for arg in "$@"; do
    case "$arg" in
        --quick) single=5000; batches=1000 ;;
        --postgres) engines="sqlite postgres" ;;
        *) echo "usage: bash bench/serve.sh [--quick] [--postgres]" >&2; exit 2 ;;
    esac
done
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
pg_dir=""
pg_as=()
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ -n "$pg_dir" ]; then
        "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A throwaway PostgreSQL cluster; sets pg_url.
pg_start() {
    if command -v initdb >/dev/null 2>&1; then
        pg_bin="$(dirname "$(readlink -f "$(command -v initdb)")")"
    else
        pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    fi
    [ -x "$pg_bin/initdb" ] || { say "PostgreSQL is not installed (bash scripts/setup.sh installs it)"; exit 1; }
    pg_dir="$(mktemp -d /tmp/metergate-bench-pg.XXXXXX)"
    if [ "$(id -u)" = 0 ]; then
        local user=metergate-pg
        id -u "$user" >/dev/null 2>&1 || user=nobody
        chown "$user" "$pg_dir"
        pg_as=(runuser -u "$user" --)
    fi
    "${pg_as[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
    printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nmax_connections = 100\n" \
        "$pg_dir" >> "$pg_dir/data/postgresql.conf"
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -o "-p $port" start >/dev/null
    "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'CREATE DATABASE bench'
    pg_url="postgres://postgres@127.0.0.1:$port/bench"
    say "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

"$load" contracts "$work/contracts.json" --customers "$customers" --dims "$dims"
token="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

# One engine: start the agent on LEDGER, warm up, run both phases, count the rows, stop it.
# Sets single_out, batch_out and rows.
bench_engine() {
local ledger="$1"
# No marketplace is reached: the send loop waits a day, and its endpoint is a closed port.
METERGATE_API_TOKEN="$token" AWS_ENDPOINT_URL="http://127.0.0.1:9" METERGATE_LOG=warn \
    "$bin" serve --listen 127.0.0.1:0 --ledger "$ledger" \
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

if [ "$ledger" = "$work/ledger.sqlite" ]; then
    rows="$(sqlite3 "$ledger" 'SELECT COUNT(*) FROM records' 2>/dev/null || echo '?')"
else
    rows="$("$pg_bin/psql" -X -A -t -d "$ledger" -c 'SELECT COUNT(*) FROM records' 2>/dev/null || echo '?')"
fi
say "ledger rows: $rows (expected $expected)"
case "$single_out $batch_out" in
    *"non_200=0 "*"non_200=0 "*) ;;
    *) say "WARNING: some answers were not 200 (non_200 above): these figures are not valid" ;;
esac
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
rm -f "$work/stdout"
}

expected=$((500 + single + batches * 100))
bench_engine "$work/ledger.sqlite"
sq_single="$single_out"; sq_batch="$batch_out"; sq_rows="$rows"
if [ "$engines" != "sqlite" ]; then
    pg_start
    say "the same on PostgreSQL"
    bench_engine "$pg_url"
    pg_single="$single_out"; pg_batch="$batch_out"; pg_rows_count="$rows"
fi
single_out="$sq_single"; batch_out="$sq_batch"; rows="$sq_rows"

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# One table row: LABEL OUTPUT TARGET.
row() { echo "| $1 | $(field "$2" requests) | $(field "$2" records) | $(field "$2" requests_per_s) | $(field "$2" records_per_s) | $(field "$2" p50_ms) | $(field "$2" p99_ms) | $3 |"; }
pg_rows=""
pg_note=""
if [ "$engines" != "sqlite" ]; then
    pg_rows="$(row "single record, PostgreSQL" "$pg_single" "same")
$(row "100-record batches, PostgreSQL" "$pg_batch" "same")"
    pg_note=" On PostgreSQL (a local throwaway cluster, default durability: fsync and
synchronous_commit on), ledger rows at the end: $pg_rows_count of $expected sent."
fi
cpu="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
cores="$(nproc)"
section="$(cat <<MD
<!-- serve:begin (bench/serve.sh writes this section) -->
## metergate serve (bench/serve.sh)

$(date -u +%Y-%m-%d), $cores cores ($cpu), loopback, $conns keep-alive connections, release build.
Every record has a key of its own and is committed to the ledger (WAL, synchronous=FULL) before
its answer (group commit). Ledger rows at the end: $rows of $expected sent.$pg_note

| phase | requests | records | requests/s | records/s | p50 ms | p99 ms | target |
|---|---:|---:|---:|---:|---:|---:|---|
| single record | $(field "$single_out" requests) | $(field "$single_out" records) | $(field "$single_out" requests_per_s) | $(field "$single_out" records_per_s) | $(field "$single_out" p50_ms) | $(field "$single_out" p99_ms) | >= 2,000 req/s, p99 < 25 ms |
| 100-record batches | $(field "$batch_out" requests) | $(field "$batch_out" records) | $(field "$batch_out" requests_per_s) | $(field "$batch_out" records_per_s) | $(field "$batch_out" p50_ms) | $(field "$batch_out" p99_ms) | >= 50,000 records/s |
$pg_rows
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
