"""A gateway call's admission by the governor (the same `Governor.admit` a run's model step
passes), after the waits it asks for.

A request the governor asks to wait (a rate limit, budget held by other calls) waits here,
bounded, and is refused with a 429 past that; a spent budget is a 429 `insufficient_quota`.
Each kind of wait is logged to the workspace once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from mezzo.gateway.callers import Caller
from mezzo.gateway.errors import WireError, exhausted, waited_too_long
from mezzo.governor.governor import Admission, Call, Exhausted, Governor
from mezzo.governor.router import RoutingError
from mezzo.protocol import NewEvent
from mezzo.providers.base import ModelRequest
from mezzo.store.base import Store

# Longest a request waits, in all, on the primary's rate limit and on budget other calls hold.
MAX_WAIT_S = {"rate_limit": 60.0, "throttle": 60.0, "budget": 30.0}


async def admit(
    governor: Governor,
    store: Store,
    caller: Caller,
    route_name: str,
    request: ModelRequest,
    hold_id: str,
) -> Admission:
    """The governor's admission; raises WireError when the budget is spent or a wait would
    be too long."""
    call = Call(caller.record, request, route_name, caller.priority, hold_id)
    waited: dict[str, float] = {}

    async def log(event: NewEvent) -> None:
        await store.append(caller.record.id, None, [event], None, durable=False)

    try:
        while True:
            try:
                admitted = await governor.admit(call)
            except RoutingError as exc:
                raise WireError(400, str(exc), "invalid_route") from None
            if isinstance(admitted, Admission):
                return admitted
            if isinstance(admitted, Exhausted):
                await log(admitted.event)
                raise exhausted(admitted)
            so_far = waited.get(admitted.reason)
            if so_far is None:
                await log(admitted.event)
                so_far = 0.0
            if so_far + admitted.seconds > MAX_WAIT_S.get(admitted.reason, 60.0):
                raise waited_too_long(admitted)
            started = time.monotonic()
            if admitted.reason == "budget":
                await governor.wait_for_budget(caller.record.id, admitted.seconds)
                call = replace(call, waits=call.waits + 1)
            else:
                await asyncio.sleep(admitted.seconds)
            waited[admitted.reason] = so_far + time.monotonic() - started
    except BaseException:
        if "budget" in waited:  # it stood in the budget's line: leave it
            await asyncio.shield(governor.abandon(call))
        raise
