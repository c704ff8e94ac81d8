variable "name" {
  description = "Cluster name (2 to 24 lowercase letters, digits or '-')."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 24 lowercase letters, digits or '-', starting with a letter and not ending with '-'."
  }
}

variable "bucket_arn" {
  description = "ARN of the object-tier bucket (bucket module)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.bucket_arn))
    error_message = "bucket_arn must be an S3 bucket ARN (arn:aws:s3:::name)."
  }
}

variable "prefix" {
  description = "Key prefix of the cluster in the bucket; the service role may read, write and list only under PREFIX/."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix))
    error_message = "prefix must be one or more '/'-separated parts of letters, digits, '.', '_' or '-', without leading or trailing '/' (and never empty: the role would reach the whole bucket)."
  }
}

variable "kms_key_arn" {
  description = "ARN of the cluster's KMS key (bucket module): the service role may use it through S3 only."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore to every role, so operators reach the instances with SSM Session Manager and Run Command instead of SSH (no SSH port is open)."
  type        = bool
  default     = true
}

variable "permissions_boundary_arn" {
  description = "Optional permissions boundary for the roles (organizations that require one)."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
