"""`mezzo`: serve, worker, run, events, keys, stub-llm, scan, sandbox."""

# ruff: noqa: E402  (the fast path below runs before the rest of the CLI is imported)
from __future__ import annotations

from mezzo.cli_fastpath import run_light_subcommand

run_light_subcommand()  # `mezzo scan ...` from the console script: only the scanner is imported

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from mezzo.cli_admin import app as admin_app
from mezzo.cli_admin import doctor, refuse_misconfiguration, start_metrics_server
from mezzo.config import Settings
from mezzo.logs import configure_logging
from mezzo.sandbox.cli import app as sandbox_app
from mezzo.stub.cli import app as stub_app
from mezzo.threatscan.cli import app as scan_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(
    scan_app, name="scan", help="Find chained attack paths in Terraform, IAM and Kubernetes."
)
app.add_typer(sandbox_app, name="sandbox", help="Run code in an isolated sandbox.")
app.add_typer(
    stub_app, name="stub-llm", help="An OpenAI-compatible stub LLM server for tests and load tests."
)
keys_app = typer.Typer(no_args_is_help=True, help="API keys (stored hashed) mapped to tenants.")
app.add_typer(keys_app, name="keys")
app.add_typer(admin_app, name="admin")
app.command()(doctor)

err = Console(stderr=True)

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="sqlite:///PATH, redis://HOST:PORT/DB or redis+cluster://HOST:PORT[,HOST:PORT...]")
]


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def load_settings(**overrides: object) -> Settings:
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
    from mezzo.cli_serve import ServeRefused
    from mezzo.cli_serve import serve as serve_forever
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
        err.print(f"mezzo worker {mezzo.pool.name if mezzo.pool else ''} on {settings.store_url}")
        from mezzo.cli_serve import say_what_is_off

        say_what_is_off(mezzo)
        await stop.wait()
        err.print("shutting down: finishing in-flight steps")
        try:
            await asyncio.wait_for(
                mezzo.stop(grace_s=settings.lease_seconds), settings.lease_seconds + 10
            )
        except TimeoutError:
            err.print("shutdown took too long; in-flight jobs are released by their leases")

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
    from mezzo.cli_run import run_task

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
    settings = load_settings()
    typer.echo(json.dumps(settings.public_dict(), indent=2, default=str))


def main() -> None:  # pragma: no cover - console script alias
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
