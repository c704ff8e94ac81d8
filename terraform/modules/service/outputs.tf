output "endpoint" {
  description = "The log service's address for clients: LB_DNS_NAME:PORT (dlog --server, DLOG_SERVER, the SDK)."
  value       = "${aws_lb.this.dns_name}:${var.port}"
}

output "control_plane_url" {
  description = "The control plane through the load balancer: http://LB_DNS_NAME:HTTP_PORT (/api/v1/…, /health, /ready, /metrics)."
  value       = "http://${aws_lb.this.dns_name}:${var.http_port}"
}

output "lb_dns_name" {
  description = "DNS name of the internal load balancer."
  value       = aws_lb.this.dns_name
}

output "nodes" {
  description = "Each service node: name, instance id, advertised client address and control-plane URL."
  value = [
    for i, inst in aws_instance.service : {
      name          = module.config[i].node
      instance_id   = inst.id
      address       = "${local.addresses[i]}:${var.port}"
      control_plane = "http://${local.addresses[i]}:${var.http_port}"
    }
  ]
}

output "config" {
  description = "The server.toml of node 0 (the others differ only in node and advertise)."
  value       = var.node_count > 0 ? module.config[0].config : null
}
