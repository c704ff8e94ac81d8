"""Runs every test of terraform/tests and prints one summary line ("terraform: N passed,
M failed, K skipped"); exits non-zero on any failure. scripts/check-terraform runs this."""

import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Result(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = 0
        self.failed_subtests = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.failed_subtests += 1


def main() -> int:
    sys.path.insert(0, str(HERE))
    pattern = sys.argv[1] if len(sys.argv) > 1 else "test_*.py"
    suite = unittest.defaultTestLoader.discover(str(HERE), pattern=pattern, top_level_dir=str(HERE))
    started = time.time()
    result = unittest.TextTestRunner(verbosity=2, resultclass=Result, stream=sys.stdout).run(suite)
    # A test with failing subtests is counted once, as failed.
    failed = len({id(t) for t, _ in result.failures + result.errors})
    skipped = len(result.skipped)
    print(f"\n{result.testsRun} Terraform tests in {time.time() - started:.0f}s")
    print(f"terraform: {result.passed} passed, {failed} failed, {skipped} skipped")
    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
