"""The catalogue of finding types: one SARIF rule each, with help text."""

from __future__ import annotations

from dataclasses import replace

from mezzo.threatscan import techniques
from mezzo.threatscan.model import Finding, Location, Rule, Severity

_RULES = [
    Rule(
        "MZ-AWS-001",
        "OpenAdminPort",
        "Security group opens SSH, RDP or all ports to the internet",
        "A security group accepts traffic from 0.0.0.0/0 or ::/0 on an administrative port or "
        "on every port. Restrict the source CIDR or put the service behind a bastion or SSM.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-AWS-002",
        "PublicBucket",
        "S3 bucket readable by anyone",
        "The bucket's ACL or bucket policy grants access to every principal and no public "
        "access block stops it. Remove the public grant or enable the public access block.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-AWS-003",
        "PublicDatabase",
        "Database instance is publicly accessible",
        "`publicly_accessible = true` gives the database a public address. Keep databases in "
        "private subnets and reach them through the application.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-AWS-004",
        "IamPrivilegeEscalation",
        "IAM principal can make itself administrator",
        "A policy lets this principal grant itself administrator rights with a published "
        "privilege-escalation technique (changing its own policies, publishing a policy version, "
        "joining a group). Scope the IAM write actions to resources it does not hold, add a "
        "permission boundary, or deny them explicitly.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-AWS-005",
        "RoleAssumableByAnyone",
        "IAM role trust policy admits any AWS principal",
        'The role\'s trust policy names Principal "*" without a condition that pins the caller '
        "(sts:ExternalId, aws:PrincipalOrgID, aws:SourceAccount). Anyone with an AWS account "
        "can assume it. Name the trusted accounts or roles explicitly.",
        Severity.CRITICAL,
    ),
    Rule(
        "MZ-AWS-006",
        "PublicLambda",
        "Lambda function callable by anyone",
        'A function URL with authorization_type NONE or a permission for principal "*" lets '
        "anyone invoke the function. Require IAM auth or an authorizer.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-AWS-007",
        "EscalationToPrivilegedRole",
        "IAM principal can act as a more privileged role",
        "With a published technique (passing the role to a service it can make run code, "
        "rewriting the role's trust policy, ...) this principal gets the credentials of a role "
        "that may do sensitive things it may not. Scope iam:PassRole and the IAM write actions "
        "to the roles it is meant to use.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-AWS-008",
        "CredentialsInConfiguration",
        "Credentials or secrets left in configuration",
        "An access key or a secret is written in plain text into an environment variable, user "
        "data, an S3 object, an SSM String parameter or a DynamoDB item. Everyone who can "
        "describe that resource (and the workload itself) can read it and act as its owner. "
        "Keep secrets in Secrets Manager or SecureString parameters and grant the workload a "
        "role instead of keys.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-AWS-009",
        "EcsTaskEscapesToHost",
        "ECS task is privileged or mounts the container runtime or a sensitive host path",
        "A privileged ECS container, or one that mounts /var/run/docker.sock (or the containerd "
        "or CRI-O socket), /, /etc or /proc from its container instance, can take over the "
        "instance and every task on it, with the instance role. Drop privileged and the host "
        "mounts.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-K8S-001",
        "PrivilegedContainer",
        "Privileged container",
        "A privileged container has every capability and the host's devices: escaping to the "
        "node is one mount away. Drop `privileged: true`.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-K8S-002",
        "HostNamespace",
        "Pod shares the host's PID, IPC or network namespace",
        "hostPID, hostIPC and hostNetwork let a pod see and reach the node's processes and "
        "interfaces. Remove them unless the workload is a node agent.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-K8S-003",
        "SensitiveHostPath",
        "Pod mounts a sensitive host path",
        "Mounting `/`, the container runtime socket, /etc, /proc, /root or the kubelet's "
        "directory hands the pod the node. Use volumes that are not host paths.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-K8S-004",
        "DangerousCapability",
        "Container adds a dangerous Linux capability",
        "SYS_ADMIN, SYS_PTRACE, SYS_MODULE, DAC_READ_SEARCH, NET_ADMIN or ALL give a container "
        "ways out to the node. Drop them.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-K8S-005",
        "RbacSecretsRead",
        "RBAC grants read access to Secrets",
        "get, list or watch on secrets lets the subject read every credential in scope, "
        "including other service accounts' tokens. Grant named secrets only.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-K8S-006",
        "RbacPodExec",
        "RBAC grants exec into pods",
        "create on pods/exec lets the subject run commands in other pods and use their service "
        "accounts.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-K8S-007",
        "RbacPodCreate",
        "RBAC grants creating pods or workloads",
        "Whoever can create pods can run one with any service account in the namespace, and a "
        "privileged one where no Pod Security admission stops it.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-K8S-008",
        "RbacEscalationVerbs",
        "RBAC grants bind, escalate or impersonate",
        "bind and escalate let a subject grant itself any role; impersonate lets it act as any "
        "user or group. These are cluster-admin by another name.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-K8S-009",
        "ClusterAdminBinding",
        "Subject bound to cluster-admin or a */* role",
        "The subject can do anything in the cluster.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-K8S-010",
        "ExposedServiceAccountToken",
        "Internet-exposed pod mounts a service account token with RBAC rights",
        "A remote code execution in this pod hands its token, and the RBAC rights bound to it, "
        "to the attacker. Set automountServiceAccountToken: false or drop the rights.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-K8S-011",
        "SecretInManifest",
        "Secret or credentials written into a manifest",
        "A container's env value or a ConfigMap holds a password, token or AWS key in plain "
        "text. The pod and everyone who may get the pod, its controller or the ConfigMap can "
        "read it. Use a Secret (with RBAC that keeps it narrow) or workload identity.",
        Severity.MEDIUM,
    ),
    Rule(
        "MZ-PATH-001",
        "PathToAdmin",
        "Attack path from the internet to administrator",
        "A chain of individually plausible settings lets an attacker go from an internet-facing "
        "entry point to full control. Each step of the code flow names the setting that enables "
        "it; breaking any one step breaks the path.",
        Severity.CRITICAL,
    ),
    Rule(
        "MZ-PATH-002",
        "PathToDataStore",
        "Attack path from the internet to a data store",
        "An internet-facing entry point leads, step by step, to read access on a data store. "
        "Break any step of the code flow to close the path.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-PATH-003",
        "PathToSecrets",
        "Attack path from the internet to secrets",
        "An internet-facing entry point leads, step by step, to secrets. Break any step of the "
        "code flow to close the path.",
        Severity.HIGH,
    ),
    Rule(
        "MZ-PATH-004",
        "PathToHost",
        "Attack path from the internet to a node (host escape)",
        "An internet-facing workload can break out to its node, where every pod's secrets and "
        "the node's cloud credentials are. Break any step of the code flow to close the path.",
        Severity.CRITICAL,
    ),
    Rule(
        "MZ-PATH-005",
        "PrivilegeEscalationChain",
        "Credentials or a foothold escalate to a crown jewel over several steps",
        "Whoever holds this principal's credentials, or runs code in this pod, can chain "
        "escalation techniques (running code on a workload, passing a role to a service, "
        "writing a policy, reading credentials left in configuration) up to administrator, the "
        "node, secrets, a data store or a more privileged role than their own. Severity: high "
        "for administrator and the node, medium for secrets and data, low for a role. Break any "
        "step of the code flow.",
        Severity.HIGH,
    ),
]

_WITH_TECHNIQUES = {"MZ-AWS-004", "MZ-AWS-007"} | {f"MZ-PATH-00{n}" for n in range(1, 6)}
_TECHNIQUES = "Techniques an attack path or escalation may use:\n\n" + techniques.markdown()
RULES: dict[str, Rule] = {
    rule.id: replace(rule, references=_TECHNIQUES) if rule.id in _WITH_TECHNIQUES else rule
    for rule in _RULES
}


def finding(
    rule_id: str,
    message: str,
    location: Location | None,
    nodes: tuple[str, ...],
    severity: Severity | None = None,
) -> Finding:
    rule = RULES[rule_id]
    return Finding(rule, message, location, severity or rule.severity, nodes)


def depends_note(depends: tuple[str, ...]) -> str:
    """' (depends on var.x, var.y: not resolvable offline)', or '' when nothing is unresolved."""
    if not depends:
        return ""
    return f" (depends on {', '.join(depends)}: not resolvable offline)"
