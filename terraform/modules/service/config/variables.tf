variable "cluster" {
  description = "Cluster name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.cluster))
    error_message = "cluster must be 2 to 24 lowercase letters, digits or '-'."
  }
}

variable "index" {
  description = "The node's number (0, 1, …): its name is CLUSTER-service-INDEX."
  type        = number

  validation {
    condition     = var.index >= 0 && var.index < 1000 && floor(var.index) == var.index
    error_message = "index must be a whole number from 0 to 999."
  }
}

variable "address" {
  description = "The instance's private IPv4 address: the node advertises ADDRESS:PORT to clients it redirects."
  type        = string

  validation {
    condition     = can(cidrhost("${var.address}/32", 0))
    error_message = "address must be an IPv4 address."
  }
}

variable "port" {
  description = "Client protocol port."
  type        = number

  validation {
    condition     = var.port >= 1024 && var.port <= 65535
    error_message = "port must be between 1024 and 65535."
  }
}

variable "http_port" {
  description = "Control plane (HTTP) port."
  type        = number

  validation {
    condition     = var.http_port >= 1024 && var.http_port <= 65535 && var.http_port != var.port
    error_message = "http_port must be between 1024 and 65535 and differ from port."
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

variable "server" {
  description = "server.toml settings (see the service module's variables of the same names)."
  type = object({
    ownership_ttl                     = string
    retention_interval                = string
    max_inflight_bytes_per_connection = optional(number)
    ledger_request_timeout            = string
    policy = object({
      ensemble         = number
      write_quorum     = number
      ack_quorum       = number
      segment_bytes    = optional(number)
      segment_age_ms   = optional(number)
      retention_age_ms = optional(number)
      retention_bytes  = optional(number)
      max_record_bytes = optional(number)
      compression      = optional(string)
      offload_after_ms = optional(number)
    })
    writer = object({
      max_entry_bytes   = optional(number)
      max_pending_bytes = optional(number)
    })
    objects = object({
      url                 = string
      region              = string
      endpoint            = optional(string)
      path_style          = optional(bool)
      grace               = string
      cache_bytes         = optional(number)
      compact_below       = optional(number)
      multipart_threshold = optional(number)
      part_size           = optional(number)
      upload_concurrency  = optional(number)
    })
  })

  validation {
    condition     = startswith(var.server.objects.url, "s3://")
    error_message = "server.objects.url must be s3://BUCKET/PREFIX."
  }
}

variable "autorecovery" {
  description = "dlogd autorecovery flags: grace (how long a bookie may be gone before its ledgers are re-replicated) and interval (between audit rounds)."
  type = object({
    grace    = string
    interval = string
  })

  validation {
    condition     = can(regex("^[0-9]+(s|m|h)$", var.autorecovery.grace)) && can(regex("^[0-9]+(s|m|h)$", var.autorecovery.interval))
    error_message = "autorecovery.grace and autorecovery.interval must be durations such as \"5m\"."
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
