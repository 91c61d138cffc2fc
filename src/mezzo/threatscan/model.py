"""The shared vocabulary of the scanner: locations, unknown values, nodes, edges, findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


@dataclass(frozen=True, order=True)
class Location:
    """A place in a scanned file: path relative to the scan root (forward slashes), 1-based line."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


UNKNOWN_PART = "\x01"  # stands for the unresolved part of a partly known string


@dataclass(frozen=True)
class Unknown:
    """A value the loader could not resolve (a computed attribute, a variable without a value).

    Three states, never two: a value is known, unknown, or a literal "any" (`*`, 0.0.0.0/0).
    Unknown is neither safe nor "any": an Allow that matches only through an unknown value
    grants *maybe*, and every edge and finding built on it names what it `depends` on.
    `template` keeps the known parts of a partly known string (`arn:aws:s3:::\x01/*`).
    """

    expression: str
    names: tuple[str, ...] = ()
    template: str = UNKNOWN_PART

    def __str__(self) -> str:
        return f"<unknown: {self.expression}>"

    @property
    def depends(self) -> tuple[str, ...]:
        return self.names or (self.expression,)


class Severity(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (choose from {names})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class NodeKind:
    INTERNET = "internet"
    ENTRY = "entry"
    WORKLOAD = "workload"
    IDENTITY = "identity"
    DATASTORE = "datastore"
    SECRET = "secret"
    ADMIN = "admin"
    HOST = "host"


CROWN_JEWEL_KINDS = frozenset({NodeKind.DATASTORE, NodeKind.SECRET, NodeKind.ADMIN, NodeKind.HOST})


@dataclass
class Node:
    id: str
    kind: str
    label: str
    location: Location | None = None
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def is_crown_jewel(self) -> bool:
        return self.kind in CROWN_JEWEL_KINDS


@dataclass(frozen=True)
class Edge:
    """One step an attacker can take: from `source` they reach `target` by doing `action`."""

    source: str
    target: str
    kind: str
    technique: str
    action: str
    location: Location | None = None
    depends: tuple[str, ...] = ()  # unresolved values the step relies on (var.x, ...)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    short: str
    help: str
    severity: Severity
    references: str = ""  # markdown appended to the help (the techniques and their sources)

    @property
    def help_markdown(self) -> str:
        extra = f"\n\n{self.references}" if self.references else ""
        return f"**{self.short}**\n\n{self.help}{extra}"


@dataclass(frozen=True)
class Step:
    node: str
    label: str
    action: str
    location: Location | None
    technique: str = ""


@dataclass
class Finding:
    """A single-resource finding (quick) or an attack path (deep)."""

    rule: Rule
    message: str
    location: Location | None
    severity: Severity
    nodes: tuple[str, ...]
    steps: tuple[Step, ...] = ()
    fingerprint: str = ""


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


class LineDict(dict[str, object]):
    """A mapping that remembers the line it starts on and the line of each key."""

    line: int = 0
    key_lines: dict[str, int]

    def __init__(self, *args: object, line: int = 0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.line = line
        self.key_lines = {}

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)
