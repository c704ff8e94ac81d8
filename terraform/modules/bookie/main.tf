# Bookies: dlogd bookie on instances with local NVMe storage, spread over the zones.
#
# Each bookie is a numbered slot (NAME-bookie-N) with a fixed private address. Its cloud-init
# (config/) writes bookie.toml, the units and the scripts; dlog-bookie-disk.service finds,
# formats and mounts the NVMe drives on every boot, and the bookie's id is made with its
# filesystem, so a reboot keeps it and a new disk gets a new one (templates/bookie-disk.sh.tftpl
# says why).
#
# Terraform never replaces a running bookie by itself: a replacement loses the instance storage,
# so changes of the AMI and of the user data apply to new bookies only. Rolling changes to running
# bookies are in docs/operations.md.

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
  tags    = merge({ "dlog:cluster" = var.name, "dlog:role" = "bookie" }, var.tags)
  ami_id  = var.ami_id != null ? var.ami_id : data.aws_ami.debian[0].id
  nzones  = length(var.subnets)
  subnets = [for i in range(var.bookie_count) : var.subnets[i % local.nzones]]
  addresses = [
    for i in range(var.bookie_count) : cidrhost(local.subnets[i].cidr, var.host_offset + floor(i / local.nzones))
  ]
}

module "config" {
  source           = "./config"
  count            = var.bookie_count
  cluster          = var.name
  index            = count.index
  zone             = local.subnets[count.index].zone
  address          = local.addresses[count.index]
  port             = var.port
  metadata_url     = var.metadata_url
  registration_ttl = var.registration_ttl
  mount            = "/var/lib/dlog"
  settings         = var.settings
  dlogd_release    = var.dlogd_release
}

resource "aws_instance" "bookie" {
  count                   = var.bookie_count
  ami                     = local.ami_id
  instance_type           = var.instance_type
  subnet_id               = local.subnets[count.index].id
  private_ip              = local.addresses[count.index]
  vpc_security_group_ids  = [var.security_group_id]
  iam_instance_profile    = var.instance_profile
  user_data               = module.config[count.index].user_data
  ebs_optimized           = true
  monitoring              = true
  disable_api_termination = var.termination_protection

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

  tags        = merge(local.tags, { Name = module.config[count.index].slot, "dlog:slot" = tostring(count.index) })
  volume_tags = merge(local.tags, { Name = module.config[count.index].slot })

  lifecycle {
    # A replaced bookie loses its instance storage: never let an AMI update or a config change
    # replace (or stop and start) running bookies.
    ignore_changes = [ami, user_data]

    precondition {
      condition     = var.host_offset + ceil(var.bookie_count / local.nzones) < pow(2, 32 - tonumber(split("/", local.subnets[count.index].cidr)[1])) - 1
      error_message = "The bookies' fixed addresses (host_offset + count per zone) do not fit in subnet ${local.subnets[count.index].id}."
    }
  }
}
