"""The catalogue of techniques: every edge the scanner draws, named, with where it is documented.

An edge's `technique` starts with one of a catalogue entry's `edges` prefixes; the SARIF rule
help of the path and escalation rules lists them all with their links, and
docs/threatscan.md lists the same catalogue (a test keeps the three in step).
"""

from __future__ import annotations

from dataclasses import dataclass

RHINO = "https://rhinosecuritylabs.com/aws/aws-privilege-escalation-methods-mitigation/"
BISHOP_FOX = "https://github.com/BishopFox/iam-vulnerable"
PATHFINDING = "https://pathfinding.cloud/"
AWS = "https://docs.aws.amazon.com/"
K8S = "https://kubernetes.io/docs/"


@dataclass(frozen=True)
class Technique:
    title: str
    edges: tuple[str, ...]  # technique names (or prefixes) of the edges it draws
    source: str


_ALL = (
    # ------------------------------------------------------------------ IAM, own principal
    Technique(
        "Write or attach a policy on its own user, role or group",
        (
            "iam:PutUserPolicy",
            "iam:AttachUserPolicy",
            "iam:PutRolePolicy",
            "iam:AttachRolePolicy",
            "iam:PutGroupPolicy",
            "iam:AttachGroupPolicy",
        ),
        RHINO,
    ),
    Technique(
        "Publish or select a version of its own managed policy",
        ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion"),
        RHINO,
    ),
    Technique(
        "Write or attach an admin policy on another principal it can already act as",
        ("iam:PutUserPolicy (other)", "iam:AttachUserPolicy (other)", "iam:PutRolePolicy (other)"),
        RHINO,
    ),
    # ------------------------------------------------------------------ IAM, other principals
    Technique("Create an access key for another user", ("iam:CreateAccessKey",), RHINO),
    Technique(
        "Set or reset another user's console password",
        ("iam:CreateLoginProfile", "iam:UpdateLoginProfile"),
        RHINO,
    ),
    Technique("Add itself to a group", ("iam:AddUserToGroup",), RHINO),
    Technique("Rewrite a role's trust policy", ("iam:UpdateAssumeRolePolicy",), RHINO),
    Technique(
        "Assume a role whose trust policy admits it",
        ("sts:AssumeRole",),
        AWS + "IAM/latest/UserGuide/id_roles_use.html",
    ),
    Technique(
        "Create and enable its own virtual MFA device to meet an MFA-conditioned trust",
        ("iam:CreateVirtualMFADevice+iam:EnableMFADevice",),
        AWS + "IAM/latest/UserGuide/reference_policies_examples_iam_mfa-selfmanage.html",
    ),
    Technique(
        "Pass a role to a service it can make run code (EC2, Lambda, Glue, SageMaker, "
        "CloudFormation incl. UpdateStack and change sets, CodeBuild, Data Pipeline, ECS "
        "RunTask/UpdateService/CreateService, Auto Scaling)",
        ("iam:PassRole+",),
        BISHOP_FOX,
    ),
    # ------------------------------------------------------------------ code on a workload
    Technique(
        "Run commands on an instance (SSM Run Command, Session Manager, EC2 Instance Connect)",
        ("ssm:SendCommand", "ssm:StartSession", "ec2-instance-connect:SendSSHPublicKey"),
        AWS + "systems-manager/latest/userguide/run-command.html",
    ),
    Technique(
        "Rewrite an instance's user data and restart it",
        ("ec2:ModifyInstanceAttribute+",),
        AWS + "AWSEC2/latest/UserGuide/user-data.html",
    ),
    Technique(
        "Make a launch template version with its own user data the default",
        ("ec2:CreateLaunchTemplateVersion+",),
        AWS + "AWSEC2/latest/UserGuide/ec2-launch-templates.html",
    ),
    Technique(
        "Replace a function's code or add a layer to it",
        ("lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration"),
        RHINO,
    ),
    Technique(
        "Add an SSH key to a Glue dev endpoint, or repoint and start a Glue job",
        ("glue:UpdateDevEndpoint", "glue:UpdateJob+"),
        RHINO,
    ),
    Technique(
        "Start a CodeBuild build with its own buildspec",
        ("codebuild:StartBuild",),
        AWS + "codebuild/latest/APIReference/API_StartBuild.html",
    ),
    Technique(
        "Update a CloudFormation stack that deploys with a service role",
        ("cloudformation:UpdateStack", "cloudformation:CreateChangeSet+"),
        AWS + "AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html",
    ),
    Technique(
        "Open a SageMaker notebook that runs as its role",
        ("sagemaker:CreatePresignedNotebookInstanceUrl",),
        PATHFINDING,
    ),
    Technique(
        "Overwrite code, a script or a template in S3 that a privileged service runs",
        ("s3:PutObject (code in S3)",),
        PATHFINDING,
    ),
    # ------------------------------------------------------------------ data and secrets
    Technique(
        "Read data and secrets (S3, DynamoDB, Secrets Manager, SSM parameters, KMS decrypt, "
        "RDS IAM authentication)",
        (
            "s3:GetObject",
            "dynamodb:Scan",
            "secretsmanager:GetSecretValue",
            "ssm:GetParameter",
            "kms:Decrypt",
            "rds-db:connect",
        ),
        AWS + "IAM/latest/UserGuide/reference_policies_evaluation-logic.html",
    ),
    Technique(
        "Reset a database's master password, or restore a snapshot and reset its password",
        ("rds:ModifyDBInstance", "rds:ModifyDBCluster", "rds:RestoreDBInstanceFromDBSnapshot"),
        AWS + "AmazonRDS/latest/UserGuide/USER_RestoreFromSnapshot.html",
    ),
    Technique(
        "Read credentials or secrets left in configuration (environment, user data, S3 "
        "objects, SSM String parameters, DynamoDB items, Kubernetes env and ConfigMaps)",
        ("credentials-in-config", "secret-in-config", "secret-in-manifest"),
        AWS + "lambda/latest/dg/configuration-envvars.html",
    ),
    Technique(
        "Read credentials or secrets left in configuration by describing the resource",
        (
            "lambda:GetFunctionConfiguration+",
            "codebuild:BatchGetProjects+",
            "elasticbeanstalk:DescribeConfigurationSettings+",
            "ecs:DescribeTaskDefinition+",
            "ec2:DescribeInstanceAttribute+",
            "ec2:DescribeLaunchTemplateVersions+",
            "autoscaling:DescribeLaunchConfigurations+",
            "s3:GetObject+",
            "ssm:GetParameter+",
            "dynamodb:GetItem+",
        ),
        PATHFINDING,
    ),
    # ------------------------------------------------------------------ identities of workloads
    Technique(
        "Read a workload's role credentials (instance metadata, Lambda environment, ECS task "
        "role, service roles of Glue, CodeBuild, CloudFormation, SageMaker)",
        ("workload-role",),
        AWS + "IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html",
    ),
    Technique(
        "Exchange a Kubernetes service account token for an IAM role (IRSA)",
        ("irsa",),
        AWS + "eks/latest/userguide/iam-roles-for-service-accounts.html",
    ),
    Technique(
        "Read the pod's mounted service account token",
        ("mounted-service-account-token",),
        K8S + "concepts/security/service-accounts/",
    ),
    Technique(
        "Act with the permissions of its IAM groups",
        ("group-membership",),
        AWS + "IAM/latest/UserGuide/id_groups.html",
    ),
    Technique(
        "Administrator permissions: every action on every resource",
        ("full-admin",),
        AWS + "IAM/latest/UserGuide/access_policies_job-functions.html",
    ),
    # ------------------------------------------------------------------ network entry
    Technique(
        "Reach an instance on its public IP through an open security group (incl. a subnet's "
        "map_public_ip_on_launch)",
        ("public-instance",),
        AWS + "vpc/latest/userguide/security-group-rules.html",
    ),
    Technique(
        "Reach targets through an internet-facing load balancer, its listeners and rules",
        ("internet-facing-lb", "lb-target"),
        AWS + "elasticloadbalancing/latest/application/listener-update-rules.html",
    ),
    Technique(
        "Connect to a database from the internet or from a workload its security group admits "
        "(group reference or CIDR)",
        ("public-database", "security-group-reference", "cidr-reachability"),
        AWS + "AmazonRDS/latest/UserGuide/USER_VPC.Scenarios.html",
    ),
    Technique(
        "Invoke a public Lambda function, read a public bucket, assume a role that trusts anyone",
        ("public-lambda", "public-bucket", "public-trust-policy"),
        AWS + "IAM/latest/UserGuide/reference_policies_elements_principal.html",
    ),
    Technique(
        "Escape an ECS task to its container instance (privileged, Docker socket, host paths)",
        ("ecs-host-escape",),
        AWS + "AmazonECS/latest/developerguide/task_definition_parameters.html",
    ),
    # ------------------------------------------------------------------ Kubernetes
    Technique(
        "Reach a pod through a NodePort/LoadBalancer Service or an Ingress",
        ("service-", "ingress"),
        K8S + "concepts/services-networking/service/",
    ),
    Technique(
        "Escape a container to its node (privileged, hostPath, runtime sockets incl. "
        "containerd.sock and crio.sock, SYS_ADMIN and similar capabilities)",
        ("privileged-container", "hostpath-", "capability-"),
        K8S + "concepts/security/pod-security-standards/",
    ),
    Technique(
        "Use RBAC: read Secrets, exec into pods, create pods (and mount any service account "
        "token), bind/escalate/impersonate, cluster-admin",
        ("rbac-",),
        K8S + "concepts/security/rbac-good-practices/",
    ),
)

TECHNIQUES: dict[str, Technique] = {t.title: t for t in _ALL}


def technique_of(edge_technique: str) -> Technique | None:
    """The catalogue entry an edge's technique name belongs to (longest prefix wins)."""
    best: tuple[int, Technique] | None = None
    for technique in _ALL:
        for prefix in technique.edges:
            matches = edge_technique == prefix or edge_technique.startswith(prefix)
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), technique)
    return best[1] if best else None


def markdown() -> str:
    lines = ["| technique | edges | source |", "|---|---|---|"]
    for technique in _ALL:
        edges = ", ".join(f"`{e}`" for e in technique.edges)
        lines.append(f"| {technique.title} | {edges} | [{technique.source}]({technique.source}) |")
    return "\n".join(lines)
