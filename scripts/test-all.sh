#!/usr/bin/env bash
# The one test command: installs what the tests need (scripts/setup.sh), then runs every test
# suite of every layer. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
start=$(date +%s)
step() { printf '\n==> [%ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

bash scripts/setup.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "core purity: metergate-core builds for wasm32"
cargo build -p metergate-core --target wasm32-unknown-unknown --quiet

step "Rust tests (core, CLI, submit against moto)"
cargo test --workspace --quiet

if [ -x wasm/test.sh ]; then
  step "WASM package: build and Node tests"
  bash wasm/test.sh
fi

if [ -x web-demo/test.sh ]; then
  step "Web demo: browser end-to-end tests"
  bash web-demo/test.sh
fi

if [ -x fuzz/run.sh ]; then
  step "Fuzzing, briefly"
  bash fuzz/run.sh "${FUZZ_SECONDS:-20}"
fi

step "all tests passed"
