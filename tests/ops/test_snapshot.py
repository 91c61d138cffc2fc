"""Snapshots: loading from a snapshot folds to the same state as the whole log, and a long
run's store grows by what each step adds, not by its whole history."""

from __future__ import annotations

from pathlib import Path

from ops_support import run_loop, sqlite_bytes, tick_tools, tick_workspace

from core_support import core_settings
from mezzo import keys
from mezzo.engine.snapshot import (
    dump_state,
    load_run,
    read_snapshot,
    snapshot_key,
    write_snapshot,
)
from mezzo.engine.state import fold_new
from mezzo.service import Mezzo
from mezzo.stub.server import StubServer


async def test_snapshot_state_equals_a_full_fold(tmp_path: Path, stub: StubServer) -> None:
    mezzo = Mezzo(core_settings(tmp_path, stub, snapshot_every=7), tools=tick_tools())
    await mezzo.start()
    try:
        await tick_workspace(mezzo, "w")
        key = keys.workspace_key("local", "w")  # where the store keeps the local tenant's "w"
        run = await run_loop(mezzo, "w", 12)
        snapshot = await read_snapshot(mezzo.store, key, run)
        assert snapshot is not None and snapshot.version > 0
        full = await load_run(mezzo.store, key, run, every=0)
        assert full.status == "completed" and full.steps == 12
        # The engine's snapshot is the fold of the events up to its version.
        upto = await mezzo.store.read(key, 0, None, snapshot.version, run)
        assert dump_state(snapshot) == dump_state(fold_new(run, key, upto))
        # From a snapshot in the middle of the run plus the events after it: the same state,
        # field by field (the last snapshot the engine wrote may be the final state itself).
        middle = fold_new(run, key, await mezzo.store.read(key, 0, None, full.version // 2, run))
        assert 0 < middle.version < full.version
        await write_snapshot(mezzo.store, middle)
        assert dump_state(await load_run(mezzo.store, key, run, every=7)) == dump_state(full)
        assert dump_state(await mezzo.engine.load(key, run)) == dump_state(full)  # type: ignore[union-attr]
    finally:
        await mezzo.stop()


async def test_a_damaged_snapshot_costs_a_full_fold_not_a_wrong_state(
    tmp_path: Path, stub: StubServer
) -> None:
    mezzo = Mezzo(core_settings(tmp_path, stub, snapshot_every=5), tools=tick_tools())
    await mezzo.start()
    try:
        await tick_workspace(mezzo, "w")
        key = keys.workspace_key("local", "w")
        run = await run_loop(mezzo, "w", 6)
        full = await load_run(mezzo.store, key, run, every=0)
        await mezzo.store.kv_put(
            snapshot_key(run), {"format": 1, "workspace": key, "state": {"run": run}}
        )
        assert dump_state(await load_run(mezzo.store, key, run, every=5)) == dump_state(full)
    finally:
        await mezzo.stop()


async def test_store_grows_linearly_with_steps(tmp_path: Path, stub: StubServer) -> None:
    """Bytes per step of the second half of the runs are no more than of the first half."""
    sizes = {}
    for steps in (20, 40, 80):
        data = tmp_path / f"s{steps}"
        mezzo = Mezzo(core_settings(data, stub, snapshot_every=25), tools=tick_tools())
        await mezzo.start()
        try:
            await tick_workspace(mezzo, "w")
            await run_loop(mezzo, "w", steps)
        finally:
            await mezzo.stop()
        sizes[steps] = sqlite_bytes(data / "mezzo.sqlite3")
    early = (sizes[40] - sizes[20]) / 20
    late = (sizes[80] - sizes[40]) / 40
    assert early > 0
    # Re-storing the history at every step would make `late` about twice `early`.
    assert late < early * 1.5, sizes
