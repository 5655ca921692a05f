#!/usr/bin/env bash
# Installs everything the tests need, on a fresh machine or an old one: the wasm target,
# wasm-bindgen-cli at the version Cargo.lock pins, npm packages, Chromium, PostgreSQL, and moto.
# Idempotent: each step checks first and does nothing when the tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Rust wasm target"
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

step "wasm-bindgen-cli (the version in Cargo.lock)"
want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock 2>/dev/null || true)
if [ -n "$want" ]; then
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$want" ]; then
    # Without --locked: the registry here lacks one of its locked dependencies.
    cargo install wasm-bindgen-cli --version "$want"
  fi
  echo "wasm-bindgen $want"
fi

step "npm packages"
for dir in wasm web-demo tests/node; do
  if [ -f "$dir/package.json" ]; then
    if [ -f "$dir/package-lock.json" ]; then (cd "$dir" && npm ci --no-audit --no-fund); else (cd "$dir" && npm install --no-audit --no-fund); fi
  fi
done

step "Chromium (browser tests)"
if [ -d web-demo ] && [ -f web-demo/package.json ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
command -v chromium >/dev/null 2>&1 && chromium --version || true

step "openssl (signs the SNS test messages of serve_events)"
if ! command -v openssl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  fi
fi
openssl version

step "PostgreSQL (the shared-ledger tests start a throwaway cluster with initdb)"
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
fi
# PostgreSQL refuses to run as root: as root, the tests run the cluster as this user.
if [ "$(id -u)" = 0 ] && ! id -u metergate-pg >/dev/null 2>&1; then
  useradd -r -M -d /nonexistent -s /usr/sbin/nologin metergate-pg
fi
pgbin=$(command -v initdb >/dev/null 2>&1 && dirname "$(readlink -f "$(command -v initdb)")" || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
"$pgbin/postgres" --version

step "moto (AWS peer), into .peers/moto"
if [ ! -f .peers/moto/moto/__init__.py ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target .peers/moto 'moto==5.2.5' flask flask-cors
fi
echo "moto $(PYTHONPATH=.peers/moto python3 -c 'import moto; print(moto.__version__)')"

step "cbor2 (the AWS Agreement/Entitlement fake speaks Smithy RPC v2 CBOR), into .peers/cbor2"
if [ ! -f .peers/cbor2/cbor2/__init__.py ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target .peers/cbor2 'cbor2==5.6.5'
fi
PYTHONPATH=.peers/cbor2 python3 -c 'import cbor2; print("cbor2 ok")'

step "Prism (Azure peer), into .peers/prism"
if [ -d tests/peers ] && ls tests/peers/*azure* >/dev/null 2>&1 && [ ! -x .peers/prism/node_modules/.bin/prism ]; then
  mkdir -p .peers/prism && (cd .peers/prism && npm install --no-audit --no-fund --silent @stoplight/prism-cli@5 >/dev/null)
fi
