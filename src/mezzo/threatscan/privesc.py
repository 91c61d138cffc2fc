"""AWS identities and the published privilege-escalation techniques, each a named edge.

An edge is only drawn when every permission the technique needs is granted after Deny,
boundary and condition evaluation, and when its target is real: `iam:PassRole` alone is not a
finding; passing a role needs the role's trust policy to admit the service and the caller to be
able to make that service run code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mezzo.threatscan.iam import (
    ACCOUNT,
    ATTACKER_CONTEXT,
    MFA_KEY,
    REGION,
    Context,
    Decision,
    Policy,
    Statement,
    action_matches,
    condition_result,
    evaluate,
    principal_matches,
    trusted_services,
)
from mezzo.threatscan.model import Edge, Location

ADMIN_NODE = "aws:admin"
MFA_TECHNIQUE = "iam:CreateVirtualMFADevice+iam:EnableMFADevice+sts:AssumeRole"
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"

# Granting all of these, unconditionally and on any resource, makes a principal an admin.
ADMIN_PROBES = (
    "iam:AttachRolePolicy",
    "iam:PutUserPolicy",
    "iam:CreateAccessKey",
    "sts:AssumeRole",
    "s3:GetObject",
    "ec2:RunInstances",
    "kms:Decrypt",
    "secretsmanager:GetSecretValue",
    "organizations:ListAccounts",
)


@dataclass
class Principal:
    node_id: str
    kind: str  # user | role | group
    name: str
    arn: str
    location: Location
    policies: list[Policy] = field(default_factory=list)
    boundary: list[Statement] | None = None
    trust: list[Statement] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)
    attached_policy_arns: list[str] = field(default_factory=list)
    group_arns: list[str] = field(default_factory=list)
    _mentioned: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)
    _base_context: Context | None = field(default=None, repr=False, compare=False)
    _services: set[str] | None = field(default=None, repr=False, compare=False)

    @property
    def statements(self) -> list[Statement]:
        return [s for policy in self.policies for s in policy.statements]

    def context(self, **extra: str) -> Context:
        base = self._base_context
        if base is None:
            base = ATTACKER_CONTEXT.with_values(aws__PrincipalArn=self.arn)
            if self.kind == "user":
                # Stolen long-term access keys: the MFA key is absent from the request, so
                # `BoolIfExists aws:MultiFactorAuthPresent` conditions are satisfied.
                base = base.with_values(aws__username=self.name).without(MFA_KEY)
            self._base_context = base
        return base.with_values(**extra) if extra else base

    def trusted_services(self) -> set[str]:
        if self._services is None:
            self._services = trusted_services(self.trust)
        return self._services

    def can(self, action: str, resource: str, **extra: str) -> Decision:
        if not self._may_allow(action):
            return Decision(False, reason="no Allow applies")
        return evaluate(self.statements, action, resource, self.context(**extra), self.boundary)

    def _may_allow(self, action: str) -> bool:
        """Cheap pre-check: does any statement (Allow or Deny) name this action at all?"""
        known = self._mentioned.get(action)
        if known is None:
            known = any(_names(statement, action) for statement in self.statements)
            self._mentioned[action] = known
        return known

    def can_somewhere(self, action: str) -> Decision:
        """Allowed on at least one resource the caller can name (create actions)."""
        service = action.split(":")[0]
        candidates = [f"arn:aws:{service}:{REGION}:{ACCOUNT}:mezzo-any/mezzo-any"]
        for statement in self.statements:
            if statement.effect == "Allow":
                for pattern in statement.resources or ():
                    candidates.append(pattern.replace("*", "mezzo").replace("?", "m"))
        decision = Decision(False, reason="no Allow applies")
        for resource in candidates:
            decision = self.can(action, resource)
            if decision.allowed:
                return decision
        return decision


@dataclass(frozen=True)
class PassRoleTechnique:
    name: str
    service: str
    actions: tuple[str, ...]
    verb: str


PASSROLE_TECHNIQUES = (
    PassRoleTechnique(
        "ec2",
        "ec2.amazonaws.com",
        ("ec2:RunInstances",),
        "launches an EC2 instance with the role and reads its credentials from IMDS",
    ),
    PassRoleTechnique(
        "lambda",
        "lambda.amazonaws.com",
        ("lambda:CreateFunction", "lambda:InvokeFunction"),
        "creates a Lambda function running as the role and invokes it",
    ),
    PassRoleTechnique(
        "lambda-event-source",
        "lambda.amazonaws.com",
        ("lambda:CreateFunction", "lambda:CreateEventSourceMapping"),
        "creates a Lambda function running as the role, triggered by an event source",
    ),
    PassRoleTechnique(
        "glue-dev-endpoint",
        "glue.amazonaws.com",
        ("glue:CreateDevEndpoint",),
        "creates a Glue dev endpoint with the role and logs into it over SSH",
    ),
    PassRoleTechnique(
        "glue-job",
        "glue.amazonaws.com",
        ("glue:CreateJob", "glue:StartJobRun"),
        "creates and starts a Glue job whose script runs as the role",
    ),
    PassRoleTechnique(
        "sagemaker-notebook",
        "sagemaker.amazonaws.com",
        ("sagemaker:CreateNotebookInstance", "sagemaker:CreatePresignedNotebookInstanceUrl"),
        "creates a SageMaker notebook with the role and opens it",
    ),
    PassRoleTechnique(
        "sagemaker-training",
        "sagemaker.amazonaws.com",
        ("sagemaker:CreateTrainingJob",),
        "starts a SageMaker training job whose container runs as the role",
    ),
    PassRoleTechnique(
        "sagemaker-processing",
        "sagemaker.amazonaws.com",
        ("sagemaker:CreateProcessingJob",),
        "starts a SageMaker processing job whose container runs as the role",
    ),
    PassRoleTechnique(
        "cloudformation",
        "cloudformation.amazonaws.com",
        ("cloudformation:CreateStack",),
        "creates a CloudFormation stack that acts with the role",
    ),
    PassRoleTechnique(
        "cloudformation-update",
        "cloudformation.amazonaws.com",
        ("cloudformation:UpdateStack",),
        "updates a CloudFormation stack to act with the role",
    ),
    PassRoleTechnique(
        "cloudformation-change-set",
        "cloudformation.amazonaws.com",
        ("cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"),
        "creates and executes a change set that acts with the role",
    ),
    PassRoleTechnique(
        "ecs-run-task",
        "ecs-tasks.amazonaws.com",
        ("ecs:RegisterTaskDefinition", "ecs:RunTask"),
        "registers a task definition with the role as task role and runs it",
    ),
    PassRoleTechnique(
        "ecs-update-service",
        "ecs-tasks.amazonaws.com",
        ("ecs:RegisterTaskDefinition", "ecs:UpdateService"),
        "registers a task definition with the role and points a service at it",
    ),
    PassRoleTechnique(
        "ecs-create-service",
        "ecs-tasks.amazonaws.com",
        ("ecs:RegisterTaskDefinition", "ecs:CreateService"),
        "registers a task definition with the role and creates a service running it",
    ),
    PassRoleTechnique(
        "autoscaling",
        "ec2.amazonaws.com",
        ("autoscaling:CreateLaunchConfiguration", "autoscaling:CreateAutoScalingGroup"),
        "creates a launch configuration with the role and an auto scaling group that runs it",
    ),
    PassRoleTechnique(
        "codebuild",
        "codebuild.amazonaws.com",
        ("codebuild:CreateProject", "codebuild:StartBuild"),
        "creates and starts a CodeBuild project whose build runs as the role",
    ),
    PassRoleTechnique(
        "datapipeline",
        "datapipeline.amazonaws.com",
        (
            "datapipeline:CreatePipeline",
            "datapipeline:PutPipelineDefinition",
            "datapipeline:ActivatePipeline",
        ),
        "creates a Data Pipeline whose activity runs shell commands as the role",
    ),
)


def is_admin(principal: Principal) -> Decision:
    first: Decision | None = None
    for action in ADMIN_PROBES:
        service = action.split(":")[0]
        decision = principal.can(action, f"arn:aws:{service}:{REGION}:{ACCOUNT}:mezzo-any/x")
        if not decision.certain or decision.conditional:
            return Decision(False)
        first = first or decision
    return first or Decision(False)


def decision_edge(
    source: str,
    target: str,
    kind: str,
    technique: str,
    action: str,
    decision: Decision,
    fallback: Location | None,
) -> Edge:
    """The edge an Allow decision draws: at the statement's line, with what it depends on."""
    location = decision.statement.location if decision.statement else None
    if decision.conditional and not decision.depends:
        action += " (a condition applies that cannot be checked offline)"
    return Edge(source, target, kind, technique, action, location or fallback, decision.depends)


def _edge(
    source: Principal, target: str, kind: str, technique: str, action: str, decision: Decision
) -> Edge:
    return decision_edge(source.node_id, target, kind, technique, action, decision, source.location)


def escalation_edges(principals: Iterable[Principal]) -> list[Edge]:
    everyone = list(principals)
    edges: list[Edge] = []
    for principal in everyone:
        admin = is_admin(principal)
        if admin.allowed:
            edges.append(
                _edge(
                    principal,
                    ADMIN_NODE,
                    "administers",
                    "full-admin",
                    "uses its administrator permissions (every action on every resource)",
                    admin,
                )
            )
            continue
        edges.extend(_self_edges(principal))
        reached: list[Edge] = []
        for other in everyone:
            if other is not principal:
                reached.extend(_edges_to(principal, other))
        edges.extend(reached)
        edges.extend(_policy_on_others(principal, reached, {p.node_id: p for p in everyone}))
    return edges


_WRITE_POLICY = {
    "user": ("iam:PutUserPolicy", "iam:AttachUserPolicy"),
    "role": ("iam:PutRolePolicy", "iam:AttachRolePolicy"),
    "group": ("iam:PutGroupPolicy", "iam:AttachGroupPolicy"),
}


def _policy_on_others(p: Principal, reached: list[Edge], by_id: dict[str, Principal]) -> list[Edge]:
    """Writing an admin policy onto another principal p can already act as makes p admin."""
    edges: list[Edge] = []
    for edge in reached:
        q = by_id.get(edge.target)
        if q is None or edge.kind not in ("can_assume", "can_escalate_to"):
            continue
        for action in _WRITE_POLICY[q.kind]:
            extra = {"iam__PolicyARN": ADMIN_POLICY_ARN} if "Attach" in action else {}
            decision = p.can(action, q.arn, **extra)
            if decision.allowed:
                verb = (
                    f"{'attaches AdministratorAccess to' if 'Attach' in action else 'writes a */* inline policy onto'} "
                    f"{q.kind} {q.name}, which it can act as ({edge.technique}), and acts as it"
                )
                edges.append(
                    _edge(p, ADMIN_NODE, "can_escalate_to", f"{action} (other)", verb, decision)
                )
                break
    return edges


def _self_edges(p: Principal) -> list[Edge]:
    edges: list[Edge] = []
    admin_policy = {"iam__PolicyARN": ADMIN_POLICY_ARN}
    own: list[tuple[str, str, dict[str, str]]] = []
    if p.kind == "user":
        own += [("iam:PutUserPolicy", p.arn, {}), ("iam:AttachUserPolicy", p.arn, admin_policy)]
    if p.kind == "role":
        own += [("iam:PutRolePolicy", p.arn, {}), ("iam:AttachRolePolicy", p.arn, admin_policy)]
    if p.kind == "group":
        own += [("iam:PutGroupPolicy", p.arn, {}), ("iam:AttachGroupPolicy", p.arn, admin_policy)]
    for group_arn in p.group_arns:
        own += [
            ("iam:PutGroupPolicy", group_arn, {}),
            ("iam:AttachGroupPolicy", group_arn, admin_policy),
        ]
    for policy_arn in p.attached_policy_arns:
        if ":aws:policy/" not in policy_arn:
            own += [
                ("iam:CreatePolicyVersion", policy_arn, {}),
                ("iam:SetDefaultPolicyVersion", policy_arn, {}),
            ]
    for action, resource, extra in own:
        decision = p.can(action, resource, **extra)
        if decision.allowed:
            verb = _SELF_VERBS[action.split(":")[1]]
            edges.append(_edge(p, ADMIN_NODE, "can_escalate_to", action, verb, decision))
    return edges


_SELF_VERBS = {
    "PutUserPolicy": "writes an inline policy granting */* onto its own user",
    "AttachUserPolicy": "attaches AdministratorAccess to its own user",
    "PutRolePolicy": "writes an inline policy granting */* onto its own role",
    "AttachRolePolicy": "attaches AdministratorAccess to its own role",
    "PutGroupPolicy": "writes an inline policy granting */* onto its own group",
    "AttachGroupPolicy": "attaches AdministratorAccess to its own group",
    "CreatePolicyVersion": "publishes a new default version of its own managed policy granting */*",
    "SetDefaultPolicyVersion": "switches its own managed policy to an older, broader version",
}


OTHER_PRINCIPAL_ACTIONS = (
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AddUserToGroup",
    "iam:UpdateAssumeRolePolicy",
    "iam:PassRole",
    "iam:CreateVirtualMFADevice",
)


def _edges_to(p: Principal, q: Principal) -> list[Edge]:
    if not any(p._may_allow(action) for action in OTHER_PRINCIPAL_ACTIONS):
        # Only a trust policy can still let p in (naming p directly needs no permission of p).
        assume = _assume(p, q) if q.kind == "role" else None
        if assume is None:
            return []
        return [
            _edge(p, q.node_id, "can_assume", "sts:AssumeRole", f"assumes role {q.name}", assume)
        ]
    edges: list[Edge] = []
    if q.kind == "user":
        for action, verb in (
            ("iam:CreateAccessKey", f"creates an access key for user {q.name} and signs in as it"),
            ("iam:CreateLoginProfile", f"sets a console password for user {q.name}"),
            ("iam:UpdateLoginProfile", f"resets the console password of user {q.name}"),
        ):
            decision = p.can(action, q.arn)
            if decision.allowed:
                edges.append(_edge(p, q.node_id, "can_escalate_to", action, verb, decision))
    if q.kind == "group" and p.kind == "user":
        decision = p.can("iam:AddUserToGroup", q.arn)
        if decision.allowed and q.arn not in p.group_arns:
            edges.append(
                _edge(
                    p,
                    q.node_id,
                    "can_escalate_to",
                    "iam:AddUserToGroup",
                    f"adds itself to group {q.name}",
                    decision,
                )
            )
    if q.kind == "role":
        edges.extend(_role_edges(p, q))
    return edges


def _mfa_self_service(p: Principal) -> Decision | None:
    """A user who may create and enable its own virtual MFA device can satisfy MFA conditions."""
    if p.kind != "user":
        return None
    device = p.arn.replace(":user/", ":mfa/")
    create = p.can("iam:CreateVirtualMFADevice", device)
    enable = p.can("iam:EnableMFADevice", p.arn)
    return combine(create, enable) if create.allowed and enable.allowed else None


def _role_edges(p: Principal, q: Principal) -> list[Edge]:
    edges: list[Edge] = []
    assume = _assume(p, q)
    if assume is not None:
        edges.append(
            _edge(p, q.node_id, "can_assume", "sts:AssumeRole", f"assumes role {q.name}", assume)
        )
    elif (mfa := _mfa_self_service(p)) is not None:
        with_mfa = p.context().with_values(
            aws__MultiFactorAuthPresent="true", aws__MultiFactorAuthAge="60"
        )
        assume = _assume(p, q, with_mfa)
        if assume is not None:
            edges.append(
                _edge(
                    p,
                    q.node_id,
                    "can_escalate_to",
                    MFA_TECHNIQUE,
                    f"creates and enables its own virtual MFA device, then assumes role {q.name}, "
                    "whose trust policy requires MFA",
                    combine(mfa, assume),
                )
            )
    decision = p.can("iam:UpdateAssumeRolePolicy", q.arn)
    if decision.allowed and assume is None:
        edges.append(
            _edge(
                p,
                q.node_id,
                "can_escalate_to",
                "iam:UpdateAssumeRolePolicy",
                f"rewrites the trust policy of role {q.name} to trust itself, then assumes it",
                decision,
            )
        )
    services = q.trusted_services()
    for technique in PASSROLE_TECHNIQUES:
        if technique.service not in services:
            continue
        pass_role = p.can("iam:PassRole", q.arn, iam__PassedToService=technique.service)
        if not pass_role.allowed:
            continue
        needed = [p.can_somewhere(action) for action in technique.actions]
        if all(d.allowed for d in needed):
            name = "iam:PassRole+" + "+".join(technique.actions)
            edges.append(
                _edge(
                    p,
                    q.node_id,
                    "can_escalate_to",
                    name,
                    f"passes role {q.name} to {technique.service.split('.')[0]}: {technique.verb}",
                    combine(pass_role, *needed),
                )
            )
    return edges


def combine(first: Decision, *others: Decision) -> Decision:
    """All of several permissions: conditional or dependent if any one of them is."""
    decisions = (first, *others)
    depends = tuple(dict.fromkeys(name for d in decisions for name in d.depends))
    return Decision(
        all(d.allowed for d in decisions),
        first.statement,
        any(d.conditional for d in decisions),
        depends=depends,
    )


def _assume(p: Principal, q: Principal, context: Context | None = None) -> Decision | None:
    """Can p assume q? Trust policy must admit p; naming the account also needs p's own Allow.

    An unresolved trust principal (a variable) admits p only *maybe*: the decision depends on it.
    """
    direct = False
    via_account = False
    trust_depends: tuple[str, ...] = ()
    trust_statement: Statement | None = None
    context = context or p.context()
    for statement in q.trust:
        if statement.effect != "Allow" or not _mentions_assume(statement):
            continue
        if condition_result(statement.conditions, context) is False:
            continue
        named = principal_matches(statement, p.arn, account_principal=False)
        if named is True:
            direct, trust_statement = True, statement
        elif principal_matches(statement, p.arn, account_principal=True) is True:
            via_account = True
            trust_statement = trust_statement or statement
        elif named is None:
            trust_depends += statement.depends or ("an unresolved trust principal",)
            trust_statement = trust_statement or statement
    for statement in q.trust:
        if (
            statement.effect == "Deny"
            and _mentions_assume(statement)
            and principal_matches(statement, p.arn, account_principal=True) is True
            and condition_result(statement.conditions, context) is True
        ):
            return None
    if not (direct or via_account or trust_depends):
        return None
    maybe = () if (direct or via_account) else tuple(dict.fromkeys(trust_depends))
    decision = p.can("sts:AssumeRole", q.arn)
    if decision.allowed:
        return combine(decision, Decision(True, trust_statement, depends=maybe))
    if (direct or maybe) and decision.reason != "explicit Deny":
        return Decision(True, trust_statement, depends=maybe)
    return None


def _mentions_assume(statement: Statement) -> bool:
    return any(action_matches(a, "sts:AssumeRole") for a in statement.actions or ())


def _names(statement: Statement, action: str) -> bool:
    if statement.actions is not None:
        return any(action_matches(a, action) for a in statement.actions)
    if statement.not_actions is not None:
        return not any(action_matches(a, action) for a in statement.not_actions)
    return False
