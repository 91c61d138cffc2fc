"""Named images (`debian:SUITE`) resolve to built folders in the cache; unknown ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sandbox_support import tiny_rootfs
from typer.testing import CliRunner

from mezzo.cli import app
from mezzo.sandbox.runner import Sandbox
from mezzo.sandbox.spec import SandboxSpec, SpecError

runner = CliRunner()


@pytest.fixture
def image_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEZZO_SANDBOX_IMAGES", str(tmp_path / "images"))
    return tmp_path / "images"


async def test_a_built_image_is_used_by_name(sandbox: Sandbox, image_cache: Path) -> None:
    with pytest.raises(SpecError, match="mezzo sandbox image build debian:tiny"):
        SandboxSpec.build(image="debian:tiny")
    tiny_rootfs(image_cache / "debian-tiny")
    spec = SandboxSpec.build(image="debian:tiny")
    assert spec.image == str(image_cache / "debian-tiny")
    result = await sandbox.run("read name < /etc/image-name; echo $name", spec)
    assert result.stdout == "tiny\n"
    listed = runner.invoke(app, ["sandbox", "image", "list"])
    assert listed.stdout.split() == ["debian:tiny", str(image_cache / "debian-tiny")]


@pytest.mark.parametrize("name", ["ubuntu:noble", "debian:", "debian:Bookworm", "debian:../x"])
def test_bad_image_names_are_refused(image_cache: Path, name: str) -> None:
    done = runner.invoke(app, ["sandbox", "image", "build", name])
    assert done.exit_code == 2 and done.stderr.startswith("error: unknown image name")
    exec_done = runner.invoke(app, ["sandbox", "exec", "--sandbox", name, "--", "true"])
    assert exec_done.exit_code == 2 and "unknown image" in exec_done.stderr


def test_building_without_debootstrap_says_what_to_install(
    image_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no debootstrap here, installed or not
    done = runner.invoke(app, ["sandbox", "image", "build", "debian:bookworm"])
    assert done.exit_code == 2
    assert done.stderr == "error: debootstrap is not installed: apt-get install debootstrap\n"
    assert not (image_cache / "debian-bookworm").exists()
