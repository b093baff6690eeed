#!/usr/bin/env python3
"""Create an IAM user holding exactly the given policies, and its access key.

    .venv/bin/python scripts/moto-iam-user.py ENDPOINT USER < documents.json

For the IAM-enforcing emulator of tests/it/emulator.rs (scripts/moto-iam.py).
stdin: a JSON list of IAM policy documents, each at most AWS's managed policy
size (the Rust caller splits larger ones). Each becomes a customer managed
policy `USER-N` (CreatePolicy) attached to the user (AttachUserPolicy).
Signs with the credentials in the environment (AWS_ACCESS_KEY_ID, ...).
stdout: {"AccessKeyId": ..., "SecretAccessKey": ..., "Policies": N}.
boto3 is the emulator's own dependency in ./.venv; the Rust tests do not
build the IAM SDK crate only for this setup.
"""

import json
import sys

import boto3


def main(endpoint, user):
    documents = json.load(sys.stdin)
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    iam.create_user(UserName=user)
    for i, document in enumerate(documents):
        arn = iam.create_policy(PolicyName=f"{user}-{i}", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=user, PolicyArn=arn)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    attached = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    json.dump({"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"], "Policies": len(attached)}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
