"""`mezzo admin …` (operate a running server over its admin API) and `mezzo doctor`."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    no_args_is_help=True, help="Operate a running mezzo server (needs an admin API key)."
)
out = Console()
err = Console(stderr=True)

UrlOpt = Annotated[str, typer.Option(envvar="MEZZO_URL", help="The mezzo server.")]
KeyOpt = Annotated[str | None, typer.Option(envvar="MEZZO_API_KEY", help="An admin API key.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DEFAULT_URL = "http://127.0.0.1:8400"


def _call(method: str, url: str, path: str, api_key: str | None) -> Any:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.request(method, url.rstrip("/") + path, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        err.print(f"[bold red]error:[/] cannot reach {url}: {exc}")
        raise typer.Exit(1) from None
    if response.is_error:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        err.print(f"[bold red]error:[/] {response.status_code}: {message}")
        raise typer.Exit(1)
    return response.json()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@app.command()
def dead(url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None, json_out: JsonOpt = False) -> None:
    """List dead-lettered jobs."""
    letters = _call("GET", url, "/v1/admin/dead", api_key)
    if json_out:
        _print_json(letters)
        return
    table = Table("job", "workspace", "attempts", "failed", "last error")
    for d in letters:
        ago = f"{time.time() - d['failed_at']:.0f}s ago"
        table.add_row(
            d["job"], d["workspace"] or "", str(d["attempts"]), ago, d["last_error"] or ""
        )
    out.print(table if letters else "no dead-lettered jobs")


@app.command()
def requeue(
    job: Annotated[str, typer.Argument(help="The dead job's id (run:…).")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Put a dead-lettered job back in the queue."""
    _call("POST", url, f"/v1/admin/dead/{job}/requeue", api_key)
    typer.echo(f"requeued {job}")


@app.command()
def workers(url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None, json_out: JsonOpt = False) -> None:
    """List workers, their in-flight jobs and heartbeats."""
    found = _call("GET", url, "/v1/admin/workers", api_key)
    if json_out:
        _print_json(found)
        return
    table = Table("worker", "state", "jobs", "last beat")
    for w in found:
        state = "draining" if w["draining"] else "drain requested" if w["drain_requested"] else "up"
        if not w["alive"]:
            state = "silent"
        table.add_row(w["name"], state, ", ".join(w["jobs"]) or "-", f"{w['age_s']:.1f}s ago")
    out.print(table if found else "no workers have reported")


@app.command()
def drain(
    name: Annotated[str, typer.Argument(help="The worker's name (see `mezzo admin workers`).")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Drain a worker: it finishes its in-flight jobs and takes no new ones."""
    _call("POST", url, f"/v1/admin/workers/{name}/drain", api_key)
    typer.echo(f"drain requested for {name}; it stops leasing within one heartbeat")


@app.command()
def state(
    run: Annotated[str, typer.Argument(help="The run id.")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Print a run's folded state as JSON."""
    _print_json(_call("GET", url, f"/v1/admin/runs/{run}/state", api_key))


def doctor(
    store: Annotated[str | None, typer.Option("--store", help="Check this store URL.")] = None,
) -> None:
    """Check the store, providers, sandbox prerequisites and the local model; say how to fix."""
    from mezzo.config import Settings
    from mezzo.preflight import doctor_findings

    try:
        values: dict[str, Any] = {"store": store} if store else {}
        settings = Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        err.print(f"[bold red]error:[/] setting {where!r}: {first['msg']}")
        raise typer.Exit(1) from None
    findings = asyncio.run(doctor_findings(settings))
    marks = {"ok": "[green]ok[/]", "warning": "[yellow]warning[/]", "error": "[bold red]error[/]"}
    for finding in findings:
        out.print(f"{marks[finding.level]:<8} {finding.line()}", highlight=False, soft_wrap=True)
    errors = sum(1 for f in findings if f.level == "error")
    if errors:
        out.print(f"{errors} problem(s) found")
        raise typer.Exit(1)
    out.print("mezzo is ready to start")


def refuse_misconfiguration(settings: Any) -> None:
    """Exit with one line per problem, each naming the setting and the fix, before starting."""
    from mezzo.preflight import startup_errors

    problems = asyncio.run(startup_errors(settings))
    for problem in problems:
        err.print(f"[bold red]error:[/] {problem.line()}", highlight=False)
    if problems:
        err.print("mezzo did not start; `mezzo doctor` checks the whole configuration")
        raise typer.Exit(2)


def start_metrics_server(port: int, host: str) -> None:
    """Prometheus `/metrics` of a worker process (which has no API), in a background thread."""
    from prometheus_client import start_http_server

    from mezzo.metrics import REGISTRY

    start_http_server(port, addr=host, registry=REGISTRY)
