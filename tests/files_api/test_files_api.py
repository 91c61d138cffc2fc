"""Attached files over the API: streamed upload, listing, bad input, and an agent run that
reads exactly the slice it asks for through a file tool."""

from __future__ import annotations

import gzip
import time
import zlib
from pathlib import Path

import httpx

from core_support import ServerThread
from mezzo import AgentWorkspace


def fasta(path: Path) -> str:
    seq = "".join("ACGTN"[(i * 7 + i // 13) % 5] for i in range(5000))
    lines = [seq[i : i + 60] for i in range(0, len(seq), 60)]
    path.write_text(">chr1 test\n" + "\n".join(lines) + "\n>chr2\nACGTACGTAC\n")
    return seq


def wait_done(client: httpx.Client, run: str) -> dict:
    deadline = time.monotonic() + 30
    while (body := client.get(f"/v1/runs/{run}").json())["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def test_upload_list_and_an_agent_reads_exactly_the_slice(
    server: ServerThread, tmp_path: Path
) -> None:
    seq = fasta(tmp_path / "genome.fa")
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
        client.post("/v1/workspaces", json={"id": "bio"})
        with (tmp_path / "genome.fa").open("rb") as handle:
            response = client.post(
                "/v1/workspaces/bio/files", params={"name": "genome.fa"}, content=handle
            )
        assert response.status_code == 201, response.text
        info = response.json()
        assert info["format"] == "fasta" and info["size"] == (tmp_path / "genome.fa").stat().st_size
        assert [f["id"] for f in client.get("/v1/workspaces/bio/files").json()] == [info["id"]]
        task = f'slice please\n/call fetch_sequence {{"file_id": "{info["id"]}", "region": "chr1:1001-1100"}}'
        run = client.post("/v1/workspaces/bio/runs", json={"input": task}).json()["run"]
        body = wait_done(client, run)
        assert body["status"] == "completed", body
        events = client.get("/v1/workspaces/bio/events").json()
        (result,) = [e["data"] for e in events if e["type"] == "tool_result"]
        assert not result["is_error"]
        assert result["output"].splitlines()[1] == seq[1000:1100]
        model_call = next(e for e in events if e["type"] == "model_call")
        assert model_call["data"]["estimated_input_tokens"] < 2000, "the file went into the context"
        assert client.delete(f"/v1/workspaces/bio/files/{info['id']}").status_code == 204
        assert client.get(f"/v1/workspaces/bio/files/{info['id']}").status_code == 404


def test_bad_uploads_fail_cleanly_and_leave_nothing(server: ServerThread, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
        client.post("/v1/workspaces", json={"id": "bad"})
        binary = client.post(
            "/v1/workspaces/bad/files",
            params={"name": "x.fa"},
            content=b">r1\n\x00\x01\x02\xff" * 100,
        )
        assert binary.status_code == 422 and "x.fa" in binary.json()["error"]
        truncated = gzip.compress(b">r1\nACGT\n" * 1000)[:-20]
        cut = client.post("/v1/workspaces/bad/files", params={"name": "y.fa.gz"}, content=truncated)
        assert cut.status_code == 422 and "y.fa.gz" in cut.json()["error"]
        assert client.post("/v1/workspaces/bad/files", content=b"x").status_code == 422
        assert (
            client.post(
                "/v1/workspaces/nope/files", params={"name": "a.txt"}, content=b"x"
            ).status_code
            == 404
        )
        assert client.get("/v1/workspaces/bad/files").json() == []
        assert client.get("/v1/workspaces/bad/files/../../etc").status_code == 404


async def test_sdk_attach_and_a_slice_out_of_range_is_reported_to_the_model(
    server: ServerThread, tmp_path: Path
) -> None:
    fasta(tmp_path / "g.fa")
    workspace = await AgentWorkspace.create(id="sdkfiles", url=server.url)
    info = await workspace.attach(tmp_path / "g.fa")
    assert info.format.value == "fasta"
    task = f'/call fetch_sequence {{"file_id": "{info.id}", "region": "chr2:5-500"}}'
    accepted = await workspace.submit(task)
    async for event in workspace.subscribe(events=["tool_result"]):
        assert event.data["is_error"] and "chr2" in event.data["output"]
        break
    assert accepted.run
    await workspace.close()


def test_a_decompression_bomb_is_refused_with_413_and_the_limit(stub, tmp_path: Path) -> None:
    from core_support import core_settings

    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join([*(comp.compress(b"0" * (1 << 20)) for _ in range(1024)), comp.flush()])
    assert len(bomb) < 1_100_000  # about 1 MB on the wire, 1 GiB inflated
    settings = core_settings(tmp_path / "data", stub, max_inflated_bytes=64 << 20)
    with (
        ServerThread(settings) as server,
        httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client,
    ):
        client.post("/v1/workspaces", json={"id": "bombs"})
        refused = client.post(
            "/v1/workspaces/bombs/files", params={"name": "b.txt.gz"}, content=bomb
        )
        assert refused.status_code == 413, refused.text
        assert "b.txt.gz: inflates more than 200 times" in refused.json()["error"]
        # below the ratio, the inflated-size cap answers, naming its limit
        text = b"".join(b"%08d some log line\n" % i for i in range(24_000_000 // 25))
        big = gzip.compress(text * 4, compresslevel=1)
        refused = client.post(
            "/v1/workspaces/bombs/files", params={"name": "c.txt.gz"}, content=big
        )
        assert refused.status_code == 413, refused.text
        assert "inflates past the limit of 67108864 bytes" in refused.json()["error"]
        assert client.get("/v1/workspaces/bombs/files").json() == []
        ok = client.post(
            "/v1/workspaces/bombs/files", params={"name": "d.txt.gz"}, content=gzip.compress(text)
        )
        assert ok.status_code == 201, ok.text
