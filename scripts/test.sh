#!/usr/bin/env bash
# Sets up mezzo with its test dependencies and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test,local
scripts/services.sh
.venv/bin/ruff check src tests bench
.venv/bin/python -m pytest "$@"
