# Renders everything one etcd member needs: etcd's environment, a drop-in for Debian's
# etcd.service, the data-volume script and the cloud-init user data. No provider and no resource,
# so that terraform/tests renders exactly this and starts etcd with the output.

locals {
  templates = "${path.module}/../../../templates"
  member    = var.members[var.index]
  mount     = "/var/lib/etcd"
  env_path  = "/etc/dlog/etcd.env"

  files = [
    {
      path        = local.env_path
      permissions = "0644"
      content = templatefile("${local.templates}/etcd.env.tftpl", {
        cluster              = var.cluster
        member               = local.member.name
        address              = local.member.address
        members              = var.members
        client_port          = var.client_port
        peer_port            = var.peer_port
        data_dir             = "${local.mount}/data"
        compaction_retention = var.compaction_retention
        quota_backend_bytes  = var.quota_backend_bytes
        architecture         = var.architecture
      })
    },
    {
      path        = "/etc/systemd/system/etcd.service.d/dlog.conf"
      permissions = "0644"
      content = templatefile("${local.templates}/etcd-dlog.conf.tftpl", {
        mount    = local.mount
        env_path = local.env_path
      })
    },
    {
      path        = "/usr/local/lib/dlog/etcd-disk"
      permissions = "0755"
      content = templatefile("${local.templates}/etcd-disk.sh.tftpl", {
        member                 = local.member.name
        volume_id              = var.volume_id
        label                  = "etcd-data"
        mount                  = local.mount
        attach_timeout_seconds = var.attach_timeout_seconds
      })
    },
    {
      path        = "/usr/local/lib/dlog/setup"
      permissions = "0755"
      content = templatefile("${local.templates}/setup.sh.tftpl", {
        role          = "etcd"
        host          = local.member.name
        pre_commands  = ["/usr/local/lib/dlog/etcd-disk"]
        packages      = ["etcd-server", "etcd-client"]
        dlog_user     = false
        post_commands = ["chown etcd:etcd ${local.mount}", "install -d -o etcd -g etcd -m 0700 ${local.mount}/data"]
        units         = ["etcd.service"]
      })
    },
  ]

  user_data = templatefile("${local.templates}/cloud-config.yaml.tftpl", {
    role       = "etcd"
    host       = local.member.name
    files      = local.files
    setup_path = "/usr/local/lib/dlog/setup"
  })
}
