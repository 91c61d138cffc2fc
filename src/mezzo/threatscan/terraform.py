"""Terraform loader: root modules and their module instances -> evaluated resources.

Terraform applies each *root module* (a directory of .tf files that no other configuration in
the tree calls as a module) on its own; a `module` block instantiates another directory with the
inputs it passes, and the caller reads the callee's `output`s. The loader does the same: every
resource belongs to one root module (its `unit`), a module called twice gives two instances,
and resources of one root module are never linked to another's by name. Variables take the
value a module block passes, else `terraform.tfvars`/`*.auto.tfvars` of the root, else their
default; what cannot be resolved stays `Unknown`, naming the variable it depends on.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from mezzo.threatscan import hcl
from mezzo.threatscan.hcl_eval import Evaluator, unknown_of
from mezzo.threatscan.iam import ACCOUNT, REGION
from mezzo.threatscan.model import LineDict, Location, Skipped, Unknown
from mezzo.threatscan.sources import SourceFile

MAX_DEPTH = 32
MAX_MODULE_NESTING = 16


class Ref(str):
    """A string that a reference to a resource evaluated to; it remembers which resource."""

    address: str

    def __new__(cls, value: str, address: str) -> Ref:
        ref = super().__new__(cls, value)
        ref.address = address
        return ref


@dataclass
class TfResource:
    address: str  # "dir/module.app.aws_iam_role.admin" (dir omitted for the scan root)
    mode: str  # "resource" | "data"
    type: str
    name: str
    values: LineDict
    location: Location
    unit: str = ""  # the root module (directory) it is deployed by
    display: str | None = None  # cached display name (aws.display_name)

    def at(self, key: str) -> Location:
        return Location(self.location.path, self.values.line_of(key))


@dataclass
class _Located:
    block: hcl.Block
    path: str


@dataclass
class _Definition:
    """The blocks of one directory of .tf files, before any instantiation."""

    directory: str
    variables: dict[str, _Located] = field(default_factory=dict)
    locals: dict[str, tuple[hcl.Attribute, str]] = field(default_factory=dict)
    resources: dict[tuple[str, str, str], _Located] = field(default_factory=dict)
    calls: dict[str, _Located] = field(default_factory=dict)
    outputs: dict[str, _Located] = field(default_factory=dict)

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
            self.calls[block.labels[0]] = located
        elif block.type == "output" and block.labels:
            self.outputs[block.labels[0]] = located

    def local_source(self, call: _Located) -> str | None:
        """The directory a `module` block's `source` names, when it is a path in the tree."""
        source = call.block.attributes.get("source")
        if source is None:
            return None
        value = Evaluator(lambda parts: Unknown(".".join(parts)), lambda _: None).value(
            source.expression
        )
        if not isinstance(value, str) or not value.startswith(("./", "../")):
            return None
        return posixpath.normpath(posixpath.join(self.directory, value)).removeprefix("./")


class _Instance:
    """One instantiation of a definition: the root module, or a module block's callee."""

    def __init__(
        self,
        loader: _Loader,
        definition: _Definition,
        unit: str,
        prefix: str,
        inputs: dict[str, Any],
        chain: tuple[str, ...],
    ) -> None:
        self.loader = loader
        self.definition = definition
        self.unit = unit
        self.prefix = prefix  # "module.app." inside its root module
        self.inputs = inputs  # name -> callable giving the value (evaluated in the caller)
        self.chain = chain
        self.children: dict[str, _Instance] = {}
        self._cache: dict[tuple[str, ...], Any] = {}
        self._active: set[tuple[str, ...]] = set()
        self.evaluator = Evaluator(self.resolve, self.read_file)

    @property
    def directory(self) -> str:
        return self.definition.directory

    def address(self, mode: str, kind: str, name: str) -> str:
        unit = f"{self.unit}/" if self.unit else ""
        return f"{unit}{self.prefix}{'data.' if mode == 'data' else ''}{kind}.{name}"

    def instantiate_children(self) -> None:
        if len(self.chain) >= MAX_MODULE_NESTING:
            return
        for call_name, call in sorted(self.definition.calls.items()):
            directory = self.definition.local_source(call)
            definition = self.loader.definitions.get(directory) if directory is not None else None
            if definition is None or directory in self.chain:
                continue
            inputs = {
                key: self._input_thunk(call_name, key, attribute)
                for key, attribute in call.block.attributes.items()
                if key not in ("source", "version", "providers", "count", "for_each", "depends_on")
            }
            child = _Instance(
                self.loader,
                definition,
                self.unit,
                f"{self.prefix}module.{call_name}.",
                inputs,
                (*self.chain, definition.directory),
            )
            self.children[call_name] = child
            self.loader.used.add(definition.directory)
            child.instantiate_children()

    def _input_thunk(self, call: str, key: str, attribute: hcl.Attribute) -> Any:
        return lambda: self.guarded(
            ("module-input", call, key), lambda: self.evaluator.value(attribute.expression)
        )

    def read_file(self, relative: str) -> str | None:
        path = posixpath.normpath(posixpath.join(self.directory, relative))
        return self.loader.texts.get(path.removeprefix("./"))

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
        definition = self.definition
        if head == "var" and len(parts) >= 2:
            return _index(
                self.guarded(("var", parts[1]), lambda: self._variable(parts[1])), parts[2:]
            )
        if head == "local" and len(parts) >= 2 and parts[1] in definition.locals:
            attribute, _ = definition.locals[parts[1]]
            value = self.guarded(
                ("local", parts[1]), lambda: self.evaluator.value(attribute.expression)
            )
            return _index(value, parts[2:])
        if head == "path" and len(parts) == 2:
            if parts[1] == "module":
                return "."
            if parts[1] in ("root", "cwd"):
                return posixpath.relpath(self.unit or ".", self.directory or ".")
        if head == "module" and len(parts) >= 3 and parts[1] in self.children:
            return _index(self.children[parts[1]].output(parts[2]), parts[3:])
        if head == "data" and len(parts) >= 4:
            return self._data(parts[1], parts[2], parts[3], parts[4:])
        if len(parts) >= 3 and ("resource", head, parts[1]) in definition.resources:
            return self._resource_attribute(head, parts[1], parts[2], parts[3:])
        if head in ("each", "count", "self"):
            return Unknown(".".join(parts), (".".join(parts[:2]),))
        return Unknown(".".join(parts), (".".join(parts[:3]),))

    def output(self, name: str) -> Any:
        located = self.definition.outputs.get(name)
        if located is None or "value" not in located.block.attributes:
            return Unknown(f"module output {name}")
        expression = located.block.attributes["value"].expression
        return self.guarded(("output", name), lambda: self.evaluator.value(expression))

    def _variable(self, name: str) -> Any:
        if name in self.inputs:
            return self.inputs[name]()
        if not self.prefix and name in self.loader.tfvars.get(self.directory, {}):
            return self.loader.tfvars[self.directory][name]
        located = self.definition.variables.get(name)
        if located and "default" in located.block.attributes:
            return self.evaluator.value(located.block.attributes["default"].expression)
        return Unknown(f"var.{name}", (self._qualified(f"var.{name}"),))

    def _qualified(self, name: str) -> str:
        """`var.x` in the root, `module.app.var.x` in a module instance."""
        return f"{self.prefix}{name}"

    def _data(self, kind: str, name: str, attribute: str, rest: list[str]) -> Any:
        if kind == "aws_caller_identity" and attribute == "account_id":
            return ACCOUNT
        if kind == "aws_region" and attribute in ("name", "id", "region"):
            return REGION
        if kind == "aws_partition" and attribute == "partition":
            return "aws"
        reference = f"data.{kind}.{name}.{attribute}"
        located = self.definition.resources.get(("data", kind, name))
        if located is None:
            return Unknown(reference, (self._qualified(reference),))
        if kind == "aws_iam_policy_document" and attribute in ("json", "minified_json"):
            return self.guarded(("data", kind, name), lambda: self.policy_document(located))
        if attribute in located.block.attributes:
            return _index(
                self.evaluator.value(located.block.attributes[attribute].expression), rest
            )
        return Unknown(reference, (self._qualified(reference),))

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
                            document = unknown_of(f"{source_key} of {block.labels[1]}", source)
        return document

    def _resource_attribute(self, kind: str, name: str, attribute: str, rest: list[str]) -> Any:
        located = self.definition.resources[("resource", kind, name)]
        address = self.address("resource", kind, name)
        if attribute == "arn":
            return Ref(synthetic_arn(kind, self.display_name(kind, name, located)), address)
        if attribute in ("id", "name", "bucket", "function_name", "identifier", "unique_id"):
            return Ref(self.display_name(kind, name, located), address)
        if attribute == "account_id":
            return ACCOUNT
        if attribute in located.block.attributes:
            value = self.guarded(
                ("resource", kind, name, attribute),
                lambda: self.evaluator.value(located.block.attributes[attribute].expression),
            )
            return _index(value, rest)
        reference = f"{kind}.{name}.{attribute}"
        return Unknown(reference, (self._qualified(reference),))

    def display_name(self, kind: str, name: str, located: _Located) -> str:
        for key in NAME_ATTRIBUTES.get(kind, ("name",)):
            if key in located.block.attributes:
                value = self.guarded(
                    ("resource", kind, name, key),
                    lambda key=key: self.evaluator.value(located.block.attributes[key].expression),
                )
                if isinstance(value, str) and value:
                    # A prefix gets a random suffix at apply time: two resources, two names.
                    return f"{value}{{{self.prefix}{name}}}" if key.endswith("prefix") else value
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

    def resources(self) -> list[TfResource]:
        out: list[TfResource] = []
        for (mode, kind, name), located in sorted(self.definition.resources.items()):
            values = self.block_values(located.block)
            resource = TfResource(
                address=self.address(mode, kind, name),
                mode=mode,
                type=kind,
                name=name,
                values=values,
                location=Location(located.path, located.block.line),
                unit=self.unit,
                display=self.display_name(kind, name, located) if mode == "resource" else None,
            )
            if mode == "data" and kind == "aws_iam_policy_document":
                values["json"] = self.policy_document(located)
            out.append(resource)
        for _, child in sorted(self.children.items()):
            out.extend(child.resources())
        return out


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


class _Loader:
    def __init__(self, sources: list[SourceFile], parsed: dict[str, Any]) -> None:
        self.texts = {s.path: s.text for s in sources}
        self.definitions: dict[str, _Definition] = {}
        self.tfvars: dict[str, dict[str, Any]] = {}
        self.used: set[str] = set()
        self.skipped: list[Skipped] = []
        tfvars_files: list[tuple[str, Any]] = []
        for source in sources:
            directory = posixpath.dirname(source.path)
            if source.language != "terraform" and not is_tfvars(source.path):
                continue
            result = parsed.get(source.path)
            if isinstance(result, tuple | dict) and source.language == "terraform":
                definition = self.definitions.setdefault(directory, _Definition(directory))
                for block in result[1]:
                    definition.add(block, source.path)
            elif isinstance(result, tuple | dict):
                tfvars_files.append((source.path, result))
            elif result is not None:  # an HclError, or parsing.Unparseable
                reason = getattr(result, "reason", None) or f"unparseable HCL: {result}"
                self.skipped.append(Skipped(source.path, reason))
        for path, result in sorted(tfvars_files, key=lambda item: _tfvars_order(item[0])):
            directory = posixpath.dirname(path)
            if directory not in self.definitions:
                continue
            values = self.tfvars.setdefault(directory, {})
            if isinstance(result, dict):  # .tfvars.json
                values.update(result)
            else:
                evaluator = Evaluator(lambda parts: Unknown(".".join(parts)), lambda _: None)
                for name, attribute in result[0].items():
                    values[name] = evaluator.value(attribute.expression)

    def roots(self) -> list[str]:
        called = {
            callee
            for definition in self.definitions.values()
            for call in definition.calls.values()
            if (callee := definition.local_source(call)) is not None
            and callee != definition.directory
        }
        return sorted(d for d in self.definitions if d not in called)

    def load(self) -> list[TfResource]:
        resources: list[TfResource] = []
        pending = self.roots()
        while pending:
            for directory in pending:
                root = _Instance(self, self.definitions[directory], directory, "", {}, (directory,))
                self.used.add(directory)
                root.instantiate_children()
                resources.extend(root.resources())
            # a directory only reached through a cycle of module calls is applied on its own
            pending = sorted(set(self.definitions) - self.used)[:1]
        return resources


def is_tfvars(path: str) -> bool:
    name = posixpath.basename(path)
    return name in ("terraform.tfvars", "terraform.tfvars.json") or name.endswith(
        (".auto.tfvars", ".auto.tfvars.json")
    )


def _tfvars_order(path: str) -> tuple[int, str]:
    """Terraform's precedence: terraform.tfvars, its .json, then *.auto.tfvars in name order."""
    name = posixpath.basename(path)
    rank = {"terraform.tfvars": 0, "terraform.tfvars.json": 1}.get(name, 2)
    return rank, path


def parse_source(source: SourceFile) -> Any:
    """What the Terraform loader needs from one file; an HclError when it does not parse."""
    if source.language == "terraform" or source.path.endswith(".tfvars"):
        try:
            return hcl.parse_body(source.text)
        except hcl.HclError as exc:
            return exc
    if source.path.endswith(".tfvars.json"):
        try:
            value = json.loads(source.text)
        except (json.JSONDecodeError, RecursionError):
            return hcl.HclError("not valid JSON")
        return value if isinstance(value, dict) else hcl.HclError("not a JSON object")
    return None


def load(
    sources: list[SourceFile], parsed: dict[str, Any] | None = None
) -> tuple[list[TfResource], list[Skipped]]:
    """Every resource of every root module in `sources` (`parsed`: parse_source results)."""
    if parsed is None:
        parsed = {
            s.path: parse_source(s)
            for s in sources
            if s.language == "terraform" or is_tfvars(s.path)
        }
    loader = _Loader(sources, parsed)
    return loader.load(), loader.skipped
