"""Model-chosen arguments cannot make a file tool run away: regexes run in linear time, and
every tool's memory and work are capped, not only its output."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from mezzo.files import FileFormatError, FileStore, QueryError
from mezzo.files.limits import FileLimits
from mezzo.files.tools import (
    grep_file,
    read_lines,
    search_motif,
    sequence_stats,
    table_rows,
    tail_lines,
)

BIG = 100_000


def peak_mib(call: Callable[[], str]) -> tuple[str, float]:
    """The tool's answer and the peak of Python allocations while it ran, in MiB."""
    tracemalloc.start()
    try:
        out = call()
        return out, tracemalloc.get_traced_memory()[1] / (1 << 20)
    finally:
        tracemalloc.stop()


_CHILD = """
import json, sys
from pathlib import Path
from mezzo.files import FileStore, tools
root, tool, kwargs = json.loads(sys.argv[1])
print(json.dumps(getattr(tools, tool)(FileStore(Path(root)), "ws1", **kwargs)))
"""


def finishes(store: FileStore, tool: str, within_s: float = 60.0, **kwargs: object) -> str:
    """Run the tool in a child process that is killed after `within_s`: a backtracking regex
    on these inputs needs about 2**100 steps (and holds the GIL while it tries), so not
    finishing in a minute is the failure, not a timing to tune."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps([str(store.root), tool, kwargs])],
            capture_output=True, text=True, timeout=within_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{tool} still running after {within_s:g} s: backtracking") from None
    assert done.returncode == 0, done.stderr[-2000:]
    return str(json.loads(done.stdout))


async def test_grep_and_filters_are_immune_to_catastrophic_backtracking(
    tmp_path: Path, store: FileStore, attach
) -> None:
    log = tmp_path / "app.log"
    log.write_text(("a" * 100 + "b\n") * 50 + "aaaa\n")
    info = await attach(log)
    out = finishes(store, "grep_file", file_id=info.id, pattern="(a+)+$", max_tokens=BIG)
    assert out.splitlines() == ["1 matching lines", "51: aaaa"]
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("id,name\n" + "".join(f"{i},{'a' * 100}b\n" for i in range(20)) + "20,aa\n")
    table = await attach(csv_path)
    rows = finishes(store, "table_rows", file_id=table.id, where=["name ~ (a+)+$"])
    assert rows.splitlines()[:3] == ["1 matching rows", "row,id,name", "21,20,aa"]
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"m": "a" * 100 + "b"}) + "\n" for _ in range(20)) + '{"m": "aa"}\n'
    )
    records = await attach(jsonl)
    found = finishes(store, "jsonl_records", file_id=records.id, where=["m ~ (a|a)+$"])
    assert found.splitlines() == ["1 matching records (line: record)", '21: {"m": "aa"}']
    with pytest.raises(QueryError, match=r"invalid regular expression '\(a\)\\\\1'"):
        grep_file(store, "ws1", info.id, r"(a)\1")


async def test_one_huge_line_is_read_in_bounded_memory(
    tmp_path: Path, store: FileStore, attach
) -> None:
    path = tmp_path / "one-line.txt"
    with path.open("wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20))
        f.write(b"\nshort\n")
    info = await attach(path)
    out, peak = peak_mib(lambda: read_lines(store, "ws1", info.id, 1, 2, max_tokens=2000))
    assert peak < 24, f"read_lines held {peak:.0f} MiB for a 64 MiB line"
    first, second = out.splitlines()[:2]
    assert first.startswith("1: xxxx") and first.endswith(f"[line cut: {64 << 20} bytes in all]")
    assert second == "2: short"
    out, peak = peak_mib(lambda: grep_file(store, "ws1", info.id, "^short$"))
    assert out.splitlines() == ["1 matching lines", "2: short"] and peak < 24
    out, peak = peak_mib(lambda: tail_lines(store, "ws1", info.id, 2))
    assert out.splitlines()[-1] == "2: short" and peak < 80


async def test_huge_counts_and_ranges_do_not_materialise_the_file(
    tmp_path: Path, store: FileStore, attach
) -> None:
    path = tmp_path / "many.txt"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(1, 1_000_001)))
    info = await attach(path)
    out, peak = peak_mib(lambda: read_lines(store, "ws1", info.id, 1, 10**9))
    assert out.splitlines()[0] == "1: line 1" and peak < 16, peak
    assert out.splitlines()[-1].startswith("[truncated: ")
    out, peak = peak_mib(lambda: tail_lines(store, "ws1", info.id, 10**9))
    assert out.splitlines()[-2] == "1000000: line 1000000" and peak < 16, peak
    out, peak = peak_mib(
        lambda: grep_file(store, "ws1", info.id, r"^line \d{1,5}$", max_matches=10**9)
    )
    assert out.splitlines()[0] == "99999 matching lines" and peak < 16, peak
    csv_path = tmp_path / "t.csv"
    csv_path.write_bytes(b"id,v\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(300_000)))
    table = await attach(csv_path)
    out, peak = peak_mib(lambda: table_rows(store, "ws1", table.id, limit=10**9))
    assert out.splitlines()[0] == "300000 matching rows" and peak < 40, peak  # 4 blocks' rows


async def test_motif_search_with_a_billion_hits_allowed_stays_bounded(
    tmp_path: Path, store: FileStore, attach
) -> None:
    path = tmp_path / "g.fa"
    path.write_bytes(b">chr1\n" + b"ACGTACGTAC" * 20_000 + b"\n")
    info = await attach(path)
    out, peak = peak_mib(lambda: search_motif(store, "ws1", info.id, "N", max_hits=10**9))
    assert out.splitlines()[0].startswith("200000 hits for N")
    assert peak < 16, f"search_motif held {peak:.0f} MiB"
    with pytest.raises(QueryError, match="at most 100 regions"):
        search_motif(store, "ws1", info.id, "ACG", regions=["chr1:1-10"] * 101)


async def test_each_tool_call_has_a_work_limit(tmp_path: Path, attach) -> None:
    store = FileStore(tmp_path / "files", limits=FileLimits(tool_seconds=0.0))
    path = tmp_path / "g.fa"
    path.write_bytes(b">chr1\n" + b"ACGTACGTAC" * 200_000 + b"\n")
    info = await store.save_file("ws1", path, 1 << 30)
    with pytest.raises(
        QueryError,
        match=r"sequence_stats stopped after .*: it ran 0 s, the work limit of one tool call",
    ):
        sequence_stats(store, "ws1", info.id, region="chr1")
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(300_000)))
    text = await store.save_file("ws1", log, 1 << 30)
    out = grep_file(store, "ws1", text.id, "line 1$")
    assert "work limit" in out  # what was found so far, and that the count is partial


@pytest.mark.parametrize("name", ["t.csv", "r.jsonl"])
async def test_a_row_too_long_to_hold_is_refused_at_upload(tmp_path: Path, attach, name) -> None:
    path = tmp_path / name
    head = b"id,v\n1,2\n" if name.endswith(".csv") else b'{"a": 1}\n'
    with path.open("wb") as f:
        f.write(head + (b'{"v": "' if name.endswith("l") else b'3,"'))
        for _ in range(24):
            f.write(b"x" * (1 << 20))
        f.write(b'"}\n' if name.endswith("l") else b'"\n')
    with pytest.raises(FileFormatError, match=f"{name} .*longer than 16777216 bytes"):
        await attach(path)
