#!/usr/bin/env bash
# Fuzzes metergate for N seconds per target (default 20) and exits non-zero on any crash.
#
#   fuzz/run.sh [N] [TARGET...]
#
# With TARGETs, only those are built and run (e.g. `fuzz/run.sh 600 policy_eval`).
# Builds every target once (cargo fuzz build -O, with debug assertions so that an integer
# overflow is a crash too), then runs each one for N seconds on its seed corpus
# (fuzz/corpus/<target>, committed) plus a working corpus (fuzz/work/<target>, not committed,
# kept between runs so coverage grows). Crashes land in fuzz/artifacts/<target>/; reproduce one
# with `RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a <target> fuzz/artifacts/<target>/<file>`, then
# add it to core/tests/regressions.rs or tests/bad_inputs/.
#
# The machine's stable toolchain is used with RUSTC_BOOTSTRAP=1 (cargo fuzz needs -Z flags).
set -uo pipefail

N="${1:-20}"
case "$N" in ''|*[!0-9]*) echo "usage: fuzz/run.sh [seconds per target]" >&2; exit 2 ;; esac

cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    # --locked first; without it if the registry here lacks a locked dependency.
    cargo install cargo-fuzz --locked >&2 || cargo install cargo-fuzz >&2 ||
        { echo "fuzz: cannot install cargo-fuzz" >&2; exit 2; }
fi

TARGETS=(csv_records json_records contracts_json policy_eval)
shift $(( $# > 0 ? 1 : 0 ))
if [ "$#" -gt 0 ]; then TARGETS=("$@"); fi
dict_of() {
    case "$1" in
        csv_records) echo dict/records.dict ;;
        json_records|contracts_json) echo dict/json.dict ;;
        policy_eval) echo dict/policy.dict ;;
    esac
}

start=$(date +%s)
# -O: release; -a: debug assertions (overflow checks). Builds all targets in one go.
BUILD=()
if [ "${#TARGETS[@]}" -eq 1 ]; then BUILD=("${TARGETS[0]}"); fi
if ! cargo fuzz build -O -a "${BUILD[@]}" >work.build.log 2>&1; then
    mkdir -p work && mv work.build.log work/build.log
    tail -40 work/build.log >&2
    echo "fuzz: build failed (log: fuzz/work/build.log)" >&2
    exit 2
fi
mkdir -p work && mv work.build.log work/build.log
echo "fuzz: built in $(( $(date +%s) - start ))s"

failed=0
for t in "${TARGETS[@]}"; do
    mkdir -p "work/$t" "artifacts/$t"
    log="work/$t.log"
    cargo fuzz run -O -a "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$N" -timeout=30 -rss_limit_mb=4096 -dict="$(dict_of "$t")" \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $t: ok, ${runs:-?} runs in ${N}s, coverage ${cov:-?}"
    else
        failed=1
        art=$(grep -oE "artifacts/$t/[^ ]+" "$log" | tail -1)
        why=$(grep -m1 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY" "$log" | cut -c1-200)
        echo "fuzz: $t: CRASH (exit $rc) ${art:+input fuzz/$art} :: ${why:-see fuzz/$log}"
    fi
done
echo "fuzz: total $(( $(date +%s) - start ))s"
exit "$failed"
