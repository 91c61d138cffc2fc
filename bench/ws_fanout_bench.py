"""Fan-out of one workspace's events to N WebSocket subscribers, end to end over real sockets.

A `mezzo serve --no-workers` subprocess (SQLite, or a private `redis-server` with `--store
redis`); N
WebSockets on `/v1/workspaces/w/events`, opened from `--clients` client processes; the bench
submits runs at a steady `--rate` (each appends one `run_queued` event, stamped `ts` by the
store at its append). Latency per delivery = receive time − `ts`. Prints p50/p99/max and
deliveries per second for each N, for two servers in the same run:

- `fanout`: mezzo as it ships, one dispatcher per workspace (`mezzo.server.fanout`);
- `per-subscriber`: the same server with the path it replaced, every socket running its own
  `store.tail` merged with live deltas and encoding each event itself (the service's
  `_subscribe`, as `Mezzo.subscribe` uses it), behind the same WebSocket route.

The clients share the machine with the server (and its cores); a client that is slow to read
adds to the latency it measures. The default `lean` client parses frames by hand (no extension
offered), on uvloop, so that the clients cost little beside the server; `--client websockets`
uses the websockets library, as the SDK does (it negotiates permessage-deflate unless
`--no-compression`). Both print the CPU per event of the server and of the clients.

    .venv/bin/python bench/ws_fanout_bench.py [--sockets 1000 10000] [--events 20] [--rate 2]
        [--store sqlite|redis] [--paths fanout per-subscriber]
    .venv/bin/python bench/ws_fanout_bench.py --bare-writes 5000   # the floor: bare socket writes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the server (a child process)


class PerSubscriberFanout:
    """The path before `mezzo.server.fanout`, for the baseline: each subscription runs the
    service's own subscribe (`store.tail` merged with `store.live`) and encodes each event."""

    def __init__(self, store: Any) -> None:
        self._store = store

    @contextlib.asynccontextmanager
    async def subscribe(
        self, record: Any, after: int, types: Sequence[str] | None, sink: Any = None
    ) -> AsyncIterator[Any]:
        yield OwnTail(self._store(), record, after, types)  # every event through ASGI's send


class OwnTail:
    on_end = None
    behind = False
    failed = False
    ended = False

    def __init__(self, store: Any, record: Any, after: int, types: Sequence[str] | None) -> None:
        self.store, self.record, self.sent, self.types = store, record, after, types

    async def __aiter__(self) -> AsyncIterator[Any]:
        from mezzo.server.encoding import event_json
        from mezzo.server.fanout import Encoded
        from mezzo.service import Mezzo, shown_event

        service = SimpleNamespace(store=self.store)
        events = Mezzo._subscribe(service, self.record.id, self.sent, self.types)  # type: ignore[arg-type]
        async with contextlib.aclosing(events):
            async for event in events:
                shown = shown_event(event, self.record)
                yield Encoded(event.seq, event.type, event_json(shown))


def serve(path: str, argv: list[str]) -> None:
    raise_file_limit()
    if path == "per-subscriber":
        import mezzo.server.app

        mezzo.server.app.Fanout = PerSubscriberFanout  # type: ignore[misc,assignment]
    from mezzo.cli import app

    sys.argv = ["mezzo", *argv]
    app()


def start_server(path: str, port: int, store: str | None, data: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEZZO_", "OPENAI_"))}
    env["MEZZO_DATA_DIR"] = str(data)
    argv = ["serve", "--no-workers", "--port", str(port)] + (["--store", store] if store else [])
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-path", path, "--", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data / "serve.log").open("wb"),
    )
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False).status_code == 200:
                return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {(data / 'serve.log').read_text()}")
        time.sleep(0.2)


# ---- the clients (child processes)


def client(
    kind: str, url: str, sockets: int, events: int, compress: bool, pipe: Connection
) -> None:
    raise_file_limit()
    if kind == "lean":
        import uvloop  # installed with uvicorn[standard]; the lean clients' callbacks cost less

        uvloop.run(listen_lean(url, sockets, events, pipe))
    else:
        asyncio.run(listen_all(url, sockets, events, compress, pipe))


def _same(listener: LeanListener) -> LeanListener:
    return listener


class LeanListener(asyncio.Protocol):
    """A WebSocket client that costs its process as little as it can: the handshake, then frames
    parsed by hand (no extension offered, so none is negotiated), pings answered."""

    def __init__(self, request: bytes, events: int, latencies: array[float]) -> None:
        self.request, self.events, self.latencies = request, events, latencies
        self.buffer = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.got = 0
        self.last = 0.0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost"))
        if not self.done.done():
            self.done.set_result("closed abnormally")

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buffer[:end]).decode()))
                return
            del buffer[: end + 4]
            self.upgraded = True
            self.opened.set_result(None)
        while len(buffer) >= 2:
            size, start = buffer[1] & 0x7F, 2
            if size == 126:
                size, start = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                size, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + size:
                return
            opcode = buffer[0] & 0x0F
            payload = bytes(buffer[start : start + size])
            del buffer[: start + size]
            if opcode == 1:
                at = payload.index(b'"ts":') + 5
                self.latencies.append(now - float(payload[at : payload.index(b",", at)]))
                self.last = now
                self.got += 1
                if self.got == self.events and not self.done.done():
                    self.done.set_result("")
            elif opcode == 9:  # ping: a pong, masked with a zero key
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + bytes(4) + payload)
            elif opcode == 8 and not self.done.done():
                self.done.set_result(f"closed {int.from_bytes(payload[:2], 'big')}")


async def listen_lean(url: str, sockets: int, events: int, pipe: Connection) -> None:
    import base64

    loop = asyncio.get_running_loop()
    host_port, _, path = url.removeprefix("ws://").partition("/")
    host, port = host_port.split(":")
    latencies: array[float] = array("d")
    closes: Counter[str] = Counter()
    listeners: list[LeanListener] = []
    limit = asyncio.Semaphore(100)

    async def open_one() -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        async with limit:
            for attempt in range(20):
                listener = LeanListener(request, events, latencies)
                try:
                    await loop.create_connection(
                        functools.partial(_same, listener), host, int(port)
                    )
                    await asyncio.wait_for(listener.opened, 60)
                    listeners.append(listener)
                    return
                except (OSError, TimeoutError):
                    await asyncio.sleep(0.1 * (attempt + 1))
            closes["could not connect"] += 1

    await asyncio.gather(*(open_one() for _ in range(sockets)))
    pipe.send("ready")
    pipe.recv()
    deadline = pipe.recv()
    cpu = time.process_time()
    done, pending = await asyncio.wait(
        [listener.done for listener in listeners], timeout=max(1.0, deadline - time.time())
    )
    for future in done:
        if future.result():
            closes[future.result()] += 1
    if pending:
        closes["still waiting at the deadline"] += len(pending)
    last = max((listener.last for listener in listeners), default=0.0)
    pipe.send((latencies.tobytes(), last, time.process_time() - cpu, dict(closes)))
    for listener in listeners:
        listener.transport.close()


async def listen_all(url: str, sockets: int, events: int, compress: bool, pipe: Connection) -> None:
    import websockets

    latencies = array("d")
    last = 0.0
    closes: Counter[str] = Counter()
    opened: list[Any] = []
    limit = asyncio.Semaphore(100)

    async def open_one() -> None:
        async with limit:
            for attempt in range(20):
                try:
                    opened.append(
                        await websockets.connect(
                            url,
                            compression="deflate" if compress else None,
                            open_timeout=60,
                            ping_interval=None,
                        )
                    )
                    return
                except OSError:
                    await asyncio.sleep(0.1 * (attempt + 1))
            closes["could not connect"] += 1

    async def listen(ws: Any) -> None:
        nonlocal last
        got = 0
        try:
            while got < events:
                message = await ws.recv()
                now = time.time()
                start = message.index('"ts":') + 5
                end = message.index(",", start)
                latencies.append(now - float(message[start:end]))
                last = now
                got += 1
        except websockets.ConnectionClosed as exc:
            closes[f"closed {exc.rcvd.code if exc.rcvd else 'abnormally'}"] += 1

    await asyncio.gather(*(open_one() for _ in range(sockets)))
    pipe.send("ready")
    pipe.recv()  # the parent's deadline: how long to wait for the deliveries
    deadline = pipe.recv()
    cpu = time.process_time()
    tasks = [asyncio.create_task(listen(ws)) for ws in opened]
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - time.time()))
    for task in pending:
        task.cancel()
    if pending:
        closes["still waiting at the deadline"] += len(pending)
    pipe.send((latencies.tobytes(), last, time.process_time() - cpu, dict(closes)))
    for ws in opened:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 1)


# ---- the floor: bare transport writes


async def bare_writes(count: int) -> None:
    """`count` loopback TCP connections in this process; one 300-byte frame to each, five
    times, from asyncio's bare transports, then from `Dispatcher.publish` through a frame sink
    per transport (in one go, and in its slices, which let this process's clients read
    between them): what one socket write costs, and what the dispatcher adds to it."""
    from mezzo.server import fanout
    from mezzo.server.ws_frames import FrameSink, text_frame
    from mezzo.workspaces import WorkspaceRecord

    server_side: list[asyncio.Transport] = []

    class Accepted(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            server_side.append(transport)  # type: ignore[arg-type]

    class BareProtocol:  # what a FrameSink reads of uvicorn's protocol
        def __init__(self, transport: asyncio.Transport) -> None:
            self.transport, self.close_sent, self.disconnected = transport, False, False
            self.writable = asyncio.Event()
            self.writable.set()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Accepted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = [
        await loop.create_connection(asyncio.Protocol, "127.0.0.1", port) for _ in range(count)
    ]
    await asyncio.sleep(0.5)
    record = WorkspaceRecord(id="w", tenant="t", config=None, throttle_rate=1.0)  # type: ignore[arg-type]
    dispatcher = fanout.Dispatcher(None, record)  # type: ignore[arg-type]
    for transport in server_side:
        sink = FrameSink(BareProtocol(transport))  # type: ignore[arg-type]
        dispatcher.live[fanout.Subscription(dispatcher, 0, None, sink)] = None
    seq = 0
    for how in ("bare transport.write", "Dispatcher.publish, one go", "Dispatcher.publish"):
        per_write = []
        for _ in range(5):
            seq += 1
            item = fanout.Encoded(seq, "run_queued", "x" * 300, text_frame(b"x" * 300))
            slice_was = fanout.PUBLISH_SLICE
            if how.endswith("one go"):
                fanout.PUBLISH_SLICE = count
            started = time.perf_counter()
            if how.startswith("bare"):
                for transport in server_side:
                    transport.write(item.frame)
            else:
                await dispatcher.publish(item)
            per_write.append((time.perf_counter() - started) / count * 1e6)
            fanout.PUBLISH_SLICE = slice_was
            await asyncio.sleep(0.3)
        per_write.sort()
        print(
            f"{how:<28} {count} sockets: {per_write[0]:.1f} us per socket at best, "
            f"{per_write[2]:.1f} median of 5 rounds"
        )
    for transport, _ in clients:
        transport.close()
    server.close()


# ---- the bench


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(
    path: str, sockets: int, args: argparse.Namespace, data: Path
) -> dict[str, float | str]:
    port = free_port()
    store, redis_server = None, None
    if args.store == "redis":  # a private redis-server, no persistence, like the shared one
        redis_port = free_port()
        options = ["--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
        redis_server = subprocess.Popen(
            ["redis-server", *options, "--dir", str(data)], stdout=subprocess.DEVNULL
        )
        store = f"redis://127.0.0.1:{redis_port}/0"
        time.sleep(0.5)
    server = start_server(path, port, store, data)
    try:
        base = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=base, trust_env=False, timeout=30)
        http.post("/v1/workspaces", json={"id": "w"}).raise_for_status()
        url = f"ws://127.0.0.1:{port}/v1/workspaces/w/events?after=0"
        context = multiprocessing.get_context("fork")
        pipes, procs = [], []
        share = [
            sockets // args.clients + (i < sockets % args.clients) for i in range(args.clients)
        ]
        for count in share:
            ours, theirs = context.Pipe()
            proc = context.Process(
                target=client,
                args=(args.client, url, count, args.events, not args.no_compression, theirs),
            )
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        opened_at = time.monotonic()
        for pipe in pipes:
            pipe.recv()
        opening_s = time.monotonic() - opened_at
        time.sleep(2.0)  # every subscription joins its workspace's dispatcher
        last_possible = time.time() + args.events / args.rate + args.wait
        for pipe in pipes:
            pipe.send("go")
            pipe.send(last_possible)
        cpu_before = cpu_seconds(server.pid)
        started = time.time()
        for i in range(args.events):
            due = started + i / args.rate
            time.sleep(max(0.0, due - time.time()))
            http.post("/v1/workspaces/w/runs", json={"input": f"event {i}"}).raise_for_status()
        latencies: list[float] = []
        closes: Counter[str] = Counter()
        last = started
        cpu_after = cpu_seconds(server.pid)
        clients_cpu = 0.0
        for pipe in pipes:
            raw, their_last, their_cpu, closed = pipe.recv()
            latencies.extend(array("d", raw))
            last = max(last, their_last)
            clients_cpu += their_cpu
            closes.update(closed)
        for proc in procs:
            proc.join(10)
        latencies.sort()
        expected = sockets * args.events
        ms = [x * 1000 for x in latencies] or [float("nan")]
        return {
            "p50": percentile(ms, 0.5),
            "p99": percentile(ms, 0.99),
            "max": ms[-1],
            "delivered": f"{len(latencies)}/{expected}",
            # What was delivered ÷ the time from the first append to the last delivery.
            "per_s": len(latencies) / max(last - started, 1e-9),
            "opening_s": opening_s,
            # The server's CPU per event while the events came (its submit included).
            "cpu_ms": (cpu_after - cpu_before) * 1000 / args.events,
            # The client processes' CPU per event (they share the server's cores).
            "clients_cpu_ms": clients_cpu * 1000 / args.events,
            "closes": ", ".join(f"{k}: {v}" for k, v in sorted(closes.items())) or "-",
        }
    finally:
        for child in (server, redis_server):
            if child is not None:
                child.send_signal(signal.SIGKILL)
                child.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0, help="events per second")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--store", choices=["sqlite", "redis"], default="sqlite", help="redis: a private server"
    )
    parser.add_argument("--paths", nargs="+", default=["fanout", "per-subscriber"])
    parser.add_argument("--wait", type=float, default=30.0, help="s to wait after the last")
    parser.add_argument(
        "--client",
        choices=["lean", "websockets"],
        default="lean",
        help="lean: frames parsed by hand; websockets: the library (as the SDK)",
    )
    parser.add_argument("--no-compression", action="store_true", help="websockets client only")
    parser.add_argument("--bare-writes", type=int, help="only the floor: N bare socket writes")
    args = parser.parse_args()
    raise_file_limit()
    if args.bare_writes:
        asyncio.run(bare_writes(args.bare_writes))
        return
    load = os.getloadavg()
    deflate = args.client == "websockets" and not args.no_compression
    print(
        f"one workspace, {args.events} events at {args.rate}/s, {args.clients} client processes, "
        f"store {args.store}, {args.client} client{' (permessage-deflate)' if deflate else ''}; "
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{'path':<16}{'sockets':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'deliveries/s':>14}   CPU/event: server clients  delivered      opening  closes"
    )
    for sockets in args.sockets:
        for path in args.paths:
            data = Path(tempfile.mkdtemp(prefix="ws-fanout-"))
            try:
                r = measure(path, sockets, args, data)
            finally:
                shutil.rmtree(data, ignore_errors=True)
            print(
                f"{path:<16}{sockets:>8}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}"
                f"{r['per_s']:>14.0f}{r['cpu_ms']:>17.0f} ms{r['clients_cpu_ms']:>6.0f} ms  "
                f"{r['delivered']:<14} "
                f"{r['opening_s']:>5.1f} s  "
                f"{r['closes']}",
                flush=True,
            )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-path":
        serve(sys.argv[2], sys.argv[4:])
    else:
        main()
