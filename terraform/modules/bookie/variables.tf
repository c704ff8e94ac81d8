variable "name" {
  description = "Cluster name (2 to 24 lowercase letters, digits or '-'); bookie ids start with NAME-bookie-N."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 24 lowercase letters, digits or '-', starting with a letter and not ending with '-'."
  }
}

variable "bookie_count" {
  description = "Number of bookies. Keep at least the largest ensemble plus one (so that a lost bookie can be replaced in ensembles), and a multiple of the number of zones."
  type        = number
  default     = 3

  validation {
    condition     = var.bookie_count >= 1 && var.bookie_count <= 300 && floor(var.bookie_count) == var.bookie_count
    error_message = "bookie_count must be a whole number from 1 to 300."
  }
}

variable "subnets" {
  description = "Private subnets to spread the bookies over (network module's private_subnets): bookie N goes to subnet N mod len(subnets)."
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
  description = "Bookies get fixed private addresses: bookie N is host number host_offset + floor(N / len(subnets)) of its subnet (the address survives a replacement of the instance). The etcd and service modules use other offsets."
  type        = number
  default     = 64

  validation {
    condition     = var.host_offset >= 4 && floor(var.host_offset) == var.host_offset
    error_message = "host_offset must be a whole number of at least 4 (AWS reserves the first four addresses of a subnet)."
  }
}

variable "security_group_id" {
  description = "The bookie security group (network module)."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.security_group_id))
    error_message = "security_group_id must look like sg-0123abcd."
  }
}

variable "instance_profile" {
  description = "The bookie instance profile (iam module): no S3 access."
  type        = string

  validation {
    condition     = length(var.instance_profile) > 0
    error_message = "instance_profile must not be empty."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the root volumes (bucket module's kms_key_arn). The bookie's data is on instance storage, which the hardware encrypts (AES-256, keys that never leave the host)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "instance_type" {
  description = "Instance type with local NVMe instance storage, which holds the journal and the index (i4i: Intel; i4g, im4gn, is4gen: Graviton, with architecture = \"arm64\")."
  type        = string
  default     = "i4i.xlarge"

  validation {
    condition     = can(regex("^(i3|i3en|i4i|i4g|i7i|i7ie|i8g|im4gn|is4gen|c[5-8][a-z]*d|m[5-8][a-z]*d|r[5-8][a-z]*d)\\.[0-9a-z]+$", var.instance_type))
    error_message = "instance_type must have local NVMe instance storage (i3, i3en, i4i, i4g, i7i, i7ie, i8g, im4gn, is4gen, or a c/m/r …d type)."
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
  description = "AMI to boot. Default: the newest official Debian 12 image for architecture. Changing it does not replace running bookies (their disks would be lost); see docs/operations.md, upgrades."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must look like ami-0123abcd."
  }
}

variable "root_volume_gb" {
  description = "Size of the encrypted root volume (the OS and logs; bookie data is on instance storage)."
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

variable "port" {
  description = "Bookie protocol port (network module's ports.bookie)."
  type        = number
  default     = 3181

  validation {
    condition     = var.port >= 1024 && var.port <= 65535
    error_message = "port must be between 1024 and 65535."
  }
}

variable "registration_ttl" {
  description = "How long a bookie's registration outlives it when it dies without deregistering (--registration-ttl, 2s to 1h)."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^[0-9]+(s|m)$", var.registration_ttl))
    error_message = "registration_ttl must be a duration in seconds or minutes, such as \"10s\"."
  }
}

variable "settings" {
  description = "bookie.toml settings (services/bookie/src/config.rs); null keeps dlogd's default. Durations are strings like \"10s\"."
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
    condition     = var.settings.journal_io_mode == null || contains(["direct-dsync", "direct", "buffered"], coalesce(var.settings.journal_io_mode, "x"))
    error_message = "settings.journal_io_mode must be \"direct-dsync\", \"direct\" or \"buffered\"."
  }

  validation {
    condition     = var.settings.journal_preallocate == null || contains(["fallocate", "zero"], coalesce(var.settings.journal_preallocate, "x"))
    error_message = "settings.journal_preallocate must be \"fallocate\" or \"zero\"."
  }

  validation {
    condition     = var.settings.journal_file_size_bytes == null || try(var.settings.journal_file_size_bytes % 4096 == 0 && var.settings.journal_file_size_bytes >= 67108864, false)
    error_message = "settings.journal_file_size_bytes must be a multiple of 4096 and at least 64 MiB."
  }

  validation {
    condition     = 0 < var.settings.writable_below && var.settings.writable_below <= var.settings.read_only_above && var.settings.read_only_above <= 1
    error_message = "settings must satisfy 0 < writable_below <= read_only_above <= 1."
  }

  validation {
    condition     = var.settings.gc_compact_below == null || try(var.settings.gc_compact_below >= 0 && var.settings.gc_compact_below < 1, false)
    error_message = "settings.gc_compact_below must be in [0, 1)."
  }

  validation {
    condition = alltrue([for d in [var.settings.index_flush_interval, var.settings.gc_interval] :
    d == null || can(regex("^[0-9]+(ms|s|m|h)$", d))])
    error_message = "settings.index_flush_interval and settings.gc_interval must be durations such as \"10s\"."
  }

  validation {
    condition = alltrue([for n in [var.settings.journal_max_commit_bytes, var.settings.cache_bytes, var.settings.max_entry_bytes, var.settings.max_inflight_bytes_per_connection] :
    n == null || try(n > 0 && floor(n) == n, false)])
    error_message = "settings byte counts must be positive whole numbers."
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

variable "termination_protection" {
  description = "Refuse API terminations of bookies (a terminated bookie's instance storage is gone). Turn off before `terraform destroy` or a planned replacement."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
