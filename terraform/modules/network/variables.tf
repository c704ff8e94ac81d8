variable "name" {
  description = "Cluster name: prefixes every resource and the bookie ids (lowercase letters, digits and '-', 2 to 24 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 24 lowercase letters, digits or '-', starting with a letter and not ending with '-'."
  }
}

variable "zones" {
  description = "Availability zones to use, in order (e.g. [\"eu-west-1a\", \"eu-west-1b\", \"eu-west-1c\"]). One private subnet per zone; instances are spread over them round-robin."
  type        = list(string)

  validation {
    condition     = length(var.zones) >= 1 && length(var.zones) <= 6 && length(distinct(var.zones)) == length(var.zones)
    error_message = "zones must list 1 to 6 distinct availability zones."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC this module creates (ignored with existing_vpc_id): private subnets are its first eighths (one per zone), the public subnets of the NAT gateways share its last eighth."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && can(regex("/(1[6-9])$", var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR block between /16 and /19."
  }
}

variable "existing_vpc_id" {
  description = "Use this VPC instead of creating one (then existing_private_subnet_ids is required and no VPC, subnet, gateway, route or flow log is created)."
  type        = string
  default     = null

  validation {
    condition     = var.existing_vpc_id == null || can(regex("^vpc-[0-9a-f]+$", var.existing_vpc_id))
    error_message = "existing_vpc_id must look like vpc-0123abcd."
  }
}

variable "existing_private_subnet_ids" {
  description = "With existing_vpc_id: one private subnet per zone, in the order of zones. Instances get fixed addresses in them (see the host_offset of the etcd, bookie and service modules), which must be free."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.existing_private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "existing_private_subnet_ids must look like subnet-0123abcd."
  }

  validation {
    condition     = var.existing_vpc_id == null ? length(var.existing_private_subnet_ids) == 0 : length(var.existing_private_subnet_ids) == length(var.zones)
    error_message = "existing_private_subnet_ids needs existing_vpc_id, and then one subnet per zone (in the order of zones)."
  }
}

variable "nat_gateways" {
  description = "Outbound internet for the private subnets (package mirrors, the dlogd download, SSM): \"per_zone\" (a NAT gateway in each zone, survives a zone outage), \"single\" (one, cheaper) or \"none\" (then the AMI must already hold dlogd and the packages). Ignored with existing_vpc_id."
  type        = string
  default     = "per_zone"

  validation {
    condition     = contains(["per_zone", "single", "none"], var.nat_gateways)
    error_message = "nat_gateways must be \"per_zone\", \"single\" or \"none\"."
  }
}

variable "flow_log_bucket_arn" {
  description = "ARN of the S3 bucket that receives the VPC's flow logs (the bucket module's log_bucket_arn), under vpc-flow-logs/. Required when this module creates the VPC."
  type        = string
  default     = null

  validation {
    condition     = var.flow_log_bucket_arn == null || can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.flow_log_bucket_arn))
    error_message = "flow_log_bucket_arn must be an S3 bucket ARN (arn:aws:s3:::name)."
  }

  validation {
    condition     = var.existing_vpc_id != null || var.flow_log_bucket_arn != null
    error_message = "flow_log_bucket_arn is required when this module creates the VPC: every VPC it makes has flow logs."
  }
}

variable "client_cidrs" {
  description = "Networks whose clients (SDK, dlog CLI) may reach the log service's client port on the load balancer and on the service nodes (appends are redirected to the stream's owner node). Default: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrhost(c, 0))])
    error_message = "client_cidrs must hold CIDR blocks."
  }

  validation {
    condition     = var.allow_public_ingress || alltrue([for c in var.client_cidrs : try(tonumber(split("/", c)[1]), 32) >= (strcontains(c, ":") ? 16 : 8)])
    error_message = "client_cidrs holds 0.0.0.0/0, ::/0 or another range wider than /8 (IPv4) or /16 (IPv6): the data port would be open to nearly everyone. Name the client networks, or set allow_public_ingress = true if that is really wanted."
  }
}

variable "client_security_group_ids" {
  description = "Security groups whose members may reach the client port (like client_cidrs)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.client_security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "client_security_group_ids must look like sg-0123abcd."
  }
}

variable "admin_cidrs" {
  description = "Networks whose operators may reach the control plane (HTTP API, /metrics) on the load balancer and on the service nodes. The control plane has no authentication yet: keep this to admin networks. Default: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs must hold CIDR blocks."
  }

  validation {
    condition     = var.allow_public_ingress || alltrue([for c in var.admin_cidrs : try(tonumber(split("/", c)[1]), 32) >= (strcontains(c, ":") ? 16 : 8)])
    error_message = "admin_cidrs holds 0.0.0.0/0, ::/0 or another range wider than /8 (IPv4) or /16 (IPv6): the unauthenticated control plane would be open to nearly everyone. Name the admin networks, or set allow_public_ingress = true if that is really wanted."
  }
}

variable "admin_security_group_ids" {
  description = "Security groups whose members may reach the control plane (like admin_cidrs), e.g. a Prometheus server's."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.admin_security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "admin_security_group_ids must look like sg-0123abcd."
  }
}

variable "allow_public_ingress" {
  description = "Explicit opt-in to 0.0.0.0/0 (or any range wider than /8, /16 for IPv6) in client_cidrs or admin_cidrs. The load balancer stays internal either way."
  type        = bool
  default     = false
}

variable "egress_https_cidrs" {
  description = "Where instances may open HTTPS connections: package mirrors, the dlogd release URL, SSM, S3 (through the VPC's gateway endpoint when this module made the VPC). Narrow it to a proxy's address if you have one."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.egress_https_cidrs) > 0 && alltrue([for c in var.egress_https_cidrs : can(cidrhost(c, 0)) && !strcontains(c, ":")])
    error_message = "egress_https_cidrs must hold at least one IPv4 CIDR block."
  }
}

variable "ports" {
  description = "TCP ports of the roles: bookie protocol, client protocol (log service), control plane (HTTP), etcd client and peer."
  type = object({
    bookie    = optional(number, 3181)
    service   = optional(number, 7070)
    http      = optional(number, 7080)
    etcd      = optional(number, 2379)
    etcd_peer = optional(number, 2380)
  })
  default = {}

  validation {
    condition     = alltrue([for p in values(var.ports) : p >= 1024 && p <= 65535 && floor(p) == p]) && length(distinct(values(var.ports))) == 5
    error_message = "ports must be five distinct integers between 1024 and 65535."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
