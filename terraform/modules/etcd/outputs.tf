output "metadata_url" {
  description = "The cluster's metadata store as dlogd takes it: etcd://IP:PORT,… (--metadata, metadata = …)."
  value       = local.metadata_url
}

output "members" {
  description = "Every member: name and private address."
  value       = local.members
}

output "client_endpoints" {
  description = "Client endpoints for etcdctl (http://IP:PORT,…)."
  value       = join(",", [for m in local.members : "http://${m.address}:${var.client_port}"])
}

output "instance_ids" {
  description = "Instance id of each member."
  value       = aws_instance.etcd[*].id
}

output "data_volume_ids" {
  description = "EBS data volume of each member."
  value       = aws_ebs_volume.data[*].id
}
