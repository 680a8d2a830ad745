# One role per function, limited to the lake prefixes and actions it needs.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.name_prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  statement {
    sid       = "ListLakePrefixes"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for p in each.value.read_prefixes : "${local.lake_root}${p}*"]
    }
  }

  statement {
    sid       = "ReadLakePrefixes"
    actions   = ["s3:GetObject"]
    resources = [for p in each.value.read_prefixes : "${aws_s3_bucket.lake.arn}/${local.lake_root}${p}*"]
  }

  statement {
    sid       = "WriteLakePrefixes"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [for p in each.value.write_prefixes : "${aws_s3_bucket.lake.arn}/${local.lake_root}${p}*"]
  }

  dynamic "statement" {
    for_each = length(each.value.delete_prefixes) == 0 ? [] : [1]
    content {
      sid       = "DeleteLakePrefixes"
      actions   = ["s3:DeleteObject"]
      resources = [for p in each.value.delete_prefixes : "${aws_s3_bucket.lake.arn}/${local.lake_root}${p}*"]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  statement {
    sid       = "SendFailuresToDlq"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "${var.name_prefix}-${each.key}"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.function[each.key].json
}

# bronze-writer also reads Kafka through its event source mapping.
locals {
  # arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID -> the ARNs of its topic and consumer group.
  msk_cluster_path = var.msk_cluster_arn == null ? "" : split(":cluster/", var.msk_cluster_arn)[1]
  msk_arn_base     = var.msk_cluster_arn == null ? "" : split(":cluster/", var.msk_cluster_arn)[0]
  msk_topic_arn    = "${local.msk_arn_base}:topic/${local.msk_cluster_path}/${var.kafka_topic}"
  msk_group_arn    = "${local.msk_arn_base}:group/${local.msk_cluster_path}/${var.kafka_consumer_group_id}"
}

data "aws_iam_policy_document" "kafka_source" {
  # MSK: the cluster, its topic and its consumer group, each with the actions on it.
  dynamic "statement" {
    for_each = var.kafka_mode != "msk" ? {} : {
      DescribeMskCluster = {
        actions = [
          "kafka:DescribeCluster",
          "kafka:DescribeClusterV2",
          "kafka:GetBootstrapBrokers",
          "kafka-cluster:Connect",
          "kafka-cluster:DescribeClusterDynamicConfiguration",
        ]
        resource = var.msk_cluster_arn
      }
      ReadMskTopic = {
        actions  = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
        resource = local.msk_topic_arn
      }
      UseMskConsumerGroup = {
        actions  = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
        resource = local.msk_group_arn
      }
    }
    content {
      sid       = statement.key
      actions   = statement.value.actions
      resources = [statement.value.resource]
    }
  }

  dynamic "statement" {
    for_each = var.kafka_auth_secret_arn == null ? [] : [1]
    content {
      sid       = "ReadKafkaCredentials"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.kafka_auth_secret_arn]
    }
  }

  # Network interfaces for reaching brokers inside a VPC. AWS does not support resource-level
  # permissions for these EC2 actions, so "*" is required here.
  statement {
    sid = "VpcNetworkInterfaces"
    actions = [
      "ec2:CreateNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DeleteNetworkInterface",
      "ec2:DescribeVpcs",
      "ec2:DescribeSubnets",
      "ec2:DescribeSecurityGroups",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "kafka_source" {
  name   = "${var.name_prefix}-bronze-writer-kafka"
  role   = aws_iam_role.function["bronze-writer"].id
  policy = data.aws_iam_policy_document.kafka_source.json
}
