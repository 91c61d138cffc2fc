"""mezzo's own OpenAPI spec, fuzzed by schemathesis against a real loopback server.

`schemathesis run --checks all` (every phase: coverage, fuzzing, stateful) over the whole API
with an admin key: on mezzo's own operations no failure of any check but the few schema-valid
requests that the server's state or configuration decides (each listed in `DECIDED_BY_STATE`
with why); on the gateway's (its own docs and statuses are the gateway's) no server error and
conformance to its schema. Without a key: no server error anywhere and no failure at all on
mezzo's own operations. Also, per operation, hypothesis-generated cases through the Python API.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from core_support import ServerThread, core_settings  # noqa: E402
from mezzo.server.auth import create_key  # noqa: E402
from mezzo.stub.config import StubConfig  # noqa: E402
from mezzo.stub.server import StubServer  # noqa: E402

CHECKS = (not_a_server_error, response_schema_conformance, content_type_conformance)
GATEWAY_PATHS = r"^/v1/(models|responses|chat)"
# Schema-valid requests that the server refuses because of its state or configuration, not their
# form (schemathesis' ST202, "schema-valid request rejected"), each by design and recognised by
# the error it answers with:
DECIDED_BY_STATE = {
    # a cursor beyond the head of the log: 400, so that a client with a stale cursor (a store
    # that was reset) learns it; the dashboard resets on it
    "GET /v1/workspaces/{workspace}/events": r"is beyond the head of the log",
    # a route or server-side tool this server is not configured with (400 naming what it has),
    # or two tools of one name (a rule JSON Schema cannot state)
    "POST /v1/workspaces": r"^unknown route |^unknown server-side tool |tool names must be unique",
    # bytes that are not the file's format (an empty file): 422 saying why
    "POST /v1/workspaces/{workspace}/files": r": the file is empty$",
}


@dataclass(frozen=True)
class Failure:
    code: str
    operation: str
    status: int | None
    error: str

    def by_design(self) -> bool:
        pattern = DECIDED_BY_STATE.get(self.operation)
        return (
            self.code == "ST202"
            and pattern is not None
            and re.search(pattern, self.error) is not None
        )


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, str]]:
    data = Path(tmp_path_factory.mktemp("fuzz"))
    with (
        StubServer(StubConfig()) as stub,
        ServerThread(core_settings(data, stub), workers=False) as server,
    ):
        key = server.call(create_key(server.mezzo.store, "fuzz", admin=True))
        yield server, key


def run_cli(
    url: str, reports: Path, *args: str, key: str | None = None
) -> tuple[dict[str, Any], list[Failure], str]:
    """`schemathesis run` with every check and phase: its summary, every failed check (with the
    status and error it answered) and its output."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "25",
        "--seed",
        "19",
        "--workers",
        "1",
        "--no-color",
        "--report",
        "json,ndjson",
        "--report-dir",
        str(reports),
        *args,
    ]
    if key is not None:
        command += ["-H", f"Authorization: Bearer {key}"]
    # Run from the report folder: schemathesis keeps a `.schemathesis/` cache in its working
    # directory, which must not land in the checkout (a run would then replay the last one's).
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=reports
    )
    written = {path.suffix: path for path in reports.glob("*.*json")}
    assert {".json", ".ndjson"} <= set(written), done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(written[".json"].read_text())
    return summary, failed_checks(written[".ndjson"]), done.stdout


def failed_checks(events: Path) -> list[Failure]:
    failed = []
    for line in events.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if finished is None:
            continue
        recorder = finished["recorder"]
        for case, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check.get("status") == "success":
                    continue
                failure = check["failure_info"]["failure"]
                response = recorder["interactions"].get(case, {}).get("response") or {}
                failed.append(
                    Failure(
                        failure["code"],
                        failure["operation"],
                        response.get("status_code"),
                        _error_of(response.get("content")),
                    )
                )
    return failed


def _error_of(content: Any) -> str:
    """The `error` of a JSON error body as schemathesis recorded it ("" for anything else)."""
    if not isinstance(content, dict) or "$base64" not in content:
        return ""
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(base64.b64decode(content["$base64"])).get("error", ""))
    return ""


def gateway(failure: Failure) -> bool:
    return re.match(GATEWAY_PATHS, failure.operation.partition(" ")[2]) is not None


def test_every_check_over_mezzos_own_api(
    keyed_server: tuple[ServerThread, str], tmp_path: Path
) -> None:
    server, key = keyed_server
    summary, failed, output = run_cli(
        server.url, tmp_path, "--exclude-path-regex", GATEWAY_PATHS, key=key
    )
    assert summary["operations"]["tested"] >= 20 and summary["test_cases"]["generated"] > 500
    assert not [f for f in failed if f.code == "ST101"], output[-6000:]
    unexpected = sorted({f for f in failed if not f.by_design()}, key=str)
    assert not unexpected, f"{unexpected}\n{output[-8000:]}"


def test_no_server_error_on_the_gateway(
    keyed_server: tuple[ServerThread, str], tmp_path: Path
) -> None:
    server, key = keyed_server
    summary, failed, output = run_cli(
        server.url, tmp_path, "--include-path-regex", GATEWAY_PATHS, key=key
    )
    assert summary["operations"]["tested"] >= 4
    assert not [f for f in failed if f.code == "ST101"], output[-6000:]
    # What the whole API was held to before (the Python-API fuzzing below): conformance.
    assert not [f for f in failed if f.code in ("ST102", "ST104", "ST105")], output[-6000:]


def test_every_check_without_a_key(keyed_server: tuple[ServerThread, str], tmp_path: Path) -> None:
    """Over the whole API: no server error; on mezzo's own operations, no failure at all."""
    _, failed, output = run_cli(keyed_server[0].url, tmp_path)
    assert not [f for f in failed if f.code == "ST101"], output[-6000:]
    own = sorted({f for f in failed if not gateway(f)}, key=str)
    assert not own, f"{own}\n{output[-8000:]}"


@pytest.fixture(scope="module")
def api_schema(keyed_server: tuple[ServerThread, str]) -> Any:
    server, _ = keyed_server
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fuzz(
    schema: Any, base_url: str, headers: dict[str, str], *, with_gateway: bool = True
) -> tuple[list[str], list[int]]:
    """Every operation of the spec (the gateway's too unless told not to), hypothesis-generated
    cases; the failures and statuses seen."""
    failures: list[str] = []
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not with_gateway and re.match(GATEWAY_PATHS, operation.path):
            continue
        with contextlib.suppress(AssertionError):  # recorded in `failures`, reported at once
            fuzz_operation(operation, base_url, headers, failures, statuses)
    return failures, statuses


def fuzz_operation(
    operation: Any, base_url: str, headers: dict[str, str], failures: list[str], statuses: list[int]
) -> None:
    @FUZZ
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers)
        statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except AssertionError as exc:  # schemathesis' failures are AssertionErrors
            failures.append(f"{operation.label}: {str(exc)[:600]}")
            raise

    check()


def test_with_an_admin_key(api_schema: Any, keyed_server: tuple[ServerThread, str]) -> None:
    """mezzo's own operations; the gateway's are held to the same checks by the CLI run above."""
    server, key = keyed_server
    headers = {"authorization": f"Bearer {key}"}
    failures, statuses = fuzz(api_schema, server.url, headers, with_gateway=False)
    assert not failures, "\n".join(failures)
    assert any(200 <= s < 300 for s in statuses)


def test_without_a_key(api_schema: Any, keyed_server: tuple[ServerThread, str]) -> None:
    failures, statuses = fuzz(api_schema, keyed_server[0].url, {})
    assert not failures, "\n".join(failures)
    assert statuses.count(401) > len(statuses) // 2
