from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path

import pytest

from mezzo.files import FileFormatError, FileStore, QueryError, summary_for_context
from mezzo.files.tools import (
    column_stats,
    grep_file,
    jsonl_records,
    read_lines,
    table_rows,
    tail_lines,
)

BIG = 1 << 20  # token cap large enough that nothing is trimmed


def people(n: int) -> list[dict[str, str]]:
    rng = random.Random(4)
    cities = ["Berlin", "Bern", "Lima", "Oslo"]
    return [
        {
            "id": str(i + 1),
            "name": f"person {i}",
            "age": str(rng.randint(1, 90)),
            "city": rng.choice(cities),
            "score": "" if i % 10 == 0 else f"{rng.random() * 100:.3f}",
        }
        for i in range(n)
    ]


def write_table(path: Path, rows: list[dict[str, str]], delimiter: str) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize(("suffix", "delimiter"), [("csv", ","), ("tsv", "\t")])
async def test_table_schema_stats_and_filtered_rows(
    tmp_path: Path, store: FileStore, attach, suffix: str, delimiter: str
) -> None:
    rows = people(5000)
    path = tmp_path / f"people.{suffix}"
    write_table(path, rows, delimiter)
    info = await attach(path)
    assert info.format == suffix
    s = info.summary
    assert s["rows"] == 5000 and s["has_header"]
    columns = {c["name"]: c for c in s["columns"]}
    assert columns["age"]["type"] == "int"
    assert columns["age"]["min"] == min(int(r["age"]) for r in rows)
    assert columns["score"]["empty"] == 500 and columns["score"]["type"] == "float"
    assert columns["city"]["distinct"] == 4
    text = table_rows(
        store,
        "ws1",
        info.id,
        where=["age > 80", "city == Bern"],
        columns=["id", "age"],
        limit=5000,
        max_tokens=BIG,
    )
    expected = [r for r in rows if int(r["age"]) > 80 and r["city"] == "Bern"]
    lines = text.splitlines()
    assert lines[0] == f"{len(expected)} matching rows"
    assert lines[2:] == [f"{r['id']}{delimiter}{r['id']}{delimiter}{r['age']}" for r in expected]
    capped = table_rows(store, "ws1", info.id, where=["city ~ ^Ber"], limit=3)
    berl = sum(r["city"].startswith("Ber") for r in rows)
    assert capped.endswith(
        f"[truncated: 3 matching rows shown, {berl - 3} more; "
        "narrow `where` or page with start_row]"
    )
    later = table_rows(store, "ws1", info.id, start_row=4321, limit=1, max_tokens=BIG)
    assert later.splitlines()[2].split(delimiter)[:2] == ["4321", "4321"]
    with pytest.raises(QueryError, match="no column 'agee'; columns are: id, name, age"):
        table_rows(store, "ws1", info.id, where=["agee > 3"])
    assert '"name": "city"' in column_stats(store, "ws1", info.id, "city")


async def test_text_log_lines_grep_tail(tmp_path: Path, store: FileStore, attach) -> None:
    rng = random.Random(3)
    levels = ["INFO", "INFO", "DEBUG", "WARN", "ERROR"]
    lines = [
        f"2026-01-01 {rng.choice(levels)} event {i} value={rng.randint(0, 999)}"
        for i in range(60_000)
    ]
    path = tmp_path / "app.log.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    info = await attach(path)
    assert info.format == "text" and info.compression == "gzip"
    assert info.summary["lines"] == 60_000
    assert info.summary["level_words"]["ERROR"] == sum(" ERROR " in x for x in lines)
    assert "log level words: INFO" in summary_for_context(info)
    got = read_lines(store, "ws1", info.id, 45_001, 45_010, max_tokens=BIG).splitlines()
    assert got == [f"{45_001 + i}: {lines[45_000 + i]}" for i in range(10)]
    grep = grep_file(store, "ws1", info.id, r"value=99\d$", max_matches=10_000, max_tokens=BIG)
    expected = [
        f"{i + 1}: {x}"
        for i, x in enumerate(lines)
        if x.endswith(tuple(f"value={v}" for v in range(990, 1000)))
    ]
    assert grep.splitlines() == [f"{len(expected)} matching lines", *expected]
    tail = tail_lines(store, "ws1", info.id, 3)
    assert tail.splitlines() == [f"{59_998 + i}: {lines[59_997 + i]}" for i in range(3)]
    with pytest.raises(QueryError, match="line 70000 is out of range: the file has 60000"):
        read_lines(store, "ws1", info.id, 70_000)
    with pytest.raises(QueryError, match="invalid regular expression"):
        grep_file(store, "ws1", info.id, "(")


async def test_jsonl_schema_and_filters(tmp_path: Path, store: FileStore, attach) -> None:
    records = [{"id": i, "user": {"name": f"u{i % 7}"}, "ok": i % 3 == 0} for i in range(3000)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    info = await attach(path)
    assert info.format == "jsonl" and info.summary["records"] == 3000
    keys = {k["key"]: k for k in info.summary["keys"]}
    assert keys["ok"]["types"] == {"bool": 3000}
    text = jsonl_records(
        store, "ws1", info.id, where=["user.name == u3", "id >= 2900"], limit=100, max_tokens=BIG
    )
    expected = [r for r in records if r["user"]["name"] == "u3" and r["id"] >= 2900]
    assert text.splitlines()[1:] == [f"{r['id'] + 1}: {json.dumps(r)}" for r in expected]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": 2}\n{"a": \n')
    with pytest.raises(FileFormatError, match=r"bad.jsonl \(line 3\): not JSON"):
        await attach(bad)


async def test_csv_quoted_newlines_keep_row_numbers(tmp_path: Path, store, attach) -> None:
    rows = [
        {"id": str(i), "note": f"line one\nline two {i}" if i % 3 == 0 else "plain"}
        for i in range(1, 4001)
    ]
    path = tmp_path / "notes.csv"
    write_table(path, rows, ",")
    info = await attach(path)
    assert info.summary["rows"] == 4000
    text = table_rows(store, "ws1", info.id, start_row=3001, limit=3, max_tokens=BIG)
    assert text.split("\n", 2)[2] == (
        '3001,3001,plain\n3002,3002,plain\n3003,3003,"line one\nline two 3003"\n'
        "[truncated: 3 matching rows shown, 997 more; narrow `where` or page with start_row]"
    )
    hit = table_rows(store, "ws1", info.id, where=["note ~ two 3999$"], max_tokens=BIG)
    assert hit.splitlines()[0] == "1 matching rows" and "3999,3999" in hit


async def test_jsonl_bad_line_far_into_a_multi_chunk_file(tmp_path: Path, attach) -> None:
    lines = [json.dumps({"id": i, "pad": "x" * 40}) for i in range(120_000)]
    lines[99_999] = '{"id": 99999, "pad": oops}'
    lines[5] = ""
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 5 << 20  # spans several 4 MiB scan chunks
    with pytest.raises(FileFormatError, match=r"big.jsonl \(line 100000\): not JSON"):
        await attach(path)
    lines[99_999] = '{"id": 99999}'
    path.write_text("\n".join(lines) + "\n")
    info = await attach(path)
    assert info.summary["records"] == 119_999 and info.summary["blank_lines"] == 1
    assert {k["key"]: k["present"] for k in info.summary["keys"]} == {"id": 119_999, "pad": 119_998}


async def test_tail_keeps_the_last_lines_under_a_small_cap(tmp_path: Path, store, attach) -> None:
    path = tmp_path / "x.txt"
    path.write_text("".join(f"line number {i} with some words\n" for i in range(1, 501)))
    info = await attach(path)
    out = tail_lines(store, "ws1", info.id, count=100, max_tokens=100)
    lines = out.splitlines()
    shown = lines[:-1]
    assert shown == [f"{i}: line number {i} with some words" for i in range(501 - len(shown), 501)]
    assert lines[-1] == (
        f"[truncated: the last {len(shown)} lines shown, {100 - len(shown)} earlier ones not; "
        "ask for fewer lines or use read_lines]"
    )
    assert (len(out) + 3) // 4 <= 100
