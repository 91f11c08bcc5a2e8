#!/usr/bin/env bash
# Sets up geotower on a fresh Debian machine with Python >= 3.11: a virtualenv in .venv with everything installed.
#   bash scripts/setup.sh          # the package (CPU torch 2.13.0 pinned: no multi-GB CUDA download)
#   bash scripts/setup.sh --dev    # plus test tools and headless Chromium for the map-page end-to-end test
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
        >/dev/null 2>&1 || echo "warning: could not install chromium; the browser test will be skipped" >&2
    else
      echo "note: run as root (or install Debian's chromium + chromium-driver) for the browser test" >&2
    fi
  fi
else
  .venv/bin/python -m pip install --quiet -e .
fi
echo "geotower installed in .venv ($(.venv/bin/geotower --version))"
