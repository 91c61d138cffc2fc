"""What a run produced (`ExecResult`) and the capped capture of its output."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ExecResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    stdout: str
    stderr: str
    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float
    peak_memory_bytes: int | None = None
    memory_limited: bool = False  # the run's memory cgroup had processes OOM-killed

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class CappedOutput:
    """Keeps the first and last `limit // 2` bytes of a stream and counts what is elided."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit - limit // 2
        self.tail_limit = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.tail_limit:
            self.tail += chunk
            if len(self.tail) > 2 * self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    @property
    def truncated(self) -> bool:
        return self.total > self.head_limit + self.tail_limit

    def text(self) -> str:
        tail = bytes(self.tail[-self.tail_limit :]) if self.tail_limit else b""
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace")
        elided = self.total - len(self.head) - len(tail)
        marker = f"\n[... {elided} bytes elided by mezzo sandbox ...]\n"
        return (
            bytes(self.head).decode("utf-8", "replace") + marker + tail.decode("utf-8", "replace")
        )
