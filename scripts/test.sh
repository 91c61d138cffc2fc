#!/usr/bin/env bash
# Sets up mezzo with its test dependencies, lints and type-checks src/ and runs the whole test suite.
# Usage: scripts/test.sh [PYTEST ARGS]            in ./.venv, at the locked versions (constraints.txt)
#        scripts/test.sh --latest [PYTEST ARGS]   in a throwaway venv, at the newest versions that
#                                                 pyproject.toml allows: finds drift before users do
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--latest" ]; then
  shift
  venv=$(mktemp -d "${TMPDIR:-/tmp}/mezzo-latest.XXXXXX")
  trap 'rm -rf "$venv"' EXIT
  chmod go+rx "$venv"  # tests/sandbox drops to another user that imports from this venv
  MEZZO_VENV=$venv scripts/setup.sh --latest test,local
  "$venv/bin/python" scripts/lock_drift.py constraints.txt
else
  venv=.venv
  scripts/setup.sh test,local
fi
scripts/services.sh
"$venv/bin/ruff" check src tests bench
"$venv/bin/mypy"  # src/, as [tool.mypy] in pyproject.toml says
"$venv/bin/python" -m pytest "$@"
