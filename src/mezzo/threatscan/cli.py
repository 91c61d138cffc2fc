"""`mezzo scan`: find chained attack paths in Terraform, IAM JSON and Kubernetes manifests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from mezzo.threatscan.analyze import DEPTHS, Report, scan, summary
from mezzo.threatscan.model import Severity

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

FORMATS = ("sarif", "text", "json")
EXIT_FINDINGS = 1
EXIT_USAGE = 2


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def uri_prefix(target: Path) -> str:
    """SARIF URIs are relative to the working directory (the repository root in CI)."""
    root = target.resolve()
    root = root if root.is_dir() else root.parent
    try:
        relative = root.relative_to(Path.cwd().resolve())
    except ValueError:
        return ""
    return "" if str(relative) == "." else relative.as_posix()


@app.callback()
def scan_commands() -> None:
    """Find chained attack paths in Terraform, IAM JSON and Kubernetes manifests."""


@app.command()
def analyze(
    target: Path = typer.Option(..., "--target", "-t", help="Directory or file to scan."),
    depth: str = typer.Option(
        "deep", help="quick: single-resource findings; deep: + attack paths."
    ),
    output_format: str = typer.Option("text", "--format", "-f", help="sarif, text or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not to stdout."),
    explain_dir: Path | None = typer.Option(
        None, "--explain", help="Write one inert walk-through script per attack path here."
    ),
    fail_on: str | None = typer.Option(
        None,
        "--fail-on",
        help="Exit 1 when a finding is at least this severe (low, medium, high, critical).",
    ),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Keep parsed files here, by content hash, for the next run (off unless given).",
    ),
) -> None:
    """Scan TARGET and report findings and attack paths."""
    if depth not in DEPTHS:
        raise _fail(f"--depth must be one of {', '.join(DEPTHS)}, not {depth!r}")
    if output_format not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    try:
        threshold = Severity.parse(fail_on) if fail_on else None
    except ValueError as exc:
        raise _fail(f"--fail-on: {exc}") from None
    if not target.exists():
        raise _fail(f"target {target} does not exist")
    if cache is not None:
        try:
            cache.mkdir(mode=0o700, parents=True, exist_ok=True)
            shared = cache.stat().st_mode & 0o022
        except OSError as exc:
            raise _fail(f"--cache {cache}: {exc.strerror or exc}") from None
        if shared:  # the cache holds pickles: whoever can write there could run code here
            raise _fail(f"--cache {cache} is writable by other users; use a private directory")
    try:
        report = scan(target, depth, cache)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    text = _rendered(report, output_format, target, color=output is None and sys.stdout.isatty())
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot write {output}: {exc.strerror or exc}") from None
        typer.echo(f"{summary(report)}; written to {output}", err=True)
    if explain_dir is not None:
        from mezzo.threatscan import explain

        try:
            written = explain.write(report, explain_dir)
        except OSError as exc:
            raise _fail(f"cannot write to {explain_dir}: {exc.strerror or exc}") from None
        typer.echo(f"{len(written)} explain scripts written to {explain_dir}", err=True)
    if threshold is not None and any(f.severity >= threshold for f in report.findings):
        raise typer.Exit(EXIT_FINDINGS)


def _rendered(report: Report, output_format: str, target: Path, color: bool) -> str:
    # each format imports only its own renderer (rich only for text)
    if output_format == "sarif":
        from mezzo.threatscan import sarif

        return sarif.render(report, uri_prefix(target))
    from mezzo.threatscan import render

    if output_format == "json":
        return render.as_json(report)
    width = os.get_terminal_size().columns if color else 120
    return render.text(report, color=color, width=width)
