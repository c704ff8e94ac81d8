variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-west-1."
  }
}

variable "zone" {
  description = "The one availability zone of this small cluster."
  type        = string
  default     = "eu-west-1a"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", var.zone))
    error_message = "zone must be an availability zone such as eu-west-1a."
  }
}

variable "name" {
  description = "Cluster name."
  type        = string
  default     = "dlog-dev"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 24 lowercase letters, digits or '-'."
  }
}

variable "dlogd_release" {
  description = "The dlogd build for x86_64 Linux: an https URL the instances download it from, and its SHA-256 (`sha256sum dlogd`). null if the AMI holds /usr/local/bin/dlogd already."
  type = object({
    url    = string
    sha256 = string
  })
}

variable "client_cidrs" {
  description = "Networks of the clients (SDK, dlog CLI) allowed to reach the log service. Default: none; add e.g. your VPN's range."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrhost(c, 0))])
    error_message = "client_cidrs must hold CIDR blocks."
  }
}

variable "admin_cidrs" {
  description = "Networks of the operators allowed to reach the control plane. Default: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs must hold CIDR blocks."
  }
}
