"""Variables: every one typed and described, every module input validated; the validation
rules as Terraform evaluates them (a root holding only a module's variables.tf, planned with
good and bad values); and the values the examples pass accepted by the modules they call."""

import re
import unittest

import tftools
from tftools import EXAMPLES, MODULES, blocks, module_blocks, unwrap

MODULE_DIRS = sorted(p.parent for p in MODULES.rglob("variables.tf"))


class Declarations(unittest.TestCase):
    def test_every_variable_is_typed_and_described(self):
        dirs = MODULE_DIRS + sorted(p for p in EXAMPLES.iterdir())
        self.assertEqual(len(MODULE_DIRS), 9)
        for d in dirs:
            for name, var in module_blocks(d)["variable"].items():
                with self.subTest(module=d.relative_to(tftools.TERRAFORM).as_posix(), variable=name):
                    self.assertIn("type", var)
                    self.assertGreaterEqual(len(var.get("description", "")), 10)

    def test_every_module_input_is_validated(self):
        """Every input has a validation rule, except booleans and free-form tags."""
        for d in MODULE_DIRS:
            for name, var in module_blocks(d)["variable"].items():
                with self.subTest(module=d.relative_to(tftools.TERRAFORM).as_posix(), variable=name):
                    kind = unwrap(var["type"])
                    if kind == "bool" or name == "tags":
                        continue
                    self.assertTrue(blocks(var.get("validation")), f"{name} ({kind}) has no validation")

    def test_every_output_is_described(self):
        for d in MODULE_DIRS + sorted(EXAMPLES.iterdir()):
            for name, out in module_blocks(d)["output"].items():
                with self.subTest(module=d.relative_to(tftools.TERRAFORM).as_posix(), output=name):
                    self.assertGreaterEqual(len(out.get("description", "")), 10)


SUBNETS = [{"id": "subnet-0a", "cidr": "10.40.0.0/19", "zone": "eu-west-1a"},
           {"id": "subnet-0b", "cidr": "10.40.32.0/19", "zone": "eu-west-1b"},
           {"id": "subnet-0c", "cidr": "10.40.64.0/19", "zone": "eu-west-1c"}]
KMS = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"
RELEASE = {"url": "https://releases.example.com/dlogd", "sha256": "ab" * 32}
REQUIRED = {
    "network": {"name": "dlog-t", "zones": ["eu-west-1a"], "flow_log_bucket_arn": "arn:aws:s3:::logs"},
    "bucket": {"name": "dlog-t"},
    "iam": {"name": "dlog-t", "bucket_arn": "arn:aws:s3:::b", "prefix": "dlog", "kms_key_arn": KMS},
    "etcd": {"name": "dlog-t", "subnets": SUBNETS, "security_group_id": "sg-0e0e", "instance_profile": "p",
             "kms_key_arn": KMS},
    "bookie": {"name": "dlog-t", "subnets": SUBNETS, "security_group_id": "sg-0b0b", "instance_profile": "p",
               "kms_key_arn": KMS, "metadata_url": "etcd://10.40.0.10:2379"},
    "service": {"name": "dlog-t", "subnets": SUBNETS, "security_group_id": "sg-0c0c", "lb_security_group_id": "sg-0d0d",
                "instance_profile": "p", "kms_key_arn": KMS, "metadata_url": "etcd://10.40.0.10:2379",
                "bookie_count": 3, "objects": {"url": "s3://dlog-t-objects/dlog", "region": "eu-west-1"}},
}

# (module, values, refused?, part of the message)
CASES = [
    ("service", {}, False, None),
    ("service", {"default_policy": {"ensemble": 3, "write_quorum": 3, "ack_quorum": 3}}, False, None),
    ("service", {"default_policy": {"ensemble": 3, "write_quorum": 2, "ack_quorum": 3}}, True, "ack_quorum <= write_quorum"),
    ("service", {"default_policy": {"ensemble": 2, "write_quorum": 3, "ack_quorum": 2}}, True, "write_quorum <= ensemble"),
    ("service", {"default_policy": {"ensemble": 3, "write_quorum": 3, "ack_quorum": 0}}, True, "1 <= ack_quorum"),
    ("service", {"default_policy": {"ensemble": 5, "write_quorum": 3, "ack_quorum": 2}}, True, "larger than bookie_count"),
    ("service", {"bookie_count": 5, "default_policy": {"ensemble": 5, "write_quorum": 3, "ack_quorum": 2}}, False, None),
    ("service", {"default_policy": {"compression": "gzip"}}, True, "compression"),
    ("service", {"objects": {"url": "s3://b", "region": "eu-west-1"}}, True, "s3://BUCKET/PREFIX"),
    ("service", {"objects": {"url": "s3://b/p", "region": "eu-west-1", "part_size": 1048576}}, True, "part_size"),
    ("service", {"dlogd_release": {"url": "http://example.com/dlogd", "sha256": "ab" * 32}}, True, "https://"),
    ("service", {"dlogd_release": {"url": "https://example.com/dlogd'$(reboot)", "sha256": "ab" * 32}}, True, "https://"),
    ("bookie", {"instance_type": "i4i.large"}, False, None),
    ("bookie", {"instance_type": "m7i.large"}, True, "instance storage"),
    ("bookie", {"settings": {"read_only_above": 0.8, "writable_below": 0.9}}, True, "writable_below <= read_only_above"),
    ("bookie", {"settings": {"journal_io_mode": "fast"}}, True, "journal_io_mode"),
    ("bookie", {"settings": {"journal_file_size_bytes": 67108865}}, True, "multiple of 4096"),
    ("bookie", {"registration_ttl": "soon"}, True, "registration_ttl"),
    ("etcd", {"node_count": 2}, True, "1, 3 or 5"),
    ("etcd", {"node_count": 5}, False, None),
    ("etcd", {"instance_type": "t2.medium"}, True, "Nitro"),
    ("bucket", {"transitions": [{"days": 30, "storage_class": "STANDARD_IA"}]}, False, None),
    ("bucket", {"transitions": [{"days": 90, "storage_class": "GLACIER"}]}, True, "restore"),
    ("bucket", {"prefix": "/dlog"}, True, "prefix"),
    ("bucket", {"prefix": ""}, True, "prefix"),
    ("iam", {"prefix": ""}, True, "never empty"),
    ("network", {"existing_vpc_id": "vpc-0123"}, True, "one subnet per zone"),
    ("network", {"existing_vpc_id": "vpc-0123", "existing_private_subnet_ids": ["subnet-0a"],
                 "flow_log_bucket_arn": None}, False, None),
    ("network", {"flow_log_bucket_arn": None}, True, "flow_log_bucket_arn is required"),
    ("network", {"zones": []}, True, "1 to 6"),
    ("network", {"ports": {"bookie": 7070}}, True, "distinct"),
]


class Validation(unittest.TestCase):
    def test_rules_as_terraform_evaluates_them(self):
        for module, values, refused, message in CASES:
            with self.subTest(module=module, values=values):
                r = tftools.plan_variables(MODULES / module, {**REQUIRED[module], **values})
                out = re.sub(r"\s+", " ", r.stdout + r.stderr)
                if refused:
                    self.assertNotEqual(r.returncode, 0, "accepted")
                    self.assertIn(message, out)
                else:
                    self.assertEqual(r.returncode, 0, out[-3000:])


# Stand-ins for values an example takes from other modules, by the name of the output.
STAND_INS = {
    "private_subnets": SUBNETS, "kms_key_arn": KMS, "bucket_arn": "arn:aws:s3:::dlog-objects",
    "log_bucket_arn": "arn:aws:s3:::dlog-logs", "prefix": "dlog", "url": "s3://dlog-objects/dlog",
    "region": "eu-west-1", "metadata_url": "etcd://10.40.0.10:2379,10.40.32.10:2379,10.40.64.10:2379",
    "etcd": "sg-0e0e", "bookie": "sg-0b0b", "service": "sg-0c0c", "lb": "sg-0d0d",
    "http": 7080, "etcd_peer": 2380,
}
PORTS = {"bookie": 3181, "service": 7070, "etcd": 2379}


class Examples(unittest.TestCase):
    """Every module call of each example, its literal values as written and the others
    resolved (variables to their defaults, other modules' outputs to stand-ins), planned against
    the called module's variables: the examples pass the modules' validations."""

    def resolve(self, value, example, calls):
        if isinstance(value, dict):
            return {k: self.resolve(v, example, calls) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, example, calls) for v in value]
        if not isinstance(value, str) or "${" not in value:
            return value
        expr = unwrap(value)
        m = re.fullmatch(r"var\.(\w+)", expr)
        if m:
            var = module_blocks(example)["variable"][m.group(1)]
            return var["default"] if "default" in var else {"dlogd_release": RELEASE}[m.group(1)]
        m = re.fullmatch(r"\[var\.(\w+)\]", expr)
        if m:
            return [module_blocks(example)["variable"][m.group(1)]["default"]]
        m = re.fullmatch(r"module\.(\w+)\.([\w.]+)", expr)
        self.assertIsNotNone(m, f"cannot resolve {expr}")
        source, attr = m.group(1), m.group(2)
        if attr == "bookie_count":
            return calls["bookie"]["bookie_count"]
        last = attr.rsplit(".", 1)[-1]
        if attr.startswith("instance_profiles."):
            return f"dlog-{last}"
        if attr.startswith("ports.") and last in PORTS:
            return PORTS[last]
        return STAND_INS[last]

    def test_examples_pass_the_modules_validations(self):
        for example in sorted(EXAMPLES.iterdir()):
            calls = module_blocks(example)["module"]
            self.assertEqual(set(calls), {"network", "bucket", "iam", "etcd", "bookie", "service"})
            for name, call in calls.items():
                with self.subTest(example=example.name, module=name):
                    module = (example / call["source"]).resolve()
                    values = {k: self.resolve(v, example, calls) for k, v in call.items() if k != "source"}
                    r = tftools.plan_variables(module, values)
                    self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-3000:])
