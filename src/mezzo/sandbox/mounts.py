"""Mount sources opened without following symlinks, so host code never follows a link that a
run planted in a `:rw` mount.

A spec's mount sources are resolved once, when the spec is built. A run with a writable mount
can later replace a folder inside it with a symlink (to `/`, say); if a mount of a later run
names that folder, binding it by path would follow the link onto the host. So before every run
each source is opened component by component with `O_PATH | O_NOFOLLOW` (a symlink anywhere
on the way is refused) and bwrap binds the opened fd (`--bind-fd`), never the path.

Host code touches mounted folders in two other places, both safe: `run_code` writes its files
into a fresh private folder before the run (nothing in it can be a link yet) and removes it
with `shutil.rmtree`, which does not follow symlinks (fd-based on Linux).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from mezzo.sandbox.spec import Mount


class MountChanged(OSError):
    """A mount source is no longer the folder the spec named (a symlink now, or gone)."""


def open_nofollow(path: Path) -> int:
    """An `O_PATH` fd for absolute `path`, refusing a symlink at any component."""
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in path.parts[1:]:
            try:
                child = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                raise MountChanged(f"mount source {path} no longer exists") from None
            os.close(fd)
            fd = child
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise MountChanged(
                    f"mount source {path}: {part!r} is now a symlink (planted through a "
                    "writable mount?); refusing to follow it"
                )
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_mount_sources(mounts: Sequence[Mount]) -> list[int]:
    """One fd per mount, in order; the caller closes them after the run."""
    fds: list[int] = []
    try:
        for mount in mounts:
            fds.append(open_nofollow(mount.source))
    except BaseException:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    return fds
