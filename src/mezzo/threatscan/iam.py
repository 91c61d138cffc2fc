"""IAM policy model and evaluation: explicit Deny beats Allow, wildcards, NotAction/NotResource,
conditions, permission boundaries, trust policies.

Three states, never two: a value is known, unknown, or "any". An Allow that applies only
through an unknown value (a resource built from a variable without a value) grants *maybe*:
the decision names what it `depends` on and is never taken for "every resource"; a Deny is
relied on only where it certainly applies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from ipaddress import ip_address, ip_network
from typing import Any

from mezzo.threatscan.model import UNKNOWN_PART, Location, Unknown

UNKNOWN = UNKNOWN_PART
ACCOUNT = "{account}"
REGION = "{region}"
ATTACKER_IP = "203.0.113.7"


@dataclass(frozen=True)
class Condition:
    operator: str
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...] | None = None
    not_actions: tuple[str, ...] | None = None
    resources: tuple[str, ...] | None = None
    not_resources: tuple[str, ...] | None = None
    principals: tuple[tuple[str, str], ...] | None = None  # (type, identifier)
    not_principals: tuple[tuple[str, str], ...] | None = None
    conditions: tuple[Condition, ...] = ()
    location: Location | None = None
    sid: str = ""
    depends: tuple[str, ...] = ()  # unresolved values in this statement


@dataclass(frozen=True)
class Policy:
    name: str
    statements: tuple[Statement, ...]
    location: Location | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    statement: Statement | None = None
    conditional: bool = False
    reason: str = ""
    depends: tuple[str, ...] = ()  # allowed only if these unresolved values allow it

    @property
    def certain(self) -> bool:
        return self.allowed and not self.depends


@dataclass
class Context:
    """Request context an attacker would present: what they control and what they lack."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()  # keys known to be missing from the request (lower case)

    def with_values(self, **extra: str) -> Context:
        merged = dict(self.values)
        for key, value in extra.items():
            merged[key.replace("__", ":")] = (value,)
        return Context(merged, self.absent)

    def without(self, key: str) -> Context:
        """The key is absent from the request (e.g. MFA with long-term access keys)."""
        values = {k: v for k, v in self.values.items() if k.lower() != key.lower()}
        return Context(values, self.absent | {key.lower()})


_NOW = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)  # stable for a day
ATTACKER_CONTEXT = Context(
    {
        # Temporary credentials of a role session carry the key, false without MFA; long-term
        # access keys of a user carry no such key at all (Principal.context).
        "aws:MultiFactorAuthPresent": ("false",),
        "aws:SecureTransport": ("true",),
        "aws:ViaAWSService": ("false",),
        "aws:CurrentTime": (_NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),),
        "aws:EpochTime": (str(int(_NOW.timestamp())),),
    }
)
MFA_KEY = "aws:MultiFactorAuthPresent"

# Keys that pin a request to something an outside attacker does not have.
_ATTACKER_LACKS = frozenset(
    k.lower()
    for k in (
        "aws:MultiFactorAuthAge",
        "sts:ExternalId",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalAccount",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceOrgID",
    )
)


# ----------------------------------------------------------------------------- parsing


class PolicyError(ValueError):
    pass


def parse_policy_document(document: Any, name: str, location: Location | None) -> Policy:
    """A JSON policy (text or already decoded) into statements; every statement gets `location`."""
    if isinstance(document, Unknown):
        raise PolicyError(f"policy is not resolvable ({document.expression})")
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"policy is not valid JSON: {exc.msg}") from None
    if not isinstance(document, Mapping):
        raise PolicyError("policy is not a JSON object")
    raw = document.get("Statement", [])
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise PolicyError("Statement is neither an object nor a list")
    statements = [_statement(item, location) for item in raw if isinstance(item, Mapping)]
    return Policy(name, tuple(statements), location)


def _statement(item: Mapping[str, Any], location: Location | None) -> Statement:
    line_of = getattr(item, "line_of", None)
    line = line_of("Effect") if line_of else None
    where = Location(location.path, line) if location and isinstance(line, int) else location
    effect = item.get("Effect", "Allow")
    depends = tuple(dict.fromkeys(_depends(item)))
    return Statement(
        effect="Deny" if str(effect).lower() == "deny" else "Allow",
        actions=_strings(item["Action"]) if "Action" in item else None,
        not_actions=_strings(item["NotAction"]) if "NotAction" in item else None,
        resources=_strings(item["Resource"]) if "Resource" in item else None,
        not_resources=_strings(item["NotResource"]) if "NotResource" in item else None,
        principals=_principals(item["Principal"]) if "Principal" in item else None,
        not_principals=_principals(item["NotPrincipal"]) if "NotPrincipal" in item else None,
        conditions=_conditions(item.get("Condition")),
        location=where,
        sid=str(item.get("Sid", "")),
        depends=depends,
    )


def _depends(value: Any) -> list[str]:
    if isinstance(value, Unknown):
        return list(value.depends)
    if isinstance(value, Mapping):
        return [name for v in value.values() for name in _depends(v)]
    if isinstance(value, list | tuple):
        return [name for v in value for name in _depends(v)]
    return []


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, Unknown):
        return (value.template or UNKNOWN,)
    if isinstance(value, list | tuple):
        return tuple((v.template or UNKNOWN) if isinstance(v, Unknown) else str(v) for v in value)
    return (str(value),)


def _principals(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, (str, Unknown)):
        return tuple(("AWS", v) for v in _strings(value))
    if isinstance(value, Mapping):
        return tuple((str(kind), v) for kind, ids in value.items() for v in _strings(ids))
    return ()


def _conditions(value: Any) -> tuple[Condition, ...]:
    if isinstance(value, Unknown):
        return (Condition("Unknown", UNKNOWN, ()),)
    if not isinstance(value, Mapping):
        return ()
    out: list[Condition] = []
    for operator, pairs in value.items():
        if isinstance(pairs, Mapping):
            out.extend(Condition(str(operator), str(k), _strings(v)) for k, v in pairs.items())
    return tuple(out)


# ----------------------------------------------------------------------------- matching


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(
        ".*" if ch in ("*", UNKNOWN) else "." if ch == "?" else re.escape(ch) for ch in pattern
    )
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """May `pattern` name `action`? (An unknown part matches anything: see `_match`.)"""
    return pattern == UNKNOWN or bool(_wildcard(pattern, True).fullmatch(action))


def arn_matches(pattern: str, arn: str) -> bool:
    """ARN wildcard match; `{account}`/`{region}` placeholders (unknown at plan time) match any."""
    if pattern in ("*", UNKNOWN):
        return True
    if "{" not in pattern and "{" not in arn:
        return bool(_wildcard(pattern, False).fullmatch(arn))
    p_parts = pattern.split(":", 5)
    a_parts = arn.split(":", 5)
    if len(p_parts) != len(a_parts):
        return bool(_wildcard(pattern, False).fullmatch(arn))
    for index, (p, a) in enumerate(zip(p_parts, a_parts, strict=True)):
        if index in (3, 4) and (a in (ACCOUNT, REGION) or p in (ACCOUNT, REGION)):
            continue
        if not _wildcard(p, index < 5).fullmatch(a):
            return False
    return True


def _substitute(pattern: str, context: Context) -> str:
    if "${" not in pattern:
        return pattern

    def value(found: re.Match[str]) -> str:
        values = context.values.get(found.group(1))
        return values[0] if values else found.group(0)

    return re.sub(r"\$\{([A-Za-z0-9:_/-]+)\}", value, pattern)


def _matches_any(
    patterns: tuple[str, ...], value: str, is_action: bool, context: Context
) -> bool | None:
    """True: a known pattern matches. None: only a pattern with an unknown part may. False."""
    maybe = False
    for pattern in patterns:
        pattern = _substitute(pattern, context)
        hit = action_matches(pattern, value) if is_action else arn_matches(pattern, value)
        if hit and UNKNOWN not in pattern:
            return True
        maybe = maybe or hit
    return None if maybe else False


def _negate(result: bool | None) -> bool | None:
    return None if result is None else not result


def _action_applies(statement: Statement, action: str, context: Context) -> bool | None:
    if statement.actions is not None:
        return _matches_any(statement.actions, action, True, context)
    if statement.not_actions is not None:
        return _negate(_matches_any(statement.not_actions, action, True, context))
    return False


def _resource_applies(statement: Statement, resource: str, context: Context) -> bool | None:
    if statement.resources is not None:
        return _matches_any(statement.resources, resource, False, context)
    if statement.not_resources is not None:
        return _negate(_matches_any(statement.not_resources, resource, False, context))
    return True  # resource policies and trust policies carry no Resource


# ----------------------------------------------------------------------------- conditions


def condition_result(conditions: tuple[Condition, ...], context: Context) -> bool | None:
    """True: all hold. False: one certainly fails. None: cannot tell offline."""
    result: bool | None = True
    for condition in conditions:
        one = _one_condition(condition, context)
        if one is False:
            return False
        if one is None:
            result = None
    return result


def _one_condition(condition: Condition, context: Context) -> bool | None:
    operator = condition.operator
    if UNKNOWN in condition.key or any(UNKNOWN in v for v in condition.values):
        return None
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists").split(":")[-1]
    present = _context_value(context, condition.key)
    known_absent = condition.key.lower() in _ATTACKER_LACKS or condition.key.lower() in (
        context.absent
    )
    if base == "Null":
        wants_absent = [v.lower() for v in condition.values] == ["true"]
        if present is None:
            return wants_absent if known_absent else None
        return not wants_absent
    if present is None:
        if if_exists:
            return True  # ...IfExists holds when the key is missing
        if known_absent:
            return "Not" in base  # a missing key matches only the negated operators
        return None
    return _compare(base, present, condition.values)


def _context_value(context: Context, key: str) -> tuple[str, ...] | None:
    for known, values in context.values.items():
        if known.lower() == key.lower():
            return values
    return None


def _compare(base: str, present: tuple[str, ...], wanted: tuple[str, ...]) -> bool | None:
    negated = "Not" in base
    family = base.replace("Not", "")
    hit: bool
    if family in ("StringEquals", "ArnEquals"):
        hit = any(p == w for p in present for w in wanted)
    elif family == "StringEqualsIgnoreCase":
        hit = any(p.lower() == w.lower() for p in present for w in wanted)
    elif family in ("StringLike", "ArnLike"):
        hit = any(_wildcard(w, False).fullmatch(p) for p in present for w in wanted)
    elif family == "Bool":
        hit = any(p.lower() == w.lower() for p in present for w in wanted)
    elif family == "IpAddress":
        try:
            hit = any(ip_address(p) in ip_network(w, strict=False) for p in present for w in wanted)
        except ValueError:
            return None
    elif family.startswith(("Numeric", "Date")):
        compare = _ORDERED.get(family.removeprefix("Numeric").removeprefix("Date"))
        parse = _number if family.startswith("Numeric") else _instant
        try:
            pairs = [(parse(p), parse(w)) for p in present for w in wanted]
        except ValueError:
            return None
        if compare is None:
            return None
        hit = any(compare(p, w) for p, w in pairs)
    else:
        return None
    return not hit if negated else hit


_ORDERED: dict[str, Any] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def _number(text: str) -> float:
    return float(text)


def _instant(text: str) -> float:
    """An ISO 8601 date/time or epoch seconds, as epoch seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# ----------------------------------------------------------------------------- evaluation


def evaluate(
    statements: Iterable[Statement],
    action: str,
    resource: str,
    context: Context = ATTACKER_CONTEXT,
    boundary: Iterable[Statement] | None = None,
) -> Decision:
    """Identity-policy evaluation for one request: Deny > Allow, then the permission boundary."""
    decision = _decide(list(statements), action, resource, context)
    if not decision.allowed or boundary is None:
        return decision
    limit = _decide(list(boundary), action, resource, context)
    if not limit.allowed:
        return Decision(
            False, limit.statement, reason=f"outside the permission boundary; {limit.reason}"
        )
    return Decision(
        True,
        decision.statement,
        decision.conditional or limit.conditional,
        depends=tuple(dict.fromkeys(decision.depends + limit.depends)),
    )


def _decide(statements: list[Statement], action: str, resource: str, context: Context) -> Decision:
    for statement in statements:
        if statement.effect != "Deny":
            continue
        if (
            _action_applies(statement, action, context) is True
            and _resource_applies(statement, resource, context) is True
            and condition_result(statement.conditions, context) is True
        ):
            return Decision(False, statement, reason="explicit Deny")
    conditional: Decision | None = None
    unknown: Decision | None = None
    for statement in statements:
        if statement.effect != "Allow":
            continue
        applies_to_action = _action_applies(statement, action, context)
        if applies_to_action is False:
            continue
        applies_to_resource = _resource_applies(statement, resource, context)
        if applies_to_resource is False:
            continue
        held = condition_result(statement.conditions, context)
        if held is False:
            continue
        if applies_to_action is None or applies_to_resource is None:
            unknown = unknown or Decision(
                True, statement, held is None, depends=statement.depends or ("an unknown value",)
            )
        elif held is True:
            return Decision(True, statement)
        else:
            conditional = conditional or Decision(
                True, statement, conditional=True, depends=_condition_depends(statement)
            )
    return conditional or unknown or Decision(False, reason="no Allow applies")


def _condition_depends(statement: Statement) -> tuple[str, ...]:
    """A condition that is undecided only because its value is unresolved depends on it."""
    if any(UNKNOWN in c.key or any(UNKNOWN in v for v in c.values) for c in statement.conditions):
        return statement.depends or ("an unknown condition",)
    return ()


def principal_matches(
    statement: Statement, principal_arn: str, account_principal: bool
) -> bool | None:
    """Does a trust/resource-policy statement name this principal (or its whole account)?

    None: only an unresolved principal (a variable) might.
    """
    maybe = False
    for kind, identifier in statement.principals or ():
        if kind not in ("AWS", "*"):
            continue
        if UNKNOWN in identifier:
            maybe = maybe or arn_matches(identifier, principal_arn) or account_principal
            continue
        if identifier == "*":
            return True
        if account_principal and (
            identifier.endswith(":root") or re.fullmatch(r"\d{12}|\{account\}", identifier)
        ):
            return True
        if arn_matches(identifier, principal_arn):
            return True
    return None if maybe else False


def trusted_services(
    statements: Iterable[Statement], context: Context = ATTACKER_CONTEXT
) -> set[str]:
    """Services allowed to assume a role by its trust policy (minus Deny)."""
    allowed: set[str] = set()
    denied: set[str] = set()
    for statement in statements:
        if not any(action_matches(a, "sts:AssumeRole") for a in statement.actions or ()):
            continue
        services = {
            i for kind, i in statement.principals or () if kind == "Service" and UNKNOWN not in i
        }
        held = condition_result(statement.conditions, context)
        if statement.effect == "Allow" and held is not False:
            allowed |= services
        elif statement.effect == "Deny" and held is True:
            denied |= services
    return allowed - denied


def is_public_principal(statement: Statement) -> bool:
    """A literal `*` principal: anyone. (An unresolved one is `may_be_public_principal`.)"""
    return any(
        identifier == "*" and kind in ("AWS", "*")
        for kind, identifier in statement.principals or ()
    )


def may_be_public_principal(statement: Statement) -> bool:
    return not is_public_principal(statement) and any(
        UNKNOWN in identifier and kind in ("AWS", "*")
        for kind, identifier in statement.principals or ()
    )
