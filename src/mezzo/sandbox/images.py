"""Named root filesystems for `--sandbox=debian:bookworm`, built with debootstrap into a cache."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

IMAGE_NAME = re.compile(r"^debian:([a-z]+)$")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What a sandbox image needs beyond minbase: Python for run_code, socat for the egress bridge,
# GNU time for peak memory, CA certificates for HTTPS through the proxy.
IMAGE_PACKAGES = ("python3", "socat", "time", "ca-certificates")


class ImageError(ValueError):
    """An image name that is not known or cannot be built."""


def images_dir() -> Path:
    configured = os.environ.get("MEZZO_SANDBOX_IMAGES")
    if configured:
        return Path(configured)
    from mezzo.config import default_data_dir

    return default_data_dir() / "sandbox-images"


def image_path(name: str) -> Path:
    if not IMAGE_NAME.match(name):
        raise ImageError(f"unknown image name {name!r}: use debian:SUITE, e.g. debian:bookworm")
    return images_dir() / name.replace(":", "-")


def resolve(name: str) -> Path | None:
    """The built root folder for `name`, or None when it has not been built here."""
    path = image_path(name)
    return path if path.is_dir() else None


def built_images() -> list[str]:
    folder = images_dir()
    if not folder.is_dir():
        return []
    return sorted(entry.name.replace("-", ":", 1) for entry in folder.iterdir() if entry.is_dir())


def build(name: str, mirror: str = DEFAULT_MIRROR) -> Path:
    """debootstrap `name` into the cache (a temporary folder first, renamed when complete)."""
    target = image_path(name)
    suite = name.split(":", 1)[1]
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageError("debootstrap is not installed: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise ImageError("building an image with debootstrap needs root")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={','.join(IMAGE_PACKAGES)}",
             suite, str(staging), mirror],
            check=True,
        )  # fmt: skip
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except subprocess.CalledProcessError as exc:
        raise ImageError(f"debootstrap {suite} failed with exit code {exc.returncode}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
