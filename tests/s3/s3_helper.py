#!/usr/bin/env python3
"""tests/s3/s3_helper.py - boto3 side of tests/0312-store_s3.sh.

Subcommands (ENDPOINT is http://127.0.0.1:PORT; credentials from the usual
AWS_* environment variables):
  setup-auth ENDPOINT BUCKET   create an IAM user with full rights and an access
                               key on an auth-enabled moto, then the bucket;
                               prints "ACCESS_KEY SECRET_KEY"
  mkbucket ENDPOINT BUCKET     create a bucket
  put-pattern ENDPOINT BUCKET KEY N
                               put N bytes of the pattern bytes(i % 251) at KEY
  verify ENDPOINT BUCKET MANIFEST
                               MANIFEST lines are "<sha256>\t<key>" (object must
                               exist with that content, read through boto3) or
                               "absent\t<key>"; prints one ok / not ok line each
"""
import hashlib
import json
import sys

import boto3
from botocore.exceptions import ClientError


def client(endpoint, service="s3", **kw):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **kw)


def setup_auth(endpoint, bucket):
    iam = client(endpoint, "iam")
    iam.create_user(UserName="kiln-test")
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="kiln-test", PolicyName="all",
                        PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="kiln-test")["AccessKey"]
    s3 = client(endpoint, aws_access_key_id=key["AccessKeyId"],
                aws_secret_access_key=key["SecretAccessKey"])
    s3.create_bucket(Bucket=bucket)
    print(key["AccessKeyId"], key["SecretAccessKey"])


def verify(endpoint, bucket, manifest):
    s3 = client(endpoint)
    failed = 0
    with open(manifest, encoding="utf-8") as fp:
        for line in fp:
            want, key = line.rstrip("\n").split("\t", 1)
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                got = hashlib.sha256(body).hexdigest()
            except ClientError as e:
                got = "absent" if e.response["Error"]["Code"] in ("NoSuchKey", "404") \
                    else "error " + str(e)
            if got == want:
                print(f"ok - boto3 sees {key!r} as {want[:12]}")
            else:
                failed += 1
                print(f"not ok - boto3 sees {key!r}: want {want}, got {got}")
    return 1 if failed else 0


def main(argv):
    cmd = argv[1]
    if cmd == "setup-auth":
        setup_auth(argv[2], argv[3])
    elif cmd == "mkbucket":
        client(argv[2]).create_bucket(Bucket=argv[3])
    elif cmd == "put-pattern":
        data = bytes(i % 251 for i in range(int(argv[5])))
        client(argv[2]).put_object(Bucket=argv[3], Key=argv[4], Body=data)
    elif cmd == "verify":
        return verify(argv[2], argv[3], argv[4])
    else:
        print("unknown command " + cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
