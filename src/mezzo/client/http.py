"""The SDK over HTTP: httpx for requests, a WebSocket for events that resumes after a drop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import websockets
from pydantic import BaseModel

from mezzo import errors
from mezzo.files.models import FileInfo
from mezzo.protocol import (
    CLOSE_BEHIND,
    CreateWorkspace,
    Event,
    RunAccepted,
    RunView,
    SubmitRun,
    ToolResultsIn,
    Workspace,
)

M = TypeVar("M", bound=BaseModel)

# The answer's status → the error category the SDK raises (the reverse of the server's table,
# mezzo.server.status.STATUS; tests/server/test_errors.py keeps the two in agreement).
_BY_STATUS: dict[int, type[errors.MezzoError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    422: errors.BadRequest,
    429: errors.TooManyRequests,
    503: errors.Unavailable,
}


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message, detail = body.get("error", response.text), body.get("detail")
    except ValueError:
        message, detail = response.text or response.reason_phrase, None
    category = _BY_STATUS.get(response.status_code, errors.MezzoError)
    raise category(message, detail, status=response.status_code)


class HttpTransport:
    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, trust_env=False
        )

    async def _call(
        self,
        method: str,
        path: str,
        model: type[M],
        body: BaseModel | None = None,
        headers: dict[str, str] | None = None,
    ) -> M:
        content = body.model_dump_json(exclude_none=True) if body is not None else None
        response = await self.client.request(
            method,
            path,
            content=content,
            headers={"content-type": "application/json", **(headers or {})},
        )
        _raise_for(response)
        return model.model_validate(response.json())

    async def create_workspace(self, body: CreateWorkspace) -> Workspace:
        return await self._call("POST", "/v1/workspaces", Workspace, body)

    async def get_workspace(self, workspace: str) -> Workspace:
        return await self._call("GET", f"/v1/workspaces/{workspace}", Workspace)

    async def submit(
        self, workspace: str, body: SubmitRun, idempotency_key: str | None
    ) -> RunAccepted:
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        return await self._call(
            "POST", f"/v1/workspaces/{workspace}/runs", RunAccepted, body, headers
        )

    async def get_run(self, run: str) -> RunView:
        return await self._call("GET", f"/v1/runs/{run}", RunView)

    async def cancel(self, run: str, reason: str) -> RunView:
        from mezzo.protocol import CancelIn

        return await self._call("POST", f"/v1/runs/{run}/cancel", RunView, CancelIn(reason=reason))

    async def tool_results(self, run: str, body: ToolResultsIn) -> RunView:
        return await self._call("POST", f"/v1/runs/{run}/tool_results", RunView, body)

    async def input(self, run: str, text: str) -> RunView:
        from mezzo.protocol import InputIn

        return await self._call("POST", f"/v1/runs/{run}/input", RunView, InputIn(text=text))

    async def throttle(self, workspace: str, rate: float) -> Workspace:
        from mezzo.protocol import ThrottleIn

        return await self._call(
            "POST", f"/v1/workspaces/{workspace}/throttle", Workspace, ThrottleIn(rate=rate)
        )

    async def add_budget(self, workspace: str, tokens: int) -> Workspace:
        from mezzo.protocol import BudgetIn

        return await self._call(
            "POST", f"/v1/workspaces/{workspace}/budget", Workspace, BudgetIn(add_tokens=tokens)
        )

    async def events(self, workspace: str, after: int, types: Sequence[str] | None) -> list[Event]:
        params: dict[str, Any] = {"after": after}
        if types:
            params["types"] = ",".join(types)
        response = await self.client.get(f"/v1/workspaces/{workspace}/events", params=params)
        _raise_for(response)
        return [Event.model_validate(item) for item in response.json()]

    def _ws_url(self, workspace: str, after: int, types: Sequence[str] | None) -> str:
        params: dict[str, Any] = {"after": after}
        if types:
            params["types"] = ",".join(types)
        base = "ws" + self.url.removeprefix("http")
        return f"{base}/v1/workspaces/{workspace}/events?{urlencode(params)}"

    async def subscribe(
        self, workspace: str, after: int, types: Sequence[str] | None
    ) -> AsyncIterator[Event]:
        """Events after `after`, forever; reconnects after a drop from the last seq seen, so
        nothing is missed or repeated: at once when the server closed the socket with
        `CLOSE_BEHIND` (this client read slower than events came), after a backoff otherwise."""
        cursor = after
        delay = 0.1
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        while True:
            try:
                async with websockets.connect(
                    self._ws_url(workspace, cursor, types),
                    additional_headers=headers,
                    max_size=16 * 1024 * 1024,
                ) as socket:
                    delay = 0.1
                    async for frame in socket:
                        event = Event.model_validate(json.loads(frame))
                        if event.seq is not None:
                            if event.seq <= cursor:
                                continue
                            cursor = event.seq
                        yield event
            except websockets.InvalidStatus as exc:
                status = exc.response.status_code
                raise _BY_STATUS.get(status, errors.MezzoError)(
                    f"event stream refused: HTTP {status}", status=status
                ) from None
            except websockets.ConnectionClosedError as exc:
                if exc.rcvd is not None and exc.rcvd.code == CLOSE_BEHIND:
                    continue  # cut off for reading too slowly: resume from `cursor` at once
                if exc.rcvd is not None and 4000 <= exc.rcvd.code < 5000:
                    status = exc.rcvd.code - 4000
                    category = _BY_STATUS.get(status, errors.MezzoError)
                    raise category(exc.rcvd.reason, status=status) from None
            except (OSError, websockets.ConnectionClosed):
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def attach(self, workspace: str, path: Path) -> FileInfo:
        from mezzo.client.transport import read_chunks

        response = await self.client.post(
            f"/v1/workspaces/{workspace}/files",
            params={"name": path.name},
            content=read_chunks(path),
            headers={"content-type": "application/octet-stream"},
            timeout=None,
        )
        _raise_for(response)
        return FileInfo.model_validate(response.json())

    async def aclose(self) -> None:
        await self.client.aclose()
