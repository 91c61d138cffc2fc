"""Reading the uncompressed bytes of a file: plain, gzip and BGZF (blocked gzip, `bgzip`).

Scanning is streaming, O(1) memory. Random access (`open_source`) is:

- plain: a seek.
- BGZF: the block table (uncompressed offset -> compressed offset of each block) is stored in
  the index when the file is scanned; a read decompresses only the blocks it touches.
- plain gzip: deflate cannot be entered mid-stream without the preceding 32 KiB window and a
  bit offset, which Python's zlib cannot set, so no restart point can be persisted. The store
  therefore writes a BGZF copy beside a large gzip file while indexing it (`BgzfWriter`) and
  reads that. Without the copy, a read decompresses from the start, keeping in-process
  checkpoints (copies of the decompressor, about 40 KiB each) every `max(16 MiB, size / 256)`
  of output, so later reads in the same process resume from the nearest one.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from mezzo.files.errors import FileFormatError
from mezzo.files.limits import InflateGuard
from mezzo.files.models import Compression

READ_SIZE = 4 << 20
INFLATE_STEP = 1 << 20  # most bytes one inflation step may produce, whatever the ratio
BGZF_MAX_BLOCK = 1 << 16  # the format's most uncompressed bytes per block
GZIP_MAGIC = b"\x1f\x8b"
_BGZF_HEADER = struct.Struct("<4BI2BH2BH")  # ID1 ID2 CM FLG MTIME XFL OS XLEN SI1 SI2 SLEN
_BGZF_MIN_BLOCK = 26


def detect_compression(head: bytes) -> Compression:
    if not head.startswith(GZIP_MAGIC):
        return Compression.NONE
    if len(head) >= 18 and head[3] & 4:
        *_, xlen, si1, si2, slen = _BGZF_HEADER.unpack_from(head)
        if (si1, si2, slen) == (66, 67, 2) and xlen >= 6:
            return Compression.BGZF
    return Compression.GZIP


def file_chunks(f: BinaryIO, size: int = READ_SIZE) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk


def gunzip_chunks(
    chunks: Iterable[bytes], name: str, guard: InflateGuard | None = None
) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream; a truncated stream is an error.

    Output comes in steps of at most `INFLATE_STEP` bytes whatever the compression ratio, and
    `guard` (if any) sees the running totals after each step."""
    decomp = zlib.decompressobj(wbits=31)
    fed = False
    trailer = False  # zero padding after the last member
    consumed = 0
    produced = 0
    pending = b""
    for raw in chunks:
        if trailer:
            if raw.strip(b"\x00"):
                raise FileFormatError(name, f"garbage after gzip data at byte {consumed}")
            continue
        data = pending + raw if pending else raw
        pending = b""
        while True:
            try:
                out = decomp.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                raise FileFormatError(
                    name, f"corrupt gzip data near compressed byte {consumed}: {exc}"
                ) from None
            fed = True
            produced += len(out)
            if not decomp.eof:
                tail = decomp.unconsumed_tail
                consumed += len(data) - len(tail)
                data = tail
            if out:
                if guard is not None:
                    guard.check(consumed, produced)
                yield out
            if not decomp.eof:
                if not data and len(out) < INFLATE_STEP:
                    break  # this input is used up; the next chunk continues the member
                continue
            rest = decomp.unused_data
            consumed += len(data) - len(rest)
            decomp = zlib.decompressobj(wbits=31)
            fed = False
            if len(rest) < 2:
                pending = rest
                break
            if not rest.startswith(GZIP_MAGIC):
                if rest.strip(b"\x00"):
                    raise FileFormatError(name, f"garbage after gzip data at byte {consumed}")
                trailer = True
                break
            data = rest
    if (fed and not decomp.eof) or pending.strip(b"\x00"):
        raise FileFormatError(
            name,
            f"truncated gzip: the stream ends at compressed byte {consumed + len(pending)} "
            f"(uncompressed byte {produced}) before its end-of-stream marker",
        )


def _parse_bgzf_block(buf: memoryview, pos: int, name: str, coffset: int) -> tuple[int, int]:
    """Return (block size, deflate payload start) of the block at `pos`, or (0, 0) if partial."""
    if len(buf) - pos < 18:
        return 0, 0
    id1, id2, _cm, flg, _mtime, _xfl, _os, xlen = struct.unpack_from("<4BI2BH", buf, pos)
    if (id1, id2) != (31, 139) or not flg & 4:
        raise FileFormatError(name, f"not a BGZF block at compressed byte {coffset}")
    if len(buf) - pos < 12 + xlen:
        return 0, 0
    extra = bytes(buf[pos + 12 : pos + 12 + xlen])
    i = 0
    while i + 4 <= len(extra):
        si1, si2, slen = extra[i], extra[i + 1], struct.unpack_from("<H", extra, i + 2)[0]
        if (si1, si2, slen) == (66, 67, 2):
            bsize = struct.unpack_from("<H", extra, i + 4)[0] + 1
            if len(buf) - pos < bsize:
                return 0, 0
            return bsize, pos + 12 + xlen
        i += 4 + slen
    raise FileFormatError(name, f"BGZF block without BC field at compressed byte {coffset}")


def inflate_bgzf_block(block: memoryview, payload_start: int, name: str, coffset: int) -> bytes:
    decomp = zlib.decompressobj(wbits=-15)
    try:
        out = decomp.decompress(block[payload_start : len(block) - 8], BGZF_MAX_BLOCK + 1)
    except zlib.error as exc:
        raise FileFormatError(
            name, f"corrupt BGZF block at compressed byte {coffset}: {exc}"
        ) from None
    if len(out) > BGZF_MAX_BLOCK:
        raise FileFormatError(
            name,
            f"BGZF block at compressed byte {coffset} inflates past {BGZF_MAX_BLOCK} bytes, "
            "the most a BGZF block holds",
        )
    isize = struct.unpack_from("<I", block, len(block) - 4)[0]
    if isize != len(out) or not decomp.eof:
        raise FileFormatError(name, f"BGZF block at compressed byte {coffset} has a bad size")
    return out


def bgzf_chunks(
    chunks: Iterable[bytes],
    name: str,
    on_block: Callable[[int, int], None] | None = None,
    guard: InflateGuard | None = None,
) -> Iterator[bytes]:
    """Decompress BGZF block by block, reporting (uncompressed, compressed) offsets."""
    coffset = 0
    uoffset = 0
    pending = b""
    for raw in chunks:
        buf = memoryview(pending + raw if pending else raw)
        pos = 0
        out: list[bytes] = []
        while True:
            bsize, payload = _parse_bgzf_block(buf, pos, name, coffset)
            if not bsize:
                break
            block = buf[pos : pos + bsize]
            data = inflate_bgzf_block(block, payload - pos, name, coffset)
            if data:
                if on_block is not None:
                    on_block(uoffset, coffset)
                out.append(data)
                uoffset += len(data)
            coffset += bsize
            pos += bsize
            if guard is not None:
                guard.check(coffset, uoffset)
        pending = bytes(buf[pos:])
        if out:
            yield b"".join(out)
    if pending:
        raise FileFormatError(
            name,
            f"truncated BGZF: the last block at compressed byte {coffset} is incomplete "
            f"(uncompressed byte {uoffset})",
        )


def uncompressed_chunks(
    path: Path,
    compression: Compression,
    name: str,
    on_block: Callable[[int, int], None] | None = None,
    guard: InflateGuard | None = None,
) -> Iterator[bytes]:
    with path.open("rb") as f:
        raw = file_chunks(f, READ_SIZE if compression is Compression.NONE else 1 << 20)
        if compression is Compression.NONE:
            yield from raw
        elif compression is Compression.BGZF:
            yield from bgzf_chunks(raw, name, on_block, guard)
        else:
            yield from gunzip_chunks(raw, name, guard)


BGZF_BLOCK = 0xFF00  # uncompressed bytes per block, as bgzip writes them
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


class BgzfWriter:
    """Writes a byte stream as BGZF, reporting (uncompressed, compressed) offsets per block."""

    def __init__(self, f: BinaryIO, on_block: Callable[[int, int], None], level: int = 1) -> None:
        self._f = f
        self._on_block = on_block
        self._level = level
        self._pending = bytearray()
        self.uoffset = 0
        self.coffset = 0

    def write(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) >= BGZF_BLOCK:
            self._block(bytes(self._pending[:BGZF_BLOCK]))
            del self._pending[:BGZF_BLOCK]

    def close(self) -> None:
        if self._pending:
            self._block(bytes(self._pending))
            self._pending.clear()
        self._f.write(BGZF_EOF)

    def _block(self, data: bytes) -> None:
        comp = zlib.compressobj(self._level, zlib.DEFLATED, -15)
        payload = comp.compress(data) + comp.flush()
        header = struct.pack(
            "<4BI2BH2BHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, len(payload) + 25
        )
        self._f.write(header)
        self._f.write(payload)
        self._f.write(struct.pack("<II", zlib.crc32(data), len(data)))
        self._on_block(self.uoffset, self.coffset)
        self.uoffset += len(data)
        self.coffset += len(payload) + 26


# --- random access -------------------------------------------------------------------------


class ByteSource(Protocol):
    def read(self, start: int, end: int) -> bytes:
        """Uncompressed bytes [start, end)."""
        ...

    def iter_range(self, start: int, end: int, size: int = READ_SIZE) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class PlainSource:
    def __init__(self, path: Path) -> None:
        self._f = path.open("rb")

    def read(self, start: int, end: int) -> bytes:
        self._f.seek(start)
        return self._f.read(max(0, end - start))

    def iter_range(self, start: int, end: int, size: int = READ_SIZE) -> Iterator[bytes]:
        pos = start
        while pos < end:
            chunk = self.read(pos, min(end, pos + size))
            if not chunk:
                return
            pos += len(chunk)
            yield chunk

    def close(self) -> None:
        self._f.close()


BlockLookup = Callable[[int], tuple[int, int] | None]


class BgzfSource:
    """Random access through the stored block table; `lookup(u)` gives the block holding u."""

    def __init__(self, path: Path, name: str, lookup: BlockLookup) -> None:
        self._f = path.open("rb")
        self._name = name
        self._lookup = lookup
        self._cache: tuple[int, bytes, int] | None = None  # (coffset, data, block size)

    def _block_at(self, coffset: int) -> tuple[bytes, int]:
        if self._cache and self._cache[0] == coffset:
            return self._cache[1], self._cache[2]
        self._f.seek(coffset)
        head = self._f.read(18)
        if len(head) < 18:
            return b"", 0
        view = memoryview(head)
        bsize = struct.unpack_from("<H", view, 16)[0] + 1
        block = memoryview(head + self._f.read(bsize - 18))
        found, payload = _parse_bgzf_block(block, 0, self._name, coffset)
        data = inflate_bgzf_block(block[:found], payload, self._name, coffset)
        self._cache = (coffset, data, bsize)
        return data, bsize

    def iter_range(self, start: int, end: int, size: int = READ_SIZE) -> Iterator[bytes]:
        located = self._lookup(start)
        if located is None or start >= end:
            return
        uoffset, coffset = located
        while uoffset < end:
            data, bsize = self._block_at(coffset)
            if not bsize:
                return
            lo, hi = max(start - uoffset, 0), min(end - uoffset, len(data))
            if lo < hi:
                yield data[lo:hi]
            uoffset += len(data)
            coffset += bsize

    def read(self, start: int, end: int) -> bytes:
        return b"".join(self.iter_range(start, end))

    def close(self) -> None:
        self._f.close()


class _GzipCheckpoints:
    """In-process resumable decompressor copies for one plain gzip file."""

    def __init__(self, spacing: int) -> None:
        self.spacing = spacing
        self.points: list[tuple[int, int, object]] = []  # (uoffset, coffset, decompressobj)
        self.lock = threading.Lock()


_CHECKPOINTS: OrderedDict[tuple[str, int, int], _GzipCheckpoints] = OrderedDict()
_CHECKPOINT_FILES = 8


class GzipSource:
    def __init__(self, path: Path, name: str, uncompressed_size: int) -> None:
        self._f = path.open("rb")
        self._name = name
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        cps = _CHECKPOINTS.get(key)
        if cps is None:
            cps = _GzipCheckpoints(max(16 << 20, uncompressed_size // 256))
            _CHECKPOINTS[key] = cps
            while len(_CHECKPOINTS) > _CHECKPOINT_FILES:
                _CHECKPOINTS.popitem(last=False)
        _CHECKPOINTS.move_to_end(key)
        self._cps = cps

    def iter_range(self, start: int, end: int, size: int = READ_SIZE) -> Iterator[bytes]:
        if start >= end:
            return
        cps = self._cps
        with cps.lock:
            best = None
            for point in cps.points:
                if point[0] <= start:
                    best = point
            if best is None:
                uoffset, coffset, decomp = 0, 0, zlib.decompressobj(wbits=31)
            else:
                uoffset, coffset = best[0], best[1]
                decomp = best[2].copy()  # type: ignore[attr-defined]
        next_mark = (uoffset // cps.spacing + 1) * cps.spacing
        self._f.seek(coffset)
        while uoffset < end:
            raw = self._f.read(1 << 16)
            if not raw:
                return
            coffset += len(raw)
            while True:
                out = decomp.decompress(raw, INFLATE_STEP)
                lo, hi = max(start - uoffset, 0), min(end - uoffset, len(out))
                if lo < hi:
                    yield out[lo:hi]
                uoffset += len(out)
                if decomp.eof:  # next member, if any, starts in the unused input
                    raw = decomp.unused_data
                    decomp = zlib.decompressobj(wbits=31)
                    if raw and not GZIP_MAGIC.startswith(raw[:2]):
                        return  # zero padding or garbage after the last member
                    if not raw:
                        break
                else:
                    raw = decomp.unconsumed_tail
                    if not raw and len(out) < INFLATE_STEP:
                        break
                if uoffset >= end:
                    return
            if uoffset >= next_mark and not decomp.eof:
                with cps.lock:
                    if not cps.points or cps.points[-1][0] < uoffset:
                        cps.points.append((uoffset, coffset, decomp.copy()))
                next_mark = (uoffset // cps.spacing + 1) * cps.spacing

    def read(self, start: int, end: int) -> bytes:
        return b"".join(self.iter_range(start, end))

    def close(self) -> None:
        self._f.close()
