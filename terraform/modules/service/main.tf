# Service nodes: dlogd server (the log service on the client port, the control plane on the HTTP
# port, and the offloader, in one process) and dlogd autorecovery, behind an internal network
# load balancer.
#
# The load balancer is the address clients start from. Any node accepts a request; an append to
# a stream another node owns is answered "not owner" with that node's advertised address
# (ADDRESS:PORT, its fixed private address), which the SDK follows. So clients reach the nodes
# directly as well (the network module opens the client port to client_cidrs on both).
#
# Health checks use GET /ready on the control plane: a node is in service while its metadata
# store answers.

data "aws_ami" "debian" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["136693071363"] # Debian

  filter {
    name   = "name"
    values = ["debian-12-${var.architecture == "arm64" ? "arm64" : "amd64"}-*"]
  }

  filter {
    name   = "architecture"
    values = [var.architecture]
  }
}

locals {
  tags    = merge({ "dlog:cluster" = var.name, "dlog:role" = "service" }, var.tags)
  ami_id  = var.ami_id != null ? var.ami_id : data.aws_ami.debian[0].id
  nzones  = length(var.subnets)
  subnets = [for i in range(var.node_count) : var.subnets[i % local.nzones]]
  addresses = [
    for i in range(var.node_count) : cidrhost(local.subnets[i].cidr, var.host_offset + floor(i / local.nzones))
  ]
  # Every subnet the nodes use, once: the load balancer has a node in each.
  lb_subnets = distinct([for s in local.subnets : s.id])
}

module "config" {
  source       = "./config"
  count        = var.node_count
  cluster      = var.name
  index        = count.index
  address      = local.addresses[count.index]
  port         = var.port
  http_port    = var.http_port
  metadata_url = var.metadata_url
  server = {
    ownership_ttl                     = var.ownership_ttl
    retention_interval                = var.retention_interval
    max_inflight_bytes_per_connection = var.max_inflight_bytes_per_connection
    ledger_request_timeout            = var.ledger_request_timeout
    policy                            = var.default_policy
    writer                            = var.writer
    objects                           = var.objects
  }
  autorecovery  = var.autorecovery
  dlogd_release = var.dlogd_release
}

resource "aws_instance" "service" {
  count                  = var.node_count
  ami                    = local.ami_id
  instance_type          = var.instance_type
  subnet_id              = local.subnets[count.index].id
  private_ip             = local.addresses[count.index]
  vpc_security_group_ids = [var.security_group_id]
  iam_instance_profile   = var.instance_profile
  user_data              = module.config[count.index].user_data
  ebs_optimized          = true
  monitoring             = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    delete_on_termination = true
  }

  tags        = merge(local.tags, { Name = module.config[count.index].node })
  volume_tags = merge(local.tags, { Name = module.config[count.index].node })

  lifecycle {
    # Nodes are replaced one at a time (docs/operations.md), never all in one apply.
    ignore_changes = [ami, user_data]

    precondition {
      condition     = var.host_offset + ceil(var.node_count / local.nzones) < pow(2, 32 - tonumber(split("/", local.subnets[count.index].cidr)[1])) - 1
      error_message = "The service nodes' fixed addresses do not fit in subnet ${local.subnets[count.index].id}."
    }
  }
}

# ---------------------------------------------------------------------------------------------
# The internal network load balancer

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:a network load balancer writes access logs only for TLS listeners; dlog's listeners are TCP (dlogd has no TLS yet), and the VPC's flow logs record every connection
  name                             = "${var.name}-dlog"
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = local.lb_subnets
  security_groups                  = [var.lb_security_group_id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection
  tags                             = merge(local.tags, { Name = "${var.name}-dlog" })
}

resource "aws_lb_target_group" "this" {
  for_each = { client = var.port, http = var.http_port }

  name                 = "${var.name}-${each.key}" # at most 32 characters
  port                 = each.value
  protocol             = "TCP"
  target_type          = "instance"
  vpc_id               = data.aws_subnet.first.vpc_id
  deregistration_delay = 30

  health_check {
    protocol            = "HTTP"
    port                = tostring(var.http_port)
    path                = "/ready"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags
}

data "aws_subnet" "first" {
  id = var.subnets[0].id
}

resource "aws_lb_target_group_attachment" "this" {
  for_each = {
    for pair in setproduct(keys(aws_lb_target_group.this), range(var.node_count)) : "${pair[0]}-${pair[1]}" => {
      group = pair[0]
      node  = pair[1]
    }
  }
  target_group_arn = aws_lb_target_group.this[each.value.group].arn
  target_id        = aws_instance.service[each.value.node].id
  port             = each.value.group == "client" ? var.port : var.http_port
}

resource "aws_lb_listener" "this" {
  for_each          = aws_lb_target_group.this
  load_balancer_arn = aws_lb.this.arn
  port              = each.value.port
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = each.value.arn
  }

  tags = local.tags
}
