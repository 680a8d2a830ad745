terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  # LocalStack: every endpoint points at it when `localstack_endpoint` is set.
  skip_credentials_validation = var.localstack_endpoint != null
  skip_requesting_account_id  = var.localstack_endpoint != null
  s3_use_path_style           = var.localstack_endpoint != null

  endpoints {
    cloudwatch = var.localstack_endpoint
    events     = var.localstack_endpoint
    iam        = var.localstack_endpoint
    lambda     = var.localstack_endpoint
    logs       = var.localstack_endpoint
    s3         = var.localstack_endpoint
    scheduler  = var.localstack_endpoint
    sqs        = var.localstack_endpoint
    sts        = var.localstack_endpoint
  }

  default_tags {
    tags = var.tags
  }
}
