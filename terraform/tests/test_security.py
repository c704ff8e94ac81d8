"""The security properties (security.py) hold for the modules, and each check fails when its
property is broken in a copy of terraform/; the network's variables refuse 0.0.0.0/0 unless
allow_public_ingress, as Terraform itself evaluates them."""

import shutil
import unittest

import security
import tftools
from tftools import MODULES, TERRAFORM


class Properties(unittest.TestCase):
    def test_every_property_holds(self):
        for check in security.CHECKS:
            with self.subTest(check=check.__name__):
                check(TERRAFORM)


# (check, file under terraform/, text, replacement): one broken property each.
MUTATIONS = [
    (security.ingress_never_open_to_the_world_by_default, "modules/network/main.tf",
     '  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value\n  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null\n}\n\nresource "aws_vpc_security_group_ingress_rule" "service_client_from_sg"',
     '  cidr_ipv4         = "0.0.0.0/0"\n}\n\nresource "aws_vpc_security_group_ingress_rule" "service_client_from_sg"'),
    (security.ingress_never_open_to_the_world_by_default, "modules/network/variables.tf",
     'variable "client_cidrs" {\n  description = "Networks whose clients (SDK, dlog CLI) may reach the log service\'s client port on the load balancer and on the service nodes (appends are redirected to the stream\'s owner node). Default: none."\n  type        = list(string)\n  default     = []',
     'variable "client_cidrs" {\n  description = "x"\n  type        = list(string)\n  default     = ["0.0.0.0/0"]'),
    (security.ingress_never_open_to_the_world_by_default, "modules/network/variables.tf",
     'variable "allow_public_ingress" {\n  description = "Explicit opt-in to 0.0.0.0/0 (or any range wider than /8, /16 for IPv6) in client_cidrs or admin_cidrs. The load balancer stays internal either way."\n  type        = bool\n  default     = false',
     'variable "allow_public_ingress" {\n  description = "x"\n  type        = bool\n  default     = true'),
    (security.ingress_never_open_to_the_world_by_default, "modules/network/main.tf",
     '  description                  = "bookie protocol from service nodes (ledger writers, readers, autorecovery)"\n  ip_protocol                  = "tcp"\n  from_port                    = local.ports.bookie\n  to_port                      = local.ports.bookie\n  referenced_security_group_id = aws_security_group.service.id',
     '  description                  = "bookie protocol"\n  ip_protocol                  = "tcp"\n  from_port                    = local.ports.bookie\n  to_port                      = local.ports.bookie\n  cidr_ipv4                    = "10.0.0.0/8"'),
    (security.examples_do_not_open_to_the_world, "examples/prod/main.tf",
     '  client_cidrs        = var.client_cidrs\n', '  client_cidrs        = var.client_cidrs\n  allow_public_ingress = true\n'),
    (security.nothing_public, "modules/service/main.tf", "  internal                         = true", "  internal                         = false"),
    (security.instances_hardened, "modules/bookie/main.tf", 'http_tokens                 = "required"', 'http_tokens                 = "optional"'),
    (security.instances_hardened, "modules/etcd/main.tf", "  encrypted         = true\n  kms_key_id        = var.kms_key_arn\n", "  encrypted         = false\n"),
    (security.bucket_sse_kms_with_customer_managed_key, "modules/bucket/main.tf",
     '      sse_algorithm     = "aws:kms"\n      kms_master_key_id = aws_kms_key.this.arn', '      sse_algorithm     = "AES256"'),
    (security.bucket_sse_kms_with_customer_managed_key, "modules/bucket/main.tf",
     "      kms_master_key_id = aws_kms_key.this.arn", '      kms_master_key_id = "alias/aws/s3"'),
    (security.buckets_refuse_plain_http, "modules/bucket/main.tf",
     '      variable = "aws:SecureTransport"\n      values   = ["false"]\n    }\n  }\n\n  statement {\n    sid       = "DenyTlsBefore12"',
     '      variable = "aws:SecureTransport"\n      values   = ["true"]\n    }\n  }\n\n  statement {\n    sid       = "DenyTlsBefore12"'),
    (security.buckets_block_public_access, "modules/bucket/main.tf",
     'resource "aws_s3_bucket_public_access_block" "logs" {\n  bucket                  = aws_s3_bucket.logs.id\n  block_public_acls       = true',
     'resource "aws_s3_bucket_public_access_block" "logs" {\n  bucket                  = aws_s3_bucket.logs.id\n  block_public_acls       = false'),
    (security.incomplete_multipart_uploads_are_aborted, "modules/bucket/main.tf",
     '    abort_incomplete_multipart_upload {\n      days_after_initiation = var.abort_incomplete_multipart_days\n    }\n', ''),
    (security.bookies_and_etcd_get_no_s3, "modules/iam/main.tf",
     '  role   = aws_iam_role.this["service"].id', '  role   = aws_iam_role.this["bookie"].id'),
    (security.bookies_and_etcd_get_no_s3, "modules/iam/main.tf",
     '  policy_arn = local.ssm_policy_arn', '  policy_arn = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"'),
    (security.bookies_and_etcd_get_no_s3, "examples/dev/main.tf",
     "  instance_profile       = module.iam.instance_profiles.bookie", "  instance_profile       = module.iam.instance_profiles.service"),
    (security.service_s3_access_is_scoped_to_the_prefix, "modules/iam/main.tf",
     '    resources = ["${var.bucket_arn}/${var.prefix}/*"]', '    resources = ["${var.bucket_arn}/*"]'),
    (security.service_s3_access_is_scoped_to_the_prefix, "modules/iam/main.tf",
     '      values   = ["${var.prefix}/*"]', '      values   = ["*"]'),
    (security.service_s3_access_is_scoped_to_the_prefix, "modules/iam/main.tf",
     '      "s3:DeleteObject",\n', '      "s3:DeleteObject",\n      "s3:PutBucketPolicy",\n'),
]


class ChecksCanFail(unittest.TestCase):
    def test_each_check_catches_its_property_broken(self):
        for check, rel, old, new in MUTATIONS:
            with self.subTest(check=check.__name__, file=rel, change=new[:60]):
                check(TERRAFORM)  # holds before the mutation, so a failure below is the mutation's
                root = tftools.scratch("mutant") / "terraform"
                shutil.copytree(TERRAFORM, root, ignore=shutil.ignore_patterns("tests", ".terraform"))
                path = root / rel
                text = path.read_text()
                self.assertEqual(text.count(old), 1, f"the mutation no longer matches {rel}; update it")
                path.write_text(text.replace(old, new))
                with self.assertRaises(AssertionError, msg=f"{check.__name__} missed: {new!r}"):
                    check(root)
        self.assertGreaterEqual(len(MUTATIONS), len(security.CHECKS))

    def test_every_check_has_a_mutation(self):
        self.assertEqual({c for c, *_ in MUTATIONS}, set(security.CHECKS))


class PublicIngressRefused(unittest.TestCase):
    """Terraform evaluates the network module's validations on the values a caller passes."""

    base = {"name": "dlog-test", "zones": ["eu-west-1a"], "flow_log_bucket_arn": "arn:aws:s3:::logs"}

    def plan(self, **values):
        return tftools.plan_variables(MODULES / "network", {**self.base, **values})

    def test_defaults_and_named_networks_pass(self):
        for values in ({}, {"client_cidrs": ["10.8.0.0/16", "fd00::/48"], "admin_cidrs": ["10.9.0.0/24"]}):
            with self.subTest(values=values):
                r = self.plan(**values)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_the_world_is_refused_unless_asked_for(self):
        for values in ({"client_cidrs": ["0.0.0.0/0"]}, {"client_cidrs": ["10.0.0.0/8", "::/0"]},
                       {"admin_cidrs": ["0.0.0.0/0"]}, {"admin_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]}):
            with self.subTest(values=values):
                r = self.plan(**values)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("allow_public_ingress", r.stdout + r.stderr)
                r = self.plan(**values, allow_public_ingress=True)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
