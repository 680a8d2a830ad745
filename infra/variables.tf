variable "aws_region" {
  description = "Region for every resource."
  type        = string
  default     = "eu-west-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "clickstream"
}

variable "lake_bucket_name" {
  description = "Name of the lake bucket (created here)."
  type        = string
}

variable "lake_prefix" {
  description = "Key prefix of the lake inside the bucket, without leading or trailing slash (\"\" for the bucket root)."
  type        = string
  default     = ""
}

variable "lambda_architecture" {
  description = "Lambda architecture: arm64 (default) or x86_64; must match the zips built by scripts/package."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "lambda_zip_dir" {
  description = "Directory holding <function>/bootstrap.zip as written by `cargo lambda build --output-format zip`."
  type        = string
  default     = "../target/lambda"
}

variable "log_retention_days" {
  description = "CloudWatch log retention of every function."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "RUST_LOG of every function."
  type        = string
  default     = "info"
}

variable "bronze_max_file_bytes" {
  description = "Most bytes a landed file may hold decompressed; a larger one is recorded in bronze/failed_files, none of it written."
  type        = number
  default     = 4294967296
}

variable "bronze_max_record_bytes" {
  description = "Most bytes of one landed record (a line, or an element of a JSON array); a file with a larger one is recorded in bronze/failed_files."
  type        = number
  default     = 1048576
}

variable "bronze_max_document_bytes" {
  description = "Most bytes of a landed .json file decompressed (it is read whole; .jsonl files are streamed)."
  type        = number
  default     = 134217728
}

variable "bronze_kafka_generation" {
  description = "A new name here after the Kafka topics were recreated: bronze keeps new offset watermarks instead of refusing the restarted offsets. Empty: none."
  type        = string
  default     = ""
}

variable "funnel_steps" {
  description = "Funnel steps of gold/funnel_daily, in order."
  type        = list(string)
  default     = ["view_product", "add_to_cart", "begin_checkout", "purchase"]
}

variable "kafka_mode" {
  description = "Kafka source of bronze-writer: \"msk\" (Amazon MSK) or \"self_managed\"."
  type        = string
  default     = "msk"

  validation {
    condition     = contains(["msk", "self_managed"], var.kafka_mode)
    error_message = "kafka_mode must be msk or self_managed."
  }
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster (kafka_mode = msk)."
  type        = string
  default     = null
}

variable "kafka_bootstrap_servers" {
  description = "Bootstrap servers host:port (kafka_mode = self_managed)."
  type        = list(string)
  default     = []
}

variable "kafka_auth_secret_arn" {
  description = "Secrets Manager ARN of the brokers' credentials (kafka_auth_type); required for self_managed unless kafka_allow_unauthenticated_plaintext."
  type        = string
  default     = null
}

variable "kafka_auth_type" {
  description = "How bronze-writer's mapping authenticates with kafka_auth_secret_arn: SASL_SCRAM_512_AUTH, SASL_SCRAM_256_AUTH, BASIC_AUTH (SASL/PLAIN; all three over TLS) or CLIENT_CERTIFICATE_TLS_AUTH."
  type        = string
  default     = "SASL_SCRAM_512_AUTH"

  validation {
    condition     = contains(["SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH", "CLIENT_CERTIFICATE_TLS_AUTH"], var.kafka_auth_type)
    error_message = "kafka_auth_type must be SASL_SCRAM_512_AUTH, SASL_SCRAM_256_AUTH, BASIC_AUTH or CLIENT_CERTIFICATE_TLS_AUTH."
  }
}

variable "kafka_server_root_ca_secret_arn" {
  description = "Secrets Manager ARN of the CA certificate that signed a self-managed broker's TLS certificate, when it is not a public CA."
  type        = string
  default     = null
}

variable "kafka_allow_unauthenticated_plaintext" {
  description = "Lets a self-managed Kafka source run without authentication or TLS (only for a broker on a network you trust, or an emulator)."
  type        = bool
  default     = false
}

variable "kafka_vpc_subnet_ids" {
  description = "Subnets from which Lambda reaches a self-managed broker (empty: public endpoint)."
  type        = list(string)
  default     = []
}

variable "kafka_vpc_security_group_ids" {
  description = "Security groups for reaching a self-managed broker."
  type        = list(string)
  default     = []
}

variable "kafka_topic" {
  description = "Topic of the click events."
  type        = string
  default     = "clickstream-events"
}

variable "kafka_consumer_group_id" {
  description = "Consumer group of the event source mapping."
  type        = string
  default     = "clickstream-bronze-writer"
}

variable "kafka_batch_size" {
  description = "Largest batch handed to bronze-writer (AWS allows up to 10000). 10000, not AWS's 100: each batch costs a Delta commit in bronze, so small batches cap a partition at a few thousand events/s."
  type        = number
  default     = 10000

  validation {
    condition     = var.kafka_batch_size >= 1 && var.kafka_batch_size <= 10000
    error_message = "kafka_batch_size must be between 1 and 10000."
  }
}

variable "kafka_batching_window_seconds" {
  description = "How long the event source mapping gathers records before invoking (0-300). 5: every invocation costs each stage a fixed set of S3 requests, so at 1,000 events/s a 1 s window costs about $0.29 per million events and 5 s about $0.09 (README, clickstream bench cost), for about 2.5 s more produce-to-gold latency."
  type        = number
  default     = 5
}

variable "kafka_starting_position" {
  description = "Where a new mapping starts reading: TRIM_HORIZON or LATEST."
  type        = string
  default     = "TRIM_HORIZON"
}

variable "export_schedule" {
  description = "EventBridge Scheduler expression of the exporter."
  type        = string
  default     = "rate(15 minutes)"
}

variable "maintenance_schedule" {
  description = "EventBridge Scheduler expression of the maintenance function."
  type        = string
  default     = "rate(6 hours)"
}

variable "lake_timeout_seconds" {
  description = "A request to the lake's S3 store, and its retries, fail after this long (a store that never answers must not hold a function until its Lambda timeout)."
  type        = number
  default     = 30
}

variable "vacuum_retention_hours" {
  description = "VACUUM keeps files removed less than this long ago (readers of older versions still work)."
  type        = number
  default     = 168
}

variable "forget_now" {
  description = "Erasure requests remove the rewritten files at once (true), or leave them to maintenance's VACUUM after vacuum_retention_hours (false: readers of older versions keep working)."
  type        = bool
  default     = false
}

variable "alarm_topic_arn" {
  description = "SNS topic for alarms, or null to create alarms without actions."
  type        = string
  default     = null
}

variable "gold_freshness_alarm_minutes" {
  description = "Minutes gold's newest event may be old before the freshness alarm fires (no data from gold-transformer or maintenance counts as stale)."
  type        = number
  default     = 15
}

variable "quarantine_rate_alarm_percent" {
  description = "Percent of silver's records quarantined over 15 minutes that raises the quarantine alarm."
  type        = number
  default     = 1
}

variable "lost_races_alarm_threshold" {
  description = "Commit races a writer (silver-transformer, gold-transformer) may lose in 15 minutes before its alarm fires."
  type        = number
  default     = 20
}

variable "kafka_offset_lag_threshold" {
  description = "OffsetLag (records behind) that raises the consumer lag alarm."
  type        = number
  default     = 100000
}

variable "emulator_endpoint" {
  description = "URL of an AWS API emulator (moto's server, LocalStack) that every endpoint points at; null deploys to AWS."
  type        = string
  default     = null
}

variable "bronze_writer_concurrency" {
  description = "Reserved concurrency of bronze-writer: at most this many run at once (their commits to bronze race; each lost race is retried)."
  type        = number
  default     = 10
}

variable "landing_expiry_days" {
  description = "Days after which files under landing/ expire (bronze has their content), or null to keep them."
  type        = number
  default     = null
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = { project = "clickstream" }
}
