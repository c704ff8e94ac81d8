variable "name" {
  description = "Cluster name (2 to 24 lowercase letters, digits or '-')."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 24 lowercase letters, digits or '-', starting with a letter and not ending with '-'."
  }
}

variable "bucket_name" {
  description = "Name of the object-tier bucket. Default: NAME-objects-ACCOUNT_ID."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3 to 63 lowercase letters, digits or '-' (no dots: they break TLS for virtual-hosted requests)."
  }
}

variable "prefix" {
  description = "Key prefix the cluster writes under (the PREFIX of PREFIX/streams/NS/NAME/…); the service role may touch nothing else in the bucket."
  type        = string
  default     = "dlog"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix)) && length(var.prefix) <= 200
    error_message = "prefix must be one or more '/'-separated parts of letters, digits, '.', '_' or '-', without leading or trailing '/'."
  }
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object version is kept (the bucket is versioned: a mistaken truncation or stream deletion can be undone within this time)."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "noncurrent_version_days must be a whole number of days, at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which an incomplete multipart upload (left by an offload that crashed mid-upload) is aborted and its parts deleted."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && var.abort_incomplete_multipart_days <= 7 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number from 1 to 7."
  }
}

variable "transitions" {
  description = "Optional transitions of offloaded segments (objects larger than 128 KiB, so manifests stay in STANDARD) to cheaper storage classes after some days. Only classes with immediate reads are allowed: dlog reads segments back with ranged GETs."
  type = list(object({
    days          = number
    storage_class = string
  }))
  default = []

  validation {
    condition     = alltrue([for t in var.transitions : contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"], t.storage_class)])
    error_message = "transitions: storage_class must be STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING or GLACIER_IR (GLACIER and DEEP_ARCHIVE need a restore before a read, which dlog does not do)."
  }

  validation {
    condition     = alltrue([for t in var.transitions : t.days >= 30 && floor(t.days) == t.days])
    error_message = "transitions: days must be whole and at least 30 (S3's minimum before an IA transition)."
  }
}

variable "log_retention_days" {
  description = "Days S3 access logs and VPC flow logs are kept in the log bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 1 && floor(var.log_retention_days) == var.log_retention_days
    error_message = "log_retention_days must be a whole number of days, at least 1."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the cluster's KMS key is deleted after a destroy (7 to 30 days; every object and volume of the cluster is unreadable without it)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the buckets with everything in them. Keep false outside throwaway clusters."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
