# The Kafka trigger of bronze-writer: Amazon MSK or a self-managed cluster.

resource "aws_lambda_event_source_mapping" "kafka" {
  function_name                      = aws_lambda_function.function["bronze-writer"].arn
  event_source_arn                   = var.kafka_mode == "msk" ? var.msk_cluster_arn : null
  topics                             = [var.kafka_topic]
  starting_position                  = var.kafka_starting_position
  batch_size                         = var.kafka_batch_size
  maximum_batching_window_in_seconds = var.kafka_batching_window_seconds

  dynamic "amazon_managed_kafka_event_source_config" {
    for_each = var.kafka_mode == "msk" ? [1] : []
    content {
      consumer_group_id = var.kafka_consumer_group_id
    }
  }

  dynamic "self_managed_event_source" {
    for_each = var.kafka_mode == "self_managed" ? [1] : []
    content {
      endpoints = {
        KAFKA_BOOTSTRAP_SERVERS = join(",", var.kafka_bootstrap_servers)
      }
    }
  }

  dynamic "self_managed_kafka_event_source_config" {
    for_each = var.kafka_mode == "self_managed" ? [1] : []
    content {
      consumer_group_id = var.kafka_consumer_group_id
    }
  }

  # Credentials of the brokers (SASL over TLS, or a client certificate), and the CA that signed a
  # self-managed broker's certificate.
  dynamic "source_access_configuration" {
    for_each = var.kafka_auth_secret_arn == null ? [] : [var.kafka_auth_secret_arn]
    content {
      type = var.kafka_auth_type
      uri  = source_access_configuration.value
    }
  }

  dynamic "source_access_configuration" {
    for_each = var.kafka_server_root_ca_secret_arn == null ? [] : [var.kafka_server_root_ca_secret_arn]
    content {
      type = "SERVER_ROOT_CA_CERTIFICATE"
      uri  = source_access_configuration.value
    }
  }

  dynamic "source_access_configuration" {
    for_each = var.kafka_mode == "self_managed" ? var.kafka_vpc_subnet_ids : []
    content {
      type = "VPC_SUBNET"
      uri  = "subnet:${source_access_configuration.value}"
    }
  }

  dynamic "source_access_configuration" {
    for_each = var.kafka_mode == "self_managed" ? var.kafka_vpc_security_group_ids : []
    content {
      type = "VPC_SECURITY_GROUP"
      uri  = "security_group:${source_access_configuration.value}"
    }
  }

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dlq.arn
    }
  }

  lifecycle {
    precondition {
      condition     = var.kafka_mode != "self_managed" || var.kafka_auth_secret_arn != null || var.kafka_allow_unauthenticated_plaintext
      error_message = "A self-managed Kafka source needs kafka_auth_secret_arn (SASL over TLS, or a client certificate). Only for a broker on a private network you trust, set kafka_allow_unauthenticated_plaintext = true."
    }
    precondition {
      condition     = var.kafka_mode != "msk" || var.msk_cluster_arn != null
      error_message = "kafka_mode = \"msk\" needs msk_cluster_arn."
    }
    precondition {
      condition     = var.kafka_mode != "self_managed" || length(var.kafka_bootstrap_servers) > 0
      error_message = "kafka_mode = \"self_managed\" needs kafka_bootstrap_servers."
    }
  }

  depends_on = [aws_iam_role_policy.kafka_source]
}
