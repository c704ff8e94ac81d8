variable "cluster" {
  description = "Cluster name: the etcd cluster token."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.cluster))
    error_message = "cluster must be 2 to 24 lowercase letters, digits or '-'."
  }
}

variable "index" {
  description = "This member's position in members."
  type        = number

  validation {
    condition     = var.index >= 0 && floor(var.index) == var.index
    error_message = "index must be a whole number, at least 0."
  }
}

variable "members" {
  description = "Every member of the etcd cluster, in order: name and private IPv4 address."
  type = list(object({
    name    = string
    address = string
  }))

  validation {
    condition     = length(var.members) >= 1 && alltrue([for m in var.members : can(regex("^[a-z0-9-]+$", m.name)) && can(cidrhost("${m.address}/32", 0))])
    error_message = "members must list at least one member with a name of lowercase letters, digits or '-' and an IPv4 address."
  }
}

variable "client_port" {
  description = "etcd client port."
  type        = number

  validation {
    condition     = var.client_port >= 1024 && var.client_port <= 65535
    error_message = "client_port must be between 1024 and 65535."
  }
}

variable "peer_port" {
  description = "etcd peer port."
  type        = number

  validation {
    condition     = var.peer_port >= 1024 && var.peer_port <= 65535
    error_message = "peer_port must be between 1024 and 65535."
  }
}

variable "volume_id" {
  description = "The member's EBS data volume (vol-…), mounted on /var/lib/etcd."
  type        = string

  validation {
    condition     = can(regex("^vol-[0-9a-f]+$", var.volume_id))
    error_message = "volume_id must look like vol-0123abcd."
  }
}

variable "architecture" {
  description = "CPU architecture (\"x86_64\" or \"arm64\": etcd 3.4 needs ETCD_UNSUPPORTED_ARCH on arm64)."
  type        = string

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\"."
  }
}

variable "quota_backend_bytes" {
  description = "etcd's backend size limit (--quota-backend-bytes)."
  type        = number

  validation {
    condition     = var.quota_backend_bytes >= 1073741824 && var.quota_backend_bytes <= 8589934592
    error_message = "quota_backend_bytes must be between 1 GiB and 8 GiB (etcd's recommended maximum)."
  }
}

variable "compaction_retention" {
  description = "Revision history kept by periodic auto-compaction (--auto-compaction-retention), e.g. \"1h\"."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+(m|h)$", var.compaction_retention))
    error_message = "compaction_retention must be a duration in minutes or hours, such as \"1h\"."
  }
}

variable "attach_timeout_seconds" {
  description = "How long the first boot waits for the data volume to be attached."
  type        = number
  default     = 600

  validation {
    condition     = var.attach_timeout_seconds >= 60
    error_message = "attach_timeout_seconds must be at least 60."
  }
}
