output "bucket" {
  description = "Name of the object-tier bucket."
  value       = aws_s3_bucket.objects.id
}

output "bucket_arn" {
  description = "ARN of the object-tier bucket."
  value       = aws_s3_bucket.objects.arn
}

output "prefix" {
  description = "Key prefix the cluster writes under."
  value       = var.prefix
}

output "url" {
  description = "The object tier as dlog names it: s3://BUCKET/PREFIX ([objects] url of the server config, --bucket of dlog replay, dlog query and dlogd restore)."
  value       = "s3://${aws_s3_bucket.objects.id}/${var.prefix}"
}

output "region" {
  description = "Region of the bucket."
  value       = data.aws_region.current.id
}

output "kms_key_arn" {
  description = "ARN of the cluster's customer-managed KMS key (bucket encryption and instance volumes)."
  value       = aws_kms_key.this.arn
}

output "log_bucket" {
  description = "Name of the bucket holding S3 access logs and VPC flow logs."
  value       = aws_s3_bucket.logs.id
}

output "log_bucket_arn" {
  description = "ARN of the log bucket (the network module's flow_log_bucket_arn)."
  value       = aws_s3_bucket.logs.arn
}
