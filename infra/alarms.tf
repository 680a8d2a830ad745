# Alarms: any function error or throttled invocation, Kafka consumer lag of bronze-writer, a
# recreated Kafka topic, a DLQ that is not empty, and from the functions' own metrics (CloudWatch
# Embedded Metric Format): gold staler than a threshold, a quarantine rate above a threshold, and
# commit races lost at a climbing rate.
# Two alarm resources: each entry of local.alarms watches one metric; each entry of
# local.math_alarms an expression over several (queries by id).

locals {
  # The namespace of the pipeline's log metric filters.
  metrics_namespace = "Clickstream/${var.name_prefix}"

  # The namespace and dimension of the metrics the functions emit: clickstream::telemetry's
  # NAMESPACE and STAGE (infra/tests/terraform.rs checks these and every metric name below).
  emf_namespace = "Clickstream"
  emf_stage     = "Stage"

  # The functions whose commits can lose a race with another writer of the same table.
  racing_writers = ["silver-transformer", "gold-transformer"]

  # Per function: Lambda's own metric, and what it means when it is above zero.
  function_alarm_metrics = {
    errors    = { metric = "Errors", says = "returned errors" }
    throttles = { metric = "Throttles", says = "was throttled (its reserved concurrency is reached)" }
  }

  alarms = merge(
    {
      for pair in setproduct(keys(local.functions), keys(local.function_alarm_metrics)) :
      "${pair[0]}-${pair[1]}" => {
        description = "${pair[0]} ${local.function_alarm_metrics[pair[1]].says}"
        namespace   = "AWS/Lambda"
        metric      = local.function_alarm_metrics[pair[1]].metric
        dimensions  = { FunctionName = aws_lambda_function.function[pair[0]].function_name }
        statistic   = "Sum"
        period      = 300
        periods     = 1
        threshold   = 0
        missing     = "notBreaching"
      }
    },
    {
      for f in local.racing_writers : "${f}-lost-races" => {
        description = "${f} lost more than ${var.lost_races_alarm_threshold} commit races in 15 minutes: too many writers of its tables at once"
        namespace   = local.emf_namespace
        metric      = "LostRaces"
        dimensions  = { (local.emf_stage) = aws_lambda_function.function[f].function_name }
        statistic   = "Sum"
        period      = 900
        periods     = 1
        threshold   = var.lost_races_alarm_threshold
        missing     = "notBreaching"
      }
    },
    {
      "bronze-writer-offset-lag" = {
        description = "bronze-writer is falling behind the Kafka topic"
        namespace   = "AWS/Lambda"
        metric      = "OffsetLag"
        dimensions  = { FunctionName = aws_lambda_function.function["bronze-writer"].function_name }
        statistic   = "Maximum"
        period      = 300
        periods     = 3
        threshold   = var.kafka_offset_lag_threshold
        missing     = "notBreaching"
      }
      "bronze-writer-kafka-source-reset" = {
        description = "bronze-writer refuses Kafka records below its watermark: the topic was recreated (see BRONZE_KAFKA_GENERATION)"
        namespace   = local.metrics_namespace
        metric      = aws_cloudwatch_log_metric_filter.kafka_source_reset.metric_transformation[0].name
        dimensions  = {}
        statistic   = "Sum"
        period      = 300
        periods     = 1
        threshold   = 0
        missing     = "notBreaching"
      }
      "dlq-not-empty" = {
        description = "Failed invocations are waiting in the dead-letter queue"
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = aws_sqs_queue.dlq.name }
        statistic   = "Maximum"
        period      = 300
        periods     = 1
        threshold   = 0
        missing     = "notBreaching"
      }
    },
  )

  math_alarms = {
    # Freshness: gold-transformer emits it after each commit, maintenance on its schedule; the
    # larger counts. No data counts as stale: a gold that stopped running is not fresh.
    "gold-freshness" = {
      description = "gold's newest event is more than ${var.gold_freshness_alarm_minutes} minutes old"
      expression  = "MAX([gold, maintenance])"
      queries = {
        gold        = { metric = "FreshnessSeconds", function = "gold-transformer", statistic = "Maximum" }
        maintenance = { metric = "FreshnessSeconds", function = "maintenance", statistic = "Maximum" }
      }
      period    = 300
      threshold = var.gold_freshness_alarm_minutes * 60
      missing   = "breaching"
    }
    # Quarantine rate: silver's quarantined records per record read, in percent, over 15 minutes
    # (Quarantined is not emitted when zero, hence FILL).
    "silver-quarantine-rate" = {
      description = "silver-transformer quarantined more than ${var.quarantine_rate_alarm_percent}% of its records in 15 minutes"
      expression  = "100 * FILL(quarantined, 0) / records"
      queries = {
        quarantined = { metric = "Quarantined", function = "silver-transformer", statistic = "Sum" }
        records     = { metric = "RecordsIn", function = "silver-transformer", statistic = "Sum" }
      }
      period    = 900
      threshold = var.quarantine_rate_alarm_percent
      missing   = "notBreaching"
    }
  }
}

# bronze-writer's log line for Error::KafkaSourceReset, counted (the pattern is the error's
# prefix, clickstream::error::KAFKA_SOURCE_RESET; infra/tests/terraform.rs checks they agree).
resource "aws_cloudwatch_log_metric_filter" "kafka_source_reset" {
  name           = "${var.name_prefix}-kafka-source-reset"
  log_group_name = aws_cloudwatch_log_group.function["bronze-writer"].name
  pattern        = "\"Kafka source reset\""
  metric_transformation {
    name      = "KafkaSourceResets"
    namespace = local.metrics_namespace
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "alarm" {
  for_each            = local.alarms
  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = each.value.missing
  alarm_actions       = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "math" {
  for_each            = local.math_alarms
  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = each.value.missing
  alarm_actions       = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]

  metric_query {
    id          = "alarm"
    expression  = each.value.expression
    label       = each.key
    return_data = true
  }

  dynamic "metric_query" {
    for_each = each.value.queries
    content {
      id = metric_query.key
      metric {
        namespace   = local.emf_namespace
        metric_name = metric_query.value.metric
        dimensions  = { (local.emf_stage) = aws_lambda_function.function[metric_query.value.function].function_name }
        stat        = metric_query.value.statistic
        period      = each.value.period
      }
    }
  }
}
