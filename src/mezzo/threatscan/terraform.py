"""Terraform loader: .tf files -> evaluated resources with file and line for every attribute.

Each directory is one module. Variables take the values a `module` block in the tree passes in,
else their defaults; locals, `jsonencode(...)` and `aws_iam_policy_document` data sources are
evaluated; references to other resources resolve to their names and synthetic ARNs. What cannot
be resolved stays `Unknown`.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from mezzo.threatscan import hcl
from mezzo.threatscan.iam import ACCOUNT, REGION
from mezzo.threatscan.model import LineDict, Location, Skipped, Unknown
from mezzo.threatscan.sources import SourceFile

MAX_DEPTH = 32


@dataclass
class TfResource:
    address: str  # "dir/aws_iam_role.admin" (dir omitted at the root)
    mode: str  # "resource" | "data"
    type: str
    name: str
    values: LineDict
    location: Location
    display: str | None = None  # cached display name (aws.display_name)

    def at(self, key: str) -> Location:
        return Location(self.location.path, self.values.line_of(key))


@dataclass
class _Located:
    block: hcl.Block
    path: str


class _Module:
    def __init__(self, directory: str, files: dict[str, str]) -> None:
        self.directory = directory
        self.files = files
        self.variables: dict[str, _Located] = {}
        self.locals: dict[str, tuple[hcl.Attribute, str]] = {}
        self.resources: dict[tuple[str, str, str], _Located] = {}
        self.modules: list[_Located] = []
        self.inputs: dict[str, Any] = {}
        self._cache: dict[tuple[str, ...], Any] = {}
        self._active: set[tuple[str, ...]] = set()
        self.evaluator = hcl.Evaluator(self.resolve, self.read_file)

    def add(self, block: hcl.Block, path: str) -> None:
        located = _Located(block, path)
        if block.type == "variable" and block.labels:
            self.variables[block.labels[0]] = located
        elif block.type == "locals":
            for name, attribute in block.attributes.items():
                self.locals[name] = (attribute, path)
        elif block.type in ("resource", "data") and len(block.labels) >= 2:
            self.resources[(block.type, block.labels[0], block.labels[1])] = located
        elif block.type == "module" and block.labels:
            self.modules.append(located)

    def read_file(self, relative: str) -> str | None:
        if relative.startswith("${path.module}/"):
            relative = relative.removeprefix("${path.module}/")
        return self.files.get(posixpath.normpath(posixpath.join(self.directory, relative)))

    # --------------------------------------------------------------- evaluation

    def guarded(self, key: tuple[str, ...], compute: Any) -> Any:
        if key in self._cache:
            return self._cache[key]
        if key in self._active or len(self._active) > MAX_DEPTH:
            return Unknown("reference cycle: " + ".".join(key))
        self._active.add(key)
        try:
            value = compute()
        finally:
            self._active.discard(key)
        self._cache[key] = value
        return value

    def resolve(self, parts: list[str]) -> Any:
        head = parts[0]
        if head == "var" and len(parts) >= 2:
            return _index(
                self.guarded(("var", parts[1]), lambda: self._variable(parts[1])), parts[2:]
            )
        if head == "local" and len(parts) >= 2 and parts[1] in self.locals:
            attribute, _ = self.locals[parts[1]]
            value = self.guarded(
                ("local", parts[1]), lambda: self.evaluator.value(attribute.expression)
            )
            return _index(value, parts[2:])
        if head == "data" and len(parts) >= 4:
            return self._data(parts[1], parts[2], parts[3], parts[4:])
        if len(parts) >= 3 and ("resource", head, parts[1]) in self.resources:
            return self._resource_attribute(head, parts[1], parts[2], parts[3:])
        return Unknown(".".join(parts))

    def _variable(self, name: str) -> Any:
        if name in self.inputs:
            return self.inputs[name]
        located = self.variables.get(name)
        if located and "default" in located.block.attributes:
            return self.evaluator.value(located.block.attributes["default"].expression)
        return Unknown(f"var.{name}")

    def _data(self, kind: str, name: str, attribute: str, rest: list[str]) -> Any:
        if kind == "aws_caller_identity" and attribute == "account_id":
            return ACCOUNT
        if kind == "aws_region" and attribute in ("name", "id", "region"):
            return REGION
        if kind == "aws_partition" and attribute == "partition":
            return "aws"
        located = self.resources.get(("data", kind, name))
        if located is None:
            return Unknown(f"data.{kind}.{name}.{attribute}")
        if kind == "aws_iam_policy_document" and attribute in ("json", "minified_json"):
            return self.guarded(("data", kind, name), lambda: self.policy_document(located))
        if attribute in located.block.attributes:
            return _index(
                self.evaluator.value(located.block.attributes[attribute].expression), rest
            )
        return Unknown(f"data.{kind}.{name}.{attribute}")

    def policy_document(self, located: _Located) -> Any:
        block = located.block
        statements = []
        for statement in block.children("statement"):
            evaluated = self.block_values(statement)
            statements.append(_to_policy_statement(evaluated))
        document: Any = LineDict(
            {"Version": "2012-10-17", "Statement": statements}, line=block.line
        )
        for source_key in ("source_policy_documents", "override_policy_documents"):
            if source_key in block.attributes:
                sources = self.evaluator.value(block.attributes[source_key].expression)
                if isinstance(sources, list):
                    for source in sources:
                        if isinstance(source, dict):
                            extra = source.get("Statement", [])
                            statements.extend(extra if isinstance(extra, list) else [extra])
                        else:
                            document = Unknown(f"{source_key} of {block.labels[1]}")
        return document

    def _resource_attribute(self, kind: str, name: str, attribute: str, rest: list[str]) -> Any:
        located = self.resources[("resource", kind, name)]
        if attribute == "arn":
            return synthetic_arn(kind, self._display_name(kind, name, located))
        if attribute in ("id", "name", "bucket", "function_name", "identifier"):
            return self._display_name(kind, name, located)
        if attribute == "account_id":
            return ACCOUNT
        if attribute in located.block.attributes:
            value = self.guarded(
                ("resource", kind, name, attribute),
                lambda: self.evaluator.value(located.block.attributes[attribute].expression),
            )
            return _index(value, rest)
        return Unknown(f"{kind}.{name}.{attribute}")

    def _display_name(self, kind: str, name: str, located: _Located) -> str:
        for key in NAME_ATTRIBUTES.get(kind, ("name",)):
            if key in located.block.attributes:
                value = self.guarded(
                    ("resource", kind, name, key),
                    lambda key=key: self.evaluator.value(located.block.attributes[key].expression),
                )
                if isinstance(value, str) and value:
                    return value
        return name

    def block_values(self, block: hcl.Block) -> LineDict:
        values = LineDict(line=block.line)
        for key, attribute in block.attributes.items():
            values[key] = self.evaluator.value(attribute.expression)
            values.key_lines[key] = attribute.line
        for child in block.blocks:
            if child.type == "dynamic":
                continue
            existing = values.setdefault(child.type, [])
            if isinstance(existing, list):
                existing.append(self.block_values(child))
                values.key_lines.setdefault(child.type, child.line)
        return values


NAME_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "aws_s3_bucket": ("bucket", "bucket_prefix"),
    "aws_lambda_function": ("function_name",),
    "aws_db_instance": ("identifier",),
    "aws_rds_cluster": ("cluster_identifier",),
    "aws_iam_role": ("name", "name_prefix"),
    "aws_iam_user": ("name",),
    "aws_iam_group": ("name",),
    "aws_iam_policy": ("name", "name_prefix"),
}

_ARN_FORMATS = {
    "aws_iam_role": "arn:aws:iam::{account}:role/{name}",
    "aws_iam_user": "arn:aws:iam::{account}:user/{name}",
    "aws_iam_group": "arn:aws:iam::{account}:group/{name}",
    "aws_iam_policy": "arn:aws:iam::{account}:policy/{name}",
    "aws_iam_instance_profile": "arn:aws:iam::{account}:instance-profile/{name}",
    "aws_s3_bucket": "arn:aws:s3:::{name}",
    "aws_dynamodb_table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "aws_secretsmanager_secret": "arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf",
    "aws_ssm_parameter": "arn:aws:ssm:{region}:{account}:parameter/{name}",
    "aws_lambda_function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "aws_instance": "arn:aws:ec2:{region}:{account}:instance/i-{name}",
    "aws_db_instance": "arn:aws:rds:{region}:{account}:db:{name}",
    "aws_rds_cluster": "arn:aws:rds:{region}:{account}:cluster:{name}",
    "aws_kms_key": "arn:aws:kms:{region}:{account}:key/{name}",
    "aws_eks_cluster": "arn:aws:eks:{region}:{account}:cluster/{name}",
}


def synthetic_arn(kind: str, name: str) -> str:
    template = _ARN_FORMATS.get(kind, "arn:aws:tf:{region}:{account}:" + kind + "/{name}")
    return template.format(account=ACCOUNT, region=REGION, name=name.lstrip("/"))


def _index(value: Any, rest: list[str]) -> Any:
    for key in rest:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, Unknown):
            return value
        else:
            return Unknown("." + ".".join(rest))
    return value


def _to_policy_statement(values: LineDict) -> LineDict:
    """`statement { actions = [...] principals { ... } }` -> a JSON-policy statement."""
    out = LineDict(line=values.line)

    def put(key: str, value: Any, source: str) -> None:
        out[key] = value
        out.key_lines[key] = values.line_of(source)

    put("Effect", values.get("effect", "Allow"), "effect")
    if "sid" in values:
        put("Sid", values["sid"], "sid")
    for source, target in (
        ("actions", "Action"),
        ("not_actions", "NotAction"),
        ("resources", "Resource"),
        ("not_resources", "NotResource"),
    ):
        if source in values:
            put(target, values[source], source)
    for source, target in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
        blocks = values.get(source)
        if isinstance(blocks, list):
            principal: dict[str, Any] = {}
            for block in blocks:
                kind = block.get("type", "AWS")
                ids = block.get("identifiers", [])
                if isinstance(kind, Unknown) or isinstance(ids, Unknown):
                    principal.setdefault("AWS", []).append(Unknown("principals"))
                    continue
                principal.setdefault(str(kind), []).extend(ids if isinstance(ids, list) else [ids])
            put(target, "*" if principal == {"*": ["*"]} else principal, source)
    conditions = values.get("condition")
    if isinstance(conditions, list):
        condition: dict[str, dict[str, Any]] = {}
        for block in conditions:
            test, variable = block.get("test"), block.get("variable")
            if isinstance(test, str) and isinstance(variable, str):
                condition.setdefault(test, {})[variable] = block.get("values", [])
            else:
                condition.setdefault("Unknown", {})["unknown"] = Unknown("condition")
        put("Condition", condition, "condition")
    return out


# ----------------------------------------------------------------------------- loading


def load(sources: list[SourceFile]) -> tuple[list[TfResource], list[Skipped]]:
    texts = {s.path: s.text for s in sources}
    modules: dict[str, _Module] = {}
    skipped: list[Skipped] = []
    for source in sources:
        if source.language != "terraform":
            continue
        try:
            blocks = hcl.parse(source.text)
        except hcl.HclError as exc:
            skipped.append(Skipped(source.path, f"unparseable HCL: {exc}"))
            continue
        directory = posixpath.dirname(source.path)
        module = modules.setdefault(directory, _Module(directory, texts))
        for block in blocks:
            module.add(block, source.path)
    _bind_module_inputs(modules)
    resources: list[TfResource] = []
    for directory in sorted(modules):
        module = modules[directory]
        prefix = f"{directory}/" if directory else ""
        for (mode, kind, name), located in sorted(module.resources.items()):
            values = module.block_values(located.block)
            resources.append(
                TfResource(
                    address=f"{prefix}{'data.' if mode == 'data' else ''}{kind}.{name}",
                    mode=mode,
                    type=kind,
                    name=name,
                    values=values,
                    location=Location(located.path, located.block.line),
                )
            )
            if mode == "data" and kind == "aws_iam_policy_document":
                document = module.policy_document(located)
                values["json"] = document
    return resources, skipped


def _bind_module_inputs(modules: dict[str, _Module]) -> None:
    """A `module` block whose `source` is a directory in the tree feeds that module's variables."""
    for directory in sorted(modules):
        caller = modules[directory]
        for located in sorted(caller.modules, key=lambda m: (m.path, m.block.line)):
            source = located.block.attributes.get("source")
            if source is None:
                continue
            target = caller.evaluator.value(source.expression)
            if not isinstance(target, str) or not target.startswith("."):
                continue
            callee = modules.get(posixpath.normpath(posixpath.join(directory, target)))
            if callee is None or callee.inputs:
                continue
            for key, attribute in located.block.attributes.items():
                if key not in ("source", "version", "providers", "count", "for_each"):
                    callee.inputs[key] = caller.evaluator.value(attribute.expression)
