# S3 notifications: each stage's output triggers the next. Prefixes do not overlap.

locals {
  notifications = {
    "bronze-writer" = {
      prefix = "${local.lake_root}landing/"
      suffix = null
    }
    "silver-transformer" = {
      prefix = "${local.lake_root}bronze/events/_delta_log/"
      suffix = ".json"
    }
    "gold-transformer" = {
      prefix = "${local.lake_root}silver/events/_delta_log/"
      suffix = ".json"
    }
    "forget" = {
      prefix = "${local.lake_root}requests/forget/"
      suffix = ".json"
    }
  }
}

resource "aws_lambda_permission" "s3" {
  for_each       = local.notifications
  statement_id   = "AllowLakeBucketNotifications"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function[each.key].function_name
  principal      = "s3.amazonaws.com"
  source_arn     = aws_s3_bucket.lake.arn
  source_account = data.aws_caller_identity.current.account_id
}

data "aws_caller_identity" "current" {}

resource "aws_s3_bucket_notification" "lake" {
  bucket = aws_s3_bucket.lake.id

  dynamic "lambda_function" {
    for_each = local.notifications
    content {
      id                  = "${var.name_prefix}-${lambda_function.key}"
      lambda_function_arn = aws_lambda_function.function[lambda_function.key].arn
      events              = ["s3:ObjectCreated:*"]
      filter_prefix       = lambda_function.value.prefix
      filter_suffix       = lambda_function.value.suffix
    }
  }

  depends_on = [aws_lambda_permission.s3]
}
