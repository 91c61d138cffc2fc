"""IAM policy model and evaluation: explicit Deny beats Allow, wildcards, NotAction/NotResource,
conditions, permission boundaries, trust policies.

Unknown values are never taken as safe: in an Allow an unknown action, resource or condition
still grants; in a Deny it is not relied on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import ip_address, ip_network
from typing import Any

from mezzo.threatscan.model import Location, Unknown

UNKNOWN = "\x00unknown"
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


@dataclass
class Context:
    """Request context an attacker would present: what they control and what they lack."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def with_values(self, **extra: str) -> Context:
        merged = dict(self.values)
        for key, value in extra.items():
            merged[key.replace("__", ":")] = (value,)
        return Context(merged)


ATTACKER_CONTEXT = Context(
    {
        "aws:MultiFactorAuthPresent": ("false",),
        "aws:SecureTransport": ("true",),
        "aws:ViaAWSService": ("false",),
    }
)

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
    )


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, Unknown):
        return (UNKNOWN,)
    if isinstance(value, list | tuple):
        return tuple(UNKNOWN if isinstance(v, Unknown) else str(v) for v in value)
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
    out = []
    for operator, pairs in value.items():
        if isinstance(pairs, Mapping):
            out.extend(Condition(str(operator), str(k), _strings(v)) for k, v in pairs.items())
    return tuple(out)


def statements_from_document_block(
    statements: Iterable[Mapping[str, Any]], location_of: Any
) -> list[Statement]:
    """Statements of a Terraform `aws_iam_policy_document` (already evaluated to plain dicts)."""
    out = []
    for item in statements:
        location = location_of(item)

        def principals(key: str, item: Mapping[str, Any] = item) -> tuple[tuple[str, str], ...]:
            return tuple(
                (str(p.get("type", "AWS")), v)
                for p in item.get(key, [])
                for v in _strings(p.get("identifiers", []))
            )

        conditions = tuple(
            Condition(
                str(c.get("test", "")), str(c.get("variable", "")), _strings(c.get("values", []))
            )
            for c in item.get("condition", [])
        )
        effect = item.get("effect", "Allow")
        out.append(
            Statement(
                effect="Deny" if str(effect).lower() == "deny" else "Allow",
                actions=_strings(item["actions"]) if "actions" in item else None,
                not_actions=_strings(item["not_actions"]) if "not_actions" in item else None,
                resources=_strings(item["resources"]) if "resources" in item else None,
                not_resources=_strings(item["not_resources"]) if "not_resources" in item else None,
                principals=principals("principals") if "principals" in item else None,
                not_principals=principals("not_principals") if "not_principals" in item else None,
                conditions=conditions,
                location=location,
                sid=str(item.get("sid", "")),
            )
        )
    return out


# ----------------------------------------------------------------------------- matching


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
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


def _matches_any(patterns: tuple[str, ...], value: str, is_action: bool, context: Context) -> bool:
    for pattern in patterns:
        pattern = _substitute(pattern, context)
        if is_action and action_matches(pattern, value):
            return True
        if not is_action and arn_matches(pattern, value):
            return True
    return False


def _action_applies(statement: Statement, action: str, context: Context) -> bool:
    if statement.actions is not None:
        return _matches_any(statement.actions, action, True, context)
    if statement.not_actions is not None:
        return not _matches_any(statement.not_actions, action, True, context)
    return False


def _resource_applies(statement: Statement, resource: str, context: Context) -> bool:
    if statement.resources is not None:
        return _matches_any(statement.resources, resource, False, context)
    if statement.not_resources is not None:
        return not _matches_any(statement.not_resources, resource, False, context)
    return True  # resource policies and trust policies carry no Resource


def _is_unknown(statement: Statement) -> bool:
    fields = (statement.actions or ()) + (statement.resources or ())
    return UNKNOWN in fields


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
    if condition.key == UNKNOWN or UNKNOWN in condition.values:
        return None
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists").split(":")[-1]
    present = _context_value(context, condition.key)
    if base == "Null":
        wants_absent = [v.lower() for v in condition.values] == ["true"]
        if present is None:
            return None if condition.key.lower() not in _ATTACKER_LACKS else wants_absent
        return not wants_absent
    if present is None:
        if if_exists:
            return True
        negated = "Not" in base
        if condition.key.lower() in _ATTACKER_LACKS and not negated:
            return False
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
    else:
        return None
    return not hit if negated else hit


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
    return Decision(True, decision.statement, decision.conditional or limit.conditional)


def _decide(statements: list[Statement], action: str, resource: str, context: Context) -> Decision:
    for statement in statements:
        if statement.effect != "Deny" or _is_unknown(statement):
            continue
        if (
            _action_applies(statement, action, context)
            and _resource_applies(statement, resource, context)
            and condition_result(statement.conditions, context) is True
        ):
            return Decision(False, statement, reason="explicit Deny")
    best: Decision | None = None
    for statement in statements:
        if statement.effect != "Allow":
            continue
        if not (
            _action_applies(statement, action, context)
            and _resource_applies(statement, resource, context)
        ):
            continue
        held = condition_result(statement.conditions, context)
        if held is False:
            continue
        if held is True:
            return Decision(True, statement)
        best = best or Decision(True, statement, conditional=True)
    return best or Decision(False, reason="no Allow applies")


def principal_matches(statement: Statement, principal_arn: str, account_principal: bool) -> bool:
    """Does a trust/resource-policy statement name this principal (or its whole account)?"""
    entries = statement.principals or ()
    for kind, identifier in entries:
        if kind != "AWS":
            continue
        if identifier in ("*", UNKNOWN):
            return True
        if account_principal and (
            identifier.endswith(":root") or re.fullmatch(r"\d{12}|\{account\}", identifier)
        ):
            return True
        if arn_matches(identifier, principal_arn):
            return True
    return False


def trusted_services(
    statements: Iterable[Statement], context: Context = ATTACKER_CONTEXT
) -> set[str]:
    """Services allowed to assume a role by its trust policy (minus Deny)."""
    allowed: set[str] = set()
    denied: set[str] = set()
    for statement in statements:
        if not any(action_matches(a, "sts:AssumeRole") for a in statement.actions or ()):
            continue
        services = {i for kind, i in statement.principals or () if kind == "Service"}
        held = condition_result(statement.conditions, context)
        if statement.effect == "Allow" and held is not False:
            allowed |= services
        elif statement.effect == "Deny" and held is True:
            denied |= services
    return allowed - denied


def is_public_principal(statement: Statement) -> bool:
    return any(
        identifier in ("*", UNKNOWN) and kind in ("AWS", "*")
        for kind, identifier in statement.principals or ()
    )
