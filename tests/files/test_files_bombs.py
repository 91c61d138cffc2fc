"""Decompression bombs: inflation is streamed in bounded steps, and the inflated size and the
inflation ratio are capped, so a small upload can neither fill memory nor run for hours."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from files_seqgen import bgzf_compress

from mezzo.files import FileStore, FileTooLarge
from mezzo.files.compression import INFLATE_STEP, GzipSource, bgzf_chunks, gunzip_chunks
from mezzo.files.errors import FileFormatError, InflatedTooLarge
from mezzo.files.limits import FileLimits

ZEROS = 64 << 20


def zeros_gzip(size: int = ZEROS) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"0" * (1 << 20)
    parts = [comp.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, comp.flush()])


def test_gzip_inflates_in_bounded_steps() -> None:
    bomb = zeros_gzip()
    assert len(bomb) < ZEROS // 500  # a real bomb: 64 MiB from about 64 KiB
    sizes = [len(chunk) for chunk in gunzip_chunks([bomb], "bomb.gz")]
    assert sum(sizes) == ZEROS
    assert max(sizes) <= INFLATE_STEP


def test_random_access_into_a_gzip_bomb_is_bounded_too(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gz"
    path.write_bytes(zeros_gzip())
    source = GzipSource(path, "bomb.gz", ZEROS)
    sizes = [len(chunk) for chunk in source.iter_range(ZEROS - 10, ZEROS)]
    source.close()
    assert sum(sizes) == 10


def test_a_bgzf_block_cannot_inflate_past_its_64_kib() -> None:
    payload = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = payload.compress(b"0" * (8 << 20)) + payload.flush()
    import struct

    header = struct.pack("<4BI2BH2BHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, len(deflated) + 25)
    block = (
        header + deflated + struct.pack("<II", zlib.crc32(b"0" * (8 << 20)), (8 << 20) & 0xFFFFFFFF)
    )
    with pytest.raises(FileFormatError, match="inflates past"):
        list(bgzf_chunks([block], "bad.bgz"))


async def test_upload_past_the_inflated_size_cap_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files", limits=FileLimits(max_inflated_bytes=8 << 20))
    path = tmp_path / "log.txt.gz"
    path.write_bytes(gzip.compress(b"a line of a log file that repeats\n" * 400_000))
    with pytest.raises(
        InflatedTooLarge, match=r"log\.txt\.gz: inflates past the limit of 8388608 bytes"
    ) as err:
        await store.save_file("ws1", path, 1 << 30)
    assert isinstance(err.value, FileTooLarge)  # the API answers 413
    assert store.list("ws1") == []
    assert not any((store.root / "ws1" / ".incoming").iterdir())


@pytest.mark.parametrize("writer", [gzip.compress, bgzf_compress])
async def test_upload_past_the_inflation_ratio_is_refused(tmp_path: Path, writer) -> None:
    limits = FileLimits(max_inflation_ratio=50, ratio_grace_bytes=1 << 20)
    store = FileStore(tmp_path / "files", limits=limits)
    path = tmp_path / "zeros.txt.gz"
    path.write_bytes(writer(b"0" * (16 << 20)))
    with pytest.raises(InflatedTooLarge, match=r"inflates more than 50 times"):
        await store.save_file("ws1", path, 1 << 30)
    assert store.list("ws1") == []
    ordinary = tmp_path / "ordinary.txt.gz"
    ordinary.write_bytes(writer(b"".join(b"%d,%d\n" % (i, i * i) for i in range(400_000))))
    info = await store.save_file("ws1", ordinary, 1 << 30)
    assert info.uncompressed_size > 4 << 20  # compressible, but not a bomb


def test_default_limits_stop_a_bomb_without_inflating_it_all() -> None:
    limits = FileLimits()
    produced = 0

    def chunks() -> Iterator[bytes]:
        yield zeros_gzip(256 << 20)

    with pytest.raises(InflatedTooLarge):
        for chunk in gunzip_chunks(chunks(), "bomb.gz", limits.guard("bomb.gz")):
            produced += len(chunk)
    assert produced <= limits.ratio_grace_bytes + 2 * INFLATE_STEP + limits.max_inflation_ratio * (
        1 << 20
    )
