# etcd: the metadata store of the cluster (streams, segments, ledgers, bookie registrations,
# ownership leases). Three (or five) members across zones, each with a fixed private address (the
# peer list is static) and its data on an encrypted EBS volume that outlives the instance, so a
# member replaced for an upgrade comes back with its data and its membership. Debian's
# etcd-server package runs it; cloud-init (config/) mounts the volume and configures it.

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
  tags    = merge({ "dlog:cluster" = var.name, "dlog:role" = "etcd" }, var.tags)
  ami_id  = var.ami_id != null ? var.ami_id : data.aws_ami.debian[0].id
  nzones  = length(var.subnets)
  subnets = [for i in range(var.node_count) : var.subnets[i % local.nzones]]
  members = [
    for i in range(var.node_count) : {
      name    = "${var.name}-etcd-${i}"
      address = cidrhost(local.subnets[i].cidr, var.host_offset + floor(i / local.nzones))
    }
  ]
  metadata_url = "etcd://${join(",", [for m in local.members : "${m.address}:${var.client_port}"])}"
}

resource "aws_ebs_volume" "data" {
  #checkov:skip=CKV2_AWS_9:aws_backup_selection.etcd below selects every member's volume (data[*]), which checkov resolves for the first only; backup_retention_days = 0 turns backups off on purpose (throwaway clusters)
  count             = var.node_count
  availability_zone = local.subnets[count.index].zone
  size              = var.data_volume_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = var.kms_key_arn
  final_snapshot    = true
  tags              = merge(local.tags, { Name = "${local.members[count.index].name}-data" })
}

module "config" {
  source               = "./config"
  count                = var.node_count
  cluster              = var.name
  index                = count.index
  members              = local.members
  client_port          = var.client_port
  peer_port            = var.peer_port
  volume_id            = aws_ebs_volume.data[count.index].id
  architecture         = var.architecture
  quota_backend_bytes  = var.quota_backend_bytes
  compaction_retention = var.compaction_retention
}

resource "aws_instance" "etcd" {
  count                   = var.node_count
  ami                     = local.ami_id
  instance_type           = var.instance_type
  subnet_id               = local.subnets[count.index].id
  private_ip              = local.members[count.index].address
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

  tags = merge(local.tags, { Name = local.members[count.index].name })

  lifecycle {
    # Members are replaced one at a time, by hand (docs/operations.md): an AMI update or a
    # config change must not replace all of them in one apply.
    ignore_changes = [ami, user_data]

    precondition {
      condition     = var.host_offset + ceil(var.node_count / local.nzones) < pow(2, 32 - tonumber(split("/", local.subnets[count.index].cidr)[1])) - 1
      error_message = "The members' fixed addresses do not fit in subnet ${local.subnets[count.index].id}."
    }
  }
}

resource "aws_volume_attachment" "data" {
  count       = var.node_count
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[count.index].id
  instance_id = aws_instance.etcd[count.index].id
  # Stop the instance before detaching, so etcd shuts down cleanly when a member is replaced.
  stop_instance_before_detaching = true
}

# ---------------------------------------------------------------------------------------------
# Daily snapshots of the data volumes (AWS Backup), encrypted with the cluster's key.

resource "aws_backup_vault" "etcd" {
  count       = var.backup_retention_days > 0 ? 1 : 0
  name        = "${var.name}-dlog-etcd"
  kms_key_arn = var.kms_key_arn
  tags        = local.tags
}

resource "aws_backup_plan" "etcd" {
  count = var.backup_retention_days > 0 ? 1 : 0
  name  = "${var.name}-dlog-etcd"

  rule {
    rule_name         = "daily"
    target_vault_name = aws_backup_vault.etcd[0].name
    schedule          = "cron(0 3 * * ? *)"

    lifecycle {
      delete_after = var.backup_retention_days
    }
  }

  tags = local.tags
}

data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume_backup" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["backup.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "backup" {
  count              = var.backup_retention_days > 0 ? 1 : 0
  name               = "${var.name}-dlog-etcd-backup"
  assume_role_policy = data.aws_iam_policy_document.assume_backup.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "backup" {
  count      = var.backup_retention_days > 0 ? 1 : 0
  role       = aws_iam_role.backup[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"
}

resource "aws_backup_selection" "etcd" {
  count        = var.backup_retention_days > 0 ? 1 : 0
  name         = "${var.name}-dlog-etcd-data"
  plan_id      = aws_backup_plan.etcd[0].id
  iam_role_arn = aws_iam_role.backup[0].arn
  resources    = aws_ebs_volume.data[*].arn
}
