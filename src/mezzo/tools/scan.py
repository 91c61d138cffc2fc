"""`scan_infrastructure` as a tenant-facing tool: it sees only what the workspace owns.

A tool call scans either the workspace's attached files (`target="files"`: its Terraform, IAM
JSON and Kubernetes YAML attachments, copied out of the file store) or a path inside the folder
the operator configured for that workspace (`MEZZO_SCAN_FOLDERS`). Nothing else on the server:
absolute paths, `..` and symlinks that lead out of the folder all get the same answer, which
says nothing about whether the path exists. Off unless the operator lists the tenant in
`MEZZO_SCAN_TENANTS` (`*` for every tenant).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mezzo.files.errors import FileError
from mezzo.files.storage import FileStore
from mezzo.tools.context import ToolContext

ATTACHED = "files"
SCANNED_SUFFIXES = (".tf", ".json", ".yaml", ".yml")
MAX_ATTACHED_BYTES = 5 << 20  # the scanner's own per-file cap


@dataclass(frozen=True)
class ScanAccess:
    tenants: frozenset[str] = frozenset()
    folders: Mapping[str, Path] = field(default_factory=dict)
    files: FileStore | None = None

    def enabled_for(self, tenant: str) -> bool:
        return "*" in self.tenants or tenant in self.tenants


def _outside(target: str) -> str:
    return (
        f"error: target {target!r} is not inside this workspace's scan folder; use "
        f"{ATTACHED!r} for its attached files or a relative path inside the folder"
    )


def _attached_copy(store: FileStore, workspace: str, into: Path) -> int:
    copied = 0
    for info in store.list(workspace):
        name = info.name.lower().removesuffix(".gz")
        if not name.endswith(SCANNED_SUFFIXES):
            continue
        try:
            with store.open(workspace, info.id, tool="scan_infrastructure") as opened:
                data = opened.source.read(0, min(info.uncompressed_size, MAX_ATTACHED_BYTES + 1))
        except FileError:
            continue
        (into / f"{info.id}-{Path(name).name}").write_bytes(data)
        copied += 1
    return copied


def scan_tool(access: ScanAccess) -> Callable[..., str]:
    def scan_infrastructure(context: ToolContext, target: str, depth: str = "deep") -> str:
        """Scan this workspace's Terraform, IAM policy and Kubernetes files for chained attack
        paths: target "files" scans its attached files; a relative path scans inside the
        folder the operator configured for the workspace."""
        from mezzo.threatscan.tool import scan_for_agent

        if not access.enabled_for(context.tenant):
            return (
                "error: scan_infrastructure is not enabled for this tenant "
                "(the operator enables it with MEZZO_SCAN_TENANTS)"
            )
        if target == ATTACHED:
            if access.files is None:
                return "error: this server has no file store to scan"
            with tempfile.TemporaryDirectory(prefix="mezzo-scan-") as folder:
                if not _attached_copy(access.files, context.workspace, Path(folder)):
                    return "error: no attached Terraform, JSON or YAML files to scan"
                return scan_for_agent(folder, depth=depth).replace(folder, ATTACHED)
        root = access.folders.get(context.workspace)
        if root is None:
            return (
                f"error: no scan folder is configured for this workspace; use {ATTACHED!r} "
                "to scan its attached files"
            )
        base = root.resolve()
        if Path(target).is_absolute():
            return _outside(target)
        resolved = (base / target).resolve()
        if resolved != base and base not in resolved.parents:
            return _outside(target)
        if not resolved.exists():
            return f"error: {target!r} does not exist in this workspace's scan folder"
        return scan_for_agent(str(resolved), depth=depth).replace(str(base), "<scan folder>")

    return scan_infrastructure
