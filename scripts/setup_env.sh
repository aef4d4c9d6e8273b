#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment, .venv/ at the repository root.
#
# Installs the pinned stack of requirements.txt, builds mmcv with its compiled ops (cached under
# ~/.cache/mmdfkd, see scripts/build_mmcv.sh), installs mmdet and this package in editable mode,
# then prints the environment report. Re-running it is cheap: a stamp file records the inputs of
# the last successful set-up (scripts/setup_hash.sh), and nothing is done while they are unchanged.
#
# Nothing here depends on what the registry serves as newest: every requirement is pinned and
# installed from a wheel (--only-binary), and the two source builds (mmcv's sdist and this
# package) run without build isolation, with the pinned setuptools installed in step 1.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
STAMP="$VENV/.mmdfkd-setup-done"
INPUTS_HASH="$(bash scripts/setup_hash.sh)"
START=$SECONDS

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$INPUTS_HASH" ]] && "$PY" -c 'import mmdfkd' 2>/dev/null; then
    echo "[setup] $VENV is up to date"
    exit 0
fi

if [[ ! -x "$PY" ]]; then
    # torch 2.14.1 lies on this machine's disk for Python 3.11; prefer that interpreter.
    BASE_PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
    echo "[setup] creating $VENV with $BASE_PY ($("$BASE_PY" --version))"
    "$BASE_PY" -m venv "$VENV"
fi
PIP=("$PY" -m pip --disable-pip-version-check)

# 1. Everything but mmcv and mmdet: mmcv has no wheel for this torch and must be built first,
#    and mmdet depends on it.
BASE_REQS="$(mktemp)"
trap 'rm -f "$BASE_REQS"' EXIT
grep -vE '^(mmcv|mmdet)==' requirements.txt > "$BASE_REQS"
echo "[setup] installing the pinned requirements (torch comes from the local wheel cache)"
"${PIP[@]}" install --quiet --only-binary :all: -r "$BASE_REQS"

# 2. mmcv with ops, built once and cached outside the repository.
bash scripts/build_mmcv.sh "$PY"

# 3. mmdet (its mmcv requirement is now met) and this package.
"${PIP[@]}" install --quiet --only-binary :all: -r requirements.txt
"${PIP[@]}" install --quiet --no-deps --no-build-isolation -e .

"$PY" -m mmdfkd.utils.collect_env
echo "$INPUTS_HASH" > "$STAMP"
ELAPSED=$((SECONDS - START))
echo "[setup] done in $((ELAPSED / 60)) min $((ELAPSED % 60)) s: $VENV is ready"
