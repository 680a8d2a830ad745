terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  # An emulator: every endpoint points at it when `emulator_endpoint` is set.
  skip_credentials_validation = var.emulator_endpoint != null
  skip_requesting_account_id  = var.emulator_endpoint != null
  s3_use_path_style           = var.emulator_endpoint != null

  endpoints {
    cloudwatch = var.emulator_endpoint
    events     = var.emulator_endpoint
    iam        = var.emulator_endpoint
    kafka      = var.emulator_endpoint
    lambda     = var.emulator_endpoint
    logs       = var.emulator_endpoint
    s3         = var.emulator_endpoint
    scheduler  = var.emulator_endpoint
    sqs        = var.emulator_endpoint
    sts        = var.emulator_endpoint
  }

  default_tags {
    tags = var.tags
  }
}
