#!/usr/bin/env bash
# Build (once) and install mmcv with its compiled ops into the given Python environment.
#
# mmcv 2.1.0 ships no wheel for torch 2.14, and its setup.py hard-codes -std=c++14/17 while
# torch 2.14 headers need C++20. This script downloads the sdist, patches those flags, builds a
# wheel with MMCV_WITH_OPS=1 and --no-build-isolation (so it compiles against the installed torch),
# caches the wheel outside the repository and reuses it next time, then checks that mmcv.ops.nms runs.
#
# Usage: scripts/build_mmcv.sh [PYTHON]     (default: .venv/bin/python)
# Environment: MMDFKD_CACHE (default ~/.cache/mmdfkd), MMCV_VERSION (default 2.1.0),
#              MAX_JOBS (default: number of cores).
set -euo pipefail

PY="${1:-.venv/bin/python}"
# Absolute path: the build runs from inside the unpacked sdist.
if [[ "$PY" == */* ]]; then PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"; fi
MMCV_VERSION="${MMCV_VERSION:-2.1.0}"
CACHE="${MMDFKD_CACHE:-$HOME/.cache/mmdfkd}"

log() { echo "[build_mmcv] $*"; }

check_ops() {
    "$PY" - <<'PYEOF'
import torch
from mmcv.ops import nms
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
scores = torch.tensor([0.9, 0.8, 0.7])
dets, keep = nms(boxes, scores, iou_threshold=0.5)
assert keep.tolist() == [0, 2], keep
if torch.cuda.is_available():
    dets, keep = nms(boxes.cuda(), scores.cuda(), iou_threshold=0.5)
    assert keep.tolist() == [0, 2], keep
print('[build_mmcv] mmcv.ops.nms works (cuda=%s)' % torch.cuda.is_available())
PYEOF
}

if "$PY" -c "import mmcv, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null && check_ops 2>/dev/null; then
    log "mmcv $MMCV_VERSION with ops already installed"
    exit 0
fi

# The wheel depends on the Python, the torch version and whether CUDA ops are built.
read -r PYTAG TORCH_TAG WITH_CUDA < <("$PY" - <<'PYEOF'
import shutil, sys, torch
cuda = bool(torch.version.cuda) and torch.cuda.is_available() and shutil.which('nvcc') is not None
print(f'cp{sys.version_info.major}{sys.version_info.minor}', torch.__version__.split('+')[0],
      f'cu{torch.version.cuda.replace(".", "")}' if cuda else 'cpu')
PYEOF
)
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_TAG-$WITH_CUDA-$PYTAG"
mkdir -p "$WHEEL_DIR"
WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"

if [[ -z "$WHEEL" ]]; then
    log "no cached wheel in $WHEEL_DIR: building mmcv $MMCV_VERSION ($WITH_CUDA) from the sdist"
    log "this takes about 12 minutes on 2 CPU cores (longer with CUDA ops)"
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    "$PY" -m pip download --quiet --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$WORK"
    tar -xzf "$WORK/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK"
    SRC="$WORK/mmcv-$MMCV_VERSION"
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    if grep -qE -- '-std=c\+\+1[47]' "$SRC/setup.py"; then
        log "error: could not replace every -std=c++14/17 flag in $SRC/setup.py"; exit 1
    fi
    export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
    if [[ "$WITH_CUDA" == cpu ]]; then export FORCE_CUDA=0; else export FORCE_CUDA=1; fi
    (cd "$SRC" && "$PY" -m pip wheel --no-build-isolation --no-deps -w "$WORK/dist" .)
    BUILT="$(ls "$WORK"/dist/mmcv-*.whl)"
    # Copy under a temporary name, then rename: an interrupted build never leaves a broken wheel.
    cp "$BUILT" "$WHEEL_DIR/.partial.whl"
    mv "$WHEEL_DIR/.partial.whl" "$WHEEL_DIR/$(basename "$BUILT")"
    WHEEL="$WHEEL_DIR/$(basename "$BUILT")"
    log "cached $WHEEL"
else
    log "reusing cached wheel $WHEEL"
fi

"$PY" -m pip install --quiet --no-deps "$WHEEL"
check_ops
