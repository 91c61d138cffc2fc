"""The JSON depth check in front of every route (`mezzo.server.json_body.nests_deeper_than`)
against parsing the same body (`json.loads`, the same-run baseline), for a typical submit, the
largest bodies the server takes (1 MiB) nested wide, to the limit and far past it, and one heavy
in strings and escapes; plus the check's whole ASGI layer around a no-op app.

    .venv/bin/python bench/json_depth_bench.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mezzo.bounds import MAX_JSON_DEPTH  # noqa: E402
from mezzo.server.json_body import JsonDepthLimit, nests_deeper_than  # noqa: E402

MIB = 1 << 20


def bodies() -> dict[str, bytes]:
    wide = json.dumps([{"k": [1, 2, {"v": "x"}]} for _ in range(MIB // 28)]).encode()
    inner = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
    at_limit = b"[" + b",".join([inner] * (MIB // (len(inner) + 1))) + b"]"
    texty = json.dumps([{"text": 'a "quoted" [line]\n\\' * 8} for _ in range(4000)]).encode()
    return {
        "submit (18 B)": b'{"input": "hello"}',
        "1 MiB, wide (depth 4)": wide,
        f"1 MiB, nested {MAX_JSON_DEPTH} deep": at_limit,
        "1 MiB, nested 500k deep": b"[" * (MIB // 2) + b"]" * (MIB // 2),
        f"{len(texty) // 1024} KiB of strings and escapes": texty,
    }


def best(function: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except RecursionError:  # what a body nested this deep does to a parser
        return None


async def layer_cost(body: bytes, rounds: int) -> tuple[float, float]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": "/v1/workspaces/w/runs", "headers": []}
    costs = []
    for target in (app, JsonDepthLimit(app)):
        started = time.perf_counter()
        for _ in range(rounds):
            await target(scope, receive, send)
        costs.append((time.perf_counter() - started) / rounds)
    return costs[0], costs[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'body':34} {'check':>10} {'json.loads':>11} {'ratio':>7}  verdict")
    for name, body in bodies().items():
        check = best(lambda b=body: nests_deeper_than(b), args.repeat)  # type: ignore[misc]
        loads = best(lambda b=body: parse(b), args.repeat)  # type: ignore[misc]
        verdict = "refused" if nests_deeper_than(body) else "passed"
        print(
            f"{name:34} {check * 1e3:8.3f}ms {loads * 1e3:9.3f}ms {check / loads:6.2f}×  {verdict}"
        )
    bare, layered = asyncio.run(layer_cost(b'{"input": "hello"}', 100_000))
    print(
        f"ASGI layer around a no-op app, submit body: {bare * 1e6:.2f} µs → {layered * 1e6:.2f} µs"
        f" (+{(layered - bare) * 1e6:.2f} µs per request)"
    )


if __name__ == "__main__":
    main()
