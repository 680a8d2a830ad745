# The deployment CI applies to an AWS API emulator (moto, infra/emulator/aws_api.py), and the local stack's
# wiring (localstack/up reads its triggers from the state of this apply). Give the emulator's URL
# with -var emulator_endpoint=http://127.0.0.1:PORT.
aws_region          = "us-east-1"
lake_bucket_name    = "clickstream-lake"
lambda_architecture = "x86_64"

# The local stack's tansu broker has neither authentication nor TLS.
kafka_mode                            = "self_managed"
kafka_bootstrap_servers               = ["127.0.0.1:9092"]
kafka_allow_unauthenticated_plaintext = true
kafka_topic                           = "clickstream-events"
