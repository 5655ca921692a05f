#!/usr/bin/env bash
# Prints a hash of everything pkg/ is built from; build.sh stores it in pkg/.stamp and test.sh
# rebuilds when it differs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
{
    find core/src core/Cargo.toml wasm/src wasm/js wasm/Cargo.toml wasm/build.sh Cargo.toml -type f | LC_ALL=C sort
} | xargs sha256sum | sha256sum | cut -d' ' -f1
