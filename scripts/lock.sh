#!/usr/bin/env bash
# Rewrites constraints.txt, the lock of tested versions that scripts/setup.sh installs from:
# every extra the scripts install (test, local), for Python 3.11 on Linux x86_64.
# Usage: scripts/lock.sh                         re-resolve after a pyproject.toml change, keeping
#                                                the locked versions that still fit
#        scripts/lock.sh --upgrade               everything to the newest allowed versions
#        scripts/lock.sh --upgrade-package redis one package (and what it needs)
# Then run scripts/test.sh and commit constraints.txt with the change that needed it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d "${TMPDIR:-/tmp}/mezzo-lock.XXXXXX")
trap 'rm -rf "$tools"' EXIT
python=${PYTHON:-python3}
"$python" -m venv "$tools"
"$tools/bin/python" -m pip install -q "uv>=0.5"
"$tools/bin/uv" pip compile pyproject.toml --extra test --extra local \
  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
  --custom-compile-command scripts/lock.sh --quiet --output-file constraints.txt "$@"
