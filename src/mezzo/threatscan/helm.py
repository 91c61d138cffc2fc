"""Helm charts: rendered with `helm template` when helm is installed, else skipped with a note.

A chart is a directory with a Chart.yaml. Its templates are not YAML until rendered, so their
raw files are never parsed; `helm template` (offline: no repository access, no cluster lookups)
renders them with the chart's default values, and each rendered template replaces its source
file, keeping its path. Lines point into the rendered text of that template.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from mezzo.threatscan.model import Skipped
from mezzo.threatscan.sources import SourceFile

RENDER_TIMEOUT_S = 60
_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)


def charts(sources: list[SourceFile]) -> list[str]:
    """Chart directories (relative to the scan root) in the scanned files."""
    return sorted(
        posixpath.dirname(s.path)
        for s in sources
        if posixpath.basename(s.path) in ("Chart.yaml", "Chart.yml")
    )


def in_chart(path: str, chart: str) -> bool:
    prefix = f"{chart}/" if chart else ""
    return path.startswith(prefix) and path.removeprefix(prefix).startswith(
        ("templates/", "charts/")
    )


def render(
    root: Path, sources: list[SourceFile], helm: str | None = None
) -> tuple[list[SourceFile], list[Skipped]]:
    """Sources with every chart's templates replaced by their rendering (or dropped, noted)."""
    found = charts(sources)
    if not found:
        return sources, []
    helm = helm or shutil.which("helm")
    kept = [s for s in sources if not any(in_chart(s.path, chart) for chart in found)]
    skipped: list[Skipped] = []
    for chart in found:
        if helm is None:
            skipped.append(
                Skipped(
                    chart or ".",
                    "Helm chart not rendered: `helm` is not installed (install it, or run "
                    "`helm template` into a file and scan that)",
                )
            )
            continue
        output, error = _helm_template(helm, root / chart if chart else root)
        if output is None:
            skipped.append(Skipped(chart or ".", f"Helm chart not rendered: {error}"))
            continue
        kept.extend(split_rendered(output, chart))
    return sorted(kept, key=lambda s: s.path), skipped


def _helm_template(helm: str, chart: Path) -> tuple[str | None, str]:
    with tempfile.TemporaryDirectory(prefix="mezzo-helm-") as home:
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "HELM_CACHE_HOME": home,
            "HELM_CONFIG_HOME": home,
            "HELM_DATA_HOME": home,
        }
        try:
            done = subprocess.run(
                [helm, "template", "mezzo-scan", str(chart)],
                capture_output=True,
                text=True,
                timeout=RENDER_TIMEOUT_S,
                env=environment,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"helm template took more than {RENDER_TIMEOUT_S} s"
        except OSError as exc:
            return None, f"helm could not run: {exc.strerror or exc}"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return None, f"helm template failed: {lines[-1] if lines else done.returncode}"
    return done.stdout, ""


def split_rendered(output: str, chart: str) -> list[SourceFile]:
    """`helm template` output -> one YAML source per template, at the template's path.

    Helm prefixes each document with `# Source: <chart name>/templates/<file>`; the chart
    name is replaced by the chart's directory in the scan.
    """
    documents: dict[str, list[str]] = {}
    for document in re.split(r"(?m)^---\s*$", output):
        match = _SOURCE.search(document)
        if match is None or not document.strip():
            continue
        inside = match.group(1).strip().split("/", 1)[-1]
        path = posixpath.join(chart, inside) if chart else inside
        documents.setdefault(path, []).append(document.strip("\n"))
    return [
        SourceFile(path, "yaml", "\n---\n".join(parts) + "\n")
        for path, parts in sorted(documents.items())
    ]
