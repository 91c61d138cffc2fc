"""The AWS managed policies people attach most, reduced to what matters for attack paths.

A managed policy not listed here is treated as unknown: it grants nothing the scanner relies on,
and the scan says so in its notes.
"""

from __future__ import annotations

import re
from typing import Any

_ALL = ["*"]

MANAGED: dict[str, dict[str, Any]] = {
    "AdministratorAccess": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    "PowerUserAccess": {
        "Statement": [
            {
                "Effect": "Allow",
                "NotAction": ["iam:*", "organizations:*", "account:*"],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": [
                    "iam:CreateServiceLinkedRole",
                    "iam:ListRoles",
                    "organizations:DescribeOrganization",
                ],
                "Resource": "*",
            },
        ]
    },
    "IAMFullAccess": {"Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]},
    "ReadOnlyAccess": {
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "s3:Get*",
                    "s3:List*",
                    "dynamodb:Get*",
                    "dynamodb:Scan",
                    "dynamodb:Query",
                    "dynamodb:BatchGetItem",
                    "ec2:Describe*",
                    "iam:Get*",
                    "iam:List*",
                    "lambda:Get*",
                    "lambda:List*",
                    "rds:Describe*",
                    "ssm:Describe*",
                    "ssm:GetParameter*",
                    "logs:Get*",
                ],
            }
        ]
    },
    "AmazonS3FullAccess": {
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:*", "s3-object-lambda:*"], "Resource": "*"}
        ]
    },
    "AmazonS3ReadOnlyAccess": {
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "s3:Get*",
                    "s3:List*",
                    "s3:Describe*",
                    "s3-object-lambda:Get*",
                    "s3-object-lambda:List*",
                ],
            }
        ]
    },
    "AmazonDynamoDBFullAccess": {
        "Statement": [{"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "*"}]
    },
    "AmazonDynamoDBReadOnlyAccess": {
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "dynamodb:BatchGetItem",
                    "dynamodb:Describe*",
                    "dynamodb:List*",
                    "dynamodb:GetItem",
                    "dynamodb:Query",
                    "dynamodb:Scan",
                ],
            }
        ]
    },
    "SecretsManagerReadWrite": {
        "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:*"], "Resource": "*"}]
    },
    "AmazonEC2FullAccess": {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ec2:*", "elasticloadbalancing:*", "autoscaling:*"],
                "Resource": "*",
            }
        ]
    },
    "AWSLambda_FullAccess": {
        "Statement": [
            {"Effect": "Allow", "Action": ["lambda:*", "s3:Get*", "s3:List*"], "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
            },
        ]
    },
    "AmazonSSMFullAccess": {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ssm:*", "ec2messages:*", "ssmmessages:*"],
                "Resource": "*",
            }
        ]
    },
    "AmazonSSMManagedInstanceCore": {
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "ssm:UpdateInstanceInformation",
                    "ssm:GetParameter",
                    "ssmmessages:*",
                    "ec2messages:*",
                ],
            }
        ]
    },
    "AWSLambdaBasicExecutionRole": {
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            }
        ]
    },
    "AmazonEKSWorkerNodePolicy": {
        "Statement": [
            {"Effect": "Allow", "Resource": "*", "Action": ["ec2:Describe*", "eks:DescribeCluster"]}
        ]
    },
    "AmazonEKS_CNI_Policy": {
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:AttachNetworkInterface",
                    "ec2:CreateNetworkInterface",
                    "ec2:Describe*",
                ],
            }
        ]
    },
    "AmazonEC2ContainerRegistryReadOnly": {
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "ecr:Get*",
                    "ecr:Describe*",
                    "ecr:List*",
                    "ecr:BatchGetImage",
                    "ecr:BatchCheckLayerAvailability",
                ],
            }
        ]
    },
    "AmazonEKSClusterPolicy": {
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": ["ec2:Describe*", "elasticloadbalancing:*", "autoscaling:Describe*"],
            }
        ]
    },
}


_AWS_MANAGED = re.compile(r"arn:aws(?:-[a-z-]+)?:iam::aws:policy/(?:[^/]+/)*([^/]+)")


def managed_policy(arn: str) -> dict[str, Any] | None:
    """An AWS managed policy by ARN; a customer policy of the same name is not one."""
    match = _AWS_MANAGED.fullmatch(arn)
    return MANAGED.get(match.group(1)) if match else None
