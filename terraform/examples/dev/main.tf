# A small dlog cluster in one zone, for trying things out: one etcd member, three bookies on the
# smallest i4i, one service node, one NAT gateway. Nothing is protected against deletion and the
# buckets are destroyed with their contents. It survives the loss of one bookie's copy of the
# data (3 copies, 2 acknowledged) but not of the zone, of etcd, or of a bookie for new segments
# (with 3 bookies and ensembles of 3 there is no spare); examples/prod does.
#
#   terraform init
#   terraform apply -var 'dlogd_release={url="https://…/dlogd",sha256="…"}' \
#                   -var 'client_cidrs=["10.8.0.0/16"]' -var 'admin_cidrs=["10.8.0.0/16"]'
#
# docs/operations.md walks through it.

module "bucket" {
  source        = "../../modules/bucket"
  name          = var.name
  force_destroy = true
}

module "network" {
  source              = "../../modules/network"
  name                = var.name
  zones               = [var.zone]
  nat_gateways        = "single"
  flow_log_bucket_arn = module.bucket.log_bucket_arn
  client_cidrs        = var.client_cidrs
  admin_cidrs         = var.admin_cidrs
}

module "iam" {
  source      = "../../modules/iam"
  name        = var.name
  bucket_arn  = module.bucket.bucket_arn
  prefix      = module.bucket.prefix
  kms_key_arn = module.bucket.kms_key_arn
}

module "etcd" {
  source                 = "../../modules/etcd"
  name                   = var.name
  node_count             = 1
  instance_type          = "t3.small"
  subnets                = module.network.private_subnets
  security_group_id      = module.network.security_group_ids.etcd
  instance_profile       = module.iam.instance_profiles.etcd
  kms_key_arn            = module.bucket.kms_key_arn
  client_port            = module.network.ports.etcd
  peer_port              = module.network.ports.etcd_peer
  backup_retention_days  = 0
  termination_protection = false
}

module "bookie" {
  source                 = "../../modules/bookie"
  name                   = var.name
  bookie_count           = 3
  instance_type          = "i4i.large"
  subnets                = module.network.private_subnets
  security_group_id      = module.network.security_group_ids.bookie
  instance_profile       = module.iam.instance_profiles.bookie
  kms_key_arn            = module.bucket.kms_key_arn
  metadata_url           = module.etcd.metadata_url
  port                   = module.network.ports.bookie
  dlogd_release          = var.dlogd_release
  termination_protection = false
}

module "service" {
  source               = "../../modules/service"
  name                 = var.name
  node_count           = 1
  instance_type        = "m7i.large"
  subnets              = module.network.private_subnets
  security_group_id    = module.network.security_group_ids.service
  lb_security_group_id = module.network.security_group_ids.lb
  instance_profile     = module.iam.instance_profiles.service
  kms_key_arn          = module.bucket.kms_key_arn
  metadata_url         = module.etcd.metadata_url
  bookie_count         = module.bookie.bookie_count
  port                 = module.network.ports.service
  http_port            = module.network.ports.http
  default_policy       = { ensemble = 3, write_quorum = 3, ack_quorum = 2 }
  objects = {
    url    = module.bucket.url
    region = module.bucket.region
  }
  dlogd_release       = var.dlogd_release
  deletion_protection = false
}
