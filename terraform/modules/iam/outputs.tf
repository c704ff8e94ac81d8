output "instance_profiles" {
  description = "Instance profile name of each role: etcd, bookie, service."
  value       = { for r, p in aws_iam_instance_profile.this : r => p.name }
}

output "role_arns" {
  description = "Role ARN of each role: etcd, bookie, service."
  value       = { for r, role in aws_iam_role.this : r => role.arn }
}
