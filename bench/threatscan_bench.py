"""Benchmark: `mezzo scan` against Checkov on the same files, in the same run.

    .venv/bin/python bench/threatscan_bench.py [--services 250] [--no-checkov]

Generates a deterministic tree (Terraform + Kubernetes, thousands of resources), then times the
two CLIs end to end (process start included, SARIF written) on that tree and on the team's
fixtures. Checkov is installed from PyPI into a throwaway virtualenv under /tmp the first time
(never into the project's environment); if that fails or takes too long the script says so and
reports mezzo alone. The two tools do different work (Checkov: single-resource policies; mezzo:
graph + attack paths), so the ratio is a speed comparison, not a claim of equal coverage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "threatscan" / "fixtures"
CHECKOV_VENV = Path("/tmp/mezzo-bench-checkov")
CHECKOV = CHECKOV_VENV / "bin" / "checkov"
MEZZO = Path(sys.executable).parent / "mezzo"
INSTALL_TIMEOUT_S = 300

TF_SERVICE = """
resource "aws_security_group" "svc{i}" {{
  name = "svc{i}"
  ingress {{
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["{cidr}"]
  }}
}}

resource "aws_instance" "svc{i}" {{
  ami                         = "ami-0abc"
  instance_type               = "t3.micro"
  associate_public_ip_address = true
  vpc_security_group_ids      = [aws_security_group.svc{i}.id]
  iam_instance_profile        = aws_iam_instance_profile.svc{i}.name
}}

resource "aws_iam_instance_profile" "svc{i}" {{
  name = "svc{i}"
  role = aws_iam_role.svc{i}.name
}}

resource "aws_iam_role" "svc{i}" {{
  name = "svc{i}"
  assume_role_policy = jsonencode({{
    Version   = "2012-10-17"
    Statement = [{{ Effect = "Allow", Principal = {{ Service = "ec2.amazonaws.com" }}, Action = "sts:AssumeRole" }}]
  }})
}}

resource "aws_iam_role_policy" "svc{i}" {{
  role = aws_iam_role.svc{i}.id
  policy = jsonencode({{
    Version = "2012-10-17"
    Statement = [
      {{ Effect = "Allow", Action = ["s3:GetObject", "s3:PutObject"], Resource = "${{aws_s3_bucket.svc{i}.arn}}/*" }},
      {{ Effect = "Allow", Action = ["{extra}"], Resource = "*" }},
    ]
  }})
}}

resource "aws_s3_bucket" "svc{i}" {{
  bucket = "svc{i}-data"
}}

resource "aws_db_instance" "svc{i}" {{
  identifier          = "svc{i}"
  engine              = "postgres"
  publicly_accessible = {public_db}
}}
"""

K8S_SERVICE = """apiVersion: v1
kind: ServiceAccount
metadata: {{name: svc{i}, namespace: ns{ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: svc{i}, namespace: ns{ns}}}
spec:
  selector: {{matchLabels: {{app: svc{i}}}}}
  template:
    metadata: {{labels: {{app: svc{i}}}}}
    spec:
      serviceAccountName: svc{i}
      containers:
        - name: app
          image: registry.example.com/svc{i}:1
          securityContext: {{privileged: {privileged}}}
---
apiVersion: v1
kind: Service
metadata: {{name: svc{i}, namespace: ns{ns}}}
spec:
  type: {service_type}
  selector: {{app: svc{i}}}
  ports: [{{port: 80}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: svc{i}, namespace: ns{ns}}}
rules:
  - apiGroups: [""]
    resources: ["{resource}"]
    verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: svc{i}, namespace: ns{ns}}}
subjects: [{{kind: ServiceAccount, name: svc{i}, namespace: ns{ns}}}]
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: svc{i}}}
"""


def generate(root: Path, services: int) -> int:
    """Write the tree; returns the number of Terraform resources + Kubernetes objects."""
    for i in range(services):
        directory = root / "terraform" / f"svc{i:04d}"
        directory.mkdir(parents=True)
        (directory / "main.tf").write_text(
            TF_SERVICE.format(
                i=i,
                cidr="0.0.0.0/0" if i % 4 == 0 else "10.0.0.0/8",
                extra="iam:PassRole" if i % 7 == 0 else "logs:PutLogEvents",
                public_db="true" if i % 9 == 0 else "false",
            )
        )
        k8s = root / "k8s"
        k8s.mkdir(exist_ok=True)
        (k8s / f"svc{i:04d}.yaml").write_text(
            K8S_SERVICE.format(
                i=i,
                ns=i % 20,
                privileged="true" if i % 11 == 0 else "false",
                service_type="LoadBalancer" if i % 5 == 0 else "ClusterIP",
                resource="secrets" if i % 6 == 0 else "configmaps",
            )
        )
    return services * (7 + 5)


def timed(command: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + sys of the child) and exit code of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def ensure_checkov() -> str | None:
    """Returns None when Checkov is ready, else why it is not."""
    if CHECKOV.exists():
        return None
    start = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(CHECKOV_VENV)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [str(CHECKOV_VENV / "bin" / "pip"), "install", "-q", "checkov"],
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(CHECKOV_VENV, ignore_errors=True)
        return f"Checkov did not install ({type(exc).__name__}); mezzo measured alone"
    print(f"installed Checkov into {CHECKOV_VENV} in {time.perf_counter() - start:.0f} s")
    return None


def count_sarif_results(path: Path) -> int:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return -1
    return sum(len(run.get("results", [])) for run in document.get("runs", []))


def mezzo_command(target: Path, output: Path, cache: Path | None = None) -> list[str]:
    command = [
        str(MEZZO),
        "scan",
        "analyze",
        "--target",
        str(target),
        "--depth",
        "deep",
        "--format",
        "sarif",
        "--output",
        str(output),
    ]
    return command + (["--cache", str(cache)] if cache else [])


def measure(label: str, target: Path, work: Path, with_checkov: bool) -> dict[str, object]:
    mezzo_out = work / f"{label}-mezzo.sarif"
    mezzo_s, mezzo_cpu, mezzo_rc = timed(mezzo_command(target, mezzo_out))
    # with --cache: the first run fills it, the second (timed) reads every file from it
    cache = work / f"{label}-cache"
    timed(mezzo_command(target, work / f"{label}-fill.sarif", cache))
    warm_s, warm_cpu, _ = timed(mezzo_command(target, work / f"{label}-warm.sarif", cache))
    row: dict[str, object] = {
        "tree": label,
        "mezzo_s": mezzo_s,
        "mezzo_cpu": mezzo_cpu,
        "mezzo_rc": mezzo_rc,
        "mezzo_results": count_sarif_results(mezzo_out),
        "warm_s": warm_s,
        "warm_cpu": warm_cpu,
    }
    if with_checkov:
        checkov_dir = work / f"{label}-checkov"
        checkov_s, checkov_cpu, checkov_rc = timed(
            [
                str(CHECKOV),
                "-d",
                str(target),
                "--framework",
                "terraform",
                "kubernetes",
                "--quiet",
                "--compact",
                "--skip-download",
                "-o",
                "sarif",
                "--output-file-path",
                str(checkov_dir),
            ]
        )
        row |= {
            "checkov_s": checkov_s,
            "checkov_cpu": checkov_cpu,
            "checkov_rc": checkov_rc,
            "checkov_results": count_sarif_results(checkov_dir / "results_sarif.sarif"),
            "ratio": checkov_s / mezzo_s,
            "cpu_ratio": checkov_cpu / mezzo_cpu,
            "warm_ratio": checkov_s / warm_s,
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=250)
    parser.add_argument("--no-checkov", action="store_true")
    args = parser.parse_args()
    note = "skipped (--no-checkov)" if args.no_checkov else ensure_checkov()
    with_checkov = note is None
    if note:
        print(note)
    with tempfile.TemporaryDirectory(prefix="mezzo-scan-bench-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        resources = generate(tree, args.services)
        print(
            f"generated tree: {args.services} services, {resources} resources/objects, "
            f"{sum(1 for _ in tree.rglob('*') if _.is_file())} files"
        )
        rows = [
            measure("generated", tree, work, with_checkov),
            measure("fixtures", FIXTURES, work, with_checkov),
        ]
    print()
    print(
        "| tree | mezzo wall / CPU (s) | mezzo results | mezzo --cache warm wall / CPU (s) "
        "| Checkov wall / CPU (s) | Checkov results | Checkov / mezzo (wall, CPU; warm wall) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        mezzo = (
            f"{row['mezzo_s']:.2f} / {row['mezzo_cpu']:.2f} | {row['mezzo_results']}"
            f" | {row['warm_s']:.2f} / {row['warm_cpu']:.2f}"
        )
        checkov = (
            f"{row['checkov_s']:.2f} / {row['checkov_cpu']:.2f} | {row['checkov_results']}"
            f" | {row['ratio']:.1f}x, {row['cpu_ratio']:.1f}x; {row['warm_ratio']:.1f}x"
            if "checkov_s" in row
            else "- | - | -"
        )
        print(f"| {row['tree']} | {mezzo} | {checkov} |")
    print(
        f"\nmachine: {os.cpu_count()} cores; wall and CPU time of each CLI, process start included; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
