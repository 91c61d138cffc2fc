from __future__ import annotations

import random
from pathlib import Path

import pytest
from files_seqgen import fastq_text, random_reads, write

from mezzo.files import FileFormatError, FileStore
from mezzo.files.sequences import SequenceQuery


@pytest.mark.parametrize("compression", ["none", "gzip", "bgzf"])
async def test_fastq_stats_quality_and_reads(
    tmp_path: Path, store: FileStore, attach, compression: str
) -> None:
    reads = random_reads(random.Random(5), 3000)
    info = await attach(write(tmp_path / "r.fq", fastq_text(reads), compression))
    s = info.summary
    assert info.format == "fastq"
    assert s["records"] == len(reads)
    bases = sum(len(r.seq) for r in reads)
    n = sum(r.seq.count("N") for r in reads)
    gc = sum(r.seq.count("G") + r.seq.count("C") for r in reads)
    assert s["lengths"]["bases"] == bases
    assert s["n_bases"] == n
    assert s["reads_with_n"] == sum("N" in r.seq for r in reads)
    assert s["gc_fraction"] == round(gc / (bases - n), 4)
    scores = [ord(c) - 33 for r in reads for c in r.quality]
    assert s["quality"]["mean"] == round(sum(scores) / len(scores), 2)
    assert s["quality"]["q30_fraction"] == round(sum(q >= 30 for q in scores) / len(scores), 4)
    with store.open("ws1", info.id) as opened:
        query = SequenceQuery(info.name, opened.source, opened.index)
        for read in random.Random(6).sample(reads, 40):
            assert query.fetch(query.span(read.name)) == read.seq
            assert query.fetch(query.span(f"{read.name}:3-10")) == read.seq[2:10]
        sub = query.stats_for_glob("read1*")
        chosen = [r for r in reads if r.name.startswith("read1")]
        assert sub["records"] == len(chosen)
        assert sub["bases"] == sum(len(r.seq) for r in chosen)


async def test_fastq_length_mismatch_names_record_and_line(tmp_path: Path, store, attach) -> None:
    reads = random_reads(random.Random(8), 50)
    reads[31].quality = reads[31].quality[:-1]
    path = write(tmp_path / "bad.fastq", fastq_text(reads))
    with pytest.raises(FileFormatError) as err:
        await attach(path)
    message = str(err.value)
    assert "bad.fastq" in message and "'read31'" in message and "line 128" in message
    assert f"{len(reads[31].seq)} bases" in message
    assert store.list("ws1") == []


async def test_fastq_truncated_record(tmp_path: Path, attach) -> None:
    text = fastq_text(random_reads(random.Random(9), 10))
    path = tmp_path / "cut.fq"
    path.write_text(text[: text.rfind("+\n")])
    with pytest.raises(FileFormatError, match=r"cut.fq \(line 37\): the file ends inside a record"):
        await attach(path)
