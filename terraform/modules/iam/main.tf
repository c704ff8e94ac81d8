# Instance roles with least privilege.
#
# - service (dlogd server: log service, control plane, offloader; dlogd autorecovery): objects
#   under PREFIX/ of the cluster's bucket, listing only under PREFIX/, and the cluster's KMS key
#   only through S3. Nothing else in the bucket, no other bucket.
# - bookie and etcd: no policy of their own — no S3, no KMS. Their EBS volumes are encrypted by
#   EC2 with grants made at launch, which needs nothing from the instance role.
# - every role: optionally AmazonSSMManagedInstanceCore, for Session Manager instead of SSH.
#
# Credentials reach dlogd through the instance profile (IMDSv2), never through a file.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  tags           = merge({ "dlog:cluster" = var.name }, var.tags)
  partition      = data.aws_partition.current.partition
  roles          = toset(["etcd", "bookie", "service"])
  ssm_policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each             = local.roles
  name                 = "${var.name}-dlog-${each.key}"
  description          = "dlog ${var.name} ${each.key} instances"
  permissions_boundary = var.permissions_boundary_arn
  assume_role_policy   = data.aws_iam_policy_document.assume_ec2.json
  tags                 = merge(local.tags, { "dlog:role" = each.key })
}

resource "aws_iam_instance_profile" "this" {
  for_each = local.roles
  name     = "${var.name}-dlog-${each.key}"
  role     = aws_iam_role.this[each.key].name
  tags     = merge(local.tags, { "dlog:role" = each.key })
}

resource "aws_iam_role_policy_attachment" "ssm" {
  for_each   = var.enable_ssm ? local.roles : toset([])
  role       = aws_iam_role.this[each.key].name
  policy_arn = local.ssm_policy_arn
}

# The object tier (docs/tiering.md): conditional creates (PutObject with If-None-Match),
# multipart uploads to _staging/ keys and a conditional copy (UploadPartCopy reads the staged
# object), read-back verification and reads (GetObject, HEAD), deletes after truncation,
# retention, stream deletion and scrubbing, listings of streams and manifests.
data "aws_iam_policy_document" "service_objects" {
  statement {
    sid       = "ListClusterPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.prefix}/*"]
    }
  }

  statement {
    sid    = "ObjectsUnderClusterPrefix"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${var.bucket_arn}/${var.prefix}/*"]
  }

  statement {
    sid       = "ClusterKeyThroughS3"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.id}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "service_objects" {
  name   = "dlog-object-tier"
  role   = aws_iam_role.this["service"].id
  policy = data.aws_iam_policy_document.service_objects.json
}
