from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import pytest
from files_seqgen import bgzf_compress

from mezzo.files import compression
from mezzo.files.compression import GzipSource, bgzf_chunks, gunzip_chunks
from mezzo.files.errors import FileFormatError


def payload(size: int) -> bytes:
    return random.Random(size).randbytes(size // 2).hex().encode()[:size]


def test_gzip_random_access_resumes_from_in_process_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(3 << 20)
    path = tmp_path / "x.gz"
    # two members, as `cat a.gz b.gz` makes
    path.write_bytes(gzip.compress(data[: 1 << 20]) + gzip.compress(data[1 << 20 :]))
    monkeypatch.setattr(compression, "_CHECKPOINTS", compression.OrderedDict())
    source = GzipSource(path, "x.gz", len(data))
    source._cps.spacing = 256 << 10  # small spacing so this test crosses many checkpoints
    assert source.read(len(data) - 100, len(data)) == data[-100:]
    assert len(source._cps.points) >= 8
    rng = random.Random(1)
    for _ in range(40):
        a = rng.randrange(len(data))
        b = min(len(data), a + rng.randrange(1, 300_000))
        assert source.read(a, b) == data[a:b]
    source.close()


def test_multi_member_gzip_and_bgzf_stream_whole() -> None:
    data = payload(500_000)
    members = gzip.compress(data[:1000]) + gzip.compress(data[1000:])
    chunks = [members[i : i + 777] for i in range(0, len(members), 777)]
    assert b"".join(gunzip_chunks(chunks, "m.gz")) == data
    blocks: list[tuple[int, int]] = []
    packed = bgzf_compress(data, block=50_000)
    pieces = [packed[i : i + 4096] for i in range(0, len(packed), 4096)]
    out = b"".join(bgzf_chunks(pieces, "b.gz", lambda u, c: blocks.append((u, c))))
    assert out == data
    assert [u for u, _ in blocks] == list(range(0, len(data), 50_000))


def test_corrupt_gzip_names_the_byte() -> None:
    data = bytearray(gzip.compress(payload(100_000), compresslevel=1))
    data[5000] ^= 0xFF
    with pytest.raises(FileFormatError, match=r"c.gz: (corrupt gzip data near compressed byte)"):
        b"".join(gunzip_chunks([bytes(data)], "c.gz"))
    with pytest.raises(FileFormatError, match="truncated gzip"):
        b"".join(gunzip_chunks([zlib.compress(b"x")[:0] + gzip.compress(b"abc" * 99)[:20]], "t"))


def test_gzip_member_ending_exactly_at_a_read_boundary(tmp_path: Path) -> None:
    rng = random.Random(3)
    first = next(
        data
        for n in range(65_400, 65_536)
        if len(gzip.compress(data := rng.randbytes(n), compresslevel=0, mtime=0)) == 1 << 16
    )
    second = payload(200_000)
    path = tmp_path / "aligned.gz"
    path.write_bytes(gzip.compress(first, 0, mtime=0) + gzip.compress(second, mtime=0))
    whole = first + second
    source = GzipSource(path, "aligned.gz", len(whole))
    assert source.read(len(whole) - 5000, len(whole)) == whole[-5000:]
    source.close()


async def test_large_gzip_gets_a_bgzf_copy_for_random_access(tmp_path: Path) -> None:
    from files_seqgen import fasta_text, random_records, write

    from mezzo.files import FileStore
    from mezzo.files.compression import BgzfSource
    from mezzo.files.sequences import SequenceQuery

    records = [r for r in random_records(random.Random(41), 60, max_len=200_000) if r.seq]
    path = write(tmp_path / "g.fa.gz", fasta_text(records, random.Random(42)), "gzip")
    store = FileStore(tmp_path / "files", gzip_sidecar_min_bytes=1 << 16)
    info = await store.save_file("ws", path, 1 << 30)
    assert info.compression == "gzip"
    folder = store.data_path("ws", info.id).parent
    assert (folder / "data.bgz").is_file()
    assert b"".join(
        compression.bgzf_chunks([(folder / "data.bgz").read_bytes()], "copy")
    ) == gzip.decompress(path.read_bytes())
    rng = random.Random(43)
    with store.open("ws", info.id) as opened:
        assert isinstance(opened.source, BgzfSource)
        query = SequenceQuery(info.name, opened.source, opened.index)
        for _ in range(100):
            rec = rng.choice(records)
            a = rng.randint(1, len(rec.seq))
            b = min(len(rec.seq), a + rng.randint(0, 5000))
            assert query.fetch(query.span(f"{rec.name}:{a}-{b}")) == rec.seq[a - 1 : b]
    small = FileStore(tmp_path / "small")  # default threshold: a small gzip keeps no copy
    small_info = await small.save_file("ws", path, 1 << 30)
    assert not (small.data_path("ws", small_info.id).parent / "data.bgz").exists()
    with small.open("ws", small_info.id) as opened:
        assert isinstance(opened.source, GzipSource)
