"""Credentials left in configuration are edges to the principal they belong to."""

from __future__ import annotations

from threatscan_support import scan_fixture

REPORT = scan_fixture("credentials")


def _edges() -> set[tuple[str, str, str]]:
    graph = REPORT.graph
    assert graph is not None
    return {(e.source, e.target, e.technique) for e in graph.edges.values()}


def test_an_access_key_in_a_lambda_environment_leads_to_its_user() -> None:
    edges = _edges()
    user = "tf:aws_iam_user.deploy"
    # the function itself, and whoever may read its configuration, become the deploy user
    assert ("tf:aws_lambda_function.sync", user, "credentials-in-config") in edges
    assert (
        "tf:aws_iam_user.auditor",
        user,
        "lambda:GetFunctionConfiguration+credentials-in-config",
    ) in edges
    paths = {(f.rule.id, f.nodes[0], f.nodes[-1]) for f in REPORT.findings if f.steps}
    assert ("MZ-PATH-001", "internet", "aws:admin") in paths  # function URL -> keys -> admin
    assert ("MZ-PATH-005", "tf:aws_iam_user.auditor", "aws:admin") in paths


def test_literal_keys_are_credentials_of_an_unknown_principal() -> None:
    messages = [f.message for f in REPORT.findings if f.rule.id in ("MZ-AWS-008", "MZ-K8S-011")]
    assert messages == [
        "The environment of function sync holds an access key of IAM user deploy in "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
        "The user data of instance legacy holds AWS credentials of an unknown principal in "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
        "The environment of Deployment shop/checkout holds AWS credentials in "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
        "SSM parameter /app/db/password holds a plaintext secret in /app/db/password",
        "The environment of CodeBuild project build holds a plaintext secret in NPM_TOKEN",
        "ConfigMap shop/app-config holds a plaintext secret in DATABASE_URL",
    ]
    assert ("tf:aws_iam_user.auditor", "tf:aws_instance.legacy#aws-credentials") in {
        (s, t) for s, t, _ in _edges()
    }


def test_variables_placeholders_securestrings_and_parameter_store_refs_are_not_leaks() -> None:
    text = " ".join(f.message for f in REPORT.findings)
    for name in ("API_TOKEN", "DB_PASSWORD", "/app/api/token", "DOCKER_PASSWORD", "LOG_LEVEL"):
        assert name not in text


def test_a_pod_that_may_get_deployments_reads_the_keys_in_their_environment() -> None:
    edges = _edges()
    assert (
        "k8s:ServiceAccount/shop/viewer",
        "k8s:Deployment/shop/checkout#aws-credentials",
        "secret-in-manifest",
    ) in edges
    assert (
        "k8s:ServiceAccount/shop/viewer",
        "k8s:ConfigMap/shop/app-config#secret/DATABASE_URL",
        "secret-in-manifest",
    ) in edges
    (path,) = [f for f in REPORT.findings if f.steps and f.nodes[0] == "k8s:Pod/shop/debug"]
    assert path.nodes[-1] == "k8s:Deployment/shop/checkout#aws-credentials"
    assert path.severity.label == "medium"


def test_ecs_beanstalk_s3_objects_and_dynamodb_items_are_read_by_who_may_describe_them() -> None:
    report = scan_fixture("credentials-more")
    assert sorted(f.message for f in report.findings) == [
        "An item of table settings holds a plaintext secret in smtp_password",
        "Object s3://app-config/prod/.env holds a plaintext secret in DB_PASSWORD",
        "Task definition api holds a plaintext secret in STRIPE_API_KEY",
        "The settings of Elastic Beanstalk environment web holds AWS credentials of an unknown "
        "principal in AWS_SECRET_ACCESS_KEY",
    ]
    graph = report.graph
    assert graph is not None
    read = {(e.target, e.technique) for e in graph.edges.values() if e.source.endswith("support")}
    assert read >= {
        (
            "tf:aws_ecs_task_definition.api#secret/STRIPE_API_KEY",
            "ecs:DescribeTaskDefinition+secret-in-config",
        ),
        ("tf:aws_s3_object.env#secret/DB_PASSWORD", "s3:GetObject+secret-in-config"),
        (
            "tf:aws_dynamodb_table_item.smtp#secret/smtp_password",
            "dynamodb:GetItem+secret-in-config",
        ),
    }
    # no elasticbeanstalk:DescribeConfigurationSettings: the Beanstalk keys stay out of reach
    assert not [t for t, _ in read if "elastic_beanstalk" in t]
