output "slot" {
  description = "The bookie's slot name (NAME-bookie-INDEX): its host name and the start of its id."
  value       = local.slot
}

output "files" {
  description = "Every file written on the instance: path, permissions, content."
  value       = local.files
}

output "config" {
  description = "The rendered bookie.toml."
  value       = local.files[0].content
}

output "user_data" {
  description = "The cloud-init user data (#cloud-config) that writes the files and runs the setup."
  value       = local.user_data
}
