"""`mezzo`: serve, worker, run, events, keys, stub-llm, scan, sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import typer

from mezzo.cli_lazy import LazyGroup, LazySubcommand

if TYPE_CHECKING:
    from mezzo.config import Settings


# Each subcommand imports what it needs when it runs, so `mezzo --help` and `mezzo scan` load
# neither the server nor the engine: the commands below import inside their bodies, the groups
# here are imported by name when invoked (mezzo.cli_lazy).
class MezzoCommands(LazyGroup):
    subcommands: ClassVar[dict[str, LazySubcommand]] = {
        "scan": LazySubcommand(
            "mezzo.threatscan.cli:app",
            "Find chained attack paths in Terraform, IAM and Kubernetes.",
        ),
        "sandbox": LazySubcommand("mezzo.sandbox.cli:app", "Run code in an isolated sandbox."),
        "stub-llm": LazySubcommand(
            "mezzo.stub.cli:app", "An OpenAI-compatible stub LLM server for tests and load tests."
        ),
        "admin": LazySubcommand(
            "mezzo.cli_admin:app", "Operate a running mezzo server (needs an admin API key)."
        ),
        "doctor": LazySubcommand(
            "mezzo.cli_admin:doctor",
            "Check the store, providers, sandbox prerequisites and the local model; say how to fix.",
        ),
    }


app = typer.Typer(cls=MezzoCommands, no_args_is_help=True, add_completion=False, help=__doc__)
keys_app = typer.Typer(no_args_is_help=True, help="API keys (stored hashed) mapped to tenants.")
app.add_typer(keys_app, name="keys")

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="sqlite:///PATH, redis://HOST:PORT/DB or redis+cluster://HOST:PORT[,HOST:PORT...]")
]


def say(message: str) -> None:
    """A line on stderr, in the CLI's markup."""
    from rich.console import Console

    Console(stderr=True).print(message)


def fail(message: str, code: int = 2) -> typer.Exit:
    say(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from mezzo.config import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise fail(
            f"invalid setting {where!r}: {first['msg']} (env MEZZO_{where.upper()} or mezzo.toml)"
        ) from None


def start_tracing() -> None:
    """OpenTelemetry spans when MEZZO_TRACING is set (console | otlp)."""
    from mezzo.tracing import TracingError, configure_tracing

    try:
        configure_tracing()
    except TracingError as exc:
        raise fail(str(exc)) from None


@app.command()
def version() -> None:
    """Print mezzo's version."""
    from mezzo import __version__

    typer.echo(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8400).")] = None,
    store: StoreOpt = None,
    workers: Annotated[bool, typer.Option(help="Run workers in this process too.")] = True,
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once by this process.")
    ] = None,
) -> None:
    """API and workers in one process, on the embedded SQLite store unless --store says otherwise."""
    import asyncio
    import signal

    from mezzo.cli_admin import refuse_misconfiguration
    from mezzo.cli_serve import ServeRefused
    from mezzo.cli_serve import serve as serve_forever
    from mezzo.logs import configure_logging
    from mezzo.service import Mezzo

    settings = load_settings(host=host, port=port, store=store, concurrency=concurrency)
    refuse_misconfiguration(settings)
    mezzo = Mezzo(settings)

    configure_logging()
    start_tracing()
    # uvicorn re-raises SIGTERM after its graceful shutdown; a handler of our own makes that a
    # no-op, so a clean shutdown exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        asyncio.run(serve_forever(mezzo, settings, workers=workers))
    except ServeRefused as exc:
        raise fail(str(exc)) from None


@app.command()
def worker(
    store: StoreOpt = None,
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once.")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port (MEZZO_HOST).")
    ] = None,
) -> None:
    """A worker process: leases run jobs from the store and advances them."""
    import asyncio
    import signal

    from mezzo.cli_admin import refuse_misconfiguration, start_metrics_server
    from mezzo.logs import configure_logging
    from mezzo.service import Mezzo

    settings = load_settings(store=store, concurrency=concurrency)
    refuse_misconfiguration(settings)
    configure_logging()
    start_tracing()
    if metrics_port is not None:
        start_metrics_server(metrics_port, settings.host)

    async def main() -> None:
        mezzo = Mezzo(settings)
        await mezzo.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        say(f"mezzo worker {mezzo.pool.name if mezzo.pool else ''} on {settings.store_url}")
        from mezzo.cli_serve import say_what_is_off

        say_what_is_off(mezzo)
        await stop.wait()
        say("shutting down: finishing in-flight steps")
        try:
            await asyncio.wait_for(
                mezzo.stop(grace_s=settings.lease_seconds), settings.lease_seconds + 10
            )
        except TimeoutError:
            say("shutdown took too long; in-flight jobs are released by their leases")

    asyncio.run(main())


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    workspace: Annotated[
        str | None, typer.Option(help="Workspace id (created if missing).")
    ] = None,
    budget: Annotated[int, typer.Option(help="Token budget of a new workspace.")] = 200_000,
    url: Annotated[
        str | None, typer.Option(envvar="MEZZO_URL", help="A mezzo server; embedded if unset.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="MEZZO_API_KEY")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print events as JSON lines.")] = False,
    ask: Annotated[
        bool, typer.Option(help="Let the agent ask you questions (request_human_input).")
    ] = False,
    attach: Annotated[
        list[Path] | None,
        typer.Option(help="Attach a file (repeatable).", exists=True, dir_okay=False),
    ] = None,
) -> None:
    """Submit a task and stream its events live until it ends. Exits 1 if the run fails."""
    import asyncio

    from mezzo.cli_run import run_task
    from mezzo.logs import configure_logging

    configure_logging("warning")
    code = asyncio.run(run_task(task, workspace, budget, url, api_key, json_out, ask, attach or []))
    raise typer.Exit(code)


@app.command()
def events(
    workspace: Annotated[str, typer.Argument()],
    after: Annotated[int, typer.Option(help="Start after this seq.")] = 0,
    types: Annotated[str | None, typer.Option(help="Comma-separated event types.")] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Keep streaming.")] = True,
    url: Annotated[str, typer.Option(envvar="MEZZO_URL")] = "http://127.0.0.1:8400",
    api_key: Annotated[str | None, typer.Option(envvar="MEZZO_API_KEY")] = None,
) -> None:
    """Print a workspace's events as JSON lines (follows live by default)."""
    import asyncio
    import sys

    from mezzo.client.http import HttpTransport
    from mezzo.errors import MezzoError

    async def main() -> None:
        transport = HttpTransport(url, api_key)
        try:
            wanted = types.split(",") if types else None
            if follow:
                async for event in transport.subscribe(workspace, after, wanted):
                    sys.stdout.write(event.model_dump_json() + "\n")
                    sys.stdout.flush()
            else:
                for event in await transport.events(workspace, after, wanted):
                    sys.stdout.write(event.model_dump_json() + "\n")
        finally:
            await transport.aclose()

    try:
        asyncio.run(main())
    except MezzoError as exc:
        raise fail(exc.message, 1) from None
    except KeyboardInterrupt:
        pass


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant this key acts for.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    admin: Annotated[bool, typer.Option(help="May call admin endpoints.")] = False,
    store: StoreOpt = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    import asyncio

    from mezzo.server.auth import create_key
    from mezzo.store.factory import open_store

    settings = load_settings(store=store)

    async def main() -> str:
        opened = await open_store(settings.store_url)
        try:
            return await create_key(opened, tenant, name, admin)
        finally:
            await opened.close()

    typer.echo(asyncio.run(main()))


@app.command("config")
def show_config() -> None:
    """Print the effective settings as JSON."""
    import json

    settings = load_settings()
    typer.echo(json.dumps(settings.public_dict(), indent=2, default=str))


def main() -> None:  # pragma: no cover - console script alias
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
