"""Print how the packages of this interpreter differ from a lock file (`constraints.txt`).

`scripts/test.sh --latest` runs it before the suite, so a failure there comes with the list of
new releases it may come from. Usage: `python scripts/lock_drift.py constraints.txt`.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: str) -> dict[str, str]:
    """`name == version` lines of a pip-compile / uv lock; comments and markers ignored."""
    return {
        normalize(match[1]): match[2]
        for line in lock.splitlines()
        if (match := PIN.match(line.strip()))
    }


def installed() -> dict[str, str]:
    return {normalize(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


def drift(pins: dict[str, str], have: dict[str, str], *, ignore: set[str]) -> list[str]:
    """One line per installed package whose version is not the locked one.

    Locked packages that are not installed are left out: the lock is resolved for Python 3.11.0,
    so it holds backports (`async-timeout`) that a later 3.11 never installs.
    """
    return [
        f"  {name}: {pins.get(name, 'not locked')} -> {version}"
        for name, version in sorted(have.items())
        if name not in ignore and pins.get(name) != version
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: lock_drift.py LOCKFILE", file=sys.stderr)
        return 2
    lines = drift(locked(Path(argv[1]).read_text()), installed(), ignore={"mezzo"})
    if lines:
        print(f"mezzo: installed versions that differ from {argv[1]}:")
        print("\n".join(lines))
    else:
        print(f"mezzo: every installed version is the one in {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
