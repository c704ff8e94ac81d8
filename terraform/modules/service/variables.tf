variable "name" {
  description = "Cluster name (2 to 24 lowercase letters, digits or '-'); nodes are NAME-service-N."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 24 lowercase letters, digits or '-', starting with a letter and not ending with '-'."
  }
}

variable "node_count" {
  description = "Number of service nodes (dlogd server with the offloader and the control plane, plus dlogd autorecovery). At least 2 keeps the service up through a rolling restart."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 100 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 1 to 100."
  }
}

variable "subnets" {
  description = "Private subnets to spread the nodes and the load balancer over (network module's private_subnets): node N goes to subnet N mod len(subnets)."
  type = list(object({
    id   = string
    cidr = string
    zone = string
  }))

  validation {
    condition     = length(var.subnets) >= 1 && alltrue([for s in var.subnets : can(cidrhost(s.cidr, 0))])
    error_message = "subnets must list at least one subnet with its CIDR block."
  }
}

variable "host_offset" {
  description = "Nodes get fixed private addresses (each advertises its own): node N is host number host_offset + floor(N / len(subnets)) of its subnet."
  type        = number
  default     = 32

  validation {
    condition     = var.host_offset >= 4 && floor(var.host_offset) == var.host_offset
    error_message = "host_offset must be a whole number of at least 4 (AWS reserves the first four addresses of a subnet)."
  }
}

variable "security_group_id" {
  description = "The service security group (network module)."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.security_group_id))
    error_message = "security_group_id must look like sg-0123abcd."
  }
}

variable "lb_security_group_id" {
  description = "The load balancer's security group (network module)."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.lb_security_group_id))
    error_message = "lb_security_group_id must look like sg-0123abcd."
  }
}

variable "instance_profile" {
  description = "The service instance profile (iam module): the cluster's prefix of the bucket, nothing else."
  type        = string

  validation {
    condition     = length(var.instance_profile) > 0
    error_message = "instance_profile must not be empty."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the root volumes (bucket module's kms_key_arn)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "instance_type" {
  description = "Instance type of the service nodes (memory holds the read cache, objects.cache_bytes, and offloads in progress)."
  type        = string
  default     = "m7i.xlarge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[0-9a-z]+$", var.instance_type))
    error_message = "instance_type must look like m7i.xlarge."
  }
}

variable "architecture" {
  description = "CPU architecture of instance_type and of the dlogd release: \"x86_64\" or \"arm64\"."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\"."
  }
}

variable "ami_id" {
  description = "AMI to boot. Default: the newest official Debian 12 image for architecture. Changing it does not replace running nodes; see docs/operations.md, upgrades."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must look like ami-0123abcd."
  }
}

variable "root_volume_gb" {
  description = "Size of the encrypted root volume."
  type        = number
  default     = 20

  validation {
    condition     = var.root_volume_gb >= 8 && var.root_volume_gb <= 1024
    error_message = "root_volume_gb must be between 8 and 1024."
  }
}

variable "metadata_url" {
  description = "The cluster's metadata store (etcd module's metadata_url)."
  type        = string

  validation {
    condition     = can(regex("^etcd://[^/,]+:[0-9]+(,[^/,]+:[0-9]+)*(/.*)?$", var.metadata_url))
    error_message = "metadata_url must look like etcd://host:2379,host:2379[/root]."
  }
}

variable "bookie_count" {
  description = "Number of bookies in the cluster (bookie module's bookie_count): the default policy's ensemble must fit in it."
  type        = number

  validation {
    condition     = var.bookie_count >= 1 && floor(var.bookie_count) == var.bookie_count
    error_message = "bookie_count must be a whole number, at least 1."
  }
}

variable "port" {
  description = "Client protocol port (network module's ports.service)."
  type        = number
  default     = 7070

  validation {
    condition     = var.port >= 1024 && var.port <= 65535
    error_message = "port must be between 1024 and 65535."
  }
}

variable "http_port" {
  description = "Control plane port (network module's ports.http)."
  type        = number
  default     = 7080

  validation {
    condition     = var.http_port >= 1024 && var.http_port <= 65535 && var.http_port != var.port
    error_message = "http_port must be between 1024 and 65535 and differ from port."
  }
}

variable "default_policy" {
  description = "Policy of streams created without one ([default_policy] of server.toml): ensemble E, write quorum Qw, ack quorum Qa (E >= Qw >= Qa >= 1), and optional segment, retention, record-size, compression and offload settings (null: dlogd's default)."
  type = object({
    ensemble         = optional(number, 3)
    write_quorum     = optional(number, 3)
    ack_quorum       = optional(number, 2)
    segment_bytes    = optional(number)
    segment_age_ms   = optional(number)
    retention_age_ms = optional(number)
    retention_bytes  = optional(number)
    max_record_bytes = optional(number)
    compression      = optional(string)
    offload_after_ms = optional(number)
  })
  default = {}

  validation {
    condition = (
      var.default_policy.ack_quorum >= 1 &&
      var.default_policy.ack_quorum <= var.default_policy.write_quorum &&
      var.default_policy.write_quorum <= var.default_policy.ensemble &&
      var.default_policy.ensemble <= 32 &&
      alltrue([for n in [var.default_policy.ensemble, var.default_policy.write_quorum, var.default_policy.ack_quorum] : floor(n) == n])
    )
    error_message = "default_policy must satisfy 1 <= ack_quorum <= write_quorum <= ensemble <= 32 (whole numbers)."
  }

  validation {
    condition     = var.default_policy.ensemble <= var.bookie_count
    error_message = "default_policy.ensemble is larger than bookie_count: no ledger could be placed."
  }

  validation {
    condition     = var.default_policy.segment_bytes == null || try(var.default_policy.segment_bytes >= 1048576, false)
    error_message = "default_policy.segment_bytes must be at least 1 MiB."
  }

  validation {
    condition     = var.default_policy.segment_age_ms == null || try(var.default_policy.segment_age_ms >= 1000, false)
    error_message = "default_policy.segment_age_ms must be at least 1000."
  }

  validation {
    condition     = var.default_policy.max_record_bytes == null || try(var.default_policy.max_record_bytes >= 1 && var.default_policy.max_record_bytes <= 4194304, false)
    error_message = "default_policy.max_record_bytes must be between 1 and 4 MiB."
  }

  validation {
    condition     = var.default_policy.compression == null || contains(["none", "zstd", "lz4"], coalesce(var.default_policy.compression, "x"))
    error_message = "default_policy.compression must be \"none\", \"zstd\" or \"lz4\"."
  }
}

variable "ownership_ttl" {
  description = "How long a node's ownership of its streams outlives the node (1s to 5m): after a crash, its streams move to another node this long after."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^[0-9]+(s|m)$", var.ownership_ttl))
    error_message = "ownership_ttl must be a duration in seconds or minutes, such as \"10s\"."
  }
}

variable "retention_interval" {
  description = "How often retention policies (and offload_after_ms offloads) are applied."
  type        = string
  default     = "1m"

  validation {
    condition     = can(regex("^[0-9]+(s|m|h)$", var.retention_interval))
    error_message = "retention_interval must be a duration such as \"1m\"."
  }
}

variable "ledger_request_timeout" {
  description = "Timeout of one request to a bookie ([ledger] request_timeout)."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^[0-9]+(ms|s)$", var.ledger_request_timeout))
    error_message = "ledger_request_timeout must be a duration such as \"10s\"."
  }
}

variable "max_inflight_bytes_per_connection" {
  description = "Request bytes in flight per client connection (null: dlogd's default, 64 MiB)."
  type        = number
  default     = null

  validation {
    condition     = var.max_inflight_bytes_per_connection == null || try(var.max_inflight_bytes_per_connection >= 1048576, false)
    error_message = "max_inflight_bytes_per_connection must be at least 1 MiB."
  }
}

variable "writer" {
  description = "[writer] of server.toml: largest ledger entry and unacknowledged bytes per stream writer (null: dlogd's defaults)."
  type = object({
    max_entry_bytes   = optional(number)
    max_pending_bytes = optional(number)
  })
  default = {}

  validation {
    condition     = var.writer.max_entry_bytes == null || try(var.writer.max_entry_bytes >= 1024 && var.writer.max_entry_bytes <= 4194304, false)
    error_message = "writer.max_entry_bytes must be between 1 KiB and 4 MiB."
  }
}

variable "objects" {
  description = "The object tier ([objects] of server.toml): url (bucket module's url), region, and optional tuning (null: dlogd's defaults): grace, cache_bytes, compact_below, multipart_threshold, part_size, upload_concurrency; endpoint and path_style only for S3-compatible services."
  type = object({
    url                 = string
    region              = string
    endpoint            = optional(string)
    path_style          = optional(bool)
    grace               = optional(string, "1m")
    cache_bytes         = optional(number)
    compact_below       = optional(number)
    multipart_threshold = optional(number)
    part_size           = optional(number)
    upload_concurrency  = optional(number)
  })

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]+/[A-Za-z0-9._/-]+$", var.objects.url))
    error_message = "objects.url must be s3://BUCKET/PREFIX (the bucket module's url)."
  }

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.objects.region))
    error_message = "objects.region must be an AWS region such as eu-west-1."
  }

  validation {
    condition     = var.objects.endpoint == null || can(regex("^https?://", var.objects.endpoint))
    error_message = "objects.endpoint must be an http:// or https:// URL."
  }

  validation {
    condition     = can(regex("^[0-9]+(s|m|h)$", var.objects.grace))
    error_message = "objects.grace must be a duration such as \"1m\"."
  }

  validation {
    condition     = var.objects.part_size == null || try(var.objects.part_size >= 5242880 && var.objects.part_size <= 5368709120, false)
    error_message = "objects.part_size must be between 5 MiB and 5 GiB (S3's limits)."
  }

  validation {
    condition     = var.objects.multipart_threshold == null || try(var.objects.multipart_threshold <= 5368709120, false)
    error_message = "objects.multipart_threshold must be at most 5 GiB (the largest single PUT)."
  }

  validation {
    condition     = var.objects.upload_concurrency == null || try(var.objects.upload_concurrency >= 1 && var.objects.upload_concurrency <= 64, false)
    error_message = "objects.upload_concurrency must be 1 to 64."
  }

  validation {
    condition     = var.objects.cache_bytes == null || try(var.objects.cache_bytes >= 1048576, false)
    error_message = "objects.cache_bytes must be at least 1 MiB."
  }
}

variable "autorecovery" {
  description = "dlogd autorecovery on every service node: grace (how long a bookie may be gone before its ledgers are re-replicated; longer than a reboot) and interval (between audit rounds)."
  type = object({
    grace    = optional(string, "5m")
    interval = optional(string, "30s")
  })
  default = {}

  validation {
    condition     = can(regex("^[0-9]+(s|m|h)$", var.autorecovery.grace)) && can(regex("^[0-9]+(s|m|h)$", var.autorecovery.interval))
    error_message = "autorecovery.grace and autorecovery.interval must be durations such as \"5m\"."
  }
}

variable "dlogd_release" {
  description = "Where instances download dlogd (an https URL, for architecture) and its SHA-256; null when the AMI already holds /usr/local/bin/dlogd."
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

variable "deletion_protection" {
  description = "Refuse deleting the load balancer (clients know its name). Turn off before `terraform destroy`."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
