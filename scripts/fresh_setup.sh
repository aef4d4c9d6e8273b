#!/usr/bin/env bash
# Set up .venv exactly as a fresh machine would: a new virtual environment, an empty mmcv wheel
# cache and no pip cache, so the mmcv sdist is downloaded, prepared and compiled (about 25 minutes
# on 2 CPU cores). `make setup-fresh` runs it; .ci/run runs it when the set-up's inputs changed
# since the last fresh set-up that passed on this machine.
#
# On success the built wheel replaces the one in the real cache (~/.cache/mmdfkd, or
# MMDFKD_CACHE), and the inputs' hash is recorded there under fresh-setup-passed/.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
CACHE="${MMDFKD_CACHE:-$HOME/.cache/mmdfkd}"
HASH="$(bash scripts/setup_hash.sh)"
EMPTY="$(mktemp -d)"
trap 'rm -rf "$EMPTY"' EXIT

echo "[fresh_setup] removing $VENV; mmcv wheel cache: $EMPTY/cache (empty); pip cache: off"
rm -rf "$VENV"
START=$SECONDS
VENV="$VENV" MMDFKD_CACHE="$EMPTY/cache" PIP_NO_CACHE_DIR=1 bash scripts/setup_env.sh
ELAPSED=$((SECONDS - START))

# Keep what was built: the next ordinary set-up reuses it.
for built in "$EMPTY"/cache/wheels/*/; do
    name="$(basename "$built")"
    mkdir -p "$CACHE/wheels"
    rm -rf "$CACHE/wheels/$name.new"
    cp -r "$built" "$CACHE/wheels/$name.new"
    rm -rf "$CACHE/wheels/$name"
    mv "$CACHE/wheels/$name.new" "$CACHE/wheels/$name"
done
mkdir -p "$CACHE/fresh-setup-passed"
echo "$ELAPSED s on $(nproc) cores, $(date -u +%FT%TZ)" > "$CACHE/fresh-setup-passed/$HASH"
echo "[fresh_setup] a fresh-machine set-up passed in $((ELAPSED / 60)) min $((ELAPSED % 60)) s"
