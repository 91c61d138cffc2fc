"""The bubblewrap command line for a spec (pure: paths in, argv out)."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from mezzo.sandbox.spec import HOST_IMAGE, PROXY_DIR, SandboxSpec

SANDBOX_UID = 1000
PROXY_PORT = 3128
PROXY_SOCKET = f"{PROXY_DIR}/proxy.sock"
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "USER": "sandbox",
}
# The host's runtime as seen inside a `host` image: read-only, nothing of /etc but these.
OWN_MOUNTS = ("/proc", "/dev", "/tmp", "/run")
HOST_RUNTIME_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
HOST_ETC_ENTRIES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/mime.types",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/python3",
    "/etc/python3.11",
    "/etc/fonts",
)
GENERATED_ETC = {
    "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
    f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/tmp:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
}
# Inside, `socat` bridges 127.0.0.1:3128 to the proxy's Unix socket; the command starts once
# the port listens (state 0A in /proc/net/tcp), so its first request cannot race the bridge.
# The wait uses shell builtins only: spawning grep/sleep per poll cost tens of ms under load.
BRIDGE_SCRIPT = (
    f"socat TCP-LISTEN:{PROXY_PORT},bind=127.0.0.1,fork,reuseaddr "
    f"UNIX-CONNECT:{PROXY_SOCKET} 2>/dev/null </dev/null &\n"
    "listening() {\n"
    "  while read -r _ local _ state _; do\n"
    f'    [ "$local" = 0100007F:{PROXY_PORT:04X} ] && [ "$state" = 0A ] && return 0\n'
    "  done < /proc/net/tcp\n"
    "  return 1\n"
    "}\n"
    "i=0\n"
    "until listening; do\n"
    "  i=$((i+1))\n"
    "  [ $i -gt 200000 ] && { echo 'mezzo: egress bridge did not start' >&2; exit 125; }\n"
    "done\n"
    'exec "$@"\n'
)


def _world_readable(path: Path) -> bool:
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return True
    wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & wanted == wanted


def _hide_private(folder: str, names: list[str]) -> set[str]:
    return {name for name in names if not _world_readable(Path(folder) / name)}


def build_etc(folder: Path, entries: Sequence[str] = HOST_ETC_ENTRIES, base: str = "/etc") -> None:
    """The sandbox's /etc for `host` images: copies of the few host entries it needs, only what
    any user of the host may read (the sandbox's user maps to ours, root here, so the file
    modes would not stop it), symlinks kept, plus the generated files. One bind of this folder
    instead of one per entry saves about 2 ms a run; host changes show in later Sandboxes."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        source = Path(entry)
        target = folder / source.relative_to(base)
        try:
            if not source.exists() or not _world_readable(source):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, target, symlinks=True, ignore=_hide_private)
            else:
                shutil.copy2(source, target, follow_symlinks=False)
        except OSError:
            continue  # vanished or unreadable: the sandbox goes without it
    for name, content in GENERATED_ETC.items():
        (folder / name).write_text(content)


def sandbox_env(spec: SandboxSpec) -> dict[str, str]:
    env = dict(BASE_ENV)
    if spec.allow_net:
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = proxy
        env["NO_PROXY"] = env["no_proxy"] = ""
    env.update(spec.env)
    return env


def _runtime_args(spec: SandboxSpec, etc_dir: Path) -> list[str]:
    if spec.image != HOST_IMAGE:
        return _folder_image_args(Path(spec.image))
    args: list[str] = []
    for path in HOST_RUNTIME_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return [*args, "--ro-bind", str(etc_dir), "/etc"]


def _folder_image_args(root: Path) -> list[str]:
    """Each top-level entry of the folder, read-only, on bwrap's own root (so the mount points
    for /proc, /dev and /tmp can be made even where the folder lacks them)."""
    args: list[str] = []
    for entry in sorted(root.iterdir()):
        target = f"/{entry.name}"
        if target in OWN_MOUNTS:
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry), target]
        else:
            args += ["--ro-bind", str(entry), target]
    return args


def build_argv(
    spec: SandboxSpec,
    command: Sequence[str],
    *,
    etc_dir: Path,
    proxy_socket: str | None = None,
    status_fd: int | None = None,
    block_fd: int | None = None,
    seccomp_fd: int | None = None,
    bwrap: str = "bwrap",
    mount_fds: Sequence[int] | None = None,
) -> list[str]:
    """bwrap's argv. With `mount_fds` (one open `O_PATH` fd per mount, see `mounts.py`) the
    mounts bind those fds, so bwrap cannot be led elsewhere by a symlink planted since."""
    tmpfs_size = str(spec.memory_limit_bytes)
    argv = [
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        *_runtime_args(spec, etc_dir),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        tmpfs_size,
        "--tmpfs",
        "/dev/shm",
        "--size",
        tmpfs_size,
        "--tmpfs",
        "/tmp",
    ]
    for i, mount in enumerate(spec.mounts):
        if mount_fds is not None:
            flag = "--bind-fd" if mount.writable else "--ro-bind-fd"
            argv += [flag, str(mount_fds[i]), mount.target]
        else:
            argv += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
    if proxy_socket is not None:
        argv += ["--ro-bind", proxy_socket, PROXY_SOCKET]
    if status_fd is not None:
        argv += ["--json-status-fd", str(status_fd)]
    if block_fd is not None:
        argv += ["--block-fd", str(block_fd)]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    # bwrap's root is a tmpfs without a size limit: once everything is mounted, make it
    # read-only so nothing can fill memory through it (/tmp and /dev/shm are sized mounts).
    argv += ["--remount-ro", "/", "--chdir", spec.effective_workdir, "--clearenv"]
    for name, value in sandbox_env(spec).items():
        argv += ["--setenv", name, value]
    argv.append("--")
    if proxy_socket is not None:
        argv += ["/bin/sh", "-c", BRIDGE_SCRIPT, "mezzo-egress-bridge"]
    argv += list(command)
    return argv
