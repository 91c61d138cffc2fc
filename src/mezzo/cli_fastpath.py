"""A fast path for console-script subcommands that need none of the rest of the CLI.

`mezzo scan` in CI should not pay for importing the server, the store, the sandbox and the stub
LLM. When the `mezzo` console script is run with one of the light subcommands, only that
subcommand's Typer app is imported and run, before `mezzo.cli` imports anything else;
`mezzo --help` and every other invocation go through the full CLI as before.
"""

from __future__ import annotations

import importlib
import os
import sys

LIGHT_SUBCOMMANDS = {"scan": "mezzo.threatscan.cli:app"}


def run_light_subcommand() -> None:
    """Run and exit when argv names a light subcommand of the `mezzo` script; else return."""
    argv = sys.argv
    if len(argv) < 2 or os.path.basename(argv[0]) not in ("mezzo", "mezzo.exe"):
        return
    target = LIGHT_SUBCOMMANDS.get(argv[1])
    if target is None:
        return
    module, attribute = target.split(":")
    app = getattr(importlib.import_module(module), attribute)
    sys.exit(app(args=argv[2:], prog_name=f"mezzo {argv[1]}"))
