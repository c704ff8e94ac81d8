output "node" {
  description = "The node's name (CLUSTER-service-INDEX): node in server.toml and its host name."
  value       = local.node
}

output "files" {
  description = "Every file written on the instance: path, permissions, content."
  value       = local.files
}

output "config" {
  description = "The rendered server.toml."
  value       = local.files[0].content
}

output "user_data" {
  description = "The cloud-init user data (#cloud-config) that writes the files and runs the setup."
  value       = local.user_data
}
