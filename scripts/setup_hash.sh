#!/usr/bin/env bash
# Print the hash of the set-up's inputs: requirements.txt, setup.py and every script in scripts/.
#
# scripts/setup_env.sh stamps .venv with it (so the set-up is redone when an input changes), and
# .ci/run compares it with the last fresh-machine set-up that passed (scripts/fresh_setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# Sorted names, then their contents: renaming or adding a script changes the hash too.
FILES=(requirements.txt setup.py $(ls scripts/*.sh | LC_ALL=C sort))
{ printf '%s\n' "${FILES[@]}"; cat "${FILES[@]}"; } | sha256sum | cut -d' ' -f1
