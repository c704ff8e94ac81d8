# Renders the files of every role through the same config modules the etcd, bookie and service
# modules call, with example values like those of examples/dev and examples/prod; test_render.py
# plans this root offline (no provider needed) and runs dlogd, etcd and systemd on the output.
# Each call passes the same arguments as the module that calls it in production
# (test_render.py checks that), with one call using every optional setting.

terraform {
  required_version = ">= 1.9"
}

locals {
  subnets = [
    { cidr = "10.40.0.0/19", zone = "eu-west-1a" },
    { cidr = "10.40.32.0/19", zone = "eu-west-1b" },
    { cidr = "10.40.64.0/19", zone = "eu-west-1c" },
  ]
  etcd_members = [for i in range(3) : { name = "dlog-prod-etcd-${i}", address = cidrhost(local.subnets[i].cidr, 10) }]
  metadata_url = "etcd://${join(",", [for m in local.etcd_members : "${m.address}:2379"])}"
  release = {
    url    = "https://releases.example.com/dlog/0.1.0/dlogd-x86_64-linux?X-Amz-Signature=ab%2Fcd&X-Amz-Expires=3600"
    sha256 = "5b1c2e0f7a0d4e3c9b8a7f6e5d4c3b2a190817263544536271809a0b1c2d3e4f"
  }
}

# etcd: three members (prod), and one member on arm64 (dev-like, single node).
module "etcd" {
  source               = "../../modules/etcd/config"
  count                = 3
  cluster              = "dlog-prod"
  index                = count.index
  members              = local.etcd_members
  client_port          = 2379
  peer_port            = 2380
  volume_id            = "vol-0123456789abcdef${count.index}"
  architecture         = "x86_64"
  quota_backend_bytes  = 8589934592
  compaction_retention = "1h"
}

module "etcd_arm" {
  source               = "../../modules/etcd/config"
  cluster              = "dlog-dev"
  index                = 0
  members              = [{ name = "dlog-dev-etcd-0", address = "10.40.0.10" }]
  client_port          = 2379
  peer_port            = 2380
  volume_id            = "vol-0fedcba9876543210"
  architecture         = "arm64"
  quota_backend_bytes  = 2147483648
  compaction_retention = "30m"
}

# Bookies: dlogd's defaults (dev), and every setting given (prod).
module "bookie_defaults" {
  source           = "../../modules/bookie/config"
  cluster          = "dlog-dev"
  index            = 0
  zone             = "eu-west-1a"
  address          = "10.40.0.64"
  port             = 3181
  metadata_url     = "etcd://10.40.0.10:2379"
  registration_ttl = "10s"
  mount            = "/var/lib/dlog"
  settings         = {}
  dlogd_release    = null
}

module "bookie_full" {
  source           = "../../modules/bookie/config"
  cluster          = "dlog-prod"
  index            = 4
  zone             = local.subnets[1].zone
  address          = cidrhost(local.subnets[1].cidr, 65)
  port             = 3181
  metadata_url     = local.metadata_url
  registration_ttl = "15s"
  mount            = "/var/lib/dlog"
  settings = {
    journal_file_size_bytes           = 1073741824
    journal_io_mode                   = "direct-dsync"
    journal_preallocate               = "fallocate"
    journal_max_commit_bytes          = 8388608
    index_flush_interval              = "5s"
    cache_bytes                       = 4294967296
    read_only_above                   = 0.9
    writable_below                    = 0.85
    gc_interval                       = "2m"
    gc_compact_below                  = 0.4
    max_entry_bytes                   = 5242880
    max_inflight_bytes_per_connection = 134217728
  }
  dlogd_release = local.release
}

# Service nodes: the fewest settings (dev), and every setting given (prod).
module "service_defaults" {
  source       = "../../modules/service/config"
  cluster      = "dlog-dev"
  index        = 0
  address      = "10.40.0.32"
  port         = 7070
  http_port    = 7080
  metadata_url = "etcd://10.40.0.10:2379"
  server = {
    ownership_ttl          = "10s"
    retention_interval     = "1m"
    ledger_request_timeout = "10s"
    policy                 = { ensemble = 3, write_quorum = 3, ack_quorum = 2 }
    writer                 = {}
    objects = {
      url    = "s3://dlog-dev-objects-123456789012/dlog"
      region = "eu-west-1"
      grace  = "1m"
    }
  }
  autorecovery  = { grace = "5m", interval = "30s" }
  dlogd_release = local.release
}

module "service_full" {
  source       = "../../modules/service/config"
  cluster      = "dlog-prod"
  index        = 2
  address      = cidrhost(local.subnets[2].cidr, 32)
  port         = 7070
  http_port    = 7080
  metadata_url = local.metadata_url
  server = {
    ownership_ttl                     = "15s"
    retention_interval                = "30s"
    max_inflight_bytes_per_connection = 134217728
    ledger_request_timeout            = "5s"
    policy = {
      ensemble         = 5
      write_quorum     = 3
      ack_quorum       = 2
      segment_bytes    = 268435456
      segment_age_ms   = 3600000
      retention_age_ms = 604800000
      retention_bytes  = 1099511627776
      max_record_bytes = 1048576
      compression      = "zstd"
      offload_after_ms = 3600000
    }
    writer = { max_entry_bytes = 1048576, max_pending_bytes = 134217728 }
    objects = {
      url                 = "s3://dlog-prod-objects-123456789012/dlog"
      region              = "eu-west-1"
      endpoint            = "https://s3.eu-west-1.amazonaws.com"
      path_style          = false
      grace               = "2m"
      cache_bytes         = 4294967296
      compact_below       = 67108864
      multipart_threshold = 134217728
      part_size           = 16777216
      upload_concurrency  = 8
    }
  }
  autorecovery  = { grace = "10m", interval = "1m" }
  dlogd_release = local.release
}

output "rendered" {
  description = "Every rendered node: role, name, files and user data."
  value = concat(
    [for i, m in module.etcd : { role = "etcd", name = "etcd-${i}", files = m.files, user_data = m.user_data }],
    [{ role = "etcd", name = "etcd-arm", files = module.etcd_arm.files, user_data = module.etcd_arm.user_data }],
    [{ role = "bookie", name = "bookie-defaults", files = module.bookie_defaults.files, user_data = module.bookie_defaults.user_data }],
    [{ role = "bookie", name = "bookie-full", files = module.bookie_full.files, user_data = module.bookie_full.user_data }],
    [{ role = "service", name = "service-defaults", files = module.service_defaults.files, user_data = module.service_defaults.user_data }],
    [{ role = "service", name = "service-full", files = module.service_full.files, user_data = module.service_full.user_data }],
  )
}
