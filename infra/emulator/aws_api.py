"""The AWS API emulator infra/ is applied to: moto's server (pinned by scripts/tools.sh), plus
what it lacks for this project: Kafka event source mappings (kafka_mappings.py) and S3
authorization as AWS evaluates it when IAM enforcement is on (s3_policies.py).

Usage: python aws_api.py [moto_server arguments], e.g. `-H 127.0.0.1 -p 4566`. IAM enforcement is
off until `POST /moto-api/reset-auth` with body `0` (moto's switch); the least-privilege stack
turns it on once the deployment and its credentials exist.
"""

import sys

import kafka_mappings  # noqa: F401  (installs the Kafka event source mappings)
import s3_policies  # noqa: F401  (installs S3 authorization as AWS evaluates it)
from moto.server import main

if __name__ == "__main__":
    main(sys.argv[1:])
