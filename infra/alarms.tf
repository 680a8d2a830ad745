# Alarms: any function error or throttled invocation, Kafka consumer lag of bronze-writer, and a
# DLQ that is not empty.
# One alarm resource; each entry of local.alarms says what it watches and when it fires.

locals {
  alarms = merge(
    {
      for name, _ in local.functions : "${name}-errors" => {
        description = "${name} returned errors"
        namespace   = "AWS/Lambda"
        metric      = "Errors"
        dimensions  = { FunctionName = aws_lambda_function.function[name].function_name }
        statistic   = "Sum"
        periods     = 1
        threshold   = 0
      }
    },
    {
      for name, _ in local.functions : "${name}-throttles" => {
        description = "${name} was throttled (its reserved concurrency is reached)"
        namespace   = "AWS/Lambda"
        metric      = "Throttles"
        dimensions  = { FunctionName = aws_lambda_function.function[name].function_name }
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
