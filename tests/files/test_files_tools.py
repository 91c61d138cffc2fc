from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from files_seqgen import fasta_text, random_records, write

from mezzo.files import FILE_TOOLS, FileStore, QueryError, summary_for_context
from mezzo.files.tools import fetch_sequence, list_records, search_motif, sequence_stats
from mezzo.files.trim import estimate_tokens


@pytest.fixture
async def genome(tmp_path: Path, attach):
    records = random_records(random.Random(21), 80, max_len=20_000)
    info = await attach(write(tmp_path / "asm.fa", fasta_text(records, random.Random(22)), "bgzf"))
    return info, records


async def test_a_tool_call_for_a_slice_gets_exactly_it(store: FileStore, genome) -> None:
    info, records = genome
    rec = max(records, key=lambda r: len(r.seq))
    # what a model would send: JSON arguments naming the file and a samtools region
    arguments = json.loads(json.dumps({"file_id": info.id, "region": f"{rec.name}:101-350"}))
    out = fetch_sequence(store, "ws1", max_tokens=4000, **arguments)
    assert out == f">{rec.name}:101-350 (250 bases)\n{rec.seq[100:350]}"


async def test_outputs_respect_the_token_cap_with_an_honest_marker(store, genome) -> None:
    info, records = genome
    rec = max(records, key=lambda r: len(r.seq))
    calls: list[str] = []

    def count(text: str) -> int:  # a different counter than the default, to prove it is used
        calls.append(text)
        return len(text) // 3 + 1

    out = fetch_sequence(store, "ws1", info.id, rec.name, max_tokens=500, count_tokens=count)
    assert calls and count(out) <= 500
    body, marker = out.rsplit("\n", 1)
    shown = body.split("\n", 1)[1]
    assert rec.seq.startswith(shown)
    assert marker == (
        f"[truncated: {len(shown)} bases shown ({rec.name}:1-{len(shown)}), "
        f"{len(rec.seq) - len(shown)} more; fetch {rec.name}:{len(shown) + 1}-{len(rec.seq)} "
        "in smaller slices]"
    )
    listing = list_records(store, "ws1", info.id, limit=80, max_tokens=200)
    assert estimate_tokens(listing) <= 200  # the default counter
    shown_rows = listing.splitlines()[1:-1]
    assert listing.splitlines()[-1] == (
        f"[truncated: {len(shown_rows)} records shown, {80 - len(shown_rows)} more; "
        "page with offset]"
    )
    hits = search_motif(store, "ws1", info.id, "ACG", max_hits=5, max_tokens=10_000)
    assert hits.splitlines()[-1].startswith("[truncated: 5 hits shown, ")


async def test_stats_summary_and_errors(store: FileStore, genome) -> None:
    info, records = genome
    text = summary_for_context(info)
    assert text.startswith(f"Attached file 'asm.fa' (file_id {info.id}): FASTA, bgzf")
    assert f"{len(records):,} records" in text and "N50" in text and "fetch_sequence" in text
    assert len(text) < 1200
    stats = sequence_stats(store, "ws1", info.id, pattern="seq1*")
    chosen = [r for r in records if r.name.startswith("seq1")]
    assert f"records: {len(chosen)}" in stats.splitlines()
    assert f"bases: {sum(len(r.seq) for r in chosen)}" in stats.splitlines()
    with pytest.raises(QueryError, match=r"asm\.fa: invalid motif 'AC!'"):
        search_motif(store, "ws1", info.id, "AC!")
    with pytest.raises(QueryError, match="is FASTA; table_rows needs CSV or TSV"):
        FILE_TOOLS[5](store, "ws1", info.id)
    assert all(f.__doc__ for f in FILE_TOOLS)


async def test_bound_tools_expose_only_model_parameters_and_work(store: FileStore, genome) -> None:
    import inspect

    from pydantic import create_model

    from mezzo.files.tools import bind_file_tools

    info, records = genome
    tools = {t.__name__: t for t in bind_file_tools(store, "ws1", max_tokens=3000)}
    assert set(tools) == {t.__name__ for t in FILE_TOOLS}
    for tool in tools.values():
        params = inspect.signature(tool).parameters
        assert "store" not in params and "workspace" not in params
        assert "count_tokens" not in params and "max_tokens" not in params
        fields = {
            name: (p.annotation, ... if p.default is p.empty else p.default)
            for name, p in params.items()
        }
        schema = create_model(tool.__name__, **fields).model_json_schema()  # type: ignore[call-overload]
        assert "file_id" in schema["required"] and set(schema["properties"]) == set(fields)
        assert tool.__doc__
    rec = next(r for r in records if len(r.seq) > 20)
    out = tools["fetch_sequence"](file_id=info.id, region=f"{rec.name}:11-20")
    assert out.splitlines() == [f">{rec.name}:11-20 (10 bases)", rec.seq[10:20]]


async def test_protein_fasta(tmp_path: Path, store: FileStore, attach) -> None:
    rng = random.Random(4)
    proteins = {
        f"P{i:05d}": "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(300))
        for i in range(20)
    }
    path = tmp_path / "prot.faa"
    path.write_text(
        "".join(f">{n} protein\n{s[:80]}\n{s[80:160]}\n{s[160:]}\n" for n, s in proteins.items())
    )
    info = await attach(path)
    assert info.summary["alphabet"] == "protein" and "gc_fraction" not in info.summary
    assert "GC" not in summary_for_context(info)
    out = fetch_sequence(store, "ws1", info.id, "P00007:75-90")
    assert out.splitlines()[1] == proteins["P00007"][74:90]
    with pytest.raises(QueryError, match="holds protein sequences"):
        search_motif(store, "ws1", info.id, "ACG")
