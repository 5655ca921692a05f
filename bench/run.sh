#!/usr/bin/env bash
# metergate throughput and memory, against a parse-only floor and what a front-end team would
# write instead. See bench/README.md.
#
#   bash bench/run.sh            1,000,000 rows
#   bash bench/run.sh --quick    100,000 rows (a few minutes once everything is built)
#
# Builds what is missing (release CLI, bench/floor, wasm/pkg, bench/node's npm ci), generates
# bench/data/rows-N/ deterministically (bench/gen_data.mjs), measures every variant
# BENCH_RUNS times (default 3, best wall time kept, peak RSS from GNU time), prints one
# Markdown table and writes it, with the machine and the date, to bench/RESULTS.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

rows=1000000
mode=full
case "${1:-}" in
    --quick) rows=100000; mode=quick ;;
    "") ;;
    *) echo "usage: bash bench/run.sh [--quick]" >&2; exit 2 ;;
esac
# The full run keeps one run per variant by default: its slowest variants take minutes each.
if [ "$mode" = quick ]; then runs="${BENCH_RUNS:-3}"; else runs="${BENCH_RUNS:-1}"; fi
export BENCH_RUNS="$runs"
say() { echo "run.sh: $*" >&2; }

# --- tools ------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ] || ! /usr/bin/time -f '%M' true >/dev/null 2>&1; then
    say "GNU time is missing: installing the Debian package 'time'"
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
    else
        sudo apt-get install -y time >/dev/null || { sudo apt-get update >/dev/null && sudo apt-get install -y time >/dev/null; }
    fi
fi
for tool in cargo node npm; do
    command -v "$tool" >/dev/null || { say "$tool is not installed"; exit 1; }
done

# --- builds -----------------------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-$root/target}"
say "cargo build --release --locked -p metergate"
cargo build --release --locked -p metergate
cli="$target_dir/release/metergate"
say "cargo build --release --locked --manifest-path bench/floor/Cargo.toml"
(cd "$here/floor" && cargo build --release --locked)
floor="$here/floor/target/release/metergate-floor"
if [ ! -f "$root/wasm/pkg/package.json" ] || [ ! -f "$root/wasm/pkg/node/metergate_bg.wasm" ]; then
    say "wasm/pkg is missing: building it (bash wasm/build.sh)"
    [ -d "$root/wasm/node_modules" ] || (cd "$root/wasm" && npm ci --no-audit --no-fund)
    bash "$root/wasm/build.sh"
fi
if [ ! -d "$here/node/node_modules" ]; then
    say "npm ci in bench/node"
    (cd "$here/node" && npm ci --no-audit --no-fund)
fi

# --- data -------------------------------------------------------------------------------
data="$here/data/rows-$rows"
if [ ! -f "$data/meta.json" ] || [ "$here/gen_data.mjs" -nt "$data/meta.json" ]; then
    say "generating $data"
    node "$here/gen_data.mjs" "$data" "$rows" >&2
fi
csv="$data/usage.csv"
now="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).now)' "$data/meta.json")"
results="$data/results.jsonl"
: >"$results"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# A copy of the npm package: wasm/build.sh starts with rm -rf pkg, so a rebuild running
# meanwhile must not pull it away in the middle of the measurements.
cp -r "$root/wasm/pkg" "$tmp/pkg"
export METERGATE_PKG="$tmp/pkg"

# --- measuring --------------------------------------------------------------------------
# native NAME CMD...: best wall time of $runs runs (stdout to /dev/null), peak RSS (max).
native() {
    local name="$1"
    shift
    local best="" cpu_best="" rss=0 t0 t1 s c m status
    for _ in $(seq "$runs"); do
        t0="$EPOCHREALTIME"
        status=0
        /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" "$@" >/dev/null 2>"$tmp/err" || status=$?
        t1="$EPOCHREALTIME"
        # metergate check exits 1 when some record is rejected; 2 and up is a failure.
        if [ "$status" -gt 1 ]; then
            say "$name failed (exit $status):"
            cat "$tmp/err" "$tmp/time" >&2
            exit 1
        fi
        s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"
        m="$(awk 'END { print $2 }' "$tmp/time")"
        c="$(awk 'END { printf "%.2f", $3 + $4 }' "$tmp/time")"
        if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best="$s"; fi
        if [ -z "$cpu_best" ] || awk -v a="$c" -v b="$cpu_best" 'BEGIN { exit !(a < b) }'; then cpu_best="$c"; fi
        [ "$m" -gt "$rss" ] && rss="$m"
    done
    say "$name: ${best}s wall, ${cpu_best}s CPU, ${rss} KiB"
    printf '{"name":"%s","records":%s,"seconds":%s,"cpu_seconds":%s,"rss_kib":%s}\n' "$name" "$rows" "$best" "$cpu_best" "$rss" >>"$results"
}

# node_bench NAME SCRIPT ARGS...: the script times itself (best of $runs in one process) and
# prints a JSON line; GNU time gives the process's peak RSS.
node_bench() {
    local name="$1"
    shift
    /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" node "$@" >"$tmp/out" 2>"$tmp/err" || {
        say "$name failed:"
        cat "$tmp/err" "$tmp/time" >&2
        exit 1
    }
    local m
    m="$(awk 'END { print $2 }' "$tmp/time")"
    node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop());
        r.name = process.argv[2]; r.rss_kib = Number(process.argv[3]);
        console.log(JSON.stringify(r));' "$tmp/out" "$name" "$m" >>"$results"
    say "$name: $(tail -n 1 "$results")"
}

# Verdict counts of the CLI (one extra, untimed run each): the last JSON line is the summary.
cli_counts() {
    local name="$1"
    shift
    local status=0
    "$cli" check "$csv" --contracts "$data/contracts.json" --now "$now" --format json "$@" 2>"$tmp/err" |
        tail -n 1 >"$tmp/summary" || status=$?
    node -e '
        const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const sum = s.summary ?? s;
        console.log(JSON.stringify({ name: process.argv[2], counts: true, records: sum.records, accepted: sum.accepted, rejected: sum.rejected, warnings: sum.warnings }));
    ' "$tmp/summary" "$name" >>"$results" || { say "cannot read the summary of $name:"; cat "$tmp/summary" "$tmp/err" >&2; exit 1; }
}

say "measuring $rows rows, best of $runs runs each (now = $now)"
native floor "$floor" "$csv"
native cli-builtin "$cli" check "$csv" --contracts "$data/contracts.json" --now "$now" --format json
native cli-policy "$cli" check "$csv" --contracts "$data/contracts.json" --now "$now" --format json \
    --policy "$root/examples/policies/dimension_cap.rhai" --config "$data/config.toml"
cli_counts cli-builtin
cli_counts cli-policy --policy "$root/examples/policies/dimension_cap.rhai" --config "$data/config.toml"
node_bench wasm-session "$here/node/metergate.mjs" session "$data"
node_bench wasm-csv "$here/node/metergate.mjs" csv "$data"
node_bench wasm-objects "$here/node/metergate.mjs" objects "$data"
node_bench papaparse-ajv "$here/node/alternatives.mjs" ajv "$data"
node_bench papaparse-zod "$here/node/alternatives.mjs" zod "$data"

# The web demo in Debian's Chromium (bench/browser.mjs: one run, it prints one JSON line with
# its own timing, page JS heap and whole-browser PSS). Skipped when Chromium is missing.
chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium_bin" ]; then
    [ -d "$root/web-demo/node_modules/playwright-core" ] || (cd "$root/web-demo" && npm ci --no-audit --no-fund)
    say "browser: the web demo in $chromium_bin"
    CHROMIUM="$chromium_bin" node "$here/browser.mjs" "$data" >"$tmp/out" 2>"$tmp/err" || {
        say "browser failed:"
        cat "$tmp/err" >&2
        exit 1
    }
    tail -n 1 "$tmp/out" >>"$results"
    say "browser: $(tail -n 1 "$tmp/err")"
else
    say "browser: $chromium_bin is missing (scripts/setup.sh installs Debian's chromium): not measured"
fi

# --- the table --------------------------------------------------------------------------
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
node "$here/node/table.mjs" "$results" "$mode" "$rows" "$(nproc)" "${cpu:-unknown}" \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$now" "$runs" >"$tmp/table.md"
cat "$tmp/table.md"
# The table replaces the top of RESULTS.md only: the serve section (bench/serve.sh) and the
# hand-written notes after it stay as they are.
if [ -f "$here/RESULTS.md" ] && grep -q '^<!-- serve:begin' "$here/RESULTS.md"; then
    { cat "$tmp/table.md"; echo; sed -n '/^<!-- serve:begin/,$p' "$here/RESULTS.md"; } >"$tmp/results.md"
    cp "$tmp/results.md" "$here/RESULTS.md"
else
    cp "$tmp/table.md" "$here/RESULTS.md"
fi
say "wrote bench/RESULTS.md"
