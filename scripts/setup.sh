#!/usr/bin/env bash
# Sets up geotower on a fresh Debian machine with Python >= 3.11: a virtualenv in .venv with everything installed.
#   bash scripts/setup.sh          # the package, at the exact versions of constraints.txt (CPU torch 2.13.0)
#   bash scripts/setup.sh --dev    # plus test tools and headless Chromium for the map-page end-to-end test
# torch comes from PyTorch's CPU wheel index (no multi-GB CUDA download); set GEOTOWER_TORCH_INDEX to another index
# (e.g. https://download.pytorch.org/whl/cu128) or to "" for PyPI's default build. A torch already in .venv is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_INDEX=${GEOTOWER_TORCH_INDEX-https://download.pytorch.org/whl/cpu}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet -c constraints.txt)
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  "${PIP[@]}" --retries 1 ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} torch
fi
if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" -e '.[dev]'
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
        >/dev/null 2>&1 || echo "warning: could not install chromium; the browser test will be skipped" >&2
    else
      echo "note: run as root (or install Debian's chromium + chromium-driver) for the browser test" >&2
    fi
  fi
else
  "${PIP[@]}" -e .
fi
echo "geotower installed in .venv ($(.venv/bin/geotower --version))"
