#!/usr/bin/env bash
# Installs moto (the AWS Marketplace Metering peer of metergate's submit tests) into
# .peers/moto, without touching the system's Python. Idempotent. See tests/peers/aws_harness.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -f .peers/moto/moto/__init__.py ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target .peers/moto 'moto==5.2.5' flask flask-cors
fi
echo "moto $(PYTHONPATH=.peers/moto python3 -c 'import moto; print(moto.__version__)') in .peers/moto"
