"""Fan-out of a workspace's events to many WebSocket subscribers through one dispatcher per
workspace (`mezzo.server.fanout`), against a real server on loopback, on SQLite and on Redis.

Every subscriber gets every event once, in order, as the bytes the REST page holds; one that
joins from an old `after` while events are appended gets no gap and no duplicate where its
replay meets the live stream; type filters hold; a subscriber that stops reading is closed
with 4408 while the others get everything, and the SDK resumes by itself after that close.
The runs stay queued (no workers): each submit appends one `run_queued` event.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import websockets
from fastapi import FastAPI

from core_support import ServerThread, core_settings
from mezzo.client.http import HttpTransport
from mezzo.protocol import CLOSE_BEHIND
from mezzo.server import fanout
from mezzo.server.auth import create_key
from mezzo.server.routes import events as events_route
from mezzo.server.ws_frames import FrameSink
from mezzo.store.base import StoreUnavailable
from mezzo.stub.server import StubServer

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", "redis", "sqlite-asgi-sends"])
def server(request: pytest.FixtureRequest, tmp_path: Path, stub: StubServer) -> Iterator[Any]:
    """A server on SQLite or Redis; `-asgi-sends`: one whose WebSocket protocol offers no
    frame sink (uvicorn's own), so every event goes through ASGI's send."""
    store = None
    prefix = f"test-fanout-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        from mezzo.store.redis import RedisStore

        store = RedisStore(REDIS_URL, prefix=prefix)
    running = ServerThread(core_settings(tmp_path / "data", stub), workers=False, store=store)
    if request.param.endswith("-asgi-sends"):
        running.server.config.ws = "websockets-sansio"
    with running as s:
        yield s
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"*{prefix}*", count=1000):
            client.delete(key)
        client.close()


def dispatchers(server: ServerThread) -> int:
    """How many workspace dispatchers the server holds now."""
    app: Any = server.server.config.app
    while not isinstance(app, FastAPI):
        app = app.app
    return len(app.state.fanout)


async def eventually_dispatchers(server: ServerThread, count: int) -> None:
    for _ in range(200):
        if dispatchers(server) == count:
            return
        await asyncio.sleep(0.025)
    assert dispatchers(server) == count


def ws_url(server: ServerThread, workspace: str, after: int = 0, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"after": str(after), **params}.items())
    return f"{server.url.replace('http', 'ws')}/v1/workspaces/{workspace}/events?{query}"


async def submit(client: httpx.AsyncClient, workspace: str, count: int, size: int = 0) -> list[str]:
    runs = []
    for i in range(count):
        # Random text: the WebSocket compresses messages (permessage-deflate); this does not.
        noise = base64.b64encode(os.urandom(size * 3 // 4)).decode()
        answer = await client.post(
            f"/v1/workspaces/{workspace}/runs", json={"input": f"{i} {noise}"}
        )
        assert answer.status_code == 202, answer.text
        runs.append(answer.json()["run"])
    return runs


async def receive_until(socket: Any, last_seq: int) -> list[str]:
    """Frames until the one with seq `last_seq`."""
    frames: list[str] = []
    while True:
        try:
            frame = await asyncio.wait_for(socket.recv(), 20)
        except TimeoutError:
            seqs = [json.loads(f).get("seq") for f in frames]
            raise AssertionError(f"no seq {last_seq} within 20 s; got {seqs}") from None
        frames.append(frame)
        if json.loads(frame).get("seq") == last_seq:
            return frames


@pytest.fixture
async def client(server: ServerThread) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30) as http:
        for workspace in ("w", "other"):
            (await http.post("/v1/workspaces", json={"id": workspace})).raise_for_status()
        yield http


async def test_many_subscribers_get_every_event_once_in_order_as_the_page_has_it(
    server: ServerThread, client: httpx.AsyncClient
) -> None:
    sockets = [await websockets.connect(ws_url(server, "w")) for _ in range(40)]
    bystander = await websockets.connect(ws_url(server, "other"))
    await eventually_dispatchers(server, 2)  # one per workspace, whatever the subscribers
    await submit(client, "w", 25)
    page = await client.get("/v1/workspaces/w/events")
    head = page.json()[-1]["seq"]
    assert head == 25
    for received in await asyncio.gather(*(receive_until(s, head) for s in sockets)):
        # Every event once, in order, encoded as the REST page encodes it, byte for byte.
        assert "[" + ",".join(received) + "]" == page.text
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(bystander.recv(), 0.3)
    for s in [*sockets, bystander]:
        await s.close()
    await eventually_dispatchers(server, 0)  # they stop with their last subscriber


async def test_joining_mid_stream_from_after_has_no_gap_or_duplicate_at_the_seam(
    server: ServerThread, client: httpx.AsyncClient
) -> None:
    """Subscribers join from random `after`s while events are appended back to back, so their
    replay from the store meets the live dispatcher while it moves."""
    total = 80
    submitted = 0
    rng = random.Random(18)
    early = await websockets.connect(ws_url(server, "w"))  # the dispatcher is running
    joiners = 30
    connected = 0
    all_connected = asyncio.Event()

    async def join_later(delay: float) -> tuple[int, list[int]]:
        nonlocal connected
        await asyncio.sleep(delay)
        after = rng.randint(max(0, submitted - 30), submitted)
        async with websockets.connect(ws_url(server, "w", after)) as socket:
            connected += 1
            if connected == joiners:
                all_connected.set()
            frames = await receive_until(socket, total + 1)
        return after, [json.loads(f)["seq"] for f in frames]

    joining = [asyncio.create_task(join_later(i * 0.02)) for i in range(joiners)]
    for _ in range(total):
        await submit(client, "w", 1)
        submitted += 1
    await all_connected.wait()
    await submit(client, "w", 1)  # one more, that every joiner waits for
    for after, seqs in await asyncio.gather(*joining):
        assert seqs == list(range(after + 1, total + 2)), after
    seqs = [json.loads(f)["seq"] for f in await receive_until(early, total + 1)]
    assert seqs == list(range(1, total + 2))
    await early.close()


async def test_type_filters_hold_live_and_on_replay(
    server: ServerThread, client: httpx.AsyncClient
) -> None:
    cancelled_only = await websockets.connect(ws_url(server, "w", types="cancelled"))
    runs = await submit(client, "w", 6)
    for run in runs[::2]:
        (await client.post(f"/v1/runs/{run}/cancel", json={"reason": "x"})).raise_for_status()
    page = (await client.get("/v1/workspaces/w/events")).json()
    cancelled = [e for e in page if e["type"] == "cancelled"]
    assert len(cancelled) == 3
    received = await receive_until(cancelled_only, cancelled[-1]["seq"])
    assert [json.loads(f) for f in received] == cancelled
    # From the middle, two types: a replay of both, then live ones.
    middle = page[len(page) // 2]["seq"]
    async with websockets.connect(
        ws_url(server, "w", middle, types="run_queued,cancelled")
    ) as socket:
        more = await submit(client, "w", 2)
        await client.post(f"/v1/runs/{more[0]}/cancel", json={"reason": "x"})
        page = (await client.get("/v1/workspaces/w/events")).json()
        wanted = [e for e in page if e["seq"] > middle and e["type"] in ("run_queued", "cancelled")]
        received = await receive_until(socket, wanted[-1]["seq"])
        assert [json.loads(f) for f in received] == wanted
    await cancelled_only.close()


async def test_a_subscriber_that_stops_reading_is_closed_with_4408_and_slows_no_one(
    server: ServerThread, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "BUFFER_EVENTS", 8)
    # A fixed receive buffer (no autotuning), set before connecting so that the window can
    # still carry it at speed once it reads again.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 << 10)
    raw.connect(("127.0.0.1", server.port))
    # It stops reading (its client stops at one message unread), pings included.
    slow = await websockets.connect(ws_url(server, "w"), sock=raw, max_queue=1, ping_interval=None)
    readers = [await websockets.connect(ws_url(server, "w"), max_size=None) for _ in range(3)]
    total = 50
    reading = [asyncio.create_task(receive_until(r, total)) for r in readers]
    await submit(client, "w", total, size=200_000)  # 10 MB: more than the kernel buffers hold
    for frames in await asyncio.gather(*reading):
        assert [json.loads(f)["seq"] for f in frames] == list(range(1, total + 1))
    seqs = []
    with pytest.raises(websockets.ConnectionClosedError) as closed:
        while True:
            try:
                seqs.append(json.loads(await asyncio.wait_for(slow.recv(), 20))["seq"])
            except TimeoutError:
                raise AssertionError(seqs) from None
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CLOSE_BEHIND == 4408
    assert closed.value.rcvd.reason.startswith("behind: resume after seq ")
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) < total
    for r in readers:
        await r.close()


async def test_the_sdk_resumes_after_4408_from_its_last_seq(
    server: ServerThread, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "BUFFER_EVENTS", 2)
    cut_off: list[int] = []

    def noting(seq: int) -> str:
        cut_off.append(seq)
        return fanout.behind_reason(seq)

    monkeypatch.setattr(events_route, "behind_reason", noting)
    transport = HttpTransport(server.url)
    stream = transport.subscribe("w", 0, None)
    total = 80
    first = asyncio.ensure_future(anext(stream))  # connected, then not read for a while
    await submit(client, "w", 1)
    seqs = [(await first).seq]
    await submit(client, "w", total - 1, size=400_000)
    while seqs[-1] != total:
        seqs.append((await asyncio.wait_for(anext(stream), 20)).seq)
    await stream.aclose()
    await transport.aclose()
    assert seqs == list(range(1, total + 1))
    assert cut_off, "the SDK was never cut off: the test proves nothing"


async def test_tenants_with_the_same_workspace_id_each_see_their_own_events(
    server: ServerThread,
) -> None:
    tokens = [server.call(create_key(server.mezzo.store, t)) for t in ("acme", "bob")]
    sockets = []
    for token in tokens:
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            (await http.post("/v1/workspaces", json={"id": "same"})).raise_for_status()
        sockets.append(await websockets.connect(ws_url(server, "same", token=token)))
    for count, token in zip((3, 5), tokens, strict=True):
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            await submit(http, "same", count)
    acme = [json.loads(f) for f in await receive_until(sockets[0], 3)]
    bob = [json.loads(f) for f in await receive_until(sockets[1], 5)]
    assert [e["seq"] for e in acme] == [1, 2, 3] and [e["seq"] for e in bob] == [1, 2, 3, 4, 5]
    assert {e["workspace"] for e in acme + bob} == {"same"}
    assert not {e["run"] for e in acme} & {e["run"] for e in bob}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sockets[0].recv(), 0.3)
    for s in sockets:
        await s.close()


async def test_live_events_go_to_the_sockets_as_frames_written_once(
    server: ServerThread,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """With `mezzo serve`'s WebSocket protocol a live event is framed once and written to each
    socket's transport (the same bytes object for all); through plain ASGI, never."""
    written: list[bytes] = []
    write = FrameSink.write

    def counting(sink: FrameSink, frame: bytes) -> bool:
        taken = write(sink, frame)
        if taken:
            written.append(frame)
        return taken

    monkeypatch.setattr(FrameSink, "write", counting)
    sockets = [await websockets.connect(ws_url(server, "w")) for _ in range(10)]
    await eventually_dispatchers(server, 1)
    await asyncio.sleep(0.2)  # every subscription has joined (nothing to replay)
    await submit(client, "w", 5)
    for received in await asyncio.gather(*(receive_until(s, 5) for s in sockets)):
        assert [json.loads(f)["seq"] for f in received] == [1, 2, 3, 4, 5]
    if request.node.callspec.params["server"].endswith("-asgi-sends"):
        assert written == []
    else:
        assert len(written) == 50 and len({id(frame) for frame in written}) == 5
    for s in sockets:
        await s.close()


async def test_sse_replays_from_last_event_id_then_follows_live(
    server: ServerThread, client: httpx.AsyncClient
) -> None:
    await submit(client, "w", 4)
    headers = {"accept": "text/event-stream", "last-event-id": "2"}
    ids: list[int] = []
    async with client.stream("GET", "/v1/workspaces/w/events", headers=headers) as stream:
        lines = stream.aiter_lines()
        more: asyncio.Task[list[str]] | None = None
        async for line in lines:
            if line.startswith("id: "):
                ids.append(int(line[4:]))
                if ids[-1] == 4:  # the replay is done: now live ones
                    more = asyncio.create_task(submit(client, "w", 3))
                if ids[-1] == 7:
                    break
        assert more is not None
        await more
    assert ids == [3, 4, 5, 6, 7]


async def test_a_failed_store_read_closes_with_1013_and_the_next_subscriber_starts_afresh(
    server: ServerThread,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if request.node.callspec.params["server"] != "sqlite":
        pytest.skip("one store is enough: the store's failure is made up here")
    store = server.mezzo.store

    async def failing_tail(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise StoreUnavailable("the store went away")
        yield  # an async generator, like the store's

    monkeypatch.setattr(store, "tail", failing_tail)
    async with websockets.connect(ws_url(server, "w")) as socket:
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await asyncio.wait_for(socket.recv(), 20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    await eventually_dispatchers(server, 0)
    monkeypatch.undo()
    await submit(client, "w", 1)
    async with websockets.connect(ws_url(server, "w")) as socket:
        assert json.loads(await asyncio.wait_for(socket.recv(), 20))["seq"] == 1
