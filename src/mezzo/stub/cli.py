"""`mezzo stub-llm`: run the OpenAI-compatible stub LLM server."""

from __future__ import annotations

import typer
import uvicorn
from pydantic import ValidationError

from mezzo.stub.config import StubConfig
from mezzo.stub.server import bind_loopback, server_config
from mezzo.stub.stub_llm import create_stub_app

app = typer.Typer(add_completion=False, help=__doc__)


@app.callback(invoke_without_command=True)
def stub_llm(
    port: int = typer.Option(8099, "--port", "-p", help="Port to listen on (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    latency_ms: float = typer.Option(0.0, help="Time to first token, in milliseconds."),
    tokens_per_second: float | None = typer.Option(None, help="Output pace (default: unpaced)."),
    rpm: int | None = typer.Option(None, help="Requests per minute, per API key."),
    tpm: int | None = typer.Option(None, help="Tokens per minute, per API key."),
    fail_429: float = typer.Option(0.0, "--fail-429", help="Share of requests answered 429."),
    fail_500: float = typer.Option(0.0, "--fail-500", help="Share of requests answered 500."),
    fail_503: float = typer.Option(0.0, "--fail-503", help="Share of requests answered 503."),
    fail_midstream: float = typer.Option(
        0.0, "--fail-midstream", help="Share of streams broken off halfway with an error."
    ),
    fault_retry_after: float = typer.Option(1.0, help="retry-after (s) of an injected 429."),
    seed: int = typer.Option(0, help="Seed of the fault RNG."),
    reply_tokens: int | None = typer.Option(None, help="Pad or cut text replies to N tokens."),
    model: list[str] = typer.Option(["stub-model"], "--model", "-m", help="Model ids to list."),
    api_key: str | None = typer.Option(None, help="Require this bearer key."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Serve /v1/responses, /v1/chat/completions and /v1/models with deterministic answers."""
    try:
        config = StubConfig(
            models=model,
            latency_ms=latency_ms,
            tokens_per_second=tokens_per_second,
            rpm=rpm,
            tpm=tpm,
            fail_429=fail_429,
            fail_500=fail_500,
            fail_503=fail_503,
            fail_midstream=fail_midstream,
            fault_retry_after_s=fault_retry_after,
            seed=seed,
            reply_tokens=reply_tokens,
            api_key=api_key,
        )
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "options"
        typer.echo(f"error: {where}: {first['msg']}", err=True)
        raise typer.Exit(2) from None
    try:
        sock = bind_loopback(port, host)
    except OSError as err:
        typer.echo(f"error: cannot listen on {host}:{port}: {err.strerror}", err=True)
        raise typer.Exit(1) from None
    bound_port = sock.getsockname()[1]
    typer.echo(f"stub LLM listening on http://{host}:{bound_port}/v1", err=True)
    server = uvicorn.Server(server_config(create_stub_app(config), log_level=log_level))
    server.run(sockets=[sock])
