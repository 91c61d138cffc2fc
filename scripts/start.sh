#!/usr/bin/env bash
# Sets mezzo up (with the embedded local model) and starts it: API + workers in one process,
# SQLite store, http://127.0.0.1:8400. No API key, no external server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh local
exec .venv/bin/mezzo serve "$@"
