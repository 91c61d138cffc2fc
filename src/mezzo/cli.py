"""`mezzo` command line: serve, worker, run, events, stub-llm, keys, scan, sandbox."""

from __future__ import annotations

import typer

from mezzo.sandbox.cli import app as sandbox_app
from mezzo.threatscan.cli import app as scan_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(scan_app, name="scan")
app.add_typer(sandbox_app, name="sandbox")


@app.command()
def version() -> None:
    """Print mezzo's version."""
    from mezzo import __version__

    typer.echo(__version__)
