terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70, < 7.0"
    }
  }

  # Keep the state remote and locked, e.g.:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "dlog/dev.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      "dlog:cluster" = var.name
      "dlog:example" = "dev"
    }
  }
}
