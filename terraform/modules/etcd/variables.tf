variable "name" {
  description = "Cluster name (2 to 24 lowercase letters, digits or '-'); members are NAME-etcd-N."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 24 lowercase letters, digits or '-', starting with a letter and not ending with '-'."
  }
}

variable "node_count" {
  description = "Number of etcd members: 3 (survives one member or zone lost) or 5 (two); 1 only for throwaway clusters."
  type        = number
  default     = 3

  validation {
    condition     = contains([1, 3, 5], var.node_count)
    error_message = "node_count must be 1, 3 or 5 (an even count tolerates no more failures than the odd count below it)."
  }
}

variable "subnets" {
  description = "Private subnets to spread the members over (network module's private_subnets): member N goes to subnet N mod len(subnets)."
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
  description = "Members get fixed private addresses (etcd's peer list is static): member N is host number host_offset + floor(N / len(subnets)) of its subnet."
  type        = number
  default     = 10

  validation {
    condition     = var.host_offset >= 4 && floor(var.host_offset) == var.host_offset
    error_message = "host_offset must be a whole number of at least 4 (AWS reserves the first four addresses of a subnet)."
  }
}

variable "security_group_id" {
  description = "The etcd security group (network module)."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.security_group_id))
    error_message = "security_group_id must look like sg-0123abcd."
  }
}

variable "instance_profile" {
  description = "The etcd instance profile (iam module): no S3 access."
  type        = string

  validation {
    condition     = length(var.instance_profile) > 0
    error_message = "instance_profile must not be empty."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the root and data volumes and the backups (bucket module's kms_key_arn)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "instance_type" {
  description = "Instance type of the members (a Nitro type: the data volume is found as an NVMe device)."
  type        = string
  default     = "m7i.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[0-9a-z]+$", var.instance_type)) && !can(regex("^(t2|m4|c4|r4|i3)\\.", var.instance_type))
    error_message = "instance_type must be a Nitro instance type (not t2, m4, c4, r4 or i3)."
  }
}

variable "architecture" {
  description = "CPU architecture of instance_type: \"x86_64\" or \"arm64\"."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\"."
  }
}

variable "ami_id" {
  description = "AMI to boot. Default: the newest official Debian 12 image (whose etcd-server package is etcd 3.4). Changing it does not replace running members; see docs/operations.md, upgrades."
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

variable "data_volume_gb" {
  description = "Size of each member's encrypted gp3 data volume (etcd's data dir). It outlives the instance."
  type        = number
  default     = 20

  validation {
    condition     = var.data_volume_gb >= 10 && var.data_volume_gb <= 1024
    error_message = "data_volume_gb must be between 10 and 1024."
  }
}

variable "client_port" {
  description = "etcd client port (network module's ports.etcd)."
  type        = number
  default     = 2379

  validation {
    condition     = var.client_port >= 1024 && var.client_port <= 65535
    error_message = "client_port must be between 1024 and 65535."
  }
}

variable "peer_port" {
  description = "etcd peer port (network module's ports.etcd_peer)."
  type        = number
  default     = 2380

  validation {
    condition     = var.peer_port >= 1024 && var.peer_port <= 65535 && var.peer_port != var.client_port
    error_message = "peer_port must be between 1024 and 65535 and differ from client_port."
  }
}

variable "quota_backend_bytes" {
  description = "etcd's backend size limit (--quota-backend-bytes): past it etcd refuses writes until compacted and defragmented."
  type        = number
  default     = 8589934592

  validation {
    condition     = var.quota_backend_bytes >= 1073741824 && var.quota_backend_bytes <= 8589934592
    error_message = "quota_backend_bytes must be between 1 GiB and 8 GiB (etcd's recommended maximum)."
  }
}

variable "compaction_retention" {
  description = "Revision history kept by etcd's periodic auto-compaction (e.g. \"1h\")."
  type        = string
  default     = "1h"

  validation {
    condition     = can(regex("^[0-9]+(m|h)$", var.compaction_retention))
    error_message = "compaction_retention must be a duration in minutes or hours, such as \"1h\"."
  }
}

variable "backup_retention_days" {
  description = "Daily AWS Backup snapshots of the data volumes are kept this many days (0: no backup plan). The metadata of hot segments exists only in etcd; offloaded history can also be restored from the bucket."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 0 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be a whole number, at least 0."
  }
}

variable "termination_protection" {
  description = "Refuse API terminations of members. Turn off before `terraform destroy` or a planned replacement."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
