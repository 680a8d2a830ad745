# What every other file builds on: the lake location and the functions with their settings.

locals {
  # Key prefix of the lake inside the bucket ("" or "prefix/"); S3 filters and IAM use it.
  lake_root = var.lake_prefix == "" ? "" : "${var.lake_prefix}/"
  lake_uri  = "s3://${var.lake_bucket_name}/${var.lake_prefix}"

  # Variables every function reads (LAKE_URI, RUST_LOG), plus S3 endpoint settings on an emulator.
  common_environment = merge(
    {
      LAKE_URI             = local.lake_uri
      RUST_LOG             = var.log_level
      LAKE_TIMEOUT_SECONDS = tostring(var.lake_timeout_seconds)
    },
    var.emulator_endpoint == null ? {} : {
      AWS_ENDPOINT_URL = var.emulator_endpoint
      AWS_ALLOW_HTTP   = "true"
    },
  )

  # One entry per crate under functions/. reserved_concurrency = 1 where a table needs one writer;
  # bronze-writer's is bounded (its commits race, and each lost race is retried).
  # read_prefixes / write_prefixes / delete_prefixes: what its role may read, write and delete,
  # relative to the lake root; what the code touches, no more (infra/tests/deploy.rs runs every
  # function with only its role's policy). Only maintenance and forget delete: the writers leave
  # expired log files to maintenance (delta-rs's writers would otherwise delete them after a
  # checkpoint), and an erasure deletes what held the person.
  functions = {
    "bronze-writer" = {
      description          = "Kafka batches and landed files -> bronze/events"
      memory_mb            = 1024
      timeout_s            = 300
      reserved_concurrency = var.bronze_writer_concurrency
      environment = {
        BRONZE_MAX_FILE_BYTES     = tostring(var.bronze_max_file_bytes)
        BRONZE_MAX_RECORD_BYTES   = tostring(var.bronze_max_record_bytes)
        BRONZE_MAX_DOCUMENT_BYTES = tostring(var.bronze_max_document_bytes)
        BRONZE_KAFKA_GENERATION   = var.bronze_kafka_generation
      }
      read_prefixes   = ["landing/", "bronze/events/", "bronze/failed_files/"]
      write_prefixes  = ["bronze/events/", "bronze/failed_files/"]
      delete_prefixes = []
    }
    "silver-transformer" = {
      description          = "Bronze commits -> silver/events and silver/quarantine"
      memory_mb            = 2048
      timeout_s            = 600
      reserved_concurrency = 1
      environment          = {}
      # audit/erasures/: the identifiers of erased persons, whose records it suppresses.
      read_prefixes   = ["bronze/events/", "silver/events/", "silver/quarantine/", "audit/erasures/"]
      write_prefixes  = ["silver/events/", "silver/quarantine/"]
      delete_prefixes = []
    }
    "gold-transformer" = {
      description          = "Silver commits -> gold tables"
      memory_mb            = 3008
      timeout_s            = 900
      reserved_concurrency = 1
      environment          = { FUNNEL_STEPS = join(",", var.funnel_steps) }
      read_prefixes        = ["silver/events/", "gold/"]
      write_prefixes       = ["gold/"]
      delete_prefixes      = []
    }
    "exporter" = {
      description          = "Gold -> exports/ (DuckDB, CSV, Parquet, dashboard)"
      memory_mb            = 2048
      timeout_s            = 600
      reserved_concurrency = 1
      environment          = {}
      # It recomputes gold/retention_weekly first; the dashboard also reads silver's tables, and
      # bronze's for its pipeline panel (records per day, silver's lag).
      read_prefixes   = ["gold/", "silver/events/", "silver/quarantine/", "bronze/events/", "exports/"]
      write_prefixes  = ["gold/retention_weekly/", "gold/identities/", "exports/"]
      delete_prefixes = []
    }
    "maintenance" = {
      description          = "Checkpoints, OPTIMIZE and VACUUM of every table"
      memory_mb            = 2048
      timeout_s            = 900
      reserved_concurrency = 1
      environment          = { VACUUM_RETENTION_HOURS = tostring(var.vacuum_retention_hours) }
      # _clickstream/: the probe that checks the lake is writable before anything is deleted.
      read_prefixes   = ["bronze/", "silver/", "gold/", "audit/", "_clickstream/"]
      write_prefixes  = ["bronze/", "silver/", "gold/", "audit/", "_clickstream/"]
      delete_prefixes = ["bronze/", "silver/", "gold/", "audit/", "_clickstream/"]
    }
    "forget" = {
      description          = "Erasure requests -> the person removed from every table and export"
      memory_mb            = 3008
      timeout_s            = 900
      reserved_concurrency = 1
      environment = {
        FUNNEL_STEPS           = join(",", var.funnel_steps)
        VACUUM_RETENTION_HOURS = tostring(var.vacuum_retention_hours)
        FORGET_NOW             = tostring(var.forget_now)
      }
      # Everything an erased person can be in (landed files, every table, the exports), the
      # requests it deletes once done, and the writability probe. It is the one writer but
      # maintenance that deletes.
      read_prefixes   = ["requests/", "landing/", "bronze/", "silver/", "gold/", "audit/", "exports/", "_clickstream/"]
      write_prefixes  = ["requests/", "bronze/", "silver/", "gold/", "audit/", "exports/", "_clickstream/"]
      delete_prefixes = ["requests/", "landing/", "bronze/", "silver/", "gold/", "audit/", "exports/", "_clickstream/"]
    }
  }
}
