output "vpc_id" {
  description = "The VPC the cluster runs in."
  value       = local.vpc_id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC."
  value       = local.vpc_cidr
}

output "private_subnets" {
  description = "One private subnet per zone, in the order of zones: id, CIDR block and zone."
  value       = local.private_subnets
}

output "security_group_ids" {
  description = "Security group of each role: etcd, bookie, service, lb."
  value = {
    etcd    = aws_security_group.etcd.id
    bookie  = aws_security_group.bookie.id
    service = aws_security_group.service.id
    lb      = aws_security_group.lb.id
  }
}

output "ports" {
  description = "TCP ports of the roles (bookie, service, http, etcd, etcd_peer); the other modules take them from here so that configs and security groups agree."
  value       = local.ports
}

output "nat_public_ips" {
  description = "Public addresses the cluster's outbound traffic leaves from (for allow-lists of package mirrors or proxies)."
  value       = aws_eip.nat[*].public_ip
}
