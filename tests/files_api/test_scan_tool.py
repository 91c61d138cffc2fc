"""`scan_infrastructure` sees only what the workspace owns: its attached files or the folder
the operator configured for it; off for tenants the operator has not enabled; and its answers
never tell whether some other server path exists."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx

from core_support import ServerThread, core_settings

FIXTURE = Path(__file__).parents[1] / "threatscan" / "fixtures" / "terraform"


def tool_output(client: httpx.Client, workspace: str, arguments: dict[str, str]) -> str:
    task = f"scan\n/call scan_infrastructure {json.dumps(arguments)}"
    run = client.post(f"/v1/workspaces/{workspace}/runs", json={"input": task}).json()["run"]
    deadline = time.monotonic() + 30
    while client.get(f"/v1/runs/{run}").json()["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    events = client.get(f"/v1/workspaces/{workspace}/events").json()
    results = [e["data"] for e in events if e["type"] == "tool_result" and e["run"] == run]
    return str(results[-1]["output"])


def workspace(client: httpx.Client, name: str) -> None:
    tools = [{"name": "scan_infrastructure", "side": "server"}]
    assert client.post("/v1/workspaces", json={"id": name, "tools": tools}).status_code in (
        200,
        201,
    )


def test_off_unless_the_operator_enables_it(stub, tmp_path: Path) -> None:
    with (
        ServerThread(core_settings(tmp_path / "data", stub)) as server,
        httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client,
    ):
        workspace(client, "w")
        out = tool_output(client, "w", {"target": "/etc"})
    assert out.startswith("error: scan_infrastructure is not enabled for this tenant"), out


def test_only_the_workspace_folder_and_its_attached_files(stub, tmp_path: Path) -> None:
    folder = tmp_path / "iac"
    shutil.copytree(FIXTURE, folder)
    (folder / "escape").symlink_to("/etc")
    settings = core_settings(
        tmp_path / "data", stub, scan_tenants=["*"], scan_folders={"local/w": folder}
    )
    with (
        ServerThread(settings) as server,
        httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client,
    ):
        workspace(client, "w")
        workspace(client, "other")
        inside = tool_output(client, "w", {"target": ".", "depth": "quick"})
        assert "finding" in inside.lower() and str(folder) not in inside, inside
        refusals = {
            target: tool_output(client, "w", {"target": target})
            for target in ("/etc", "/no/such/path", "../../../../etc", "escape", str(folder))
        }
        for target, out in refusals.items():
            assert out == (
                f"error: target {target!r} is not inside this workspace's scan folder; use "
                "'files' for its attached files or a relative path inside the folder"
            ), out
        assert tool_output(client, "other", {"target": "."}).startswith(
            "error: no scan folder is configured for this workspace"
        )
        main_tf = next(FIXTURE.rglob("*.tf"))
        uploaded = client.post(
            "/v1/workspaces/other/files", params={"name": "main.tf"}, content=main_tf.read_bytes()
        )
        assert uploaded.status_code == 201, uploaded.text
        attached = tool_output(client, "other", {"target": "files", "depth": "quick"})
        assert not attached.startswith("error"), attached
        assert attached.splitlines()[0] == inside.splitlines()[0] or "finding" in attached.lower()
