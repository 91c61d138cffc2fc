"""Runs inside the sandbox: tries kernel calls the seccomp filter denies; prints NAME RESULT."""

import ctypes
import errno
import fcntl

libc = ctypes.CDLL(None, use_errno=True)
CALLS = {
    "keyctl": (250, 0, -3, 0),
    "io_uring_setup": (425, 1, 0),
    "perf_event_open": (298, 0, 0, -1, -1, 0),
    "userfaultfd": (323, 0),
    "bpf": (321, 0, 0, 0),
    "x32_getpid": (0x40000000 | 39,),
    "getpid": (39,),
}


def result(returned: int) -> str:
    return errno.errorcode.get(ctypes.get_errno(), "?") if returned == -1 else "OK"


for name, (number, *args) in CALLS.items():
    print(name, result(libc.syscall(number, *args)))
try:
    fcntl.ioctl(0, 0x5412, b"x")
    print("TIOCSTI OK")
except OSError as exc:
    print("TIOCSTI", errno.errorcode[exc.errno])
