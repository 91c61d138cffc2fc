"""A seccomp denylist for the sandbox, as the classic-BPF program bwrap loads with `--seccomp FD`.

The namespaces already take away what needs privileges; this filter closes kernel surface that
an unprivileged process could still reach and that container sandboxes deny (Flatpak, Docker's
default profile): kernel keyrings, io_uring, perf events, bpf, userfaultfd, the new mount API,
module and kexec calls, `ioctl(TIOCSTI/TIOCLINUX)` (typing into a terminal), foreign-ABI calls
(x32, and i386 `int 0x80` from a 64-bit process). Denied calls fail with EPERM.

Only x86-64 has a table here; elsewhere `program()` returns None and the sandbox runs without
the filter (the namespaces and limits still apply).
"""

from __future__ import annotations

import platform
import struct

# struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_EPERM = 0x00050000 | 1
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_OFFSET_NR, _OFFSET_ARCH, _OFFSET_ARG1_LOW = 0, 4, 24
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C

X86_64_IOCTL = 16
# ptrace stays allowed: it is confined to the sandbox's own pid namespace.
X86_64_DENIED = {
    "syslog": 103,
    "uselib": 134,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "acct": 163,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "mbind": 237,
    "set_mempolicy": 238,
    "get_mempolicy": 239,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "migrate_pages": 256,
    "unshare": 272,
    "move_pages": 279,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setns": 308,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "quotactl_fd": 443,
}


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def x86_64_program() -> bytes:
    denied = sorted(X86_64_DENIED.values())
    first_check = 4
    deny_at = first_check + 1 + len(denied) + 2
    ioctl_at = deny_at + 1
    program = [
        _op(_LD_W_ABS, _OFFSET_ARCH),
        _op(_JEQ_K, _AUDIT_ARCH_X86_64, jt=1),
        _op(_RET_K, _RET_EPERM),
        _op(_LD_W_ABS, _OFFSET_NR),
        _op(_JSET_K, _X32_BIT, jt=deny_at - first_check - 1),
    ]
    for index, nr in enumerate(denied, start=first_check + 1):
        program.append(_op(_JEQ_K, nr, jt=deny_at - index - 1))
    ioctl_check = first_check + 1 + len(denied)
    program += [
        _op(_JEQ_K, X86_64_IOCTL, jt=ioctl_at - ioctl_check - 1),
        _op(_RET_K, _RET_ALLOW),
        _op(_RET_K, _RET_EPERM),  # deny_at
        _op(_LD_W_ABS, _OFFSET_ARG1_LOW),  # ioctl_at
        _op(_JEQ_K, _TIOCSTI, jt=2),
        _op(_JEQ_K, _TIOCLINUX, jt=1),
        _op(_RET_K, _RET_ALLOW),
        _op(_RET_K, _RET_EPERM),
    ]
    assert len(program) < 256
    return b"".join(program)


def program() -> bytes | None:
    """The filter for this machine's architecture, or None where there is no table for it."""
    if platform.machine() in ("x86_64", "AMD64"):
        return x86_64_program()
    return None
