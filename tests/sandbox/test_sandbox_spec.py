"""Bad input is refused with a clear message before anything runs (pure, no bwrap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mezzo.sandbox.allowlist import Allowlist, DomainError, validate_pattern
from mezzo.sandbox.result import CappedOutput
from mezzo.sandbox.spec import MiB, Mount, SandboxSpec, SpecError
from mezzo.sandbox.units import parse_duration, parse_size


def test_mount_parsing_defaults_to_read_only(tmp_path: Path) -> None:
    assert Mount.parse(f"{tmp_path}:/app").writable is False
    assert Mount.parse(f"{tmp_path}:/app:ro").writable is False
    mount = Mount.parse(f"{tmp_path}:/app:rw")
    assert (mount.source, mount.target, mount.writable) == (tmp_path.resolve(), "/app", True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/definitely/not/here:/app", "does not exist"),
        ("{tmp}:app", "must be an absolute path"),
        ("{tmp}:/app/../etc", "normalized"),
        ("{tmp}:/", "would hide the runtime"),
        ("{tmp}:/usr/local/app", "overlaps the sandbox's /usr"),
        ("{tmp}:/proc/x", "overlaps the sandbox's /proc"),
        ("{tmp}", "use HOST:PATH"),
        ("{tmp}:/a:rx", "use HOST:PATH"),
    ],
)
def test_bad_mounts_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Mount.parse(text.format(tmp=tmp_path))


def test_overlapping_mount_targets_are_refused(tmp_path: Path) -> None:
    mounts = (Mount.parse(f"{tmp_path}:/app"), Mount.parse(f"{tmp_path}:/app/sub"))
    with pytest.raises(SpecError, match="overlap"):
        SandboxSpec.build(mounts=mounts)
    same = (Mount.parse(f"{tmp_path}:/app"), Mount.parse(f"{tmp_path}:/app"))
    with pytest.raises(SpecError, match="overlap"):
        SandboxSpec.build(mounts=same)
    siblings = (Mount.parse(f"{tmp_path}:/app"), Mount.parse(f"{tmp_path}:/app-2"))
    assert len(SandboxSpec.build(mounts=siblings).mounts) == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image": "debian:bookworm"}, "unknown image"),
        ({"time_limit_s": 0}, "time_limit_s"),
        ({"time_limit_s": 10**6}, "time_limit_s"),
        ({"memory_limit_bytes": 1024}, "memory_limit_bytes"),
        ({"pid_limit": 0}, "pid_limit"),
        ({"output_limit_bytes": 10}, "output_limit_bytes"),
        ({"allow_net": ["exa mple.com"]}, "malformed domain"),
        ({"allow_net": ["10.0.0.1"]}, "not addresses"),
        ({"allow_net": ["*"]}, "malformed domain"),
        ({"allow_net": ["a.*.com"]}, "leading"),
        ({"env": {"BAD-NAME": "x"}}, "malformed environment variable"),
        ({"workdir": "relative"}, "absolute"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_specs_are_refused_with_one_line(fields: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        SandboxSpec.build(**fields)
    assert "\n" not in str(caught.value)


def test_folder_image_and_defaults(tmp_path: Path) -> None:
    spec = SandboxSpec.build(image=str(tmp_path), memory_limit_bytes=64 * MiB)
    assert spec.image == str(tmp_path.resolve())
    assert spec.effective_workdir == "/tmp"
    assert SandboxSpec.build(mounts=(Mount.parse(f"{tmp_path}:/w"),)).effective_workdir == "/w"


def test_allowlist_exact_and_suffix() -> None:
    allow = Allowlist(["GitHub.com.", "*.githubusercontent.com"])
    assert allow.allows("github.com") and allow.allows("GITHUB.COM.")
    assert not allow.allows("api.github.com")  # exact means exact
    assert allow.allows("raw.githubusercontent.com")
    assert allow.allows("a.b.githubusercontent.com")
    assert not allow.allows("githubusercontent.com")  # *.x is subdomains only
    assert not allow.allows("evilgithubusercontent.com")
    assert not allow.allows("github.com.evil.test")
    assert not allow.allows("")


@pytest.mark.parametrize("bad", ["", "-a.com", "a-.com", "a..com", "*.com", "x" * 64 + ".com"])
def test_malformed_domains(bad: str) -> None:
    with pytest.raises(DomainError):
        validate_pattern(bad)


def test_units() -> None:
    assert parse_duration("30s") == 30 and parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120 and parse_duration("1.5") == 1.5
    assert parse_size("512M") == 512 * MiB and parse_size("64k") == 65536
    assert parse_size("1GiB") == 1 << 30 and parse_size("100") == 100
    for bad in ("", "thirty", "-1s", "5 parsecs"):
        with pytest.raises(ValueError, match="malformed duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="malformed size"):
        parse_size("12Q")


def test_capped_output_keeps_head_and_tail() -> None:
    small = CappedOutput(10)
    small.feed(b"hello")
    assert (small.text(), small.truncated) == ("hello", False)
    capped = CappedOutput(10)
    for chunk in (b"0123", b"456789abc", b"defghij"):
        capped.feed(chunk)
    assert capped.truncated and capped.total == 20
    assert capped.text() == "01234\n[... 10 bytes elided by mezzo sandbox ...]\nfghij"
    exact = CappedOutput(10)
    exact.feed(b"0123456789")
    assert (exact.text(), exact.truncated) == ("0123456789", False)


def test_sandbox_etc_copies_only_what_any_user_may_read(tmp_path: Path) -> None:
    from mezzo.sandbox.bwrap import build_etc

    host = tmp_path / "host-etc"
    (host / "ssl" / "private").mkdir(parents=True)
    (host / "ssl" / "certs").mkdir()
    (host / "ssl" / "certs" / "ca.pem").write_text("public cert")
    (host / "ssl" / "certs" / "ca.pem").chmod(0o644)
    (host / "ssl" / "certs" / "secret.key").write_text("private key")
    (host / "ssl" / "certs" / "secret.key").chmod(0o600)
    (host / "ssl" / "certs" / "link.pem").symlink_to("/usr/share/ca-certificates/x.crt")
    (host / "ssl" / "private" / "server.key").write_text("private key")
    (host / "ssl" / "private").chmod(0o710)
    (host / "shadow").write_text("root:hash")
    (host / "shadow").chmod(0o640)
    sandbox_etc = tmp_path / "sandbox-etc"
    entries = [str(host / "ssl"), str(host / "shadow"), str(host / "missing")]
    build_etc(sandbox_etc, entries, base=str(host))
    copied = sorted(str(p.relative_to(sandbox_etc)) for p in sandbox_etc.rglob("*"))
    assert copied == [
        "group", "hosts", "passwd", "ssl", "ssl/certs", "ssl/certs/ca.pem", "ssl/certs/link.pem",
    ]  # fmt: skip
    assert (sandbox_etc / "ssl/certs/link.pem").is_symlink()
