"""The tools an agent uses on attached files, and the summary it sees on attach.

Every tool is a plain typed function: `store`, `workspace`, `max_tokens` and `count_tokens`
are supplied by the caller (the tools registry binds them); the remaining parameters are what
the model fills in. Tools do blocking file I/O: run them in a worker thread. Each returns text
no larger than `max_tokens`, ending with "[truncated: N shown, M more ...]" when it had to cut.
Bad requests raise `QueryError` (a `FileError`) with a message fit to show the model.
"""

from __future__ import annotations

import csv
import functools
import inspect
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from mezzo.files.conditions import parse_conditions
from mezzo.files.errors import QueryError
from mezzo.files.jsonl import JsonlQuery
from mezzo.files.models import FileFormat, FileInfo
from mezzo.files.sequences import SequenceQuery
from mezzo.files.storage import FileStore, OpenFile
from mezzo.files.tables import TableQuery
from mezzo.files.text import TextQuery, cut_marker, decode, shown_line
from mezzo.files.trim import (
    DEFAULT_MAX_TOKENS,
    TokenCounter,
    estimate_tokens,
    fit_prefix,
    trim_lines,
)
from mezzo.files.work import WorkLimitReached

SEQUENCE_FORMATS = (FileFormat.FASTA, FileFormat.FASTQ)
TABLE_FORMATS = (FileFormat.CSV, FileFormat.TSV)


def _require(opened: OpenFile, formats: tuple[FileFormat, ...], tool: str) -> None:
    fmt = opened.info.format
    if fmt not in formats:
        wanted = " or ".join(f.value.upper() for f in formats)
        raise QueryError(opened.info.name, f"is {fmt.value.upper()}; {tool} needs {wanted}")


def _sequences(opened: OpenFile) -> SequenceQuery:
    return SequenceQuery(opened.info.name, opened.source, opened.index)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.2f}%"


# --- summaries ---


def summary_for_context(info: FileInfo) -> str:
    """The compact description put into the model's context when a file is attached."""
    s = info.summary
    head = (
        f"Attached file {info.name!r} (file_id {info.id}): {info.format.value.upper()}"
        f"{'' if info.compression.value == 'none' else ', ' + info.compression.value}, "
        f"{_size(info.size)}"
    )
    if info.format in SEQUENCE_FORMATS:
        lengths = s.get("lengths", {})
        parts = [f"{s.get('records', 0):,} records ({s.get('alphabet', '?')})"]
        if lengths.get("records"):
            parts.append(
                f"{lengths['bases']:,} bases; length min {lengths['min']:,} / median "
                f"{lengths['median']:,} / max {lengths['max']:,}; N50 {lengths['N50']:,}"
            )
        if "gc_fraction" in s:
            parts.append(f"GC {_percent(s['gc_fraction'])}; N bases {s.get('n_bases', 0):,}")
        if s.get("n_runs"):
            parts.append(f"{s['n_runs']:,} N runs")
        if s.get("soft_masked_fraction"):
            parts.append(f"soft-masked {_percent(s['soft_masked_fraction'])}")
        if "quality" in s and s["quality"].get("bases"):
            q = s["quality"]
            parts.append(f"quality mean Q{q['mean']}, ≥Q30 {_percent(q['q30_fraction'])}")
        names = ", ".join(s.get("first_names", [])[:5])
        parts.append(f"first records: {names}")
        tools = "list_records, fetch_sequence (region name:start-end, 1-based inclusive), "
        tools += "search_motif, sequence_stats"
    elif info.format in TABLE_FORMATS:
        cols = ", ".join(f"{c['name']} ({c['type']})" for c in s.get("columns", [])[:30])
        more = len(s.get("columns", [])) - 30
        parts = [
            f"{s.get('rows', 0):,} rows",
            f"columns: {cols}{f' +{more} more' if more > 0 else ''}",
        ]
        tools = "table_rows (filters like 'age > 30'), column_stats, read_lines"
    elif info.format is FileFormat.JSONL:
        keys = ", ".join(k["key"] for k in s.get("keys", [])[:30])
        parts = [f"{s.get('records', 0):,} records", f"keys: {keys}"]
        tools = "jsonl_records (filters like 'user.id == 7'), grep_file, read_lines"
    else:
        parts = [f"{s.get('lines', 0):,} lines"]
        if s.get("level_words"):
            words = ", ".join(f"{k} {v:,}" for k, v in s["level_words"].items())
            parts.append(f"log level words: {words}")
        tools = "read_lines, tail_lines, grep_file"
    return (
        f"{head}; "
        + "; ".join(parts)
        + f". Query it with the tools {tools}; never ask for the whole file."
    )


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def file_summary(
    store: FileStore,
    workspace: str,
    file_id: str,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """Describe an attached file in full: format, size, checksum and its statistics."""
    info = store.get(workspace, file_id)
    lines = [summary_for_context(info), f"sha256 {info.sha256}"]
    lines += json.dumps(info.summary, indent=1).splitlines()
    return trim_lines("", lines, unit="lines", max_tokens=max_tokens, count_tokens=count_tokens)


# --- sequences ---


def list_records(
    store: FileStore,
    workspace: str,
    file_id: str,
    pattern: str | None = None,
    offset: int = 0,
    limit: int = 50,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """List FASTA/FASTQ records (name, length, GC%, N count), optionally those whose name
    matches a glob `pattern` such as 'chr*'; page with `offset` and `limit`."""
    with store.open(workspace, file_id, tool="list_records") as opened:
        _require(opened, SEQUENCE_FORMATS, "list_records")
        total = opened.index.count_matching(pattern)
        rows = (
            f"{r.name}\t{r.length}\t{_percent(r.gc / (r.length - r.n)) if r.length > r.n else '-'}"
            f"\t{r.n}"
            for r in opened.index.records(pattern, max(0, offset), _clamp(store, limit))
        )
        head = f"{total} records match; name\tlength\tGC\tN (from #{offset + 1})"
        return trim_lines(
            head,
            rows,
            total=max(0, total - offset),
            unit="records",
            hint="page with offset",
            max_tokens=max_tokens,
            count_tokens=count_tokens,
        )


def fetch_sequence(
    store: FileStore,
    workspace: str,
    file_id: str,
    region: str,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """Return the bases of a record or a slice, samtools-style: 'chr1' or 'chr1:1000-2000'
    (1-based, inclusive). Long slices are cut to the token cap; ask for the rest in pieces."""
    with store.open(workspace, file_id, tool="fetch_sequence") as opened:
        _require(opened, SEQUENCE_FORMATS, "fetch_sequence")
        query = _sequences(opened)
        span = query.span(region)
        head = f">{span} ({span.length} bases)"
        budget = max_tokens - count_tokens(head) - 60
        limit = min(span.length, max(0, budget) * 16)
        head_span = type(span)(span.record, span.start, span.start + limit - 1) if limit else None
        bases = query.fetch(head_span) if head_span else ""
        keep = fit_prefix(bases, budget, count_tokens)
        if keep == span.length:
            return f"{head}\n{bases}"
        shown_end = span.start + keep - 1
        rest = f"{span.record.name}:{shown_end + 1}-{span.end}"
        return (
            f"{head}\n{bases[:keep]}\n[truncated: {keep} bases shown "
            f"({span.record.name}:{span.start}-{shown_end}), {span.length - keep} more; "
            f"fetch {rest} in smaller slices]"
        )


def search_motif(
    store: FileStore,
    workspace: str,
    file_id: str,
    motif: str,
    regions: list[str] | None = None,
    max_hits: int = 50,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """Find a motif (IUPAC codes such as N, R, Y allowed) on both strands, in all records or
    in the given regions ('chr1', 'chr1:1-5000'; at most 100). Positions are 1-based; '-'
    strand hits report where the reverse complement lies on the forward strand. Every hit is
    counted; at most `max_hits` (up to 1000) are listed."""
    with store.open(workspace, file_id, tool="search_motif") as opened:
        _require(opened, SEQUENCE_FORMATS, "search_motif")
        if opened.info.summary.get("alphabet") == "protein":
            raise QueryError(
                opened.info.name, "holds protein sequences; search_motif takes nucleotide motifs"
            )
        if regions and len(regions) > store.limits.max_regions:
            raise QueryError(
                opened.info.name,
                f"{len(regions)} regions asked for; search_motif takes at most "
                f"{store.limits.max_regions} regions per call",
            )
        hits, total = _sequences(opened).search(
            motif, regions or (), max(1, _clamp(store, max_hits)), opened.deadline
        )
        head = f"{total} hits for {motif} (both strands); record\tstart\tend\tstrand\tmatch"
        rows = (f"{h.record}\t{h.start}\t{h.end}\t{h.strand}\t{h.text}" for h in hits)
        return trim_lines(
            head,
            rows,
            total=total,
            unit="hits",
            hint="narrow the regions or raise max_hits",
            max_tokens=max_tokens,
            count_tokens=count_tokens,
        )


def sequence_stats(
    store: FileStore,
    workspace: str,
    file_id: str,
    pattern: str | None = None,
    region: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """Statistics (count, bases, N50, GC, N, soft-masking) for all records, for records whose
    name matches the glob `pattern`, or for one `region` such as 'chr2:5000-90000'."""
    with store.open(workspace, file_id, tool="sequence_stats") as opened:
        _require(opened, SEQUENCE_FORMATS, "sequence_stats")
        query = _sequences(opened)
        stats = (
            query.stats_for_span(query.span(region)) if region else query.stats_for_glob(pattern)
        )
        lines = [f"{key}: {value}" for key, value in stats.items()]
        return trim_lines("", lines, max_tokens=max_tokens, count_tokens=count_tokens)


# --- tables and JSON Lines ---


def _csv_line(cells: list[str], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow(cells)
    return out.getvalue()[:-1]


def table_rows(
    store: FileStore,
    workspace: str,
    file_id: str,
    where: list[str] | None = None,
    columns: list[str] | None = None,
    start_row: int = 1,
    limit: int = 20,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """Rows of a CSV/TSV file from `start_row` (1-based, header excluded) that satisfy every
    filter in `where` ('age > 30', 'name == Ann', 'city ~ ^Ber'), showing only `columns` if
    given. All matches are counted; at most `limit` (up to 1000) are shown. Filter regexes
    use RE2 syntax."""
    with store.open(workspace, file_id, tool="table_rows") as opened:
        _require(opened, TABLE_FORMATS, "table_rows")
        query = TableQuery(
            opened.info.name,
            opened.source,
            opened.index,
            opened.info.uncompressed_size,
            opened.info.summary.get("rows", 0),
        )
        header = query.columns
        conditions = parse_conditions(opened.info.name, where or [], header)
        picked = parse_conditions(opened.info.name, [f"{c} == x" for c in columns or []], header)
        positions = [header.index(c.column) for c in picked] or list(range(len(header)))
        delimiter = query.layout["delimiter"]
        matches = query.select(conditions, start_row)

        shown_rows = [
            f"{number}{delimiter}"
            + _csv_line([row[i] if i < len(row) else "" for i in positions], delimiter)
            for number, row in _first(matches, max(1, _clamp(store, limit)))
        ]
        total, partial = _count_rest(len(shown_rows), matches)
        head = f"{total}{partial} matching rows\nrow{delimiter}" + _csv_line(
            [header[i] for i in positions], delimiter
        )
        return trim_lines(
            head,
            shown_rows,
            total=total,
            unit="matching rows",
            hint="narrow `where` or page with start_row",
            max_tokens=max_tokens,
            count_tokens=count_tokens,
        )


def column_stats(
    store: FileStore,
    workspace: str,
    file_id: str,
    column: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """Type, empties, min/max/mean, distinct count and top values of one column, or of all."""
    info = store.get(workspace, file_id)
    if info.format not in TABLE_FORMATS:
        raise QueryError(
            info.name, f"is {info.format.value.upper()}; column_stats needs CSV or TSV"
        )
    stats: list[dict[str, Any]] = info.summary.get("columns", [])
    if column is not None:
        stats = [c for c in stats if c["name"] == column]
        if not stats:
            names = ", ".join(c["name"] for c in info.summary.get("columns", [])[:50])
            raise QueryError(info.name, f"no column {column!r}; columns are: {names}")
    lines = [json.dumps(c) for c in stats]
    head = f"{info.summary.get('rows', 0)} rows"
    return trim_lines(
        head,
        lines,
        total=len(lines),
        unit="columns",
        max_tokens=max_tokens,
        count_tokens=count_tokens,
    )


def jsonl_records(
    store: FileStore,
    workspace: str,
    file_id: str,
    where: list[str] | None = None,
    start_line: int = 1,
    limit: int = 20,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """JSON Lines records from `start_line` that satisfy every filter in `where`, on dotted
    paths ('user.id == 7', 'status != ok', 'msg ~ timeout'); at most `limit` (up to 1000)
    shown."""
    with store.open(workspace, file_id, tool="jsonl_records") as opened:
        _require(opened, (FileFormat.JSONL,), "jsonl_records")
        query = JsonlQuery(
            opened.info.name,
            opened.source,
            opened.index,
            opened.info.uncompressed_size,
            opened.info.summary.get("lines", 0),
            store.limits.max_line_bytes,
        )
        conditions = parse_conditions(opened.info.name, where or [], None)
        matches = query.records(conditions, start_line)
        shown = [f"{n}: {text}" for n, text in _first(matches, max(1, _clamp(store, limit)))]
        total, partial = _count_rest(len(shown), matches)
        return trim_lines(
            f"{total}{partial} matching records (line: record)",
            shown,
            total=total,
            unit="records",
            hint="narrow `where` or page with start_line",
            max_tokens=max_tokens,
            count_tokens=count_tokens,
        )


def _first(items: Iterator[Any], limit: int) -> Iterator[Any]:
    for i, item in enumerate(items):
        yield item
        if i + 1 >= limit:
            return


def _clamp(store: FileStore, requested: int) -> int:
    """A model-chosen count (max_hits, limit, ...) held to `limits.max_items`."""
    return max(0, min(requested, store.limits.max_items))


def _count_rest(shown: int, items: Iterator[Any]) -> tuple[int, str]:
    """`shown` plus the items left, and "" — or, when the work limit ends the count first,
    the count so far and " or more (counting stopped at the work limit)"."""
    total = shown
    try:
        for _ in items:
            total += 1
    except WorkLimitReached:
        return total, " or more (counting stopped at the tool's work limit)"
    return total, ""


# --- text (works on every format) ---


def _text_query(opened: OpenFile, store: FileStore) -> TextQuery:
    lines = opened.info.summary.get("lines") if opened.info.format is FileFormat.TEXT else None
    return TextQuery(
        opened.info.name,
        opened.source,
        opened.index,
        opened.info.uncompressed_size,
        lines,
        store.limits.max_line_bytes,
    )


def read_lines(
    store: FileStore,
    workspace: str,
    file_id: str,
    start: int = 1,
    end: int | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """Lines `start`..`end` (1-based, inclusive; `end` defaults to start + 49) of any file.
    Lines are read only as far as the token cap shows them; a very long line is cut."""
    end = start + 49 if end is None else end
    with store.open(workspace, file_id, tool="read_lines") as opened:
        numbered = _text_query(opened, store).lines(start, end)
        budget = max_tokens - 60
        shown: list[str] = []
        last = start - 1
        for number, raw, length in numbered:
            marker = cut_marker(length) if length != len(raw) else ""
            line = f"{number}: {decode(raw)}"
            cost = count_tokens(line + marker) + 1
            if cost > budget:
                if not shown:  # one line longer than the whole cap: show its head, go on
                    marker = cut_marker(length)
                    room = max(budget // 2 - count_tokens(marker) - 1, 0)
                    shown.append(line[: fit_prefix(line, room, count_tokens)] + marker)
                    budget -= count_tokens(shown[-1]) + 1
                    last = number
                    continue
                if number <= end:
                    shown.append(
                        f"[truncated: {len(shown)} lines shown ({start}-{last}); continue "
                        f"from line {last + 1} (asked for {start}-{end})]"
                    )
                break
            budget -= cost
            shown.append(line + marker)
            last = number
        return "\n".join(shown)


def _last_lines(data: bytes, count: int, whole: bool) -> list[bytes]:
    """The last `count` lines of `data` (its trailing newline ends the last line). When `data`
    is not the `whole` file its first line may be partial and is never returned."""
    body = data[:-1] if data.endswith(b"\n") else data
    cut = len(body)
    for _ in range(count):
        newline = body.rfind(b"\n", 0, cut)
        if newline < 0:  # fewer lines than asked for
            lines = body.split(b"\n")
            return lines if whole else lines[1:]
        cut = newline
    return body[cut + 1 :].split(b"\n")


def tail_lines(
    store: FileStore,
    workspace: str,
    file_id: str,
    count: int = 20,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """The last `count` lines (up to 1000) of any file."""
    count = _clamp(store, count)
    max_line = store.limits.max_line_bytes
    with store.open(workspace, file_id, tool="tail_lines") as opened:
        size = opened.info.uncompressed_size
        window = 64 << 10
        while True:
            begin = max(0, size - window)
            data = opened.source.read(begin, size)
            newlines = data.count(b"\n", 0, len(data) - 1)
            if newlines >= count or begin == 0 or window >= 16 << 20:
                break
            window *= 4
        lines = _last_lines(data, count, begin == 0) if count > 0 else []
        picked = [
            decode(line[:max_line])
            + ("" if len(line) <= max_line else f"… [line cut: {len(line)} bytes read]")
            for line in lines
        ]
        total_lines = opened.info.summary.get("lines")
        if total_lines is not None and opened.info.format is FileFormat.TEXT:
            first = total_lines - len(picked) + 1
            picked = [f"{first + i}: {text}" for i, text in enumerate(picked)]
        budget = max_tokens - 40
        kept: list[str] = []
        for line in reversed(picked):  # keep the last lines that fit
            budget -= count_tokens(line) + 1
            if budget < 0:
                break
            kept.append(line)
        kept.reverse()
        text = "\n".join(kept)
        if len(kept) < len(picked):
            text += (
                f"\n[truncated: the last {len(kept)} lines shown, {len(picked) - len(kept)} "
                "earlier ones not; ask for fewer lines or use read_lines]"
            )
        return text


def grep_file(
    store: FileStore,
    workspace: str,
    file_id: str,
    pattern: str,
    ignore_case: bool = False,
    max_matches: int = 50,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> str:
    """Lines matching a regular expression (RE2 syntax: Python's without backreferences or
    lookaround), with line numbers; all matches are counted, at most `max_matches` (up to
    1000) shown."""
    with store.open(workspace, file_id, tool="grep_file") as opened:
        matches = _text_query(opened, store).grep(pattern, ignore_case)
        shown: list[str] = []
        try:
            for n, line, length in _first(matches, max(1, _clamp(store, max_matches))):
                shown.append(f"{n}: {shown_line(line, length)}")
        except WorkLimitReached:
            total, partial = len(shown), " or more (the search stopped at the tool's work limit)"
        else:
            total, partial = _count_rest(len(shown), matches)
        return trim_lines(
            f"{total}{partial} matching lines",
            shown,
            total=total,
            unit="matching lines",
            hint="make the pattern narrower or raise max_matches",
            max_tokens=max_tokens,
            count_tokens=count_tokens,
        )


BOUND_PARAMETERS = ("store", "workspace", "max_tokens", "count_tokens")
"""Parameters the caller supplies; every other parameter of a tool is for the model."""

FILE_TOOLS: tuple[Callable[..., str], ...] = (
    file_summary,
    list_records,
    fetch_sequence,
    search_motif,
    sequence_stats,
    table_rows,
    column_stats,
    jsonl_records,
    read_lines,
    tail_lines,
    grep_file,
)
"""Every agent-facing file tool; the registry binds store, workspace and the token counter."""


def bind_file_tools(
    store: FileStore,
    workspace: str,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_tokens,
) -> list[Callable[..., str]]:
    """The file tools with store, workspace and token cap bound, ready for a tools registry.

    Each keeps its name and docstring, and its signature (`inspect.signature`) shows only the
    parameters the model fills in, with evaluated annotations for pydantic. The workspace comes
    from the run, never from the model.
    """
    bound: list[Callable[..., str]] = []
    for tool in FILE_TOOLS:
        signature = inspect.signature(tool, eval_str=True)
        params = [p for n, p in signature.parameters.items() if n not in BOUND_PARAMETERS]

        def call(*args: Any, _tool: Callable[..., str] = tool, **kwargs: Any) -> str:
            return _tool(
                store, workspace, *args, max_tokens=max_tokens, count_tokens=count_tokens, **kwargs
            )

        functools.update_wrapper(call, tool)
        call.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        call.__annotations__ = {p.name: p.annotation for p in params} | {"return": str}
        bound.append(call)
    return bound
