output "endpoint" {
  description = "The log service for clients (dlog --server, DLOG_SERVER)."
  value       = module.service.endpoint
}

output "control_plane_url" {
  description = "The control plane (HTTP API, /metrics)."
  value       = module.service.control_plane_url
}

output "metadata_url" {
  description = "The metadata store (dlogd … --metadata)."
  value       = module.etcd.metadata_url
}

output "etcd_endpoints" {
  description = "The etcd members' client endpoints (etcdctl --endpoints)."
  value       = module.etcd.client_endpoints
}

output "bucket_url" {
  description = "The object tier (dlog replay/query --bucket, dlogd restore --bucket)."
  value       = module.bucket.url
}

output "bucket" {
  description = "Name of the object-tier bucket."
  value       = module.bucket.bucket
}

output "bookies" {
  description = "Bookie slots and their addresses."
  value       = zipmap(module.bookie.slots, module.bookie.addresses)
}

output "service_nodes" {
  description = "Service nodes: name, instance id, client address, control plane."
  value       = module.service.nodes
}
