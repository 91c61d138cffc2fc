from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from files_seqgen import Rec, fasta_text, random_records, write

from mezzo.files import FileStore, QueryError
from mezzo.files.seqstats import length_distribution
from mezzo.files.sequences import SequenceQuery, reverse_complement_motif


def naive_n50(lengths: list[int]) -> int:
    total, covered = sum(lengths), 0
    for length in sorted(lengths, reverse=True):
        covered += length
        if covered * 2 >= total:
            return length
    return 0


def naive_runs(records: list[Rec]) -> int:
    return sum(len(re.findall("[Nn]+", r.seq)) for r in records)


@pytest.fixture(scope="module")
def records() -> list[Rec]:
    return random_records(random.Random(7), 120)


@pytest.mark.parametrize("compression", ["none", "gzip", "bgzf"])
async def test_stats_match_a_naive_count(
    tmp_path: Path, attach, records: list[Rec], compression: str
) -> None:
    path = write(tmp_path / "genome.fa", fasta_text(records, random.Random(1)), compression)
    info = await attach(path)
    assert info.format == "fasta"
    assert info.compression == compression
    s = info.summary
    seqs = [r.seq for r in records]
    bases = sum(map(len, seqs))
    n = sum(q.upper().count("N") for q in seqs)
    gc = sum(q.upper().count("G") + q.upper().count("C") for q in seqs)
    assert s["records"] == len(records)
    assert s["lengths"]["bases"] == bases
    assert s["lengths"]["N50"] == naive_n50([len(q) for q in seqs])
    assert s["lengths"]["max"] == max(map(len, seqs))
    assert s["n_bases"] == n
    assert s["gc_fraction"] == round(gc / (bases - n), 4)
    assert s["n_runs"] == naive_runs(records)
    lower = sum(sum(ch.islower() for ch in q) for q in seqs)
    assert s["soft_masked_fraction"] == round(lower / bases, 4)
    assert s["irregular_records"] == 0
    longest = max(m.end() - m.start() for q in seqs for m in re.finditer("[Nn]+", q))
    assert s["longest_n_runs"][0]["length"] == longest


@pytest.mark.parametrize("compression", ["none", "gzip", "bgzf"])
async def test_random_slices_match_the_sequence(
    tmp_path: Path, store: FileStore, attach, records: list[Rec], compression: str
) -> None:
    path = write(tmp_path / "g.fa.gz", fasta_text(records, random.Random(2)), compression)
    info = await attach(path)
    rng = random.Random(3)
    with store.open("ws1", info.id) as opened:
        query = SequenceQuery(info.name, opened.source, opened.index)
        for _ in range(150):
            rec = rng.choice([r for r in records if r.seq])
            start = rng.randint(1, len(rec.seq))
            end = rng.randint(start, len(rec.seq))
            span = query.span(f"{rec.name}:{start:,}-{end}")
            assert query.fetch(span) == rec.seq[start - 1 : end]
        whole = records[5] if records[5].seq else records[6]
        assert query.fetch(query.span(whole.name)) == whole.seq


async def test_irregular_lines_and_crlf_still_slice_exactly(tmp_path: Path, store, attach) -> None:
    rng = random.Random(11)
    seq = "".join(rng.choice("ACGTacgtN") for _ in range(3000))
    ragged = ">ragged\n" + "\n".join(
        seq[i:j] for i, j in zip([0, 70, 90, 400, 401], [70, 90, 400, 401, 3000], strict=True)
    )
    crlf = fasta_text([Rec("crlf", seq)], rng, crlf=True)
    path = tmp_path / "mixed.fasta"
    path.write_text(ragged + "\n" + crlf + ">empty\n>last\nACGTN\n\n")
    info = await attach(path)
    assert info.summary["irregular_records"] == 1
    with store.open("ws1", info.id) as opened:
        query = SequenceQuery(info.name, opened.source, opened.index)
        for name in ("ragged", "crlf"):
            for _ in range(50):
                a = rng.randint(1, 3000)
                b = rng.randint(a, 3000)
                assert query.fetch(query.span(f"{name}:{a}-{b}")) == seq[a - 1 : b]
        assert query.fetch(query.span("last")) == "ACGTN"
        with pytest.raises(QueryError, match="empty"):
            query.span("empty")


async def test_motif_search_matches_a_naive_scan_on_both_strands(
    tmp_path: Path, store, attach, records: list[Rec]
) -> None:
    path = write(tmp_path / "g.fa", fasta_text(records, random.Random(4)))
    info = await attach(path)
    motif = "GAWTC"  # W = A or T; its reverse complement is GAWTC too
    motif2 = "ACGRT"
    with store.open("ws1", info.id) as opened:
        query = SequenceQuery(info.name, opened.source, opened.index)
        for m in (motif, motif2):
            fwd = m.replace("W", "[AT]").replace("R", "[AG]")
            rc = reverse_complement_motif(m).replace("W", "[AT]").replace("Y", "[CT]")
            expected = []
            for r in records:
                up = r.seq.upper()
                expected += [(r.name, x.start() + 1, "+") for x in re.finditer(f"(?={fwd})", up)]
                if reverse_complement_motif(m) != m:
                    expected += [(r.name, x.start() + 1, "-") for x in re.finditer(f"(?={rc})", up)]
            hits, total = query.search(m, max_hits=10_000)
            assert total == len(expected)
            assert sorted((h.record, h.start, h.strand) for h in hits) == sorted(expected)
            capped, total_capped = query.search(m, max_hits=3)
            assert len(capped) == min(3, total) and total_capped == total


async def test_region_and_motif_errors_are_clear(tmp_path: Path, store, attach) -> None:
    path = write(tmp_path / "small.fa", ">chr1\nACGTACGTAC\n>chr2\nAC\n")
    info = await attach(path)
    with store.open("ws1", info.id) as opened:
        query = SequenceQuery(info.name, opened.source, opened.index)
        with pytest.raises(QueryError, match=r"small.fa: slice 'chr1:5-11' is out of range.*10"):
            query.span("chr1:5-11")
        with pytest.raises(QueryError, match="no record named 'chr9'"):
            query.span("chr9:1-2")
        with pytest.raises(QueryError, match=r"invalid motif 'ACXZ'.*'X' at position 3"):
            query.search("ACXZ")
        stats = query.stats_for_span(query.span("chr1:2-5"))
        assert stats["bases"] == 4 and stats["gc"] == 2


def naive_l(lengths: list[int], fraction: float) -> int:
    covered = 0
    for count, length in enumerate(sorted(lengths, reverse=True), start=1):
        covered += length
        if covered >= fraction * sum(lengths):
            return count
    return 0


@pytest.mark.parametrize("seed", range(20))
def test_nx_and_lx_from_a_histogram_match_the_sorted_list(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(1, 50), rng.randint(1, 5000)]) for _ in range(300)]
    hist: dict[int, int] = {}
    for length in lengths:
        hist[length] = hist.get(length, 0) + 1
    dist = length_distribution(hist)
    assert dist["N50"] == naive_n50(lengths)
    assert dist["L50"] == naive_l(lengths, 0.5)
    assert dist["L90"] == naive_l(lengths, 0.9)


def test_length_distribution_is_exact() -> None:
    lengths = [5, 5, 7, 100, 3, 3, 3, 1000]
    hist: dict[int, int] = {}
    for length in lengths:
        hist[length] = hist.get(length, 0) + 1
    dist = length_distribution(hist)
    assert dist["N50"] == naive_n50(lengths)
    assert dist["median"] == sorted(lengths)[(len(lengths) - 1) // 2]
    assert dist["bins"] == {"0-9": 6, "100-999": 1, "1000-9999": 1}


async def test_motif_hits_across_window_boundaries_of_a_big_record(
    tmp_path: Path, store, attach
) -> None:
    rng = random.Random(12)
    seq = "".join(rng.choice("ACGTacgt") for _ in range(2_600_000))
    small = Rec("small", "GGATCCGGATCC")
    path = write(tmp_path / "big.fa", fasta_text([Rec("big", seq), small], rng))
    info = await attach(path)
    motif = "GGWTCCR"
    rc = reverse_complement_motif(motif)
    to_re = {"W": "[AT]", "R": "[AG]", "Y": "[CT]"}
    fwd_re = "".join(to_re.get(c, c) for c in motif)
    rc_re = "".join(to_re.get(c, c) for c in rc)
    expected = sorted(
        [("big", m.start() + 1, "+") for m in re.finditer(f"(?={fwd_re})", seq.upper())]
        + [("big", m.start() + 1, "-") for m in re.finditer(f"(?={rc_re})", seq.upper())]
    )
    with store.open("ws1", info.id) as opened:
        query = SequenceQuery(info.name, opened.source, opened.index)
        hits, total = query.search(motif, max_hits=100_000)
        got = sorted((h.record, h.start, h.strand) for h in hits if h.record == "big")
        assert got == expected
        assert total == len(hits)
        sequences = {"big": seq, "small": small.seq}
        assert all(h.text == sequences[h.record][h.start - 1 : h.end] for h in hits)
        assert any(h.record == "small" for h in hits)
        _, sub_total = query.search(motif, ["big:1000000-2100000"], max_hits=10)
        inside = [e for e in expected if e[1] >= 1_000_000 and e[1] + 6 <= 2_100_000]
        assert sub_total == len(inside)
