"""Static checks of terraform/: formatting (the real `terraform fmt`), parsing (python-hcl2),
and checkov's policies (no failed check; every skip inline with its reason)."""

import json
import os
import re
import shutil
import subprocess
import unittest

import tftools
from tftools import TERRAFORM


class Format(unittest.TestCase):
    def test_terraform_fmt_check_recursive(self):
        """`terraform fmt -check -recursive terraform`: every .tf file is formatted."""
        r = tftools.terraform("fmt", "-check", "-recursive", "-list=true", "-no-color", str(TERRAFORM))
        self.assertEqual(r.returncode, 0, f"files terraform fmt would change:\n{r.stdout}{r.stderr}")

    def test_fmt_check_fails_on_a_misformatted_file(self):
        d = tftools.scratch("fmt")
        (d / "main.tf").write_text('variable "x" {\n  type = string\n  default   = "a"\n}\n')
        r = tftools.terraform("fmt", "-check", "-recursive", "-list=true", "-no-color", str(d))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("main.tf", r.stdout)


class Parse(unittest.TestCase):
    def test_every_tf_file_parses_with_python_hcl2(self):
        files = tftools.tf_files()
        self.assertGreater(len(files), 30)
        for path in files:
            with self.subTest(file=str(path.relative_to(TERRAFORM))):
                doc = tftools.load(path)
                self.assertTrue(doc, f"{path} parsed to nothing")

    def test_a_syntax_error_does_not_parse(self):
        d = tftools.scratch("parse")
        (d / "bad.tf").write_text('resource "aws_s3_bucket" "b" {\n  bucket = "x"\n')
        with self.assertRaises(Exception):
            tftools.load(d / "bad.tf")


def checkov(directory):
    """checkov's verdict on DIRECTORY: (summary counts, failed checks)."""
    r = subprocess.run(
        [os.environ.get("CHECKOV", "checkov"), "-d", str(directory), "--framework", "terraform",
         "--skip-download", "--quiet", "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode in (0, 1), f"checkov did not run:\n{r.stderr[-3000:]}"
    reports = json.loads(r.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summary = {k: sum(rep["summary"][k] for rep in reports) for k in ("passed", "failed", "skipped")}
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
              for rep in reports for c in rep["results"]["failed_checks"]]
    return summary, failed


class Checkov(unittest.TestCase):
    def test_checkov_reports_no_failed_check(self):
        summary, failed = checkov(TERRAFORM)
        print(f"\n    checkov: {summary['passed']} passed, {summary['failed']} failed, "
              f"{summary['skipped']} skipped", end=" ")
        self.assertGreater(summary["passed"], 100, "checkov checked almost nothing")
        self.assertEqual(failed, [], "checkov failed checks:\n" + "\n".join(failed))

    def test_checkov_fails_a_weakened_module(self):
        """The same run fails on a copy of the bucket module without key rotation and with
        IMDSv1 allowed on bookies."""
        root = tftools.scratch("checkov") / "terraform"
        shutil.copytree(TERRAFORM / "modules", root / "modules")
        bucket = root / "modules/bucket/main.tf"
        bucket.write_text(bucket.read_text().replace("enable_key_rotation     = true", "enable_key_rotation     = false"))
        bookie = root / "modules/bookie/main.tf"
        bookie.write_text(bookie.read_text().replace('http_tokens                 = "required"', 'http_tokens                 = "optional"'))
        _, failed = checkov(root)
        ids = {f.split()[0] for f in failed}
        self.assertIn("CKV_AWS_7", ids)   # KMS key rotation
        self.assertIn("CKV_AWS_79", ids)  # IMDSv2

    def test_every_skip_says_why(self):
        """A skipped check names its id and an explanation of some length (never a bare skip)."""
        pattern = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?$")
        for path in tftools.tf_files():
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if "checkov:skip" not in line:
                    continue
                with self.subTest(at=f"{path.relative_to(TERRAFORM)}:{n}"):
                    m = pattern.search(line)
                    self.assertIsNotNone(m, f"malformed skip: {line.strip()}")
                    self.assertRegex(m.group(1), r"^CKV2?_AWS_\d+$")
                    self.assertGreaterEqual(len((m.group(2) or "").strip()), 40, "a skip needs its reason")
