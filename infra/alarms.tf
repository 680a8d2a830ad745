# Alarms: any function error or throttled invocation, Kafka consumer lag of bronze-writer, a
# recreated Kafka topic, and a DLQ that is not empty.
# One alarm resource; each entry of local.alarms says what it watches and when it fires.

locals {
  # The namespace of the pipeline's own metrics.
  metrics_namespace = "Clickstream/${var.name_prefix}"

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
        periods     = 1
        threshold   = 0
      }
    },
    {
      "bronze-writer-offset-lag" = {
        description = "bronze-writer is falling behind the Kafka topic"
        namespace   = "AWS/Lambda"
        metric      = "OffsetLag"
        dimensions  = { FunctionName = aws_lambda_function.function["bronze-writer"].function_name }
        statistic   = "Maximum"
        periods     = 3
        threshold   = var.kafka_offset_lag_threshold
      }
      "bronze-writer-kafka-source-reset" = {
        description = "bronze-writer refuses Kafka records below its watermark: the topic was recreated (see BRONZE_KAFKA_GENERATION)"
        namespace   = local.metrics_namespace
        metric      = aws_cloudwatch_log_metric_filter.kafka_source_reset.metric_transformation[0].name
        dimensions  = {}
        statistic   = "Sum"
        periods     = 1
        threshold   = 0
      }
      "dlq-not-empty" = {
        description = "Failed invocations are waiting in the dead-letter queue"
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = aws_sqs_queue.dlq.name }
        statistic   = "Maximum"
        periods     = 1
        threshold   = 0
      }
    },
  )
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
  period              = 300
  evaluation_periods  = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
}
