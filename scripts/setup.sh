#!/usr/bin/env bash
# Set up a virtual environment with everything pytest-clipcompress and its tests need.
# Usage: bash scripts/setup.sh            (creates .venv beside the project)
# TORCH_VERSION / TORCHVISION_VERSION choose another matching pair of wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
fi
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/python -c "import pytest_clipcompress, open_clip, captum; print('pytest-clipcompress', pytest_clipcompress.__version__, 'ready in .venv')"
