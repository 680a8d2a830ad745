output "lake_uri" {
  description = "LAKE_URI of the deployed functions."
  value       = local.lake_uri
}

output "lake_bucket" {
  description = "The lake bucket."
  value       = aws_s3_bucket.lake.id
}

output "function_names" {
  description = "Deployed function names by crate."
  value       = { for k, f in aws_lambda_function.function : k => f.function_name }
}

output "dead_letter_queue_url" {
  description = "Where failed invocations land."
  value       = aws_sqs_queue.dlq.url
}

output "landing_prefix" {
  description = "Drop files here (s3://bucket/prefix/landing/) to ingest them."
  value       = "s3://${aws_s3_bucket.lake.id}/${local.lake_root}landing/"
}
