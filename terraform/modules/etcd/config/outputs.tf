output "files" {
  description = "Every file written on the instance: path, permissions, content."
  value       = local.files
}

output "user_data" {
  description = "The cloud-init user data (#cloud-config) that writes the files and runs the setup."
  value       = local.user_data
}
