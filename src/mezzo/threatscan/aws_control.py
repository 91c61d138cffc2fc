"""Running code on workloads that already exist hands over their role.

SSM Run Command and Session Manager, EC2 Instance Connect, rewriting user data or a launch
template, replacing a function's code or adding a layer, updating a Glue endpoint or job, a
CodeBuild buildspec override, updating a CloudFormation stack, opening a SageMaker notebook,
and overwriting in S3 the code, script or template a workload runs.
"""

from __future__ import annotations

import re
from typing import Any

from mezzo.threatscan.aws_data import admin_principals
from mezzo.threatscan.aws_index import arn_of, as_list, display_name, node_id
from mezzo.threatscan.graph import Graph
from mezzo.threatscan.privesc import Principal, combine, decision_edge
from mezzo.threatscan.terraform import TfResource

_CONTROL_ACTIONS: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "aws_lambda_function": (
        (("lambda:UpdateFunctionCode",), "replaces the code of function {name} and invokes it"),
        (
            ("lambda:UpdateFunctionConfiguration",),
            "adds a layer of its own to function {name}, which runs it on the next invocation",
        ),
    ),
    "aws_instance": (
        (("ssm:SendCommand",), "runs shell commands on instance {name} with SSM Run Command"),
        (("ssm:StartSession",), "opens an SSM shell session on instance {name}"),
        (
            ("ec2-instance-connect:SendSSHPublicKey",),
            "pushes an SSH key with EC2 Instance Connect and logs into instance {name}",
        ),
        (
            ("ec2:ModifyInstanceAttribute", "ec2:StopInstances", "ec2:StartInstances"),
            "rewrites the user data of instance {name} and restarts it (it runs as root at boot)",
        ),
    ),
    "aws_launch_template": (
        (
            ("ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"),
            "makes a version of launch template {name} with its own user data the default; "
            "every instance launched from it runs that",
        ),
    ),
    "aws_glue_dev_endpoint": (
        (("glue:UpdateDevEndpoint",), "adds its SSH key to Glue dev endpoint {name} and logs in"),
    ),
    "aws_glue_job": (
        (
            ("glue:UpdateJob", "glue:StartJobRun"),
            "points Glue job {name} at its own script and starts it",
        ),
    ),
    "aws_codebuild_project": (
        (
            ("codebuild:StartBuild",),
            "starts a build of project {name} with its own buildspec (buildspecOverride)",
        ),
    ),
    "aws_cloudformation_stack": (
        (("cloudformation:UpdateStack",), "updates stack {name} with its own template"),
        (
            ("cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"),
            "creates and executes a change set of stack {name} with its own template",
        ),
    ),
    "aws_sagemaker_notebook_instance": (
        (
            ("sagemaker:CreatePresignedNotebookInstanceUrl",),
            "opens notebook {name} in a browser and runs code in it",
        ),
    ),
}


def add_workload_control_edges(
    principals: list[Principal], resources: list[TfResource], graph: Graph
) -> None:
    """Running code on an existing workload hands over the workload's role."""
    admins = admin_principals(graph)
    code = _code_locations(resources)
    for resource in resources:
        actions = _CONTROL_ACTIONS.get(resource.type, ())
        if resource.mode != "resource" or node_id(resource) not in graph.nodes:
            continue
        techniques = [
            (needs, verb.format(name=display_name(resource)), arn_of(resource))
            for needs, verb in actions
        ]
        for object_arn, what in code.get(resource.address, []):
            techniques.append(
                (
                    ("s3:PutObject",),
                    f"overwrites {what}, which {resource.type} {display_name(resource)} runs",
                    object_arn,
                )
            )
        for principal in principals:
            if principal.node_id in admins:
                continue
            for needs, verb, arn in techniques:
                decision = combine(*(principal.can(action, arn) for action in needs))
                if decision.allowed:
                    technique = "+".join(needs) + (
                        " (code in S3)" if needs == ("s3:PutObject",) else ""
                    )
                    graph.add_edge(
                        decision_edge(
                            principal.node_id,
                            node_id(resource),
                            "can_exec",
                            technique,
                            verb,
                            decision,
                            principal.location,
                        )
                    )


def _code_locations(resources: list[TfResource]) -> dict[str, list[tuple[str, str]]]:
    """S3 objects that are the code, script, source or template a workload runs."""
    found: dict[str, list[tuple[str, str]]] = {}

    def add(resource: TfResource, bucket: Any, key: Any, what: str) -> None:
        if isinstance(bucket, str) and isinstance(key, str) and bucket and key:
            found.setdefault(resource.address, []).append(
                (
                    f"arn:aws:s3:::{bucket}/{key.lstrip('/')}",
                    f"s3://{bucket}/{key.lstrip('/')} ({what})",
                )
            )

    for resource in resources:
        values = resource.values
        if resource.type == "aws_lambda_function":
            add(resource, values.get("s3_bucket"), values.get("s3_key"), "its code package")
        elif resource.type == "aws_glue_job":
            for command in as_list(values.get("command")):
                location = command.get("script_location") if isinstance(command, dict) else None
                if isinstance(location, str) and location.startswith("s3://"):
                    bucket, _, key = location.removeprefix("s3://").partition("/")
                    add(resource, bucket, key, "its script")
        elif resource.type == "aws_codebuild_project":
            for source in as_list(values.get("source")):
                if isinstance(source, dict) and source.get("type") == "S3":
                    location = source.get("location")
                    if isinstance(location, str):
                        bucket, _, key = location.partition("/")
                        add(resource, bucket, key, "its source")
        elif resource.type == "aws_cloudformation_stack":
            url = values.get("template_url")
            match = re.match(
                r"https://(?:([^./]+)\.s3[.-][^/]*amazonaws\.com/(.+)|s3[.-][^/]*amazonaws\.com/([^/]+)/(.+))",
                url if isinstance(url, str) else "",
            )
            if match:
                bucket = match.group(1) or match.group(3)
                key = match.group(2) or match.group(4)
                add(resource, bucket, key, "its template")
    return found
