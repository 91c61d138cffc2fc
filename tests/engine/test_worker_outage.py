"""Workers recover runs whose job a store outage lost, once the store answers again.

A Redis primary that fails over without `durability=replicated`, or a crash between the two
round trips of an accepting append, can leave a run with its events and no job. `recover()`
re-enqueues such runs; workers run it at start and, here, when their store comes back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from core_support import ServerThread, core_settings
from mezzo.keys import RUN_QUEUE
from mezzo.store.base import Job, StoreUnavailable
from mezzo.store.sqlite import SQLiteStore
from mezzo.stub.server import StubServer


class LeaseOutage(SQLiteStore):
    """A real SQLite store whose `lease` fails while `down` is set, as a store in an outage."""

    down = False

    async def lease(self, *args: Any, **kwargs: Any) -> list[Job]:
        if self.down:
            raise StoreUnavailable("the store is down (test)")
        return await super().lease(*args, **kwargs)


def test_a_run_whose_job_was_lost_in_an_outage_completes_when_the_store_is_back(
    tmp_path: Path, stub: StubServer
) -> None:
    store = LeaseOutage(tmp_path / "mezzo.sqlite3")
    settings = core_settings(tmp_path / "data", stub)
    with (
        ServerThread(settings, store=store) as server,
        httpx.Client(base_url=server.url, trust_env=False) as client,
    ):
        assert client.post("/v1/workspaces", json={"id": "w"}).status_code == 201
        store.down = True
        accepted = client.post("/v1/workspaces/w/runs", json={"input": "hello"})
        assert accepted.status_code == 202
        run = accepted.json()["run"]
        # The outage loses the job; the run's events survive.
        (job,) = server.call(SQLiteStore.lease(store, RUN_QUEUE, "lost", 1, 30))
        server.call(store.ack(job))
        assert sum(server.call(store.queue_depth(RUN_QUEUE)).values()) == 0
        time.sleep(1.5)  # the pool has tried to lease, and failed, at least once
        store.down = False
        deadline = time.monotonic() + 20
        while client.get(f"/v1/runs/{run}").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the run whose job was lost never completed"
            time.sleep(0.05)
