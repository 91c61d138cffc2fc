"""The escape suite: every attempt runs in a real bubblewrap sandbox and must be contained."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from sandbox_support import ALLOWED, LoopbackServer, tiny_rootfs

from mezzo.sandbox.runner import Sandbox
from mezzo.sandbox.spec import MiB, Mount, SandboxSpec

CLIENT = Path(__file__).parent / "inside" / "client.py"
CLIENT_MOUNT = Mount(source=CLIENT.parent, target="/t")


def host_processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def wait_until_gone(marker: str, within_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while (left := host_processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


async def test_cannot_read_a_host_file_outside_the_mounts(sandbox: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret" / "token.txt"
    secret.parent.mkdir()
    secret.write_text("s3cr3t-host-value")
    visible = tmp_path / "visible"
    visible.mkdir()
    spec = SandboxSpec(mounts=(Mount(source=visible, target="/data"),))
    result = await sandbox.run(
        f"cat {secret}; cat /data/../secret/token.txt; cat /etc/shadow; ls /root /home {tmp_path}",
        spec,
    )
    assert "s3cr3t-host-value" not in result.stdout + result.stderr
    assert "No such file or directory" in result.stderr
    assert result.exit_code != 0


async def test_cannot_write_outside_the_rw_mount(sandbox: Sandbox, tmp_path: Path) -> None:
    writable, outside = tmp_path / "rw", tmp_path / "outside"
    writable.mkdir()
    outside.mkdir()
    host_tmp_marker = Path("/tmp") / f"mezzo-escape-{uuid.uuid4().hex}"
    spec = SandboxSpec(mounts=(Mount(source=writable, target="/data", writable=True),))
    result = await sandbox.run(
        f"echo inside > /data/ok.txt; echo x > {outside}/escaped.txt; echo x > /usr/escaped;"
        f" echo x > /etc/escaped; echo x > {host_tmp_marker}; cat {host_tmp_marker}",
        spec,
    )
    assert (writable / "ok.txt").read_text() == "inside\n"
    assert names_in(outside) == []
    assert not host_tmp_marker.exists()  # /tmp inside is the sandbox's own tmpfs
    assert result.stdout == "x\n"
    assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr


async def test_cannot_write_to_a_read_only_mount(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("original")
    spec = SandboxSpec(mounts=(Mount(source=tmp_path, target="/data"),))
    result = await sandbox.run(
        "echo changed > /data/keep.txt; rm -f /data/keep.txt; touch /data/new; "
        "chmod 777 /data/keep.txt",
        spec,
    )
    assert (tmp_path / "keep.txt").read_text() == "original"
    assert names_in(tmp_path) == ["keep.txt"]
    assert result.stderr.count("Read-only file system") >= 3


async def test_cannot_see_host_processes(sandbox: Sandbox) -> None:
    marker = f"mezzo-host-proc-{uuid.uuid4().hex}"
    host = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)", marker
    )
    try:
        result = await sandbox.run(
            f"cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'; "
            f"kill -0 {host.pid} && echo REACHED-$((1+1))"
        )
    finally:
        host.kill()
        await host.wait()
    assert marker not in result.stdout
    assert "REACHED-2" not in result.stdout
    visible_pids = int(result.stdout.splitlines()[-1])
    assert visible_pids < 10  # the sandbox's own handful, not the host's


async def test_proxy_refuses_a_domain_not_on_the_allowlist(
    net_sandbox: Sandbox, http_server: LoopbackServer, https_server: LoopbackServer
) -> None:
    spec = SandboxSpec(
        mounts=(CLIENT_MOUNT,),
        allow_net=(ALLOWED,),
        allowed_ports=(http_server.port, https_server.port),
    )
    before = len(http_server.requests) + len(https_server.requests)
    result = await net_sandbox.run(
        f"python3 /t/client.py http evil.test {http_server.port};"
        f"python3 /t/client.py https evil.test {https_server.port} evil.test /nonexistent",
        spec,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAIL HTTPError: HTTP Error 403")
    assert lines[1].startswith("FAIL ConnectionError: HTTP/1.1 403")
    assert len(http_server.requests) + len(https_server.requests) == before


async def test_allowed_domain_gets_through_over_http_and_https(
    net_sandbox: Sandbox, http_server: LoopbackServer, https_server: LoopbackServer
) -> None:
    assert https_server.cert is not None
    spec = SandboxSpec(
        mounts=(CLIENT_MOUNT, Mount(source=https_server.cert, target="/ca.pem")),
        allow_net=(f"*.{ALLOWED}", ALLOWED),
        allowed_ports=(http_server.port, https_server.port),
    )
    result = await net_sandbox.run(
        f"python3 /t/client.py http {ALLOWED} {http_server.port};"
        f"python3 /t/client.py https {ALLOWED} {https_server.port} {ALLOWED} /ca.pem",
        spec,
    )
    assert result.stdout.splitlines() == ["OK hello /plain", "OK hello /tls"]
    assert f"{ALLOWED}:{http_server.port} /plain" in http_server.requests


async def test_cannot_reach_anything_directly(
    sandbox: Sandbox, net_sandbox: Sandbox, http_server: LoopbackServer
) -> None:
    probe = f"python3 /t/client.py direct 127.0.0.1 {http_server.port}"
    offline = await sandbox.run(probe, SandboxSpec(mounts=(CLIENT_MOUNT,)))
    proxied = await net_sandbox.run(
        probe, SandboxSpec(mounts=(CLIENT_MOUNT,), allow_net=(ALLOWED,))
    )
    for result in (offline, proxied):
        assert result.stdout.startswith("FAIL ConnectionRefusedError"), result.stdout
    no_route = await sandbox.run(
        "python3 /t/client.py direct 192.0.2.1 80", SandboxSpec(mounts=(CLIENT_MOUNT,))
    )
    assert no_route.stdout.startswith("FAIL OSError: [Errno 101] Network is unreachable")
    assert not any("/direct" in request for request in http_server.requests)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"])
async def test_allowed_name_resolving_to_a_forbidden_address_is_refused(
    http_server: LoopbackServer, address: str
) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return [address]

    before = len(http_server.requests)
    with Sandbox(resolver=resolver) as box:
        result = await box.run(
            f"python3 /t/client.py http {ALLOWED} {http_server.port}",
            SandboxSpec(
                mounts=(CLIENT_MOUNT,), allow_net=(ALLOWED,), allowed_ports=(http_server.port,)
            ),
        )
    assert result.stdout.startswith("FAIL HTTPError: HTTP Error 403"), result.stdout
    assert len(http_server.requests) == before


@pytest.mark.parametrize("sni", ["evil.test", ""])
async def test_mismatched_or_missing_sni_is_refused(
    net_sandbox: Sandbox, https_server: LoopbackServer, sni: str
) -> None:
    assert https_server.cert is not None
    before = len(https_server.requests)
    spec = SandboxSpec(
        mounts=(CLIENT_MOUNT, Mount(source=https_server.cert, target="/ca.pem")),
        allow_net=(ALLOWED,),
        allowed_ports=(https_server.port,),
    )
    result = await net_sandbox.run(
        f"python3 /t/client.py https {ALLOWED} {https_server.port} '{sni}' /ca.pem", spec
    )
    assert result.stdout.startswith("FAIL"), result.stdout
    assert "hello" not in result.stdout
    assert len(https_server.requests) == before


async def test_fork_bomb_is_contained_by_the_pid_limit(sandbox: Sandbox) -> None:
    counter = textwrap.dedent(
        """
        import os, time
        children = 0
        try:
            for _ in range(500):
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
        except OSError as exc:
            print("fork refused after", children, exc.errno)
        """
    )
    counted = await sandbox.run(["python3", "-c", counter], SandboxSpec(pid_limit=40))
    assert counted.stdout.startswith("fork refused after"), counted
    assert int(counted.stdout.split()[3]) < 40
    marker = f"bomb{uuid.uuid4().hex[:8]}"
    bomb = await sandbox.run(
        f"{marker}() {{ {marker} | {marker} & }}; {marker}",
        SandboxSpec(pid_limit=64, time_limit_s=2),
    )
    assert bomb.exit_code is not None or bomb.timed_out
    assert wait_until_gone(marker) == []
    host_fork = await asyncio.create_subprocess_exec("true")
    assert await host_fork.wait() == 0  # the host can still fork


async def test_memory_bomb_is_contained(sandbox: Sandbox) -> None:
    spec = SandboxSpec(memory_limit_bytes=128 * MiB)
    result = await sandbox.run(["python3", "-c", "x = bytearray(1024 * 1024 * 1024)"], spec)
    assert result.exit_code != 0
    assert "MemoryError" in result.stderr
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes < 128 * MiB
    # /tmp and /dev/shm are sized tmpfs mounts; where the run has a memory cgroup their pages
    # count toward the run's memory too, so filling them ends in the OOM killer first
    whole_tree = sandbox.memory_limiter.parent is not None
    for target in ("/tmp/fill", "/dev/shm/fill"):
        filled = await sandbox.run(f"head -c 300M /dev/zero > {target}", spec)
        if whole_tree:
            assert filled.memory_limited or "No space left on device" in filled.stderr, filled
        else:
            assert "No space left on device" in filled.stderr, filled


async def test_infinite_loop_is_killed_at_the_time_limit(sandbox: Sandbox) -> None:
    result = await sandbox.run("while :; do :; done", SandboxSpec(time_limit_s=0.5))
    assert result.timed_out
    assert result.exit_code is None
    assert result.signal == 9


async def test_100_mb_of_output_is_capped_head_and_tail(sandbox: Sandbox) -> None:
    script = (
        "import sys; w = sys.stdout.write; w('HEAD-MARK'); "
        "[w('x' * 1_000_000) for _ in range(100)]; w('TAIL-MARK')"
    )
    spec = SandboxSpec(output_limit_bytes=64 * 1024)
    result = await sandbox.run(["python3", "-c", script], spec)
    assert result.exit_code == 0
    assert result.stdout_truncated and not result.stderr_truncated
    assert result.stdout.startswith("HEAD-MARK")
    assert result.stdout.endswith("TAIL-MARK")
    written = len("HEAD-MARK") + 100 * 1_000_000 + len("TAIL-MARK")
    assert f"[... {written - 64 * 1024} bytes elided by mezzo sandbox ...]" in result.stdout
    assert len(result.stdout) < 64 * 1024 + 100


async def test_processes_ignoring_sigterm_die_with_the_sandbox(sandbox: Sandbox) -> None:
    marker = f"mezzo-stubborn-{uuid.uuid4().hex}"
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    result = await sandbox.run(
        f"python3 -c '{stubborn}' {marker} & python3 -c '{stubborn}' {marker}",
        SandboxSpec(time_limit_s=1),
    )
    assert result.timed_out
    assert wait_until_gone(marker) == []


async def test_host_environment_does_not_leak(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"leak-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    result = await sandbox.run(
        "env; cat /proc/self/environ /proc/1/environ", SandboxSpec(env={"GIVEN": "yes"})
    )
    assert secret not in result.stdout
    assert "GIVEN=yes" in result.stdout
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines() if "=" in line}
    assert "AWS_SECRET_ACCESS_KEY" not in names and "OPENAI_API_KEY" not in names


async def test_proc_1_environ_is_the_sandbox_not_the_host(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"leak-{uuid.uuid4().hex}"
    monkeypatch.setenv("MEZZO_HOST_SECRET", secret)
    result = await sandbox.run(
        f"tr '\\0' '\\n' < /proc/1/environ; tr '\\0' ' ' < /proc/1/cmdline; echo;"
        f" cat /proc/{os.getpid()}/environ"
    )
    assert secret not in result.stdout
    assert "bwrap" in result.stdout  # pid 1 is the sandbox's own init
    assert "No such file or directory" in result.stderr


def test_sandbox_dies_with_its_parent(tmp_path: Path) -> None:
    marker = f"mezzo-orphan-{uuid.uuid4().hex}"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio; from mezzo.sandbox.runner import Sandbox; "
            f"asyncio.run(Sandbox().run('sleep 600 & echo started; sleep 601; : {marker}'))",
        ],
    )
    try:
        deadline = time.monotonic() + 10
        while not host_processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host_processes_with(marker), "the sandbox never started"
    finally:
        parent.kill()
        parent.wait()
    assert wait_until_gone(marker) == []


def test_refuses_to_run_without_bubblewrap() -> None:
    from mezzo.sandbox.limits import SandboxUnavailable

    with Sandbox(bwrap="/bin/false") as box, pytest.raises(SandboxUnavailable, match="namespaces"):
        asyncio.run(box.run("true"))


async def test_seccomp_denies_kernel_surface(sandbox: Sandbox) -> None:
    outside = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT.parent / "syscalls.py"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
    )  # fmt: skip
    host_output, _ = await outside.communicate()
    inside = await sandbox.run(["python3", "/t/syscalls.py"], SandboxSpec(mounts=(CLIENT_MOUNT,)))
    outcome = dict(line.split() for line in inside.stdout.splitlines())
    assert outcome.pop("getpid") == "OK"
    assert set(outcome.values()) == {"EPERM"}, inside.stdout
    host = dict(line.split() for line in host_output.decode().splitlines())
    assert host["io_uring_setup"] != "EPERM" and host["TIOCSTI"] != "EPERM"  # the filter did it


async def test_concurrent_runs_have_separate_pid_budgets(sandbox: Sandbox) -> None:
    counter = (
        "import os, time\nn = 0\ntry:\n    for _ in range(100):\n"
        "        if os.fork() == 0:\n            time.sleep(2); os._exit(0)\n        n += 1\n"
        "except OSError:\n    pass\nprint(n)"
    )
    spec = SandboxSpec(pid_limit=20)
    first, second = await asyncio.gather(
        sandbox.run(["python3", "-c", counter], spec), sandbox.run(["python3", "-c", counter], spec)
    )
    # pid 1 (bwrap's init), time and python itself count too; each run gets its own 20
    assert 14 <= int(first.stdout) < 20 and 14 <= int(second.stdout) < 20


async def test_folder_image_is_the_whole_root(sandbox: Sandbox, tmp_path: Path) -> None:
    root = tiny_rootfs(tmp_path / "rootfs")
    result = await sandbox.run(
        "read name < /etc/image-name; echo $name; "
        "for p in /usr/bin/python3 /etc/passwd /work /root; do [ -e $p ] && echo visible $p; done;"
        " echo x > /etc/new; echo y > /new",
        SandboxSpec(image=str(root)),
    )
    assert result.stdout == "tiny\n", result
    assert result.stderr.count("Read-only file system") == 2
    assert sorted(p.name for p in root.iterdir()) == ["bin", "etc", "lib", "lib64"]


async def test_nothing_outside_the_sized_tmpfs_is_writable(sandbox: Sandbox) -> None:
    result = await sandbox.run(
        "echo x > /fill; mkdir /newdir; echo y > /etc/x; echo ok > /tmp/ok; cat /tmp/ok"
    )
    assert result.stderr.count("Read-only file system") == 3, result.stderr
    assert result.stdout == "ok\n"


async def test_host_abstract_unix_sockets_are_unreachable(sandbox: Sandbox) -> None:
    name = f"mezzo-test-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"\0{name}")
    listener.listen()
    try:
        result = await sandbox.run(
            ["python3", "-c", "import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect('\\0' + sys.argv[1]); print('CONNECTED')\n"
             "except OSError as exc:\n    print(type(exc).__name__)", name],
        )  # fmt: skip
    finally:
        listener.close()
    assert result.stdout == "ConnectionRefusedError\n", result


def test_stale_run_cgroups_are_swept_only_when_old_and_empty(sandbox: Sandbox) -> None:
    from mezzo.sandbox.limits import PidsCgroup, sweep_stale

    parent = sandbox.check().parent
    if parent is None:
        pytest.skip("this machine limits pids with RLIMIT_NPROC, not cgroups")
    old, young = PidsCgroup.create(parent, 5), PidsCgroup.create(parent, 5)
    try:
        os.utime(old.path, (time.time() - 3600, time.time() - 3600))
        sweep_stale(parent)
        assert not old.path.exists()
        assert young.path.exists()
    finally:
        young.kill_and_remove()
        old.kill_and_remove()
