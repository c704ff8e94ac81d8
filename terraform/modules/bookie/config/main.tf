# Renders everything one bookie instance needs: its config, its units, its scripts and the
# cloud-init user data that writes them. No provider and no resource, so that
# terraform/tests renders exactly this with example values and runs dlogd on the output.

locals {
  templates = "${path.module}/../../../templates"
  slot      = "${var.cluster}-bookie-${var.index}"
  data_dir  = "${var.mount}/bookie"
  config    = "/etc/dlog/bookie.toml"
  user      = "dlog"

  files = [
    {
      path        = local.config
      permissions = "0644"
      content = templatefile("${local.templates}/bookie.toml.tftpl", {
        slot     = local.slot
        data_dir = local.data_dir
        listen   = "0.0.0.0:${var.port}"
        settings = var.settings
      })
    },
    {
      path        = "/etc/systemd/system/dlog-bookie.service"
      permissions = "0644"
      content = templatefile("${local.templates}/dlog-bookie.service.tftpl", {
        slot             = local.slot
        user             = local.user
        config_path      = local.config
        data_dir         = local.data_dir
        metadata_url     = var.metadata_url
        advertise        = "${var.address}:${var.port}"
        zone             = var.zone
        registration_ttl = var.registration_ttl
      })
    },
    {
      path        = "/etc/systemd/system/dlog-bookie-disk.service"
      permissions = "0644"
      content = templatefile("${local.templates}/dlog-bookie-disk.service.tftpl", {
        mount = var.mount
      })
    },
    {
      path        = "/usr/local/lib/dlog/bookie-disk"
      permissions = "0755"
      content = templatefile("${local.templates}/bookie-disk.sh.tftpl", {
        slot        = local.slot
        label       = "dlog-bookie"
        user        = local.user
        mount       = var.mount
        data_subdir = "bookie"
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
        role          = "bookie"
        host          = local.slot
        pre_commands  = []
        packages      = ["mdadm", "curl", "ca-certificates"]
        dlog_user     = true
        post_commands = []
        units         = ["dlog-bookie-disk.service", "dlog-bookie.service"]
      })
    },
  ]

  user_data = templatefile("${local.templates}/cloud-config.yaml.tftpl", {
    role       = "bookie"
    host       = local.slot
    files      = local.files
    setup_path = "/usr/local/lib/dlog/setup"
  })
}
