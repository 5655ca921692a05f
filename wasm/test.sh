#!/usr/bin/env bash
# Runs every test of the npm package "metergate" (wasm/):
#   1. the crate's native unit tests (the CSV reader),
#   2. the #[wasm_bindgen_test]s in wasm/tests/*.rs, under Node (wasm-bindgen-test-runner),
#   3. node --test wasm/tests/node/: every tests/conformance/*.json and wasm/tests/fixtures/*.json
#      case through the package, compared with the native core's full reports; the API; CJS
#      require, ESM import, the web build, an esbuild bundle,
#   4. tsc --noEmit on wasm/tests/ts/usage.ts against the shipped index.d.ts.
#
#   cd wasm && npm ci && bash test.sh          (or: npm test)
#
# pkg/ is (re)built first when it is missing or older than the sources (see build.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"

if [ ! -x node_modules/.bin/tsc ]; then
    echo "test.sh: run (cd wasm && npm ci) first" >&2
    exit 1
fi
if [ "$(bash stamp.sh)" != "$(cat pkg/.stamp 2>/dev/null || true)" ]; then
    echo "test.sh: pkg/ is missing or older than the sources: building it"
    bash build.sh
fi

echo "== native unit tests"
(cd "$root" && cargo test --locked -q -p metergate-wasm --lib)

echo "== wasm-bindgen tests (Node)"
(cd "$root" && CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test --locked --target wasm32-unknown-unknown -p metergate-wasm --test web)

echo "== native answers for the conformance cases"
answers="$(mktemp -t metergate-answers.XXXXXX.json)"
trap 'rm -f "$answers"' EXIT
(cd "$root" && cargo run --locked -q -p metergate-wasm --example native_answers -- tests/conformance wasm/tests/fixtures) >"$answers"

echo "== node tests"
MG_NATIVE_ANSWERS="$answers" node --test tests/node/

echo "== the bad-input catalogue through the package"
node --test "$root/tests/bad_inputs/wasm.test.mjs"

echo "== tsc --noEmit"
mkdir -p tests/ts/node_modules
ln -sfn ../../../pkg tests/ts/node_modules/metergate
node_modules/.bin/tsc --noEmit -p tests/ts
echo "tsc: the types check"
