#!/usr/bin/env bash
# Build (once) and install mmcv with its compiled ops into the given Python environment.
#
# mmcv 2.1.0 ships no wheel for torch 2.14, and its setup.py hard-codes -std=c++14/17 while
# torch 2.14 headers need C++20. This script downloads the sdist, patches those flags, builds a
# wheel with MMCV_WITH_OPS=1 and --no-build-isolation (so it compiles against the installed torch),
# caches the wheel outside the repository and reuses it next time, then checks that mmcv.ops.nms runs.
#
# The sdist's metadata is prepared without build isolation too: an isolated build environment would
# install the registry's newest setuptools, and setuptools >= 81 has no pkg_resources, which mmcv's
# setup.py imports. PYTHON must therefore have setuptools < 81 (scripts/setup_env.sh installs the
# pinned one first). With a cached wheel, CI (CI=true) or MMDFKD_VERIFY_SDIST=1 still downloads and
# prepares the sdist, so what a fresh machine does first is exercised on every CI run.
#
# Usage: scripts/build_mmcv.sh [PYTHON]     (default: .venv/bin/python)
# Environment: MMDFKD_CACHE (default ~/.cache/mmdfkd), MMCV_VERSION (default 2.1.0),
#              MAX_JOBS (default: number of cores), MMDFKD_VERIFY_SDIST (default: on when CI=true),
#              HEARTBEAT_S (seconds between progress lines during the build, default 60).
set -euo pipefail

PY="${1:-.venv/bin/python}"
# Absolute path: the build runs from inside the unpacked sdist.
if [[ "$PY" == */* ]]; then PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"; fi
MMCV_VERSION="${MMCV_VERSION:-2.1.0}"
CACHE="${MMDFKD_CACHE:-$HOME/.cache/mmdfkd}"

log() { echo "[build_mmcv] $*"; }

if ! "$PY" -c 'import pkg_resources' 2>/dev/null; then
    log "error: $PY has no pkg_resources (setuptools >= 81, or none), which mmcv's setup.py needs."
    log "Install the pinned build tools first: $PY -m pip install 'setuptools==80.10.2' (make setup does)."
    exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Download the sdist and prepare its metadata with the environment's own (pinned) setuptools.
fetch_sdist() {
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "mmcv==$MMCV_VERSION" -d "$WORK"
    tar -xzf "$WORK/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK"
}

# Print a line every HEARTBEAT_S seconds while the build runs: it is silent for 10 to 25 minutes.
# The loop ends by itself once $WORK/.build-done exists (or $WORK is gone): no signal is sent, so
# no "Terminated" line reaches the log.
heartbeat() {
    local src="$1" start=$SECONDS interval="${HEARTBEAT_S:-60}"
    local next=$((SECONDS + interval))
    while [[ -d "$WORK" && ! -e "$WORK/.build-done" ]]; do
        sleep 1
        if ((SECONDS >= next)); then
            local objects
            objects="$(find "$src/build" -name '*.o' 2>/dev/null | wc -l)"
            log "still compiling: $(((SECONDS - start) / 60)) min, $objects object files so far"
            next=$((next + interval))
        fi
    done
}

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

VERIFY_SDIST="${MMDFKD_VERIFY_SDIST:-$([[ "${CI:-}" == true ]] && echo 1 || echo 0)}"
verify_sdist() {
    if [[ "$VERIFY_SDIST" == 1 ]]; then
        fetch_sdist
        log "the mmcv $MMCV_VERSION sdist downloads and its metadata prepares with the pinned setuptools"
    fi
}

if "$PY" -c "import mmcv, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null && check_ops 2>/dev/null; then
    log "mmcv $MMCV_VERSION with ops already installed"
    verify_sdist
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
    log "this takes about 25 minutes on 2 CPU cores (longer with CUDA ops)"
    fetch_sdist
    SRC="$WORK/mmcv-$MMCV_VERSION"
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    if grep -qE -- '-std=c\+\+1[47]' "$SRC/setup.py"; then
        log "error: could not replace every -std=c++14/17 flag in $SRC/setup.py"; exit 1
    fi
    export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
    if [[ "$WITH_CUDA" == cpu ]]; then export FORCE_CUDA=0; else export FORCE_CUDA=1; fi
    heartbeat "$SRC" &
    HEARTBEAT_PID=$!
    stop_heartbeat() { touch "$WORK/.build-done"; wait "$HEARTBEAT_PID" || true; }
    trap 'stop_heartbeat; rm -rf "$WORK"' EXIT
    (cd "$SRC" && "$PY" -m pip wheel --quiet --no-build-isolation --no-deps -w "$WORK/dist" .)
    stop_heartbeat
    trap 'rm -rf "$WORK"' EXIT
    BUILT="$(ls "$WORK"/dist/mmcv-*.whl)"
    # Copy under a temporary name, then rename: an interrupted build never leaves a broken wheel.
    cp "$BUILT" "$WHEEL_DIR/.partial.whl"
    mv "$WHEEL_DIR/.partial.whl" "$WHEEL_DIR/$(basename "$BUILT")"
    WHEEL="$WHEEL_DIR/$(basename "$BUILT")"
    log "cached $WHEEL"
else
    log "reusing cached wheel $WHEEL"
    verify_sdist
fi

"$PY" -m pip install --quiet --no-deps "$WHEEL"
check_ops
