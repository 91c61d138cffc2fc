"""What a sandboxed run may see and use: `SandboxSpec`, validated before anything runs."""

from __future__ import annotations

import itertools
import posixpath
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mezzo.sandbox import images
from mezzo.sandbox.allowlist import validate_pattern

HOST_IMAGE = "host"
PROXY_DIR = "/run/mezzo"
# Targets a mount may not cover or sit inside: the sandbox's own plumbing and the runtime.
RESERVED_TARGETS = (
    "/proc",
    "/dev",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    PROXY_DIR,
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class SpecError(ValueError):
    """A spec that cannot be run, with a one-line reason."""


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


class Mount(BaseModel):
    """A host folder or file made visible at `target`; read-only unless `writable`."""

    model_config = ConfigDict(frozen=True)

    source: Path
    target: str
    writable: bool = False

    @classmethod
    def parse(cls, text: str) -> Mount:
        """`host:path`, `host:path:ro` or `host:path:rw`."""
        parts = text.split(":")
        mode = "ro"
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            mode = parts.pop()
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise SpecError(f"malformed mount {text!r}: use HOST:PATH[:ro|:rw]")
        try:
            return cls(source=Path(parts[0]), target=parts[1], writable=mode == "rw")
        except ValidationError as exc:
            raise SpecError(first_error(exc)) from None

    @field_validator("source")
    @classmethod
    def _source_exists(cls, source: Path) -> Path:
        resolved = source.expanduser().resolve()
        if not resolved.exists():
            raise ValueError(f"mount source {str(source)!r} does not exist")
        return resolved

    @field_validator("target")
    @classmethod
    def _target_absolute(cls, target: str) -> str:
        if not target.startswith("/"):
            raise ValueError(f"mount target {target!r} must be an absolute path")
        normalized = posixpath.normpath(target)
        if normalized == "/":
            raise ValueError("mount target '/' would hide the runtime; pick a folder")
        if normalized != target.rstrip("/") or ".." in target.split("/"):
            raise ValueError(f"mount target {target!r} must be a normalized path")
        for reserved in RESERVED_TARGETS:
            if _inside(normalized, reserved) or _inside(reserved, normalized):
                raise ValueError(f"mount target {target!r} overlaps the sandbox's {reserved}")
        return normalized

    def render(self) -> str:
        return f"{self.source}:{self.target}:{'rw' if self.writable else 'ro'}"


class SandboxSpec(BaseModel):
    """Everything a run may see and use. Defaults are the tight ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str = HOST_IMAGE
    mounts: tuple[Mount, ...] = ()
    workdir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    time_limit_s: Annotated[float, Field(gt=0, le=24 * 3600)] = 30.0
    memory_limit_bytes: Annotated[int, Field(ge=16 * MiB, le=256 * GiB)] = 512 * MiB
    pid_limit: Annotated[int, Field(ge=1, le=65536)] = 256
    output_limit_bytes: Annotated[int, Field(ge=256, le=256 * MiB)] = 1 * MiB
    allow_net: tuple[str, ...] = ()
    allowed_ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = (80, 443)

    @field_validator("image")
    @classmethod
    def _known_image(cls, image: str) -> str:
        if image == HOST_IMAGE:
            return image
        root = Path(image).expanduser()
        if root.is_dir():
            return str(root.resolve())
        if images.IMAGE_NAME.match(image):
            built = images.resolve(image)
            if built is None:
                raise ValueError(
                    f"unknown image {image!r}: build it first with "
                    f"`mezzo sandbox image build {image}`"
                )
            return str(built)
        raise ValueError(
            f"unknown image {image!r}: use 'host', a root filesystem folder or debian:SUITE"
        )

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"malformed environment variable name {name!r}")
            if "\0" in value:
                raise ValueError(f"environment variable {name} contains a NUL byte")
        return env

    @field_validator("allow_net")
    @classmethod
    def _domains(cls, domains: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(validate_pattern(domain) for domain in domains)

    @field_validator("workdir")
    @classmethod
    def _workdir_absolute(cls, workdir: str | None) -> str | None:
        if workdir is not None and not workdir.startswith("/"):
            raise ValueError(f"work dir {workdir!r} must be an absolute path")
        return workdir

    @model_validator(mode="after")
    def _mounts_disjoint(self) -> SandboxSpec:
        targets = [mount.target for mount in self.mounts]
        for first, second in itertools.combinations(targets, 2):
            if _inside(first, second) or _inside(second, first):
                raise ValueError(f"mount targets {first!r} and {second!r} overlap")
        return self

    @property
    def effective_workdir(self) -> str:
        if self.workdir:
            return self.workdir
        return self.mounts[0].target if self.mounts else "/tmp"

    @classmethod
    def build(cls, **fields: object) -> SandboxSpec:
        """Construct, turning pydantic's report into a one-line `SpecError`."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise SpecError(first_error(exc)) from None


def first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "value_error":  # our own messages name what they are about
        return message
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {message}" if where else message
