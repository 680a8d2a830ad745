aws_region          = "us-east-1"
emulator_endpoint   = "http://localhost:4566"
lake_bucket_name    = "clickstream-lake"
lambda_architecture = "x86_64"

# Redpanda from localstack/docker-compose.yml, as seen from LocalStack's Lambda containers.
kafka_mode              = "self_managed"
kafka_bootstrap_servers = ["redpanda:29092"]
kafka_topic             = "clickstream-events"
kafka_batch_size        = 100

export_schedule      = "rate(5 minutes)"
maintenance_schedule = "rate(1 hour)"

# Redpanda in the compose file has neither authentication nor TLS.
kafka_allow_unauthenticated_plaintext = true
