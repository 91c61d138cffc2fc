from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest
from files_seqgen import bgzf_compress, fasta_text, random_records

from mezzo.files import FileFormatError, FileNotFound, FileStore, FileTooLarge


def genome(seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return fasta_text(random_records(rng, 60), rng).encode()


@pytest.mark.parametrize("writer", [gzip.compress, bgzf_compress])
async def test_truncated_gzip_fails_the_upload_cleanly(
    tmp_path: Path, store: FileStore, attach, writer
) -> None:
    data = writer(genome())
    path = tmp_path / "genome.fa.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FileFormatError, match=r"genome.fa.gz: truncated (gzip|BGZF)"):
        await attach(path)
    assert store.list("ws1") == []
    assert not any((store.root / "ws1" / ".incoming").iterdir())
    ok = tmp_path / "ok.fa.gz"
    ok.write_bytes(data)
    assert (await attach(ok)).summary["records"] == 60  # nothing else is affected


async def test_binary_file_claiming_fasta(tmp_path: Path, attach) -> None:
    path = tmp_path / "genome.fasta"
    path.write_bytes(bytes(random.Random(2).randbytes(5000)))
    with pytest.raises(FileFormatError, match=r"genome.fasta.*claims FASTA by its name but"):
        await attach(path)


async def test_binary_inside_fasta_names_record_and_line(tmp_path: Path, attach) -> None:
    path = tmp_path / "x.fa"
    path.write_bytes(b">one\nACGT\nAC\n>two\nACGT\nAC\x00\x01GT\n")
    with pytest.raises(FileFormatError) as err:
        await attach(path)
    assert str(err.value).startswith("x.fa (record 'two', line 6): byte 0x00")


async def test_size_limit(tmp_path: Path, store: FileStore, attach) -> None:
    path = tmp_path / "big.fa"
    path.write_bytes(genome())
    with pytest.raises(FileTooLarge, match=r"big\.fa: upload exceeds the limit of 1000 bytes"):
        await attach(path, max_bytes=1000)
    assert store.list("ws1") == []


async def test_list_get_delete(tmp_path: Path, store: FileStore, attach) -> None:
    path = tmp_path / "g.fa"
    data = genome()
    path.write_bytes(data)
    first = await attach(path)
    second = await attach(path, workspace="ws2")
    assert [i.id for i in store.list("ws1")] == [first.id]
    import hashlib

    assert store.get("ws1", first.id).sha256 == hashlib.sha256(data).hexdigest()
    assert store.get("ws1", first.id).size == len(data)
    store.delete("ws1", first.id)
    assert store.list("ws1") == []
    with pytest.raises(FileNotFound):
        store.get("ws1", first.id)
    assert store.get("ws2", second.id).name == "g.fa"
    with pytest.raises(Exception, match="invalid workspace id"):
        store.list("../etc")


async def test_abandoned_uploads_are_cleaned(tmp_path: Path, store: FileStore, attach) -> None:
    import os

    path = tmp_path / "g.fa"
    path.write_bytes(genome())
    kept = await attach(path)
    stale = store.root / "ws1" / ".incoming" / "crashed"
    stale.mkdir(parents=True)
    (stale / "data").write_bytes(b">half")
    fresh = store.root / "ws1" / ".incoming" / "running"
    fresh.mkdir()
    os.utime(stale, (0, 0))
    assert store.clean_incoming(older_than_s=3600) == 1
    assert not stale.exists() and fresh.exists()
    assert [i.id for i in store.list("ws1")] == [kept.id]
