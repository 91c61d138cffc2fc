"""The store contract. Every backend must pass these unchanged."""

from __future__ import annotations

import asyncio
import time

import pytest

from mezzo.protocol import NewEvent
from mezzo.store.base import Hold, LeaseLost, NewJob, RateLimit, Store, VersionConflict


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


async def test_the_run_index_knows_each_runs_workspace_and_which_are_active(
    store: Store,
) -> None:
    await store.append("a", "r1", [ev("run_queued")], 0)
    await store.append("b", "r2", [ev("run_queued")], 0)
    await store.append("b", "r3", [ev("run_queued"), ev("failed")], 0)
    assert await store.run_workspace("r1") == "a"
    assert await store.run_workspace("r3") == "b"
    assert await store.run_workspace("nope") is None
    assert sorted(await store.active_runs()) == [("r1", "a"), ("r2", "b")]
    await store.append("a", "r1", [ev("run_started"), ev("completed")], 1)
    assert await store.active_runs() == [("r2", "b")]


async def test_active_runs_of_one_workspace(store: Store) -> None:
    for i in range(5):
        await store.append("a", f"a{i}", [ev("run_queued")], 0)
    await store.append("b", "b0", [ev("run_queued")], 0)
    await store.append("a", "a4", [ev("completed")], 1)
    assert sorted(await store.active_runs(workspace="a")) == [(f"a{i}", "a") for i in range(4)]
    assert await store.active_runs(workspace="b") == [("b0", "b")]
    assert await store.active_runs(workspace="none") == []
    two = await store.active_runs(limit=2, workspace="a")
    assert len(two) == 2 and {w for _, w in two} == {"a"}


async def test_a_refused_append_leaves_a_finished_run_finished(
    store: Store, store_reopened: Store
) -> None:
    """An append refused for its version (a retried submit of a run that has finished, from
    a process that never saw the run) changes nothing: the run stays out of the active runs,
    and its job is not enqueued again."""
    job = NewJob("q", "run:r1", {"run": "r1"}, priority=1, max_attempts=3)
    await store.append("ws", "r1", [ev("run_queued")], 0, enqueue=job)
    (leased,) = await store.lease("q", "w", 1, 30)
    await store.append("ws", "r1", [ev("completed")], 1)
    await store.ack(leased)
    with pytest.raises(VersionConflict):
        await store_reopened.append("ws", "r1", [ev("run_queued")], 0, enqueue=job)
    assert await store_reopened.active_runs() == []
    assert await store_reopened.active_runs(workspace="ws") == []
    assert await store_reopened.lease("q", "w", 1, 30) == []


async def test_a_first_append_that_loses_a_race_leaves_the_winner_active(
    store: Store, store_reopened: Store
) -> None:
    """Two processes submit the same run at once: one wins, and whatever index entry the
    loser added or took back, the winner's run stays active with its one job."""
    for i in range(10):
        run = f"r{i}"
        job = NewJob("q", f"run:{run}", {"run": run}, priority=1, max_attempts=3)
        outcomes = await asyncio.gather(
            store.append("ws", run, [ev("run_queued")], 0, enqueue=job),
            store_reopened.append("ws", run, [ev("run_queued")], 0, enqueue=job),
            return_exceptions=True,
        )
        assert sum(isinstance(o, VersionConflict) for o in outcomes) == 1
        assert await store_reopened.active_runs() == [(run, "ws")]
        assert await store.active_runs() == [(run, "ws")]
        (leased,) = await store.lease("q", "w", 5, 30)
        assert leased.id == f"run:{run}"
        await store.append("ws", run, [ev("completed")], 1)
        await store.ack(leased)
        assert await store_reopened.active_runs() == []


async def test_append_enqueues_its_job_once_the_events_are_stored(store: Store) -> None:
    job = NewJob("q", "run:r1", {"run": "r1"}, priority=2, max_attempts=3)
    await store.append("ws", "r1", [ev("run_queued")], 0, enqueue=job)
    leased = await store.lease("q", "w", 5, 30)
    assert [(j.id, j.payload, j.priority, j.max_attempts) for j in leased] == [
        ("run:r1", {"run": "r1"}, 2, 3)
    ]


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


def hold(id_: str, tokens: int, minimum: int = 1, priority: int = 1, ttl_s: float = 900) -> Hold:
    return Hold(id=id_, tokens=tokens, minimum=minimum, priority=priority, ttl_s=ttl_s)


async def test_hold_is_all_or_nothing_and_idempotent_per_id(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    await store.ledger_init("ws", 5)  # second init changes nothing
    first = await store.hold("ws", hold("a", 700))
    assert first.granted == 700 and first.ledger.reserved == 700
    refused = await store.hold("ws", hold("b", 400))
    assert refused.granted == 0  # 300 are free: never a part of what was asked
    assert (refused.ledger.budget, refused.ledger.committed, refused.ledger.reserved) == (
        1000,
        0,
        700,
    )
    again = await store.hold("ws", hold("a", 5))
    assert again.granted == 700  # the id is held already: that hold, not a second one
    state = await store.ledger_get("ws")
    assert (state.budget, state.committed, state.reserved) == (1000, 0, 700)


async def test_hold_of_more_than_is_unspent_or_below_minimum_is_refused(store: Store) -> None:
    await store.ledger_init("ws", 100)
    assert (await store.hold("ws", hold("big", 101))).granted == 0
    assert (await store.hold("ws", hold("small", 60, minimum=60))).granted == 60
    await store.settle("ws", "small", 60, [])
    result = await store.hold("ws", hold("min", 30, minimum=41))
    assert result.granted == 0 and result.ledger.unspent == 40


async def test_settle_charges_actual_releases_rest_and_is_idempotent(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    await store.hold("ws", hold("a", 600))
    result = (await store.settle("ws", "a", 250, [0.9])).commit
    assert (result.committed, result.charged, result.already_committed) == (250, 250, False)
    again = (await store.settle("ws", "a", 250, [0.9])).commit
    assert again.already_committed and again.committed == 250 and again.charged == 250
    state = await store.ledger_get("ws")
    assert (state.committed, state.reserved) == (250, 0)


async def test_settle_never_exceeds_budget(store: Store) -> None:
    await store.ledger_init("ws", 100)
    await store.hold("ws", hold("a", 100))
    result = (await store.settle("ws", "a", 180, [])).commit
    assert result.committed == 100 and result.charged == 100


async def test_settle_without_a_hold_charges_only_what_no_hold_needs(store: Store) -> None:
    await store.ledger_init("ws", 100)
    await store.hold("ws", hold("a", 70))
    result = (await store.settle("ws", "never-held", 50, [])).commit
    assert result.charged == 30 and result.committed == 30
    assert (await store.ledger_get("ws")).reserved == 70


async def test_alert_thresholds_fire_once(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    await store.hold("ws", hold("a", 500))
    assert (await store.settle("ws", "a", 500, [0.5, 0.9])).commit.thresholds_crossed == (0.5,)
    await store.hold("ws", hold("b", 450))
    assert (await store.settle("ws", "b", 450, [0.5, 0.9])).commit.thresholds_crossed == (0.9,)
    await store.hold("ws", hold("c", 10))
    assert (await store.settle("ws", "c", 10, [0.5, 0.9])).commit.thresholds_crossed == ()


async def test_release_returns_the_hold(store: Store) -> None:
    await store.ledger_init("ws", 100)
    await store.hold("ws", hold("a", 100))
    await store.release_reservation("ws", "a")
    await store.release_reservation("ws", "a")
    assert (await store.ledger_get("ws")).reserved == 0
    assert (await store.hold("ws", hold("b", 100, minimum=100))).granted == 100
    result = (await store.settle("ws", "a", 10, [])).commit  # released: nothing held for it
    assert result.charged == 0


async def test_ledger_add_tops_up(store: Store) -> None:
    await store.ledger_init("ws", 100)
    await store.hold("ws", hold("a", 100))
    await store.settle("ws", "a", 100, [])
    assert (await store.hold("ws", hold("b", 10))).granted == 0
    state = await store.ledger_add("ws", 50)
    assert state.budget == 150
    assert (await store.hold("ws", hold("b", 50))).granted == 50


async def test_concurrent_holds_never_oversubscribe(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    results = await asyncio.gather(*(store.hold("ws", hold(f"r{i}", 70)) for i in range(40)))
    granted = sum(r.granted for r in results)
    assert granted == 14 * 70  # all or nothing: 14 holds of 70 fit in 1000
    assert (await store.ledger_get("ws")).reserved == granted


async def test_a_waiting_hold_is_not_overtaken_by_a_later_one(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    await store.hold("ws", hold("running", 800))
    assert (await store.hold("ws", hold("big", 500))).granted == 0  # waits in line
    # 200 are free, but the hold ahead in line waits for them: a later one may not take them.
    assert (await store.hold("ws", hold("late", 100))).granted == 0
    await store.settle("ws", "running", 300, [])
    # 700 are free now: "big" comes first, what it leaves may go to a later hold.
    assert (await store.hold("ws", hold("late", 300))).granted == 0
    assert (await store.hold("ws", hold("late", 200))).granted == 200
    assert (await store.hold("ws", hold("big", 500))).granted == 500


async def test_the_waiting_line_is_ordered_by_priority_first(store: Store) -> None:
    await store.ledger_init("ws", 1000)
    await store.hold("ws", hold("running", 900))
    assert (await store.hold("ws", hold("low", 600, priority=0))).granted == 0
    assert (await store.hold("ws", hold("high", 600, priority=2))).granted == 0
    await store.settle("ws", "running", 0, [])
    assert (await store.hold("ws", hold("low", 600, priority=0))).granted == 0
    assert (await store.hold("ws", hold("high", 600, priority=2))).granted == 600
    await store.settle("ws", "high", 600, [])
    assert (await store.hold("ws", hold("low", 400, priority=0))).granted == 400


async def test_a_hold_whose_holder_died_lapses(store: Store) -> None:
    await store.ledger_init("ws", 100)
    await store.hold("ws", hold("dead", 100, ttl_s=0.2))
    assert (await store.hold("ws", hold("next", 50))).granted == 0
    await asyncio.sleep(0.3)
    assert (await store.hold("ws", hold("next", 50))).granted == 50
    assert (await store.ledger_get("ws")).reserved == 50
    late = (await store.settle("ws", "dead", 80, [])).commit  # the dead holder's late settle
    assert late.charged == 50 and late.committed == 50  # never into another call's hold


async def test_hold_appends_its_events_with_the_hold_or_neither(store: Store) -> None:
    await store.ledger_init("ws", 100)
    await store.append("ws", "r1", [ev("run_queued")], 0)
    granted = await store.hold(
        "ws", hold("r1:1", 80), run="r1", events=[ev("model_call", step=1)], expected_version=1
    )
    assert granted.granted == 80 and [e.type for e in granted.events] == ["model_call"]
    assert granted.events[0].seq == 2 and await store.run_version("r1") == 2
    refused = await store.hold(
        "ws", hold("r1:2", 80), run="r1", events=[ev("model_call", step=2)], expected_version=2
    )
    assert refused.granted == 0 and refused.events == []
    assert await store.head("ws") == 2
    with pytest.raises(VersionConflict):
        await store.hold(
            "ws", hold("r1:3", 10), run="r1", events=[ev("model_call", step=3)], expected_version=1
        )
    assert (await store.ledger_get("ws")).reserved == 80  # the stale writer held nothing
    routed = await store.hold(  # high priority: ahead of "r1:2" in line
        "ws", hold("gw:1", 10, priority=2), events=[ev("routed", to="local")]
    )
    assert routed.granted == 10 and routed.events[0].run is None


async def test_settle_appends_when_the_run_is_current_and_charges_either_way(
    store: Store,
) -> None:
    await store.ledger_init("ws", 1000)
    await store.append("ws", "r1", [ev("run_queued")], 0)
    await store.hold(
        "ws", hold("r1:1", 500), run="r1", events=[ev("model_call")], expected_version=1
    )
    settled = await store.settle(
        "ws",
        "r1:1",
        120,
        [0.1],
        run="r1",
        events=[ev("model_result"), ev("completed")],
        expected_version=2,
    )
    assert not settled.conflict and [e.seq for e in settled.events] == [3, 4]
    assert settled.commit.charged == 120 and settled.commit.thresholds_crossed == (0.1,)
    assert await store.active_runs() == []
    await store.append("ws", "r2", [ev("run_queued")], 0)
    await store.hold(
        "ws", hold("r2:1", 500), run="r2", events=[ev("model_call")], expected_version=1
    )
    await store.append("ws", "r2", [ev("cancelled")], 2)
    stale = await store.settle(
        "ws", "r2:1", 70, [], run="r2", events=[ev("model_result")], expected_version=2
    )
    assert stale.conflict and stale.events == [] and stale.commit.charged == 70
    assert [e.type for e in await store.read("ws", 0, None, 100, "r2")] == [
        "run_queued",
        "model_call",
        "cancelled",
    ]
    assert (await store.ledger_get("ws")).committed == 190


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
