"""The security properties of the modules, as functions over a terraform/ tree read with
python-hcl2. test_security.py runs each on this repository (it must hold) and on copies with
one property broken (it must fail), so that a later change cannot quietly weaken them.

Each check raises AssertionError naming what is wrong."""

from __future__ import annotations

import re
from pathlib import Path

from tftools import blocks, module_blocks, one, unwrap

WORLD = {"0.0.0.0/0", "::/0"}


def _mod(root: Path, name: str) -> dict:
    return module_blocks(root / "modules" / name)


def _doc_statements(mod: dict, doc_ref: str) -> list[dict]:
    """Statements of `data.aws_iam_policy_document.NAME.json`."""
    m = re.fullmatch(r"data\.aws_iam_policy_document\.(\w+)\.json", unwrap(doc_ref))
    assert m, f"policy {doc_ref!r} is not an aws_iam_policy_document (the checks read those)"
    doc = mod["data"].get("aws_iam_policy_document", {}).get(m.group(1))
    assert doc, f"no aws_iam_policy_document {m.group(1)}"
    return blocks(doc.get("statement"))


def _conditions(stmt: dict) -> list[dict]:
    return blocks(stmt.get("condition"))


# ---------------------------------------------------------------------------------------------
# Network

def ingress_never_open_to_the_world_by_default(root: Path) -> None:
    """No ingress rule names 0.0.0.0/0 or ::/0; every rule with a CIDR source takes it from
    client_cidrs or admin_cidrs, which default to none and refuse 0.0.0.0/0 unless
    allow_public_ingress (default false) says so; the other rules name security groups."""
    net = _mod(root, "network")
    variables = net["variable"]
    for name in ("client_cidrs", "admin_cidrs"):
        var = variables[name]
        assert var.get("default") == [], f"{name} must default to [] (nobody)"
        conds = " ".join(unwrap(one(v)["condition"]) if isinstance(v, list) else unwrap(v["condition"])
                         for v in blocks(var.get("validation")))
        assert "var.allow_public_ingress" in conds, f"{name} has no validation tied to allow_public_ingress"
    assert variables["allow_public_ingress"].get("default") is False, "allow_public_ingress must default to false"

    found = 0
    for mname in ("network", "bookie", "etcd", "service", "iam", "bucket"):
        mod = _mod(root, mname)
        for rtype in ("aws_security_group_rule", "aws_security_group"):
            for rname, body in mod["resource"].get(rtype, {}).items():
                assert rtype != "aws_security_group" or not body.get("ingress"), \
                    f"{mname}: inline ingress in aws_security_group.{rname} (use aws_vpc_security_group_ingress_rule)"
                assert rtype != "aws_security_group_rule", f"{mname}: aws_security_group_rule.{rname} (use the vpc_* rule resources)"
        for rname, rule in mod["resource"].get("aws_vpc_security_group_ingress_rule", {}).items():
            found += 1
            where = f"{mname}: aws_vpc_security_group_ingress_rule.{rname}"
            assert rule.get("ip_protocol") == "tcp", f"{where}: only TCP ingress"
            assert unwrap(rule["from_port"]) == unwrap(rule["to_port"]), f"{where}: opens a port range"
            cidrs = [rule.get("cidr_ipv4"), rule.get("cidr_ipv6")]
            for c in cidrs:
                assert c is None or str(c) not in WORLD, f"{where}: open to {c}"
            if any(cidrs):
                src = unwrap(rule.get("for_each", ""))
                m = re.fullmatch(r"local\.(\w+)", src)
                assert m, f"{where}: a CIDR source that is not client_cidrs or admin_cidrs"
                local = str(mod["locals"].get(m.group(1)))
                assert re.search(r"var\.(client|admin)_cidrs\b", local), f"{where}: CIDRs from {local}"
                port = unwrap(rule["from_port"])
                assert port in ("local.ports.service", "local.ports.http"), \
                    f"{where}: a CIDR may reach only the client port or the control plane, not {port}"
            else:
                assert rule.get("referenced_security_group_id"), f"{where}: no source"
    assert found >= 10, f"only {found} ingress rules found"


def examples_do_not_open_to_the_world(root: Path) -> None:
    for ex in sorted((root / "examples").iterdir()):
        mod = module_blocks(ex)
        net = mod["module"]["network"]
        assert net.get("allow_public_ingress") in (None, False), f"{ex.name} sets allow_public_ingress"
        for name in ("client_cidrs", "admin_cidrs"):
            assert mod["variable"][name].get("default") == [], f"{ex.name}: {name} must default to []"


def nothing_public(root: Path) -> None:
    """Internal load balancer, no public address on any instance or private subnet."""
    svc = _mod(root, "service")
    for name, lb in svc["resource"].get("aws_lb", {}).items():
        assert lb.get("internal") is True, f"aws_lb.{name} must be internal"
    for mname in ("bookie", "etcd", "service"):
        for name, inst in _mod(root, mname)["resource"].get("aws_instance", {}).items():
            assert inst.get("associate_public_ip_address") in (None, False), f"{mname}: public IP on {name}"
    for name, subnet in _mod(root, "network")["resource"].get("aws_subnet", {}).items():
        assert subnet.get("map_public_ip_on_launch") is False, f"aws_subnet.{name} maps public IPs"


def instances_hardened(root: Path) -> None:
    """IMDSv2 required, encrypted root volumes with the cluster's key, encrypted etcd data."""
    for mname in ("bookie", "etcd", "service"):
        mod = _mod(root, mname)
        instances = mod["resource"].get("aws_instance", {})
        assert instances, f"{mname}: no aws_instance"
        for name, inst in instances.items():
            md = one(inst["metadata_options"])
            assert md.get("http_tokens") == "required", f"{mname}: {name} does not require IMDSv2"
            assert md.get("http_put_response_hop_limit") == 1, f"{mname}: {name} IMDS hop limit"
            rb = one(inst["root_block_device"])
            assert rb.get("encrypted") is True and unwrap(rb.get("kms_key_id")) == "var.kms_key_arn", \
                f"{mname}: {name} root volume not encrypted with the cluster's key"
    for name, vol in _mod(root, "etcd")["resource"].get("aws_ebs_volume", {}).items():
        assert vol.get("encrypted") is True and unwrap(vol.get("kms_key_id")) == "var.kms_key_arn", \
            f"etcd: aws_ebs_volume.{name} not encrypted with the cluster's key"


# ---------------------------------------------------------------------------------------------
# Bucket

def _bucket_resources(mod, rtype, bucket):
    return [b for b in mod["resource"].get(rtype, {}).values()
            if unwrap(b.get("bucket")) == f"aws_s3_bucket.{bucket}.id"]


def bucket_sse_kms_with_customer_managed_key(root: Path) -> None:
    mod = _mod(root, "bucket")
    sse = _bucket_resources(mod, "aws_s3_bucket_server_side_encryption_configuration", "objects")
    assert len(sse) == 1, "the object bucket has no (or several) encryption configurations"
    rule = one(sse[0]["rule"])
    default = one(rule["apply_server_side_encryption_by_default"])
    assert default.get("sse_algorithm") == "aws:kms", "the object bucket is not SSE-KMS"
    m = re.fullmatch(r"aws_kms_key\.(\w+)\.arn", unwrap(default.get("kms_master_key_id", "")))
    assert m, "the object bucket's key is not a customer-managed aws_kms_key of the module"
    key = mod["resource"]["aws_kms_key"][m.group(1)]
    assert key.get("enable_key_rotation") is True, "the cluster's key is not rotated"
    assert rule.get("bucket_key_enabled") is True, "S3 Bucket Keys off (one KMS call per object)"


def buckets_refuse_plain_http(root: Path) -> None:
    mod = _mod(root, "bucket")
    for bucket in mod["resource"]["aws_s3_bucket"]:
        policies = _bucket_resources(mod, "aws_s3_bucket_policy", bucket)
        assert len(policies) == 1, f"bucket {bucket} has no policy"
        ok = False
        for s in _doc_statements(mod, policies[0]["policy"]):
            principals = [p for p in blocks(s.get("principals"))]
            if (s.get("effect") == "Deny" and s.get("actions") == ["s3:*"]
                    and any(p.get("identifiers") == ["*"] for p in principals)
                    and {f"${{aws_s3_bucket.{bucket}.arn}}", f"${{aws_s3_bucket.{bucket}.arn}}/*"} <= set(s.get("resources", []))
                    and any(c.get("test") == "Bool" and c.get("variable") == "aws:SecureTransport"
                            and c.get("values") == ["false"] for c in _conditions(s))):
                ok = True
        assert ok, f"bucket {bucket}: no statement denying s3:* without TLS (aws:SecureTransport false)"


def buckets_block_public_access(root: Path) -> None:
    mod = _mod(root, "bucket")
    for bucket in mod["resource"]["aws_s3_bucket"]:
        pab = _bucket_resources(mod, "aws_s3_bucket_public_access_block", bucket)
        assert len(pab) == 1, f"bucket {bucket} has no public access block"
        for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            assert pab[0].get(k) is True, f"bucket {bucket}: {k} is not true"
        own = _bucket_resources(mod, "aws_s3_bucket_ownership_controls", bucket)
        assert own and one(own[0]["rule"]).get("object_ownership") == "BucketOwnerEnforced", \
            f"bucket {bucket}: ACLs are not disabled"


def incomplete_multipart_uploads_are_aborted(root: Path) -> None:
    mod = _mod(root, "bucket")
    lc = _bucket_resources(mod, "aws_s3_bucket_lifecycle_configuration", "objects")
    assert len(lc) == 1, "the object bucket has no lifecycle configuration"
    for rule in blocks(lc[0].get("rule")):
        abort = rule.get("abort_incomplete_multipart_upload")
        filt = one(rule["filter"]) if rule.get("filter") else {}
        if abort and rule.get("status") == "Enabled" and filt.get("prefix") == "":
            days = one(abort).get("days_after_initiation")
            assert days is not None, "abort rule without days"
            return
    raise AssertionError("no enabled whole-bucket rule aborting incomplete multipart uploads")


# ---------------------------------------------------------------------------------------------
# IAM

ALLOWED_MANAGED = {"AmazonSSMManagedInstanceCore"}  # Session Manager; holds no s3:* or kms:* action
SERVICE_S3_ACTIONS = {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                      "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}


def bookies_and_etcd_get_no_s3(root: Path) -> None:
    """Only the service role has a policy of its own; every role may have only the allowed
    managed policies; the bookie and etcd modules get the bookie and etcd profiles."""
    iam = _mod(root, "iam")
    roles = unwrap(iam["locals"]["roles"])
    assert re.search(r'\bbookie\b', roles), "the iam module has no bookie role"
    for rtype in ("aws_iam_role_policy", "aws_iam_policy", "aws_iam_policy_attachment",
                  "aws_iam_role_policies_exclusive"):
        for name, body in iam["resource"].get(rtype, {}).items():
            target = unwrap(body.get("role", ""))
            assert rtype == "aws_iam_role_policy" and target == 'aws_iam_role.this["service"].id', \
                f"{rtype}.{name} gives permissions to {target or 'some role'}: only the service role may have a policy"
    for name, body in iam["resource"].get("aws_iam_role_policy_attachment", {}).items():
        arn = unwrap(body["policy_arn"])
        if arn.startswith("local."):
            arn = unwrap(iam["locals"][arn.removeprefix("local.")])
        managed = arn.rsplit("/", 1)[-1]
        assert managed in ALLOWED_MANAGED, f"aws_iam_role_policy_attachment.{name} attaches {arn}"
    for name, role in iam["resource"].get("aws_iam_role", {}).items():
        assert not role.get("inline_policy") and not role.get("managed_policy_arns"), \
            f"aws_iam_role.{name} carries policies inline"
    for ex in sorted((root / "examples").iterdir()):
        mods = module_blocks(ex)["module"]
        for role in ("bookie", "etcd"):
            assert unwrap(mods[role]["instance_profile"]) == f"module.iam.instance_profiles.{role}", \
                f"{ex.name}: the {role} module does not get the {role} profile"


def service_s3_access_is_scoped_to_the_prefix(root: Path) -> None:
    iam = _mod(root, "iam")
    policy = iam["resource"]["aws_iam_role_policy"]
    assert len(policy) == 1
    statements = _doc_statements(iam, one(list(policy.values()))["policy"])
    s3_seen = set()
    for s in statements:
        actions = set(s.get("actions", []))
        assert s.get("effect") == "Allow" and not s.get("not_actions") and not s.get("not_resources")
        resources = s.get("resources", [])
        assert resources and all("*" != r for r in resources), f"{s.get('sid')}: resource *"
        s3 = {a for a in actions if a.startswith("s3:")}
        if not s3:
            assert actions <= {"kms:GenerateDataKey", "kms:Decrypt"}, f"{s.get('sid')}: {actions}"
            assert resources == ["${var.kms_key_arn}"], f"{s.get('sid')}: KMS on {resources}"
            assert any(c.get("variable") == "kms:ViaService" for c in _conditions(s)), "KMS not limited to S3"
            continue
        assert s3 <= SERVICE_S3_ACTIONS, f"{s.get('sid')}: S3 actions beyond the object tier's: {s3 - SERVICE_S3_ACTIONS}"
        s3_seen |= s3
        if s3 == {"s3:ListBucket"}:
            assert resources == ["${var.bucket_arn}"], f"{s.get('sid')}: listing {resources}"
            conds = [c for c in _conditions(s) if c.get("variable") == "s3:prefix"]
            assert conds and all(v.startswith("${var.prefix}/") for c in conds for v in c["values"]), \
                f"{s.get('sid')}: listing not limited to the cluster's prefix"
        else:
            assert "s3:ListBucket" not in s3
            assert resources == ["${var.bucket_arn}/${var.prefix}/*"], f"{s.get('sid')}: objects {resources}"
    assert s3_seen == SERVICE_S3_ACTIONS, f"the object tier needs {SERVICE_S3_ACTIONS - s3_seen}"
    prefix = iam["variable"]["prefix"]
    conds = " ".join(unwrap(v["condition"]) for v in blocks(prefix.get("validation")))
    assert "^[A-Za-z0-9._-]+" in conds, "iam prefix may be empty (the role would reach the whole bucket)"


CHECKS = [
    ingress_never_open_to_the_world_by_default,
    examples_do_not_open_to_the_world,
    nothing_public,
    instances_hardened,
    bucket_sse_kms_with_customer_managed_key,
    buckets_refuse_plain_http,
    buckets_block_public_access,
    incomplete_multipart_uploads_are_aborted,
    bookies_and_etcd_get_no_s3,
    service_s3_access_is_scoped_to_the_prefix,
]
