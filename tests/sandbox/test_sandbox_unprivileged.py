"""The non-root path: mezzo run by an ordinary user gets RLIMIT_NPROC instead of a pids cgroup.

Runs a real Python process as uid 65534 (via `setpriv`) that uses the sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mezzo

SCRIPT = """
import asyncio, json
from mezzo.sandbox import Sandbox, SandboxSpec

FORKS = '''import os, time
n = 0
try:
    for _ in range(100):
        if os.fork() == 0:
            time.sleep(2); os._exit(0)
        n += 1
except OSError:
    pass
print(n)'''

async def main():
    sandbox = Sandbox()
    kind = sandbox.check().kind
    spec = SandboxSpec(pid_limit=20)
    runs = await asyncio.gather(*(sandbox.run(["python3", "-c", FORKS], spec) for _ in range(2)))
    bomb = await sandbox.run(["python3", "-c", "x = bytearray(10**9)"],
                             SandboxSpec(memory_limit_bytes=100 * 2**20))
    secret = await sandbox.run("cat /proc/1/environ; id -u")
    print(json.dumps({"kind": kind, "forks": [int(r.stdout) for r in runs],
                      "memory": bomb.stderr.strip().splitlines()[-1], "id": secret.stdout}))

asyncio.run(main())
"""


def test_unprivileged_caller_gets_rlimit_pid_limits() -> None:
    setpriv = shutil.which("setpriv")
    system_python = Path("/usr/bin/python3")
    if os.geteuid() != 0 or setpriv is None or not system_python.exists():
        pytest.skip("needs root (to drop to another user), setpriv and /usr/bin/python3")
    version = subprocess.run(
        [str(system_python), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if version != str(sys.version_info[:2]):
        pytest.skip(f"/usr/bin/python3 is {version}: cannot load this venv's compiled packages")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    source = str(Path(mezzo.__file__).parent.parent)
    done = subprocess.run(
        [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
         str(system_python), "-c", SCRIPT],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": f"{source}:{site}"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["kind"] == "rlimit"
    assert all(10 <= forks < 20 for forks in report["forks"]), report  # each run its own 20
    assert report["memory"] == "MemoryError"
    assert report["id"].endswith("1000\n") and "PYTHONPATH" not in report["id"]
