#!/usr/bin/env bash
# Builds .venv/ with the pinned stack of ../shared/DESIGN.md ("Set-up"; docs/stack.md). Safe to run again: pip skips
# what is already installed. Called by `make setup`; WHEELHOUSE may name a folder holding a
# prebuilt mmcv wheel (../shared/wheels does), otherwise mmcv is compiled from source.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
PIP=("$VENV/bin/python" -m pip install --quiet -c requirements/constraints.txt)

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"${PIP[@]}" --upgrade pip 'setuptools>=77.0.3,<81' wheel
# The CPU build from the machine's local file; the pin keeps pip from fetching a CUDA build.
"${PIP[@]}" torch==2.13.0

# mmcv 2.1.0 with its compiled ops: PyPI has only its source, so take a wheel from the
# wheelhouse when one matches, and build from source (about 9 minutes on 2 cores) otherwise.
if ! "$VENV/bin/python" -c 'import mmcv.ops' 2>/dev/null; then
  installed=0
  if [ -n "${WHEELHOUSE:-}" ] && ls "$WHEELHOUSE"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    if [ -f "$WHEELHOUSE/SHA256SUMS" ]; then
      (cd "$WHEELHOUSE" && sha256sum --check --quiet --ignore-missing SHA256SUMS)
    fi
    echo "setup: mmcv from wheelhouse $WHEELHOUSE"
    "${PIP[@]}" --find-links "$WHEELHOUSE" --only-binary mmcv mmcv==2.1.0 && installed=1 \
      || echo "setup: no wheel in $WHEELHOUSE fits this machine, building mmcv from source"
  fi
  if [ "$installed" = 0 ]; then
    echo "setup: building mmcv 2.1.0 with its ops from source (about 9 minutes on 2 cores)"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 "${PIP[@]}" --no-build-isolation --no-binary mmcv mmcv==2.1.0
  fi
fi

# mmpretrain imports torchvision; the registry only has a CUDA build, so no dependencies
# (pce_mm/compat.py makes it import on a CPU torch).
"${PIP[@]}" --no-deps torchvision==0.28.0
"${PIP[@]}" -r requirements/runtime.txt -r requirements/tests.txt
"${PIP[@]}" --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c 'import pce_mm, mmcv.ops, mmdet, mmseg, mmpretrain; print("setup: ok, pce_mm", pce_mm.__version__)'
