# The network of a dlog cluster: a VPC with one private subnet per zone (or an existing VPC and
# subnets), and one security group per role that opens only the ports that role serves, only to
# the roles (or the client and admin networks) that call it:
#
#   clients ──7070──▶ load balancer, service nodes      (client_cidrs / client_security_group_ids)
#   admins  ──7080──▶ load balancer, service nodes      (admin_cidrs / admin_security_group_ids)
#   service ──3181──▶ bookies                           (writers, readers, autorecovery)
#   service, bookies ──2379──▶ etcd                     (metadata, registrations, leases)
#   etcd ──2380──▶ etcd                                 (raft peers)
#
# Nothing is reachable from the internet: no public IPs, an internal load balancer, and the
# client and admin networks default to none. Instances reach out only over HTTPS (packages,
# the dlogd release, SSM, S3 through a gateway endpoint).

locals {
  create = var.existing_vpc_id == null
  ports  = var.ports
  tags   = merge({ "dlog:cluster" = var.name }, var.tags)

  nat_count = !local.create ? 0 : (
    var.nat_gateways == "per_zone" ? length(var.zones) : (var.nat_gateways == "single" ? 1 : 0)
  )

  vpc_id   = local.create ? aws_vpc.this[0].id : var.existing_vpc_id
  vpc_cidr = local.create ? aws_vpc.this[0].cidr_block : data.aws_vpc.existing[0].cidr_block

  private_subnets = local.create ? [
    for i, z in var.zones : { id = aws_subnet.private[i].id, cidr = aws_subnet.private[i].cidr_block, zone = z }
    ] : [
    for i, z in var.zones : { id = data.aws_subnet.existing[i].id, cidr = data.aws_subnet.existing[i].cidr_block, zone = data.aws_subnet.existing[i].availability_zone }
  ]

  # Rules from client and admin networks, keyed for for_each. IPv6 blocks go to cidr_ipv6.
  client_cidr_rules = { for c in var.client_cidrs : c => c }
  admin_cidr_rules  = { for c in var.admin_cidrs : c => c }
  client_sg_rules   = { for s in var.client_security_group_ids : s => s }
  admin_sg_rules    = { for s in var.admin_security_group_ids : s => s }
}

data "aws_vpc" "existing" {
  count = local.create ? 0 : 1
  id    = var.existing_vpc_id
}

data "aws_subnet" "existing" {
  count = length(var.existing_private_subnet_ids)
  id    = var.existing_private_subnet_ids[count.index]

  lifecycle {
    postcondition {
      condition     = self.vpc_id == var.existing_vpc_id && self.availability_zone == var.zones[count.index]
      error_message = "existing_private_subnet_ids[${count.index}] must be in existing_vpc_id and in zones[${count.index}]."
    }
  }
}

# ---------------------------------------------------------------------------------------------
# The VPC (only without existing_vpc_id)

resource "aws_vpc" "this" {
  count                = local.create ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = var.name })
}

# The default security group of a new VPC allows all traffic between its members; nothing of
# dlog uses it, so it is emptied.
resource "aws_default_security_group" "this" {
  count  = local.create ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = merge(local.tags, { Name = "${var.name}-default-unused" })
}

resource "aws_flow_log" "this" {
  count                    = local.create ? 1 : 0
  vpc_id                   = aws_vpc.this[0].id
  traffic_type             = "ALL"
  log_destination_type     = "s3"
  log_destination          = "${var.flow_log_bucket_arn}/vpc-flow-logs/"
  max_aggregation_interval = 600
  tags                     = merge(local.tags, { Name = "${var.name}-flow-logs" })
}

resource "aws_subnet" "private" {
  count                   = local.create ? length(var.zones) : 0
  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = var.zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 3, count.index)
  map_public_ip_on_launch = false
  tags                    = merge(local.tags, { Name = "${var.name}-private-${var.zones[count.index]}", "dlog:tier" = "private" })
}

# Public subnets hold only the NAT gateways; nothing else is placed there.
resource "aws_subnet" "public" {
  count                   = local.nat_count > 0 ? length(var.zones) : 0
  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = var.zones[count.index]
  cidr_block              = cidrsubnet(cidrsubnet(var.vpc_cidr, 3, 7), 5, count.index)
  map_public_ip_on_launch = false
  tags                    = merge(local.tags, { Name = "${var.name}-public-${var.zones[count.index]}", "dlog:tier" = "public" })
}

resource "aws_internet_gateway" "this" {
  count  = local.nat_count > 0 ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = merge(local.tags, { Name = var.name })
}

resource "aws_eip" "nat" {
  count      = local.nat_count
  domain     = "vpc"
  depends_on = [aws_internet_gateway.this]
  tags       = merge(local.tags, { Name = "${var.name}-nat-${var.zones[count.index]}" })
}

resource "aws_nat_gateway" "this" {
  count         = local.nat_count
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = merge(local.tags, { Name = "${var.name}-nat-${var.zones[count.index]}" })
}

resource "aws_route_table" "public" {
  count  = local.nat_count > 0 ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = merge(local.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  count                  = local.nat_count > 0 ? 1 : 0
  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count          = local.nat_count > 0 ? length(var.zones) : 0
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_route_table" "private" {
  count  = local.create ? length(var.zones) : 0
  vpc_id = aws_vpc.this[0].id
  tags   = merge(local.tags, { Name = "${var.name}-private-${var.zones[count.index]}" })
}

resource "aws_route" "private_nat" {
  count                  = local.nat_count > 0 ? length(var.zones) : 0
  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[min(count.index, local.nat_count - 1)].id
}

resource "aws_route_table_association" "private" {
  count          = local.create ? length(var.zones) : 0
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

data "aws_region" "current" {}

# S3 traffic (the object tier) stays on AWS's network and off the NAT gateways.
resource "aws_vpc_endpoint" "s3" {
  count             = local.create ? 1 : 0
  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${data.aws_region.current.id}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id
  tags              = merge(local.tags, { Name = "${var.name}-s3" })
}

# ---------------------------------------------------------------------------------------------
# Security groups, one per role

resource "aws_security_group" "etcd" {
  #checkov:skip=CKV2_AWS_5:attached by the etcd module's instances, which take the group id from this module's security_group_ids output
  name        = "${var.name}-etcd"
  description = "dlog ${var.name} etcd: client port from bookies and service nodes, peer port between members"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-etcd" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "bookie" {
  #checkov:skip=CKV2_AWS_5:attached by the bookie module's instances, which take the group id from this module's security_group_ids output
  name        = "${var.name}-bookie"
  description = "dlog ${var.name} bookies: bookie protocol from service nodes only"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-bookie" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "service" {
  #checkov:skip=CKV2_AWS_5:attached by the service module's instances, which take the group id from this module's security_group_ids output
  name        = "${var.name}-service"
  description = "dlog ${var.name} service nodes: client protocol from clients, control plane from admins, both from the load balancer"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-service" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "lb" {
  #checkov:skip=CKV2_AWS_5:attached by the service module's load balancer, which takes the group id from this module's security_group_ids output
  name        = "${var.name}-lb"
  description = "dlog ${var.name} internal load balancer: client port from clients, control plane from admins"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-lb" })

  lifecycle {
    create_before_destroy = true
  }
}

# etcd ----------------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "etcd_client_from_bookie" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd client port from bookies (registration, leases)"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.etcd
  to_port                      = local.ports.etcd
  referenced_security_group_id = aws_security_group.bookie.id
}

resource "aws_vpc_security_group_ingress_rule" "etcd_client_from_service" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd client port from service nodes (metadata)"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.etcd
  to_port                      = local.ports.etcd
  referenced_security_group_id = aws_security_group.service.id
}

resource "aws_vpc_security_group_ingress_rule" "etcd_client_from_etcd" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd client port between members (etcdctl on a member)"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.etcd
  to_port                      = local.ports.etcd
  referenced_security_group_id = aws_security_group.etcd.id
}

resource "aws_vpc_security_group_ingress_rule" "etcd_peer" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd peer port between members (raft)"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.etcd_peer
  to_port                      = local.ports.etcd_peer
  referenced_security_group_id = aws_security_group.etcd.id
}

resource "aws_vpc_security_group_egress_rule" "etcd_to_etcd" {
  for_each                     = { client = local.ports.etcd, peer = local.ports.etcd_peer }
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd ${each.key} port of the other members"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.etcd.id
}

# bookies -------------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "bookie_from_service" {
  security_group_id            = aws_security_group.bookie.id
  description                  = "bookie protocol from service nodes (ledger writers, readers, autorecovery)"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.bookie
  to_port                      = local.ports.bookie
  referenced_security_group_id = aws_security_group.service.id
}

resource "aws_vpc_security_group_egress_rule" "bookie_to_etcd" {
  security_group_id            = aws_security_group.bookie.id
  description                  = "etcd client port (registration, leases)"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.etcd
  to_port                      = local.ports.etcd
  referenced_security_group_id = aws_security_group.etcd.id
}

# service nodes -------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "service_client_from_lb" {
  security_group_id            = aws_security_group.service.id
  description                  = "client protocol from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.service
  to_port                      = local.ports.service
  referenced_security_group_id = aws_security_group.lb.id
}

resource "aws_vpc_security_group_ingress_rule" "service_http_from_lb" {
  security_group_id            = aws_security_group.service.id
  description                  = "control plane from the load balancer (health checks, admin requests)"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.http
  to_port                      = local.ports.http
  referenced_security_group_id = aws_security_group.lb.id
}

resource "aws_vpc_security_group_ingress_rule" "service_from_service" {
  for_each                     = { "client protocol" = local.ports.service, "control plane" = local.ports.http }
  security_group_id            = aws_security_group.service.id
  description                  = "${each.key} between service nodes"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.service.id
}

resource "aws_vpc_security_group_ingress_rule" "service_client_from_cidr" {
  for_each          = local.client_cidr_rules
  security_group_id = aws_security_group.service.id
  description       = "client protocol from client network ${each.key} (appends are redirected to the owner node)"
  ip_protocol       = "tcp"
  from_port         = local.ports.service
  to_port           = local.ports.service
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "service_client_from_sg" {
  for_each                     = local.client_sg_rules
  security_group_id            = aws_security_group.service.id
  description                  = "client protocol from client security group ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.service
  to_port                      = local.ports.service
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_ingress_rule" "service_http_from_cidr" {
  for_each          = local.admin_cidr_rules
  security_group_id = aws_security_group.service.id
  description       = "control plane from admin network ${each.key}"
  ip_protocol       = "tcp"
  from_port         = local.ports.http
  to_port           = local.ports.http
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "service_http_from_sg" {
  for_each                     = local.admin_sg_rules
  security_group_id            = aws_security_group.service.id
  description                  = "control plane from admin security group ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.http
  to_port                      = local.ports.http
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_egress_rule" "service_to_etcd" {
  security_group_id            = aws_security_group.service.id
  description                  = "etcd client port (metadata)"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.etcd
  to_port                      = local.ports.etcd
  referenced_security_group_id = aws_security_group.etcd.id
}

resource "aws_vpc_security_group_egress_rule" "service_to_bookie" {
  security_group_id            = aws_security_group.service.id
  description                  = "bookie protocol"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.bookie
  to_port                      = local.ports.bookie
  referenced_security_group_id = aws_security_group.bookie.id
}

resource "aws_vpc_security_group_egress_rule" "service_to_service" {
  for_each                     = { "client protocol" = local.ports.service, "control plane" = local.ports.http }
  security_group_id            = aws_security_group.service.id
  description                  = "${each.key} of the other service nodes"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.service.id
}

# load balancer -------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "lb_client_from_cidr" {
  for_each          = local.client_cidr_rules
  security_group_id = aws_security_group.lb.id
  description       = "client protocol from client network ${each.key}"
  ip_protocol       = "tcp"
  from_port         = local.ports.service
  to_port           = local.ports.service
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "lb_client_from_sg" {
  for_each                     = local.client_sg_rules
  security_group_id            = aws_security_group.lb.id
  description                  = "client protocol from client security group ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.service
  to_port                      = local.ports.service
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_ingress_rule" "lb_http_from_cidr" {
  for_each          = local.admin_cidr_rules
  security_group_id = aws_security_group.lb.id
  description       = "control plane from admin network ${each.key}"
  ip_protocol       = "tcp"
  from_port         = local.ports.http
  to_port           = local.ports.http
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "lb_http_from_sg" {
  for_each                     = local.admin_sg_rules
  security_group_id            = aws_security_group.lb.id
  description                  = "control plane from admin security group ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.http
  to_port                      = local.ports.http
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_egress_rule" "lb_to_service" {
  for_each                     = { "client protocol" = local.ports.service, "control plane and health checks" = local.ports.http }
  security_group_id            = aws_security_group.lb.id
  description                  = "${each.key} of the service nodes"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.service.id
}

# The object tier: S3 through the gateway endpoint, whatever egress_https_cidrs says.
resource "aws_vpc_security_group_egress_rule" "service_to_s3" {
  count             = local.create ? 1 : 0
  security_group_id = aws_security_group.service.id
  description       = "HTTPS to S3 through the VPC's gateway endpoint (the object tier)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3[0].prefix_list_id
}

# HTTPS out, for every instance role: package mirrors, the dlogd release, SSM, S3.
resource "aws_vpc_security_group_egress_rule" "https" {
  for_each = {
    for pair in setproduct(["etcd", "bookie", "service"], var.egress_https_cidrs) : "${pair[0]} ${pair[1]}" => {
      sg   = { etcd = aws_security_group.etcd.id, bookie = aws_security_group.bookie.id, service = aws_security_group.service.id }[pair[0]]
      cidr = pair[1]
    }
  }
  security_group_id = each.value.sg
  description       = "HTTPS out: package mirrors, dlogd release, SSM, S3"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value.cidr
}
