#!/usr/bin/env bash
# Create the project's virtual environment with the pinned packages, then install dcpnas into it.
# torch/torchvision come from the local wheel cache when the machine has one, else from PyPI.
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
quiet() { grep -v "^WARNING: Location" || true; }  # the local wheel index's noise, not errors
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.lock 2>&1 | quiet
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | quiet
"$VENV/bin/python" -c "import torch, torchvision, dcpnas; print('bootstrap: torch', torch.__version__, '| dcpnas', dcpnas.__version__)"
touch "$VENV/.installed"
