# Renders everything one service node needs: server.toml, the dlogd server and autorecovery
# units, the install and setup scripts, and the cloud-init user data. No provider and no
# resource, so that terraform/tests renders exactly this and runs dlogd on the output.

locals {
  templates = "${path.module}/../../../templates"
  node      = "${var.cluster}-service-${var.index}"
  config    = "/etc/dlog/server.toml"
  user      = "dlog"

  files = [
    {
      path        = local.config
      permissions = "0644"
      content = templatefile("${local.templates}/server.toml.tftpl", {
        node                              = local.node
        metadata_url                      = var.metadata_url
        listen                            = "0.0.0.0:${var.port}"
        advertise                         = "${var.address}:${var.port}"
        http_listen                       = "0.0.0.0:${var.http_port}"
        ownership_ttl                     = var.server.ownership_ttl
        retention_interval                = var.server.retention_interval
        max_inflight_bytes_per_connection = var.server.max_inflight_bytes_per_connection
        ledger_request_timeout            = var.server.ledger_request_timeout
        policy                            = var.server.policy
        writer                            = var.server.writer
        objects                           = var.server.objects
      })
    },
    {
      path        = "/etc/systemd/system/dlog-server.service"
      permissions = "0644"
      content = templatefile("${local.templates}/dlog-server.service.tftpl", {
        node        = local.node
        user        = local.user
        config_path = local.config
      })
    },
    {
      path        = "/etc/systemd/system/dlog-autorecovery.service"
      permissions = "0644"
      content = templatefile("${local.templates}/dlog-autorecovery.service.tftpl", {
        node         = local.node
        user         = local.user
        metadata_url = var.metadata_url
        grace        = var.autorecovery.grace
        interval     = var.autorecovery.interval
      })
    },
    {
      path        = "/usr/local/lib/dlog/install-dlogd"
      permissions = "0755"
      content = templatefile("${local.templates}/install-dlogd.sh.tftpl", {
        url    = var.dlogd_release == null ? "" : var.dlogd_release.url
        sha256 = var.dlogd_release == null ? "" : var.dlogd_release.sha256
      })
    },
    {
      path        = "/usr/local/lib/dlog/setup"
      permissions = "0755"
      content = templatefile("${local.templates}/setup.sh.tftpl", {
        role          = "service"
        host          = local.node
        pre_commands  = []
        packages      = ["curl", "ca-certificates"]
        dlog_user     = true
        post_commands = []
        units         = ["dlog-server.service", "dlog-autorecovery.service"]
      })
    },
  ]

  user_data = templatefile("${local.templates}/cloud-config.yaml.tftpl", {
    role       = "service"
    host       = local.node
    files      = local.files
    setup_path = "/usr/local/lib/dlog/setup"
  })
}
