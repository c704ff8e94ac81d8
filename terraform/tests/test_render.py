"""The rendered configs, units and scripts against the real programs, so that Terraform and the
binaries cannot drift apart.

tests/render/main.tf calls the config modules (the ones the etcd, bookie and service modules
call) with example values; a real `terraform plan` renders every template (tftools.rendered).
Then: `dlogd bookie|server --check-config` on the configs with the exact command lines of the
units, dlogd autorecovery started with its unit's flags, `systemd-analyze verify` on the units,
shellcheck on the scripts, the bookie's disk-identity logic with a real bookie, and a three-member
etcd cluster started from the rendered environment files."""

import atexit
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import unittest
from pathlib import Path

import yaml

import tftools
from tftools import MODULES, RENDER_ROOT, TEMPLATES, TERRAFORM


def nodes(role=None):
    return [n for n in tftools.rendered() if role is None or n["role"] == role]


def exec_start(unit_text: str) -> list[str]:
    lines = [l for l in unit_text.splitlines() if l.startswith("ExecStart=")]
    assert len(lines) == 1, f"expected one ExecStart, found {lines}"
    return shlex.split(lines[0][len("ExecStart="):])


def expand(argv: list[str], env: dict) -> list[str]:
    """systemd's expansion in ExecStart: ${VAR} is one word, $VAR splits (empty: no word)."""
    out = []
    for a in argv:
        m = re.fullmatch(r"\$\{(\w+)\}", a)
        if m:
            out.append(env.get(m.group(1), ""))
            continue
        m = re.fullmatch(r"\$(\w+)", a)
        if m:
            out.extend(env.get(m.group(1), "").split())
            continue
        assert "$" not in a, f"unexpected variable use in {a!r}"
        out.append(a)
    return out


def localize(argv: list[str], root: Path) -> list[str]:
    """The command line as run on the instance, with dlogd and the written files in ROOT."""
    out = []
    for a in argv:
        if a == "/usr/local/bin/dlogd":
            out.append(str(tftools.dlogd()))
        elif a.startswith("/") and (root / a.lstrip("/")).exists():
            out.append(str(root / a.lstrip("/")))
        else:
            out.append(a)
    return out


def read_env(text: str) -> dict:
    env = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_spawned: list[subprocess.Popen] = []


@atexit.register
def _kill_leftovers():
    """Processes a failed test left running are killed when the run ends."""
    for proc in _spawned:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def spawn(argv, env=None) -> subprocess.Popen:
    """Starts a long-running process with its output in a file (a pipe nobody reads could
    fill up and stall it); output(proc) reads it."""
    log = tftools.scratch("log") / "output"
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, text=True)
    proc.log = log
    _spawned.append(proc)
    return proc


def output(proc: subprocess.Popen) -> str:
    return proc.log.read_text()[-4000:]


def stop(proc: subprocess.Popen, timeout=20) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args[0]} did not stop on SIGTERM within {timeout}s")


class Coverage(unittest.TestCase):
    """Every template is rendered by the test, through the modules Terraform really calls."""

    def test_every_template_is_used_and_rendered(self):
        used = {}
        for path in tftools.tf_files():
            for name in re.findall(r'templatefile\("\$\{local\.templates\}/([^"]+)"', path.read_text()):
                used.setdefault(name, set()).add(path.parent.relative_to(TERRAFORM).as_posix())
        on_disk = {p.name for p in TEMPLATES.glob("*.tftpl")}
        self.assertEqual(set(used), on_disk, "templates on disk and templates used differ")
        for name, where in used.items():
            self.assertTrue(all(w.endswith("/config") for w in where),
                            f"{name} is rendered outside the config modules ({where}): the test would not see it")
        self.assertNotRegex("".join(p.read_text() for p in tftools.tf_files() if "config" not in p.parts),
                            r"templatefile\(", "templatefile used outside the config modules")

    def test_every_role_and_file_is_rendered(self):
        seen = {(n["role"], f["path"]) for n in nodes() for f in n["files"]}
        for role, path in [("bookie", "/etc/dlog/bookie.toml"), ("service", "/etc/dlog/server.toml"),
                           ("etcd", "/etc/dlog/etcd.env"), ("bookie", "/etc/systemd/system/dlog-bookie.service"),
                           ("service", "/etc/systemd/system/dlog-autorecovery.service")]:
            self.assertIn((role, path), seen)

    def test_fixture_passes_the_arguments_the_modules_pass(self):
        """tests/render calls each config module with the same arguments (names, and literal
        values) as the module that calls it in a deployment."""
        fixture = tftools.module_blocks(RENDER_ROOT)["module"]
        for role in ("etcd", "bookie", "service"):
            call = tftools.module_blocks(MODULES / role)["module"]["config"]
            args = set(call) - {"source", "count"}
            required = {k for k, v in tftools.module_blocks(MODULES / role / "config")["variable"].items()
                        if "default" not in v}
            self.assertLessEqual(required, args, f"{role}: the module does not pass every required variable")
            calls = {k: v for k, v in fixture.items() if v["source"] == f"../../modules/{role}/config"}
            self.assertTrue(calls, f"tests/render does not render the {role} config")
            for name, body in calls.items():
                with self.subTest(role=role, call=name):
                    self.assertEqual(set(body) - {"source", "count"}, args)
                    for k, v in call.items():
                        if k not in ("source", "count") and isinstance(v, (str, int, float)) and "${" not in str(v):
                            self.assertEqual(body[k], v, f"{k}: the fixture differs from modules/{role}")


class Configs(unittest.TestCase):
    """dlogd --check-config on the rendered configs, with the units' command lines."""

    def bookie_argv(self, node, root: Path, env: dict) -> list[str]:
        unit = tftools.file_of(node, "/etc/systemd/system/dlog-bookie.service")
        return localize(expand(exec_start(unit), env), root)

    def test_bookie_configs_pass_check_config(self):
        for node in nodes("bookie"):
            with self.subTest(node=node["name"]):
                root = tftools.write_node(node, tftools.scratch(node["name"]))
                env = {"DLOG_BOOKIE_ID": f"{node['name']}-20260101000000", "DLOG_BOOKIE_INIT": "--init"}
                argv = self.bookie_argv(node, root, env) + ["--check-config"]
                r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, f"{shlex.join(argv)}\n{r.stdout}{r.stderr}")
                self.assertIn("config ok", r.stdout)

    def test_server_configs_pass_check_config(self):
        for node in nodes("service"):
            with self.subTest(node=node["name"]):
                root = tftools.write_node(node, tftools.scratch(node["name"]))
                unit = tftools.file_of(node, "/etc/systemd/system/dlog-server.service")
                argv = localize(expand(exec_start(unit), {}), root) + ["--check-config"]
                r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, f"{shlex.join(argv)}\n{r.stdout}{r.stderr}")
                self.assertIn(": ok", r.stdout)

    def test_check_config_refuses_what_the_binary_does_not_know(self):
        """The check above can fail: an unknown key or a bad value in a rendered file is refused."""
        for role, path, cmd, broken in [
            ("bookie", "/etc/dlog/bookie.toml", "bookie", "\n[journal]\nfile_size_bytes = 4097\n"),
            ("bookie", "/etc/dlog/bookie.toml", "bookie", "\ncompaction = 1\n"),
            ("service", "/etc/dlog/server.toml", "server", "\n[objects2]\nurl = \"s3://b/p\"\n"),
            ("service", "/etc/dlog/server.toml", "server", None),
        ]:
            node = nodes(role)[0]
            with self.subTest(role=role, broken=broken):
                root = tftools.write_node(node, tftools.scratch("broken"))
                cfg = root / path.lstrip("/")
                text = cfg.read_text()
                if broken is None:  # a quorum the binary refuses
                    text = text.replace("ack_quorum = 2", "ack_quorum = 4")
                else:
                    text = text.split("\n[")[0] + broken if cmd == "bookie" else text + broken
                cfg.write_text(text)
                argv = [str(tftools.dlogd()), cmd, "--config", str(cfg), "--check-config"]
                r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                self.assertNotEqual(r.returncode, 0, f"dlogd accepted a broken {path}:\n{text}")

    def test_autorecovery_runs_with_its_units_flags(self):
        """dlogd autorecovery has no --check-config: start it with the unit's exact flags (the
        metadata store swapped for a local folder) and stop it with SIGTERM."""
        for node in nodes("service"):
            with self.subTest(node=node["name"]):
                root = tftools.write_node(node, tftools.scratch(node["name"]))
                unit = tftools.file_of(node, "/etc/systemd/system/dlog-autorecovery.service")
                argv = localize(expand(exec_start(unit), {}), root)
                i = argv.index("--metadata")
                self.assertTrue(argv[i + 1].startswith("etcd://"))
                argv[i + 1] = str(root / "metadata")
                proc = spawn(argv)
                time.sleep(2)
                if proc.poll() is not None:
                    self.fail(f"autorecovery exited: {output(proc)}")
                self.assertEqual(stop(proc), 0)


class Units(unittest.TestCase):
    def units(self):
        for node in nodes():
            for f in node["files"]:
                if f["path"].endswith(".service"):
                    yield node, f

    def test_units_have_the_expected_shape(self):
        for node, f in self.units():
            with self.subTest(node=node["name"], unit=f["path"]):
                text = f["content"]
                sections = re.findall(r"^\[(\w+)\]$", text, re.M)
                self.assertEqual(sections, ["Unit", "Service", "Install"])
                self.assertRegex(text, r"(?m)^ExecStart=/")
                self.assertRegex(text, r"(?m)^WantedBy=multi-user\.target$")
                if "dlogd" in text:
                    self.assertRegex(text, r"(?m)^User=dlog$", "dlogd never runs as root")
                    self.assertRegex(text, r"(?m)^NoNewPrivileges=yes$")
                    self.assertRegex(text, r"(?m)^ProtectSystem=strict$")

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_systemd_analyze_verify(self):
        """systemd-analyze verify on every unit (executables pointed at the rendered scripts and
        the real dlogd); any warning fails, since verify warns and still exits 0."""
        for node in nodes():
            if node["role"] == "etcd":
                continue
            with self.subTest(node=node["name"]):
                root = tftools.write_node(node, tftools.scratch(node["name"]))
                units = tftools.scratch("units")
                for f in node["files"]:
                    if f["path"].endswith(".service"):
                        text = f["content"].replace("/usr/local/bin/dlogd", str(tftools.dlogd()))
                        text = text.replace("/usr/local/lib/dlog/", f"{root}/usr/local/lib/dlog/")
                        (units / Path(f["path"]).name).write_text(text)
                r = subprocess.run(["systemd-analyze", "verify", *sorted(str(p) for p in units.iterdir())],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual((r.returncode, r.stderr.strip()), (0, ""), r.stdout)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_systemd_analyze_verify_etcd_drop_in(self):
        """The drop-in for Debian's etcd.service, loaded with the package's unit."""
        self.assertTrue(Path("/lib/systemd/system/etcd.service").exists(),
                        "etcd-server is not installed (scripts/check-terraform installs it)")
        for node in nodes("etcd"):
            with self.subTest(node=node["name"]):
                units = tftools.scratch("units")
                drop_in = units / "etcd.service.d" / "dlog.conf"
                drop_in.parent.mkdir()
                drop_in.write_text(tftools.file_of(node, "/etc/systemd/system/etcd.service.d/dlog.conf"))
                env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:")
                r = subprocess.run(["systemd-analyze", "verify", "etcd.service"], env=env,
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual((r.returncode, r.stderr.strip()), (0, ""), r.stdout)
                # The drop-in was read: a bad key in it is reported.
                drop_in.write_text(drop_in.read_text() + "NotAKey=1\n")
                r = subprocess.run(["systemd-analyze", "verify", "etcd.service"], env=env,
                                   capture_output=True, text=True, timeout=60)
                self.assertIn("NotAKey", r.stderr)


class Scripts(unittest.TestCase):
    def scripts(self):
        for node in nodes():
            for f in node["files"]:
                if f["content"].startswith("#!/bin/sh"):
                    yield node, f

    def test_scripts_parse_and_pass_shellcheck(self):
        shellcheck = os.environ.get("SHELLCHECK") or shutil.which("shellcheck")
        count = 0
        for node, f in self.scripts():
            with self.subTest(node=node["name"], script=f["path"]):
                self.assertEqual(f["permissions"], "0755")
                r = subprocess.run(["sh", "-n"], input=f["content"], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                if shellcheck:
                    r = subprocess.run([shellcheck, "-s", "sh", "-"], input=f["content"],
                                       capture_output=True, text=True)
                    self.assertEqual(r.returncode, 0, r.stdout)
                count += 1
        self.assertGreaterEqual(count, 10)
        if not shellcheck:
            self.skipTest("shellcheck is not installed: only `sh -n` ran")

    def test_install_dlogd_takes_the_release_and_refuses_bad_input(self):
        for node in nodes():
            if node["role"] == "etcd":
                continue
            with self.subTest(node=node["name"]):
                script = tftools.file_of(node, "/usr/local/lib/dlog/install-dlogd")
                assigns = "\n".join(l for l in script.splitlines() if re.match(r"^(url|sha)=", l))
                r = subprocess.run(["sh", "-c", assigns + '\nprintf "%s\\n%s\\n" "$url" "$sha"'],
                                   capture_output=True, text=True)
                url, sha = r.stdout.splitlines()
                if node["name"] == "bookie-defaults":
                    self.assertEqual((url, sha), ("", ""))
                else:
                    self.assertRegex(url, r"^https://releases\.example\.com/.*X-Amz-Signature=ab%2Fcd&X-Amz-Expires=3600$")
                    self.assertRegex(sha, r"^[0-9a-f]{64}$")
                path = tftools.write_node(node, tftools.scratch("inst")) / "usr/local/lib/dlog/install-dlogd"
                for args, why in [(["http://example.com/dlogd", "0" * 64], "not https"),
                                  (["https://example.com/dlogd", "xyz"], "SHA-256")]:
                    r = subprocess.run(["sh", str(path), *args], capture_output=True, text=True, timeout=30)
                    self.assertEqual(r.returncode, 1)
                    self.assertIn(why, r.stderr)


class BookieIdentity(unittest.TestCase):
    """The rendered bookie-disk script and a real bookie: a new disk gets a new id and --init,
    a restart keeps both the id and the data, a disk that lost its data is refused."""

    def setUp(self):
        self.node = next(n for n in nodes("bookie") if n["name"] == "bookie-defaults")
        self.root = tftools.write_node(self.node, tftools.scratch("bookie-id"))
        self.mount = self.root / "mnt"
        self.run_dir = self.root / "run"
        self.mount.mkdir()
        self.script = self.root / "usr/local/lib/dlog/bookie-disk"
        self.env = dict(os.environ, DLOG_BOOKIE_MOUNT=str(self.mount), DLOG_RUN_DIR=str(self.run_dir))

    def disk(self, mode, ok=True):
        r = subprocess.run(["sh", str(self.script), mode], env=self.env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode == 0, ok, f"bookie-disk {mode}: {r.stderr}")
        return r

    def unit_env(self):
        return read_env((self.run_dir / "bookie.env").read_text())

    def start_bookie(self, env):
        unit = tftools.file_of(self.node, "/etc/systemd/system/dlog-bookie.service")
        argv = localize(expand(exec_start(unit), env), self.root)
        # Keep the unit's flags, but register nowhere and listen on loopback.
        i = argv.index("--metadata")
        del argv[i:]
        argv += ["--data-dir", str(self.mount / "bookie"), "--listen", f"127.0.0.1:{free_port()}"]
        return spawn(argv)

    def test_new_disk_restart_and_lost_data(self):
        (self.mount / "bookie").mkdir()
        self.disk("ensure-id")
        bookie_id = (self.mount / "bookie-id").read_text().strip()
        self.assertRegex(bookie_id, r"^dlog-dev-bookie-0-\d{14}$")
        self.assertLessEqual(len(bookie_id), 64)

        # First start on the new disk: --init under the new id.
        self.disk("identity")
        self.assertEqual(self.unit_env(), {"DLOG_BOOKIE_ID": bookie_id, "DLOG_BOOKIE_INIT": "--init"})
        proc = self.start_bookie(self.unit_env())
        deadline = time.time() + 30
        while not (self.mount / "bookie" / "COOKIE").exists():
            if proc.poll() is not None:
                self.fail(f"bookie exited: {output(proc)}")
            self.assertLess(time.time(), deadline, "no COOKIE after 30s")
            time.sleep(0.2)
        self.assertEqual(stop(proc), 0)

        # A restart (or reboot): same id, no --init, and the bookie accepts its own data dir.
        self.disk("ensure-id")
        self.assertEqual((self.mount / "bookie-id").read_text().strip(), bookie_id)
        self.disk("identity")
        self.assertEqual(self.unit_env(), {"DLOG_BOOKIE_ID": bookie_id, "DLOG_BOOKIE_INIT": ""})
        self.assertFalse((self.mount / "bookie-new").exists())
        proc = self.start_bookie(self.unit_env())
        time.sleep(2)
        if proc.poll() is not None:
            self.fail(f"restarted bookie exited: {output(proc)}")
        self.assertEqual(stop(proc), 0)

        # The data is lost but the id survived: no --init, and the bookie refuses to start
        # under its old id.
        shutil.rmtree(self.mount / "bookie")
        (self.mount / "bookie").mkdir()
        self.disk("identity")
        self.assertEqual(self.unit_env()["DLOG_BOOKIE_INIT"], "")
        proc = self.start_bookie(self.unit_env())
        self.assertNotEqual(proc.wait(30), 0)
        self.assertIn("is empty but bookie id", output(proc))

    def test_refuses_data_without_an_id(self):
        (self.mount / "bookie").mkdir()
        (self.mount / "bookie" / "journal").mkdir()
        r = self.disk("ensure-id", ok=False)
        self.assertIn("refusing to guess", r.stderr)
        r = self.disk("identity", ok=False)
        self.assertIn("bookie-id is missing", r.stderr)

    def test_finds_only_instance_storage(self):
        sysfs = self.root / "sys"
        for dev, model in [("nvme0n1", "Amazon Elastic Block Store              "),
                           ("nvme1n1", "Amazon EC2 NVMe Instance Storage        "),
                           ("nvme2n1", "Amazon EC2 NVMe Instance Storage        ")]:
            (sysfs / "block" / dev / "device").mkdir(parents=True)
            (sysfs / "block" / dev / "device" / "model").write_text(model + "\n")
        self.env["DLOG_SYSFS"] = str(sysfs)
        r = self.disk("list-disks")
        self.assertEqual(r.stdout.split(), ["/dev/nvme1n1", "/dev/nvme2n1"])


class CloudInit(unittest.TestCase):
    def test_user_data_writes_every_file_and_runs_the_setup(self):
        for node in nodes():
            with self.subTest(node=node["name"]):
                ud = node["user_data"]
                self.assertTrue(ud.startswith("#cloud-config\n"))
                self.assertLess(len(ud.encode()), 16384, "EC2 user data is limited to 16 KiB")
                doc = yaml.safe_load(ud)
                written = {f["path"]: f for f in doc["write_files"]}
                self.assertEqual(set(written), {f["path"] for f in node["files"]})
                for f in node["files"]:
                    self.assertEqual(written[f["path"]]["content"], f["content"])
                    self.assertEqual(written[f["path"]]["permissions"], f["permissions"])
                self.assertEqual(doc["runcmd"], [["/usr/local/lib/dlog/setup"]])
                setup = tftools.file_of(node, "/usr/local/lib/dlog/setup")
                for unit in re.findall(r"systemctl enable (\S+)", setup):
                    if unit != "etcd.service":
                        self.assertIn(f"/etc/systemd/system/{unit}", written)
                for script in re.findall(r"^(/usr/local/lib/dlog/\S+)", setup, re.M):
                    self.assertIn(script, written)

    def test_bookies_have_no_aws_credentials_or_bucket(self):
        for node in nodes("bookie") + nodes("etcd"):
            with self.subTest(node=node["name"]):
                self.assertNotRegex(node["user_data"], r"s3://|AWS_ACCESS_KEY|AWS_SECRET|aws_access_key")


class Etcd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.etcd = shutil.which("etcd")
        if not cls.etcd:
            raise AssertionError("etcd is not installed (scripts/check-terraform installs etcd-server)")

    def test_every_variable_is_an_etcd_flag(self):
        r = subprocess.run([self.etcd, "--help"], capture_output=True, text=True, timeout=30)
        flags = set(re.findall(r"--([a-z0-9-]+)", r.stdout + r.stderr))
        self.assertIn("initial-cluster", flags)
        for node in nodes("etcd"):
            env = read_env(tftools.file_of(node, "/etc/dlog/etcd.env"))
            for key in env:
                with self.subTest(node=node["name"], var=key):
                    if key == "ETCD_UNSUPPORTED_ARCH":
                        continue
                    flag = key.removeprefix("ETCD_").lower().replace("_", "-")
                    self.assertIn(flag, flags)

    def test_members_form_a_cluster_from_the_rendered_environment(self):
        """The three rendered members, on loopback addresses instead of their private ones and
        on free ports, start from their environment files alone and form one cluster."""
        members = [n for n in nodes("etcd") if n["name"].startswith("etcd-") and n["name"] != "etcd-arm"]
        self.assertEqual(len(members), 3)
        envs = [read_env(tftools.file_of(n, "/etc/dlog/etcd.env")) for n in members]
        addresses = [re.search(r"//([\d.]+):", e["ETCD_ADVERTISE_CLIENT_URLS"]).group(1) for e in envs]
        client, peer = free_port(), free_port()
        procs, endpoints = [], []
        try:
            for i, env in enumerate(envs):
                local = {}
                for k, v in env.items():
                    for j, a in enumerate(addresses):
                        v = v.replace(f"{a}:2379", f"127.0.0.{j + 2}:{client}").replace(f"{a}:2380", f"127.0.0.{j + 2}:{peer}")
                    v = v.replace("http://127.0.0.1:2379", f"http://127.0.0.1:{free_port()}")
                    local[k] = v
                local["ETCD_DATA_DIR"] = str(tftools.scratch(f"etcd{i}"))
                self.assertNotIn("10.40.", "".join(local.values()))
                endpoints.append(f"127.0.0.{i + 2}:{client}")
                procs.append(spawn([self.etcd], env={"PATH": os.environ["PATH"], **local}))
            deadline = time.time() + 30
            while True:
                r = subprocess.run(["etcdctl", f"--endpoints={','.join(endpoints)}", "endpoint", "health"],
                                   env={"PATH": os.environ["PATH"], "ETCDCTL_API": "3"},
                                   capture_output=True, text=True, timeout=30)
                if r.returncode == 0:
                    break
                for p in procs:
                    if p.poll() is not None:
                        self.fail(f"an etcd member exited: {output(p)}")
                self.assertLess(time.time(), deadline, f"no healthy cluster after 30s: {r.stderr}")
                time.sleep(0.5)
            r = subprocess.run(["etcdctl", f"--endpoints={endpoints[0]}", "member", "list"],
                               env={"PATH": os.environ["PATH"], "ETCDCTL_API": "3"},
                               capture_output=True, text=True, timeout=30)
            names = sorted(line.split(", ")[2] for line in r.stdout.splitlines())
            self.assertEqual(names, ["dlog-prod-etcd-0", "dlog-prod-etcd-1", "dlog-prod-etcd-2"])
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()

    def test_data_volume_is_found_by_its_id(self):
        for node in nodes("etcd"):
            with self.subTest(node=node["name"]):
                script = tftools.file_of(node, "/usr/local/lib/dlog/etcd-disk")
                vol = re.search(r"volume (vol-[0-9a-f]+)", script).group(1)
                self.assertIn(f"LINK=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{vol.replace('-', '')}\n", script)
                dropin = tftools.file_of(node, "/etc/systemd/system/etcd.service.d/dlog.conf")
                self.assertIn("RequiresMountsFor=/var/lib/etcd", dropin)
                env = read_env(tftools.file_of(node, "/etc/dlog/etcd.env"))
                self.assertTrue(env["ETCD_DATA_DIR"].startswith("/var/lib/etcd/"))
