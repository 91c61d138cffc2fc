#!/usr/bin/env bash
# Installs everything mezzo needs on a fresh Debian machine into ./.venv (idempotent), at the
# versions the tests last passed with: the lock constraints.txt (scripts/lock.sh rewrites it).
# Usage: scripts/setup.sh [--latest] [EXTRAS]   e.g. scripts/setup.sh test
#   --latest      the newest versions pyproject.toml allows, ignoring the lock
#   MEZZO_VENV    where the virtual environment goes (default ./.venv)
set -euo pipefail
cd "$(dirname "$0")/.."
versions=(-c constraints.txt)
if [ "${1:-}" = "--latest" ]; then
  versions=(--upgrade --upgrade-strategy eager)
  shift
fi
extras="${1:-}"
venv=${MEZZO_VENV:-.venv}

need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
[ -x /usr/bin/time ] || need_apt+=(time)  # GNU time: the sandbox's peak-memory figure
# Debian's Chromium for the dashboard's browser tests (Playwright drives it; it downloads none).
if [[ ",$extras," == *",test,"* ]] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
# The Redis tests start private servers and a 3+3 Cluster on loopback (redis-server, redis-cli).
if [[ ",$extras," == *",test,"* ]]; then
  command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "mezzo setup: please install: ${need_apt[*]} (sudo apt-get install ${need_apt[*]})" >&2
  fi
fi

python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip "${versions[@]}"
# llama-cpp-python (extra "local") builds from source: a portable build, gentle on small machines.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
spec="."
[ -n "$extras" ] && spec=".[$extras]"
"$venv/bin/python" -m pip install -q "${versions[@]}" -e "$spec"
