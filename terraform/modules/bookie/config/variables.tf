variable "cluster" {
  description = "Cluster name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.cluster))
    error_message = "cluster must be 2 to 24 lowercase letters, digits or '-'."
  }
}

variable "index" {
  description = "The bookie's slot number in the cluster (0, 1, …): names the instance and starts its bookie id."
  type        = number

  validation {
    condition     = var.index >= 0 && var.index < 1000 && floor(var.index) == var.index
    error_message = "index must be a whole number from 0 to 999."
  }
}

variable "zone" {
  description = "Availability zone: the bookie's failure domain (--zone), which placement spreads ensembles over."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,64}$", var.zone))
    error_message = "zone must be 1 to 64 letters, digits, '-', '_' or '.'."
  }
}

variable "address" {
  description = "The instance's private IPv4 address: the bookie advertises ADDRESS:PORT."
  type        = string

  validation {
    condition     = can(cidrhost("${var.address}/32", 0))
    error_message = "address must be an IPv4 address."
  }
}

variable "port" {
  description = "Bookie protocol port."
  type        = number

  validation {
    condition     = var.port >= 1024 && var.port <= 65535
    error_message = "port must be between 1024 and 65535."
  }
}

variable "metadata_url" {
  description = "The cluster's metadata store, etcd://HOST:PORT,…[/root]."
  type        = string

  validation {
    condition     = can(regex("^etcd://[^/,]+:[0-9]+(,[^/,]+:[0-9]+)*(/.*)?$", var.metadata_url))
    error_message = "metadata_url must look like etcd://host:2379,host:2379[/root]."
  }
}

variable "registration_ttl" {
  description = "How long the bookie's registration outlives it if it dies without deregistering (--registration-ttl, 2s to 1h)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h)$", var.registration_ttl))
    error_message = "registration_ttl must be a duration such as \"10s\"."
  }
}

variable "mount" {
  description = "Where the local NVMe filesystem is mounted; the data dir is MOUNT/bookie."
  type        = string

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+[^/]$", var.mount))
    error_message = "mount must be an absolute path without a trailing '/'."
  }
}

variable "settings" {
  description = "Bookie settings (see the bookie module's settings variable); null fields keep dlogd's defaults."
  type = object({
    journal_file_size_bytes           = optional(number)
    journal_io_mode                   = optional(string)
    journal_preallocate               = optional(string)
    journal_max_commit_bytes          = optional(number)
    index_flush_interval              = optional(string)
    cache_bytes                       = optional(number)
    read_only_above                   = optional(number, 0.95)
    writable_below                    = optional(number, 0.90)
    gc_interval                       = optional(string)
    gc_compact_below                  = optional(number)
    max_entry_bytes                   = optional(number)
    max_inflight_bytes_per_connection = optional(number)
  })
  default = {}

  validation {
    condition     = 0 < var.settings.writable_below && var.settings.writable_below <= var.settings.read_only_above && var.settings.read_only_above <= 1
    error_message = "settings must satisfy 0 < writable_below <= read_only_above <= 1."
  }
}

variable "dlogd_release" {
  description = "Where the instance downloads dlogd from (an https URL) and the SHA-256 it must have; null when the AMI already holds /usr/local/bin/dlogd."
  type = object({
    url    = string
    sha256 = string
  })
  default = null

  validation {
    condition     = var.dlogd_release == null || can(regex("^https://[A-Za-z0-9._~:/?#@!&()*+,;=%-]+$", var.dlogd_release.url))
    error_message = "dlogd_release.url must be an https:// URL (without quotes or '$')."
  }

  validation {
    condition     = var.dlogd_release == null || can(regex("^[0-9a-f]{64}$", var.dlogd_release.sha256))
    error_message = "dlogd_release.sha256 must be 64 lowercase hex digits."
  }
}
