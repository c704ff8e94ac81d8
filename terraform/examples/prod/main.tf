# A production dlog cluster over three zones: three etcd members, six bookies (two per zone) on
# i4i.2xlarge, three service nodes, a NAT gateway per zone, daily etcd backups, deletion and
# termination protection. Streams default to 3 copies (one per zone), 2 acknowledged: the cluster
# keeps accepting and serving appends through the loss of a zone.
#
#   terraform init
#   terraform apply -var 'dlogd_release={url="https://…/dlogd",sha256="…"}' \
#                   -var 'client_cidrs=["10.8.0.0/16"]' -var 'admin_cidrs=["10.9.0.0/24"]'
#
# docs/operations.md walks through it, and through scaling, restarts, replacements, restores
# and upgrades.

module "bucket" {
  source = "../../modules/bucket"
  name   = var.name
  # Segments untouched for 30 days move to Intelligent-Tiering (immediate reads, no retrieval fee).
  transitions = [{ days = 30, storage_class = "INTELLIGENT_TIERING" }]
}

module "network" {
  source              = "../../modules/network"
  name                = var.name
  zones               = var.zones
  nat_gateways        = "per_zone"
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
  source                = "../../modules/etcd"
  name                  = var.name
  node_count            = 3
  instance_type         = "m7i.large"
  subnets               = module.network.private_subnets
  security_group_id     = module.network.security_group_ids.etcd
  instance_profile      = module.iam.instance_profiles.etcd
  kms_key_arn           = module.bucket.kms_key_arn
  client_port           = module.network.ports.etcd
  peer_port             = module.network.ports.etcd_peer
  backup_retention_days = 14
}

module "bookie" {
  source            = "../../modules/bookie"
  name              = var.name
  bookie_count      = 6
  instance_type     = "i4i.2xlarge"
  subnets           = module.network.private_subnets
  security_group_id = module.network.security_group_ids.bookie
  instance_profile  = module.iam.instance_profiles.bookie
  kms_key_arn       = module.bucket.kms_key_arn
  metadata_url      = module.etcd.metadata_url
  port              = module.network.ports.bookie
  dlogd_release     = var.dlogd_release
  settings = {
    cache_bytes = 4294967296 # 4 GiB of the 64 GiB
  }
}

module "service" {
  source               = "../../modules/service"
  name                 = var.name
  node_count           = 3
  instance_type        = "m7i.xlarge"
  subnets              = module.network.private_subnets
  security_group_id    = module.network.security_group_ids.service
  lb_security_group_id = module.network.security_group_ids.lb
  instance_profile     = module.iam.instance_profiles.service
  kms_key_arn          = module.bucket.kms_key_arn
  metadata_url         = module.etcd.metadata_url
  bookie_count         = module.bookie.bookie_count
  port                 = module.network.ports.service
  http_port            = module.network.ports.http
  default_policy = {
    ensemble         = 3
    write_quorum     = 3
    ack_quorum       = 2
    offload_after_ms = 3600000 # sealed segments go to S3 after an hour
  }
  objects = {
    url         = module.bucket.url
    region      = module.bucket.region
    cache_bytes = 4294967296 # 4 GiB of the 16 GiB
  }
  dlogd_release = var.dlogd_release
}
