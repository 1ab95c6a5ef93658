#!/usr/bin/env bash
# The prepared GPU check (issue 15): on the device machine, in the repository root,
#
#   scripts/gpu_check.sh [--latency] [other scripts/gpu_check.py options]
#
# installs the wheels of .wheels/ (scripts/device_wheels.sh, carried) offline when the
# benchmark's imports fail, then runs `python scripts/gpu_check.py --device cuda` within
# 480 s, writing gpu_check.json and gpu_check.md into $OUT (or results/gpu_check).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if ! "$PY" -c "import pydantic, yaml, fvcore, ptflops, pycocotools, rich, cv2, scipy" 2>/dev/null; then
  if [[ -d .wheels ]]; then
    echo "[gpu_check.sh] installing $(ls .wheels | wc -l) wheels offline from .wheels/"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target /tmp/site .wheels/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "[gpu_check.sh] imports fail and there is no .wheels/ (run scripts/device_wheels.sh here)" >&2
  fi
  "$PY" -c "import pydantic, yaml, fvcore, ptflops, pycocotools, rich, cv2, scipy"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "import torch; print('[gpu_check.sh] torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout 480 "$PY" scripts/gpu_check.py --device cuda --out "${OUT:-results/gpu_check}" "$@"
