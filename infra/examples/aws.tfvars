aws_region          = "eu-west-1"
lake_bucket_name    = "acme-clickstream-lake"
lake_prefix         = ""
lambda_architecture = "arm64"

kafka_mode              = "msk"
msk_cluster_arn         = "arn:aws:kafka:eu-west-1:123456789012:cluster/clickstream/11111111-2222-3333-4444-555555555555-1"
kafka_topic             = "clickstream-events"
kafka_batch_size        = 1000
kafka_starting_position = "TRIM_HORIZON"

export_schedule      = "rate(15 minutes)"
maintenance_schedule = "rate(6 hours)"
alarm_topic_arn      = "arn:aws:sns:eu-west-1:123456789012:oncall"
