#!/usr/bin/env bash
# Crash-safety soak: `metergate submit` to the moto peer, `kill -9` at random moments,
# `submit`/`resume` again, 100 rounds (ROUNDS=n to change), then finish with `resume` and
# count at the peer: lost, sent twice with different content, ledger rows not final.
# The same test as cli/tests/submit_kill_resume.rs with more rounds and records.
#
#   tests/kill_resume.sh                 # 100 rounds, 10000 records
#   ROUNDS=300 RECORDS=20000 SEED=42 tests/kill_resume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .peers/moto/moto/__init__.py ] || { echo "moto is missing: run scripts/peers/install_moto.sh" >&2; exit 2; }
export METERGATE_KILL_ROUNDS="${ROUNDS:-100}"
export METERGATE_KILL_RECORDS="${RECORDS:-10000}"
[ -n "${SEED:-}" ] && export METERGATE_KILL_SEED="$SEED"
cargo test -q -p metergate --test submit_kill_resume -- --nocapture 2>&1 | grep -E '^kill-resume:|test result|panicked|assert'
