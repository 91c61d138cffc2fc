"""`mezzo sandbox exec -- CMD` and `mezzo sandbox spawn-worker`."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from mezzo.sandbox.limits import SandboxUnavailable
from mezzo.sandbox.runner import Sandbox, SandboxSetupError
from mezzo.sandbox.spec import Mount, SandboxSpec, SpecError, first_error
from mezzo.sandbox.units import parse_duration, parse_size

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

TIMEOUT_EXIT = 124  # as coreutils `timeout`

ImageOpt = Annotated[
    str, typer.Option("--sandbox", help="'host' (the host's /usr, read-only) or a rootfs folder.")
]
MountOpt = Annotated[
    list[str] | None,
    typer.Option("--mount", "-m", help="HOST:PATH[:ro|:rw], read-only unless :rw. Repeatable."),
]
WorkdirOpt = Annotated[str | None, typer.Option("--workdir", "-w", help="Working directory.")]
EnvOpt = Annotated[
    list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE for the sandbox. Repeatable.")
]
TimeOpt = Annotated[
    str, typer.Option("--max-execution-time", "-t", help="Wall-clock limit: 30s, 500ms, 2m.")
]
MemoryOpt = Annotated[str, typer.Option("--memory", help="Address-space limit per process: 512M.")]
PidsOpt = Annotated[int, typer.Option("--pids", help="Most processes alive at once.")]
OutputOpt = Annotated[
    str, typer.Option("--max-output", help="Bytes kept per stream (head and tail): 1M.")
]
NetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-net", help="Domain (or *.suffix) reachable through the egress proxy. Repeatable."
    ),
]
PortOpt = Annotated[
    list[int] | None, typer.Option("--allow-port", help="Ports the proxy allows (default 80, 443).")
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def build_spec(
    image: str,
    mounts: list[str] | None,
    workdir: str | None,
    env: list[str] | None,
    max_execution_time: str,
    memory: str,
    pids: int,
    max_output: str,
    allow_net: list[str] | None,
    allow_port: list[int] | None,
) -> SandboxSpec:
    """Turn command-line flags into a spec; every mistake becomes one `error:` line."""
    try:
        variables = {}
        for item in env or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise SpecError(f"malformed --env {item!r}: use NAME=VALUE")
            variables[name] = value
        domains = [d.strip() for entry in allow_net or [] for d in entry.split(",") if d.strip()]
        fields: dict[str, object] = {
            "image": image,
            "mounts": tuple(Mount.parse(text) for text in mounts or []),
            "workdir": workdir,
            "env": variables,
            "time_limit_s": parse_duration(max_execution_time),
            "memory_limit_bytes": parse_size(memory),
            "pid_limit": pids,
            "output_limit_bytes": parse_size(max_output),
            "allow_net": tuple(domains),
        }
        if allow_port:
            fields["allowed_ports"] = tuple(allow_port)
        return SandboxSpec.build(**fields)
    except ValueError as exc:  # SpecError and the unit parsers' errors
        raise _fail(str(exc)) from None


def _log_to_stderr() -> None:
    """Egress decisions and sandbox warnings go to stderr; the command's stdout stays clean."""
    from mezzo.logs import configure_logging

    configure_logging()


@app.command(
    "exec",
    context_settings={"allow_interspersed_args": False},
    no_args_is_help=True,
)
def exec_command(
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    image: ImageOpt = "host",
    mount: MountOpt = None,
    workdir: WorkdirOpt = None,
    env: EnvOpt = None,
    max_execution_time: TimeOpt = "30s",
    memory: MemoryOpt = "512M",
    pids: PidsOpt = 256,
    max_output: OutputOpt = "1M",
    allow_net: NetOpt = None,
    allow_port: PortOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the ExecResult as JSON instead.")
    ] = False,
) -> None:
    """Run CMD in a fresh sandbox; its stdout/stderr pass through and its exit code is ours.

    A run that hits the time limit exits 124.
    """
    spec = build_spec(
        image, mount, workdir, env, max_execution_time, memory, pids, max_output, allow_net,
        allow_port,
    )  # fmt: skip
    _log_to_stderr()
    try:
        with Sandbox() as sandbox:
            result = asyncio.run(sandbox.run(command, spec))
    except (SandboxUnavailable, SandboxSetupError) as exc:
        raise _fail(str(exc)) from None
    if json_output:
        typer.echo(result.model_dump_json(indent=2))
        raise typer.Exit(0)
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    if result.timed_out:
        typer.echo(f"mezzo sandbox: killed after {spec.time_limit_s:g}s time limit", err=True)
        raise typer.Exit(TIMEOUT_EXIT)
    raise typer.Exit(result.exit_code if result.exit_code is not None else 1)


@app.command("spawn-worker")
def spawn_worker(
    image: ImageOpt = "host",
    mount: MountOpt = None,
    workdir: WorkdirOpt = None,
    env: EnvOpt = None,
    max_execution_time: TimeOpt = "30s",
    memory: MemoryOpt = "512M",
    pids: PidsOpt = 256,
    max_output: OutputOpt = "256k",
    allow_net: NetOpt = None,
    allow_port: PortOpt = None,
    store: Annotated[
        str | None, typer.Option("--store", help="sqlite:///PATH, redis://HOST:PORT/DB or redis+cluster://HOST:PORT[,HOST:PORT...]")
    ] = None,
    queue: Annotated[str, typer.Option("--queue", help="Queue to take jobs from.")] = "sandbox",
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Sandboxes at once.")
    ] = 1,
    drain: Annotated[
        bool, typer.Option("--drain", help="Exit once the queue is empty instead of waiting.")
    ] = False,
) -> None:
    """A worker that runs each code-execution job of the queue in a fresh sandbox.

    Example: mezzo sandbox spawn-worker --sandbox=host --mount ./src:/app
    --max-execution-time=30s --allow-net=github.com
    """
    from mezzo.config import Settings
    from mezzo.errors import ConfigurationError
    from mezzo.sandbox.worker import SandboxWorker
    from mezzo.store.factory import store_for_url

    spec = build_spec(
        image, mount, workdir, env, max_execution_time, memory, pids, max_output, allow_net,
        allow_port,
    )  # fmt: skip
    _log_to_stderr()
    try:
        url = store or Settings().store_url
        opened = store_for_url(url)
    except ValidationError as exc:
        raise _fail(f"settings: {first_error(exc)}") from None
    except (ConfigurationError, ValueError) as exc:
        raise _fail(str(exc)) from None

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await opened.open()
        try:
            with Sandbox() as sandbox:
                worker = SandboxWorker(
                    opened, spec, sandbox=sandbox, queue=queue, concurrency=concurrency
                )
                await worker.serve(stop, drain=drain)
                return worker.processed
        finally:
            await opened.close()

    try:
        processed = asyncio.run(main())
    except SandboxUnavailable as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"sandbox worker stopped after {processed} job(s)", err=True)


image_app = typer.Typer(no_args_is_help=True, help="Root filesystems for --sandbox=debian:SUITE.")
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    name: Annotated[str, typer.Argument(help="debian:SUITE, e.g. debian:bookworm")],
    mirror: Annotated[str, typer.Option(help="Debian mirror.")] = "http://deb.debian.org/debian",
) -> None:
    """Build an image with debootstrap (minbase + python3, socat, time, CA certificates)."""
    from mezzo.sandbox import images

    try:
        images.image_path(name)
        path = images.build(name, mirror)
    except images.ImageError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{name}: {path}")


@image_app.command("list")
def image_list() -> None:
    """The images built on this machine."""
    from mezzo.sandbox import images

    for name in images.built_images():
        typer.echo(f"{name}\t{images.image_path(name)}")
