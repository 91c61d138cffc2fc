"""Subcommands of `mezzo` that are imported only when they run.

The sandbox, the threat scanner, the stub LLM server and the admin client each pull in their
own dependencies (uvicorn and FastAPI, tree-sitter, httpx). `mezzo --help` and every
subcommand should pay only for what runs, so these are named by import path, with the line
`mezzo --help` shows for them: the listing uses that line, and a subcommand's module is
imported when the subcommand (or its own `--help`) is invoked.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # the click that typer builds on (typer 0.29 carries its own copy)
    from typer._click import Command, Context, HelpFormatter


@dataclass(frozen=True, slots=True)
class LazySubcommand:
    """`target` is "module:attribute", naming a `typer.Typer` (a group of commands) or one
    command function; `help` is the line `mezzo --help` shows (and the group's help, as
    `Typer.add_typer(help=...)` would give it)."""

    target: str
    help: str

    def load(self, name: str) -> Command:
        module, _, attribute = self.target.partition(":")
        value = getattr(importlib.import_module(module), attribute)
        if isinstance(value, typer.Typer):
            command = typer.main.get_command(value)
            command.help = self.help
        else:
            single = typer.Typer()
            single.command(name)(value)
            command = typer.main.get_command(single)
        command.name = name
        return command

    def placeholder(self, name: str) -> Command:
        """What the listing of `mezzo --help` needs: the name and the help line."""
        return TyperCommand(name, help=self.help)


class LazyGroup(TyperGroup):
    """A Typer group (pass as `typer.Typer(cls=...)`) whose `subcommands` are imported on use."""

    subcommands: ClassVar[dict[str, LazySubcommand]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        eager = super().list_commands(ctx)
        return eager + [name for name in self.subcommands if name not in eager]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        lazy = self.subcommands.get(cmd_name)
        if lazy is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return lazy.placeholder(cmd_name)
        command = lazy.load(cmd_name)
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
