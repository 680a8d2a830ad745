# What every other file builds on: the lake location and the functions with their settings.

locals {
  # Key prefix of the lake inside the bucket ("" or "prefix/"); S3 filters and IAM use it.
  lake_root = var.lake_prefix == "" ? "" : "${var.lake_prefix}/"
  lake_uri  = "s3://${var.lake_bucket_name}/${var.lake_prefix}"

  # Variables every function reads (LAKE_URI, RUST_LOG), plus S3 endpoint settings on LocalStack.
  common_environment = merge(
    {
      LAKE_URI             = local.lake_uri
      RUST_LOG             = var.log_level
      LAKE_TIMEOUT_SECONDS = tostring(var.lake_timeout_seconds)
    },
    var.localstack_endpoint == null ? {} : {
      AWS_ENDPOINT_URL = var.localstack_endpoint
      AWS_ALLOW_HTTP   = "true"
    },
  )

  # One entry per crate under functions/. reserved_concurrency = 1 where a table needs one writer.
  functions = {
    "bronze-writer" = {
      description          = "Kafka batches and landed files -> bronze/events"
      memory_mb            = 1024
      timeout_s            = 300
      reserved_concurrency = null
      environment          = {}
      read_prefixes        = ["landing/", "bronze/events/"]
      write_prefixes       = ["bronze/events/"]
    }
    "silver-transformer" = {
      description          = "Bronze commits -> silver/events and silver/quarantine"
      memory_mb            = 2048
      timeout_s            = 600
      reserved_concurrency = 1
      environment          = {}
      read_prefixes        = ["bronze/events/", "silver/events/", "silver/quarantine/"]
      write_prefixes       = ["silver/events/", "silver/quarantine/"]
    }
    "gold-transformer" = {
      description          = "Silver commits -> gold tables"
      memory_mb            = 3008
      timeout_s            = 900
      reserved_concurrency = 1
      environment          = { FUNNEL_STEPS = join(",", var.funnel_steps) }
      read_prefixes        = ["silver/events/", "gold/"]
      write_prefixes       = ["gold/"]
    }
    "exporter" = {
      description          = "Gold -> exports/ (DuckDB, CSV, Parquet)"
      memory_mb            = 2048
      timeout_s            = 600
      reserved_concurrency = 1
      environment          = {}
      read_prefixes        = ["gold/", "exports/"]
      write_prefixes       = ["exports/"]
    }
    "maintenance" = {
      description          = "Checkpoints, OPTIMIZE and VACUUM of every table"
      memory_mb            = 2048
      timeout_s            = 900
      reserved_concurrency = 1
      environment          = { VACUUM_RETENTION_HOURS = tostring(var.vacuum_retention_hours) }
      read_prefixes        = ["bronze/", "silver/", "gold/"]
      write_prefixes       = ["bronze/", "silver/", "gold/"]
    }
  }
}
