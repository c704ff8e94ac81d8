output "instance_ids" {
  description = "Instance id of each bookie slot."
  value       = aws_instance.bookie[*].id
}

output "addresses" {
  description = "Bookie protocol address (IP:PORT) of each slot."
  value       = [for a in local.addresses : "${a}:${var.port}"]
}

output "slots" {
  description = "Slot name of each bookie (NAME-bookie-N; the bookie id is SLOT-YYYYMMDDHHMMSS, made with its disk)."
  value       = module.config[*].slot
}

output "zones" {
  description = "Zone of each bookie slot."
  value       = [for s in local.subnets : s.zone]
}

output "config" {
  description = "The bookie.toml every bookie runs with (the same for all; the per-bookie values are flags in dlog-bookie.service)."
  value       = var.bookie_count > 0 ? module.config[0].config : null
}

output "bookie_count" {
  description = "Number of bookies (the service module checks the default policy's ensemble against it)."
  value       = var.bookie_count
}
