"""The store contract. Every backend must pass these unchanged."""

from __future__ import annotations

import asyncio
import time

import pytest

from mezzo.protocol import NewEvent
from mezzo.store.base import LeaseLost, RateLimit, Store, VersionConflict


def ev(type_: str, **data: object) -> NewEvent:
    return NewEvent(type=type_, data=dict(data))


# ---- event log -------------------------------------------------------------------------------


async def test_append_assigns_gap_free_seq_across_runs(store: Store) -> None:
    first = await store.append("ws", "r1", [ev("run_queued", n=1), ev("run_started")], 0)
    second = await store.append("ws", "r2", [ev("run_queued", n=2)], 0)
    third = await store.append("ws", "r1", [ev("completed")], 2)
    assert [e.seq for e in first + second + third] == [1, 2, 3, 4]
    assert await store.head("ws") == 4
    assert await store.run_version("r1") == 3
    assert await store.run_version("r2") == 1
    assert first[0].data == {"n": 1}


async def test_stale_writer_gets_conflict_and_appends_nothing(store: Store) -> None:
    await store.append("ws", "r1", [ev("run_queued")], 0)
    await store.append("ws", "r1", [ev("run_started")], 1)
    with pytest.raises(VersionConflict) as info:
        await store.append("ws", "r1", [ev("model_result"), ev("completed")], 1)
    assert info.value.actual == 2
    assert await store.head("ws") == 2
    assert [e.type for e in await store.read("ws")] == ["run_queued", "run_started"]


async def test_concurrent_writers_of_one_run_exactly_one_wins(store: Store) -> None:
    await store.append("ws", "r1", [ev("run_queued")], 0)

    async def attempt(i: int) -> bool:
        try:
            await store.append("ws", "r1", [ev("model_result", i=i)], 1)
        except VersionConflict:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert sum(results) == 1
    assert await store.head("ws") == 2


async def test_runs_of_one_workspace_do_not_block_each_other(store: Store) -> None:
    await asyncio.gather(*(store.append("ws", f"r{i}", [ev("run_queued")], 0) for i in range(30)))
    events = await store.read("ws")
    assert [e.seq for e in events] == list(range(1, 31))
    assert {e.run for e in events} == {f"r{i}" for i in range(30)}


async def test_workspaces_have_independent_sequences(store: Store) -> None:
    await store.append("a", None, [ev("throttled", rate=0.5)], None)
    await store.append("b", None, [ev("throttled", rate=0.5)], None)
    assert await store.head("a") == 1
    assert await store.head("b") == 1
    assert await store.read("a", 1) == []


async def test_read_filters_by_after_types_limit_and_run(store: Store) -> None:
    await store.append("ws", "r1", [ev("run_queued"), ev("run_started"), ev("tool_call")], 0)
    await store.append("ws", "r2", [ev("run_queued")], 0)
    assert [e.seq for e in await store.read("ws", after_seq=2)] == [3, 4]
    assert [e.seq for e in await store.read("ws", types=["run_queued"])] == [1, 4]
    assert [e.seq for e in await store.read("ws", limit=2)] == [1, 2]
    assert [e.seq for e in await store.read("ws", run="r2")] == [4]
    assert [e.seq for e in await store.read("ws", after_seq=1, run="r1")] == [2, 3]


async def test_tail_replays_then_blocks_for_new_events(store: Store) -> None:
    await store.append("ws", "r1", [ev("run_queued"), ev("run_started")], 0)
    seen: list[int] = []

    async def consume() -> None:
        async for event in store.tail("ws", after_seq=1, types=["run_started", "completed"]):
            assert event.seq is not None
            seen.append(event.seq)
            if event.type == "completed":
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    assert seen == [2]
    await store.append("ws", "r1", [ev("model_call"), ev("completed")], 2)
    await asyncio.wait_for(task, 5)
    assert seen == [2, 4]


async def test_live_events_reach_subscribers_without_a_seq(store: Store) -> None:
    from mezzo.protocol import Event

    received: list[Event] = []

    async def consume() -> None:
        async for event in store.live("ws"):
            received.append(event)
            return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    await store.publish_live(
        Event(seq=None, workspace="ws", run="r1", type="delta", ts=time.time(), data={"text": "hi"})
    )
    await asyncio.wait_for(task, 5)
    assert received[0].data == {"text": "hi"}
    assert await store.head("ws") == 0


# ---- queue -----------------------------------------------------------------------------------


async def test_lease_orders_by_priority_then_time(store: Store) -> None:
    await store.enqueue("q", "low", {"n": "low"}, priority=0)
    await store.enqueue("q", "high", {"n": "high"}, priority=2)
    await store.enqueue("q", "normal", {"n": "normal"}, priority=1)
    jobs = await store.lease("q", "w1", 10, 30)
    assert [j.id for j in jobs] == ["high", "normal", "low"]
    assert all(j.attempts == 1 for j in jobs)


async def test_not_before_delays_a_job(store: Store) -> None:
    await store.enqueue("q", "later", {}, not_before=time.time() + 0.4)
    assert await store.lease("q", "w1", 1, 30) == []
    await asyncio.sleep(0.5)
    assert [j.id for j in await store.lease("q", "w1", 1, 30)] == ["later"]


async def test_a_leased_job_is_not_leased_twice(store: Store) -> None:
    await store.enqueue("q", "j", {})
    assert len(await store.lease("q", "w1", 1, 30)) == 1
    assert await store.lease("q", "w2", 1, 30) == []


async def test_lapsed_lease_returns_job_and_fences_old_holder(store: Store) -> None:
    await store.enqueue("q", "j", {"x": 1})
    (first,) = await store.lease("q", "w1", 1, 0.2)
    await asyncio.sleep(0.3)
    (second,) = await store.lease("q", "w2", 1, 30)
    assert second.id == "j" and second.token != first.token and second.attempts == 2
    with pytest.raises(LeaseLost):
        await store.ack(first)
    with pytest.raises(LeaseLost):
        await store.extend(first, 30)
    await store.ack(second)
    assert await store.queue_depth("q") == {}


async def test_extend_keeps_the_lease(store: Store) -> None:
    await store.enqueue("q", "j", {})
    (job,) = await store.lease("q", "w1", 1, 0.3)
    job = await store.extend(job, 30)
    await asyncio.sleep(0.4)
    assert await store.lease("q", "w2", 1, 30) == []
    await store.ack(job)


async def test_enqueue_is_unique_by_id_and_reruns_after_ack_when_leased(store: Store) -> None:
    assert await store.enqueue("q", "run:1", {"v": 1})
    assert not await store.enqueue("q", "run:1", {"v": 2})
    assert await store.queue_depth("q") == {0: 1}
    (job,) = await store.lease("q", "w1", 5, 30)
    assert job.payload == {"v": 2}
    assert not await store.enqueue("q", "run:1", {"v": 3})
    await store.ack(job)
    (again,) = await store.lease("q", "w1", 5, 30)
    assert again.id == "run:1" and again.payload == {"v": 3}
    await store.ack(again)
    assert await store.lease("q", "w1", 5, 30) == []


async def test_retry_then_dead_letter_after_max_attempts(store: Store) -> None:
    await store.enqueue("q", "j", {"x": 1}, max_attempts=2)
    (job,) = await store.lease("q", "w1", 1, 30)
    assert await store.retry(job, 0.0, "boom 1")
    (job,) = await store.lease("q", "w1", 1, 30)
    assert job.last_error == "boom 1" and job.attempts == 2
    assert not await store.retry(job, 0.0, "boom 2")
    assert await store.lease("q", "w1", 1, 30) == []
    (dead,) = await store.dead_letters("q")
    assert dead.id == "j" and dead.last_error == "boom 2" and dead.payload == {"x": 1}
    assert await store.requeue_dead("q", "j")
    assert not await store.requeue_dead("q", "j")
    (job,) = await store.lease("q", "w1", 1, 30)
    assert job.attempts == 1


async def test_retry_delay_is_honoured(store: Store) -> None:
    await store.enqueue("q", "j", {})
    (job,) = await store.lease("q", "w1", 1, 30)
    await store.retry(job, 0.4, "later")
    assert await store.lease("q", "w1", 1, 30) == []
    await asyncio.sleep(0.5)
    assert len(await store.lease("q", "w1", 1, 30)) == 1


async def test_release_does_not_spend_an_attempt(store: Store) -> None:
    await store.enqueue("q", "j", {}, max_attempts=1)
    (job,) = await store.lease("q", "w1", 1, 30)
    await store.release(job)
    (job,) = await store.lease("q", "w1", 1, 30)
    assert job.attempts == 1


async def test_lapsed_lease_past_max_attempts_goes_to_dead_letters(store: Store) -> None:
    await store.enqueue("q", "j", {}, max_attempts=1)
    await store.lease("q", "w1", 1, 0.1)
    await asyncio.sleep(0.2)
    assert await store.lease("q", "w2", 1, 30) == []
    (dead,) = await store.dead_letters("q")
    assert "lapsed" in (dead.last_error or "")


async def test_concurrent_leases_hand_each_job_to_one_worker(store: Store) -> None:
    for i in range(40):
        await store.enqueue("q", f"j{i}", {})
    batches = await asyncio.gather(*(store.lease("q", f"w{i}", 7, 30) for i in range(8)))
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 40


# ---- key-value -------------------------------------------------------------------------------


async def test_kv_roundtrip_scan_and_put_if_absent(store: Store) -> None:
    assert await store.kv_get("a/1") is None
    await store.kv_put("a/1", {"v": 1})
    await store.kv_put("a/2", {"v": 2})
    await store.kv_put("b/1", {"v": 3})
    assert await store.kv_get("a/1") == {"v": 1}
    assert await store.kv_scan("a/") == [("a/1", {"v": 1}), ("a/2", {"v": 2})]
    assert not await store.kv_put_if_absent("a/1", {"v": 9})
    assert await store.kv_put_if_absent("a/3", {"v": 9})
    assert await store.kv_delete("a/1")
    assert not await store.kv_delete("a/1")
    assert [k for k, _ in await store.kv_scan("a/")] == ["a/2", "a/3"]


# ---- token ledger ----------------------------------------------------------------------------


async def test_reserve_caps_to_what_is_left_and_refuses_below_minimum(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    await store.ledger_init("ws", 5)  # second init changes nothing
    first = await store.reserve("ws", "a", 100, 700)
    assert first is not None and first.granted == 700
    second = await store.reserve("ws", "b", 100, 700)
    assert second is not None and second.granted == 300
    assert await store.reserve("ws", "c", 1, 10) is None
    again = await store.reserve("ws", "a", 100, 700)
    assert again is not None and again.granted == 700
    state = await store.ledger_get("ws")
    assert (state.budget, state.committed, state.reserved) == (1000, 0, 1000)


async def test_commit_charges_actual_releases_rest_and_is_idempotent(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    await store.reserve("ws", "a", 1, 600)
    result = await store.commit("ws", "a", 250, [0.9])
    assert (result.committed, result.charged, result.already_committed) == (250, 250, False)
    again = await store.commit("ws", "a", 250, [0.9])
    assert again.already_committed and again.committed == 250
    state = await store.ledger_get("ws")
    assert (state.committed, state.reserved) == (250, 0)


async def test_commit_never_exceeds_budget(store: Store) -> None:
    await store.ledger_init("ws", 100)
    await store.reserve("ws", "a", 1, 100)
    result = await store.commit("ws", "a", 180, [])
    assert result.committed == 100 and result.charged == 100


async def test_alert_thresholds_fire_once(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    await store.reserve("ws", "a", 1, 500)
    assert (await store.commit("ws", "a", 500, [0.5, 0.9])).thresholds_crossed == (0.5,)
    await store.reserve("ws", "b", 1, 450)
    assert (await store.commit("ws", "b", 450, [0.5, 0.9])).thresholds_crossed == (0.9,)
    await store.reserve("ws", "c", 1, 10)
    assert (await store.commit("ws", "c", 10, [0.5, 0.9])).thresholds_crossed == ()


async def test_release_returns_the_hold(store: Store) -> None:
    await store.ledger_init("ws", 100)
    await store.reserve("ws", "a", 1, 100)
    await store.release_reservation("ws", "a")
    await store.release_reservation("ws", "a")
    assert (await store.ledger_get("ws")).reserved == 0
    assert await store.reserve("ws", "b", 100, 100) is not None


async def test_ledger_add_tops_up(store: Store) -> None:
    await store.ledger_init("ws", 100)
    await store.reserve("ws", "a", 1, 100)
    await store.commit("ws", "a", 100, [])
    assert await store.reserve("ws", "b", 1, 10) is None
    state = await store.ledger_add("ws", 50)
    assert state.budget == 150
    assert (await store.reserve("ws", "b", 1, 100)).granted == 50  # type: ignore[union-attr]


async def test_concurrent_reservations_never_oversubscribe(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    results = await asyncio.gather(*(store.reserve("ws", f"r{i}", 30, 70) for i in range(40)))
    granted = sum(r.granted for r in results if r is not None)
    assert granted <= 1000
    assert (await store.ledger_get("ws")).reserved == granted


# ---- rate limiter ----------------------------------------------------------------------------


async def test_rate_limiter_admits_burst_then_asks_to_wait(store: Store) -> None:
    limits = (RateLimit(per_minute=600, burst=5), None)
    waits = [await store.acquire("k", 1, 0, limits) for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert all(0 < w <= 0.2 for w in waits[5:])


async def test_rate_limiter_token_dimension(store: Store) -> None:
    limits = (None, RateLimit(per_minute=6000, burst=1000))
    assert await store.acquire("k", 1, 800, limits) == 0.0
    wait = await store.acquire("k", 1, 800, limits)
    assert wait == pytest.approx(6.0, abs=0.2)


async def test_block_until_stops_everyone_on_the_key(store: Store) -> None:
    await store.block_until("k", time.time() + 5)
    wait = await store.acquire("k", 1, 1, (None, None))
    assert 4 < wait <= 5
    assert await store.acquire("other", 1, 1, (None, None)) == 0.0


async def test_rate_limiter_refund_gives_capacity_back(store: Store) -> None:
    limits = (None, RateLimit(per_minute=6000, burst=1000))
    assert await store.acquire("k", 1, 1000, limits) == 0.0
    assert await store.acquire("k", 1, 500, limits) > 0
    assert await store.acquire("k", 0, -600, limits) == 0.0
    assert await store.acquire("k", 1, 500, limits) == 0.0
    # A refund never banks capacity beyond an idle key's.
    assert await store.acquire("idle", 0, -5000, limits) == 0.0
    assert await store.acquire("idle", 1, 1000, limits) == 0.0
    assert await store.acquire("idle", 1, 200, limits) > 0


async def test_trim_drops_old_events_but_not_those_of_open_runs(store: Store) -> None:
    await store.append("ws", "open", [ev("run_queued")], 0)  # seq 1, not ended yet
    await store.append("ws", "done", [ev("run_queued")], 0)  # seq 2
    await store.append("ws", "done", [ev("completed")], 1)  # seq 3
    for i in range(10):
        await store.append("ws", None, [ev("throttled", i=i)], None)
    assert await store.trim("ws", keep=2) == 0  # the open run's first event pins everything
    await store.append("ws", "open", [ev("completed")], 1)  # seq 14
    assert await store.trim("ws", keep=2) == 12
    assert [e.seq for e in await store.read("ws")] == [13, 14]
    assert await store.head("ws") == 14
    stored = await store.append("ws", "next", [ev("run_queued")], 0)
    assert stored[0].seq == 15
    assert await store.run_version("open") == 2


async def test_queue_oldest_reports_how_long_due_jobs_have_waited(store: Store) -> None:
    now = time.time()
    assert await store.queue_oldest("q") == {}
    await store.enqueue("q", "old-low", {}, priority=0, not_before=now - 30)
    await store.enqueue("q", "new-low", {}, priority=0, not_before=now - 5)
    await store.enqueue("q", "high", {}, priority=2, not_before=now - 10)
    await store.enqueue("q", "future", {}, priority=1, not_before=now + 60)
    oldest = await store.queue_oldest("q")
    assert set(oldest) == {0, 2}
    assert oldest[0] == pytest.approx(now - 30, abs=0.01)
    assert oldest[2] == pytest.approx(now - 10, abs=0.01)
    await store.lease("q", "w", 2, 30)  # takes "high" and "old-low"
    oldest = await store.queue_oldest("q")
    assert set(oldest) == {0} and oldest[0] == pytest.approx(now - 5, abs=0.01)
