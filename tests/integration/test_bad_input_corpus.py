# SPDX-License-Identifier: Apache-2.0
"""The bad-input corpus (issue 9 §5): ordinary mistakes made against a host that serves.

One simulated CPU host (tests/fleet: its own network, mounts and sshd, reached over real SSH)
is converged once with ``playbooks/site.yml`` (wheel release 2.51.0, the example models,
supervisord). Each case holds one mistake in the inventory knobs, the model repository, the
release archive or the service options. All cases run in one ``site.yml`` run, one inventory
host per case: the same simulated host (same address, same SSH connection) with the case's
knobs as its host vars, as a user's inventory holds them. Each case asserts:

- its own host failed (its ``fatal:`` line, its PLAY RECAP);
- a message naming the offending input and the fix (fragments of the message, whitespace
  folded, since the YAML callback may wrap it);
- the host's fingerprint identical to the one taken after the converge: the release
  directories and links of server and models (staging leftovers and venvs included), the
  launcher, supervisord.conf and key (with any ``.previous`` copy), the options cache, the
  running tritonserver's pid, its readiness and the models it serves.

A case whose host did not fail in that run, or a run that changed the host, is run again alone
(``site.yml`` with the case's knobs as extra vars, the same assertions) to say which case it was.

The repository mistakes are refused by the static validation of the whole repository on the
controller (``module_utils/triton_model_repository.py``, Triton's rules and wording); the case
list holds the ones issue 9 names.

The last tests break a switch while it runs: the server is killed, the SSH connection is
lost, the playbook is killed while a load hangs; a plain rerun must end on a ready server.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleet.harness import Fleet, netns_pids
from fleet.profiles import parse_spec
from test_fleet_rollout_common import (
    EXAMPLE_MODELS,
    REPO_ROOT,
    SIM_MODELS_ROOT,
    SIM_PREFIX,
    fleet_group_vars,
    netns_server_pids,
    playbook_argv,
    playbook_env,
    write_vars,
)

pytestmark = pytest.mark.integration

HOST = "corpus-1"
# fleet_group_vars' service paths on the simulated host.
SERVICE_HOME = "/opt/tfsim/fleet"
CONFIG_DIR = "/etc/tfsim"
LOG_FILE = "/var/log/tfsim/tritonserver.log"
LOGIN_USER = "tfdev"
FIXTURE_REPOS = REPO_ROOT / "tests" / "fixtures" / "repos"

# Runs inside the host (its mounts and network): what must not change, as JSON. argv[1] lists the
# directories to read two levels deep, argv[2] the key file of the repository API.
FINGERPRINT = r"""
import hashlib, json, os, sys, urllib.request
def entry(path):
    if os.path.islink(path):
        return "-> " + os.readlink(path)
    if os.path.isdir(path):
        return "dir"
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]
out = {}
bases = json.loads(sys.argv[1])
for base in bases:
    for top in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        path = os.path.join(base, top)
        out[path] = entry(path)
        if os.path.isdir(path) and not os.path.islink(path):
            for name in sorted(os.listdir(path)):
                if top == "supervisor":
                    continue
                out[os.path.join(path, name)] = entry(os.path.join(path, name))
key = open(sys.argv[2]).read().strip()
def get(path, body=None):
    request = urllib.request.Request("http://127.0.0.1:8000" + path, data=body, headers={"tritonfleet-admin-key": key})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response) if body else None
    except Exception as err:
        return getattr(err, "code", 0), None
out["ready"] = get("/v2/health/ready")[0]
status, index = get("/v2/repository/index", b"{}")
out["served"] = sorted(e["name"] + ":" + e.get("state", "") for e in index or [])
print(json.dumps(out, sort_keys=True))
"""


class Corpus:
    """The converged host, its baseline fingerprint, and how to run one case against it."""

    def __init__(self, fleet: Fleet, inventory: Path, work: Path) -> None:
        self.fleet = fleet
        self.inventory = inventory
        self.work = work
        self.reports = work / "reports"
        self.baseline: dict[str, Any] = {}
        self._grouped: Grouped | None = None

    @property
    def record(self) -> dict[str, Any]:
        return self.fleet.read_state()["hosts"][HOST]

    def inside(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command in the host's mount, network and UTS namespaces (no SSH: fast)."""
        return subprocess.run(
            ["nsenter", "-t", str(self.record["pid"]), "-m", "-n", "-u", "--", *argv],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def server_pids(self) -> list[int]:
        return netns_server_pids(self.record["netns"])

    def fingerprint(self) -> dict[str, Any]:
        bases = json.dumps([SIM_PREFIX, SIM_MODELS_ROOT, SERVICE_HOME, CONFIG_DIR])
        proc = self.inside("/usr/bin/python3", "-c", FINGERPRINT, bases, f"{CONFIG_DIR}/api-key")
        assert proc.returncode == 0, proc.stderr
        found = json.loads(proc.stdout)
        found["tritonserver pids"] = self.server_pids()
        return found

    def site(self, extra: dict[str, Any] | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            playbook_argv(self.inventory, "site.yml", extra),
            cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def grouped(self) -> Grouped:
        """Every case in one ``site.yml`` run (made once, on first use): one inventory host per case,
        each the same simulated host (same address and SSH connection) with the case's knobs as its
        host vars, as a user's inventory holds them. Each case is then read from its own host's lines."""
        if self._grouped is None:
            fleet = yaml.safe_load(self.inventory.read_text())
            connection = fleet["all"]["children"]["cpu"]["hosts"][HOST]
            hosts = {
                alias(case.id): {**connection, **(case.knobs(self.work) if callable(case.knobs) else case.knobs)}
                for case in CASES
            }
            # Next to the fleet's inventory: its group_vars apply as they do to the host itself.
            inventory = self.inventory.parent / "corpus-cases.yml"
            inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=False, width=1000))
            before = self.baseline
            run = subprocess.run(
                playbook_argv(inventory, "site.yml"),
                cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, timeout=1800, check=False,
            )  # fmt: skip
            after = self.wait_serving(timeout=10)
            if after != before:
                self.repair()
            self._grouped = Grouped(run.returncode, run.stdout + run.stderr, before, after)
        return self._grouped

    def repair(self) -> None:
        """A plain site run, then a new baseline: what a user does after a run that broke the host."""
        run = self.site()
        assert run.returncode == 0, run.stdout[-4000:]
        self.baseline = self.wait_serving()

    def wait_serving(self, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.fingerprint()
            if found["ready"] == 200 or time.monotonic() > deadline:
                return found
            time.sleep(1)


def alias(case_id: str) -> str:
    """The inventory name of a case's host in the grouped run."""
    return f"case-{case_id}"


@dataclass
class Grouped:
    """The grouped run: its exit status and output, and the host's fingerprint before and after."""

    returncode: int
    output: str
    before: dict[str, Any]
    after: dict[str, Any]

    def failure_of(self, host: str) -> str:
        """What the run printed about ``host``'s failure: its ``fatal:`` lines (with any indented
        continuation) and the messages they carry, decoded; empty when the host did not fail."""
        lines = self.output.splitlines()
        found = []
        for number, line in enumerate(lines):
            if not line.startswith((f"fatal: [{host}]", f"fatal: [{host} ->")):
                continue
            block = [line]
            for more in lines[number + 1 :]:
                if not more.startswith(" "):
                    break
                block.append(more)
            found.append("\n".join(block))
            with contextlib.suppress(ValueError, AttributeError):
                found.append(str(json.loads(line.partition("=> ")[2]).get("msg", "")))
        return "\n".join(found)


def folded(text: str) -> str:
    """Whitespace folded to single spaces, YAML's escaped quotes unescaped: how the fragments are matched."""
    return re.sub(r"\s+", " ", text.replace('\\"', '"'))


@dataclass
class Case:
    """One mistake: the knobs (or a function of the work dir giving them) and what the message must say."""

    id: str
    knobs: dict[str, Any] | Callable[[Path], dict[str, Any]]
    expect: list[str]

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


# --- builders of bad repositories and archives (under the work dir, which the host sees) ----


def repo(work: Path, name: str, edit: Callable[[Path], None]) -> Path:
    """A copy of the example repository named ``name``, changed by ``edit``."""
    path = work / "repos" / name
    if not path.exists():
        shutil.copytree(EXAMPLE_MODELS, path, ignore=shutil.ignore_patterns("__pycache__"))
        edit(path)
    return path


def set_config(model: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        config = path / model / "config.pbtxt"
        text = config.read_text()
        assert old in text, (old, text)
        config.write_text(text.replace(old, new))

    return edit


def add_model(name: str, files: dict[str, str]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        shutil.copytree(EXAMPLE_MODELS / "add_sub", path / name, ignore=shutil.ignore_patterns("__pycache__"))
        config = path / name / "config.pbtxt"
        config.write_text(config.read_text().replace('name: "add_sub"', f'name: "{name}"'))
        for relative, text in files.items():
            target = path / name / relative
            if text is None:
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)

    return edit


def move_version_file(path: Path) -> None:
    """add_sub with its model.py at the top of the model directory: no numeric version directory."""
    (path / "add_sub" / "1" / "model.py").rename(path / "add_sub" / "model.py")
    (path / "add_sub" / "1").rmdir()


def link_out(path: Path) -> None:
    (path / "add_sub" / "1" / "weights.bin").symlink_to("/etc/passwd")


def tarball(work: Path, name: str, members: list[tuple[str, str, str]]) -> tuple[Path, str]:
    """A tar.gz release archive of (name, kind, data) members: file (data = content) or symlink (data = target)."""
    path = work / "archives" / f"tritonserver2.51.0-{name}.tgz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w:gz") as tar:
            for member, kind, data in members:
                info = tarfile.TarInfo(member)
                if kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    tar.addfile(info)
                else:
                    info.size, info.mode = len(data), 0o755
                    tar.addfile(info, io.BytesIO(data.encode()))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


SERVER = ("tritonserver/bin/tritonserver", "file", "#!/bin/sh\nexit 1\n")
# An ensemble whose only step names a model the repository does not have.
ENSEMBLE = """
name: "pipeline"
platform: "ensemble"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling {
  step [
    {
      model_name: "missing_model"
      model_version: -1
      input_map { key: "INPUT0" value: "INPUT0" }
      input_map { key: "INPUT1" value: "INPUT1" }
      output_map { key: "OUTPUT0" value: "OUTPUT0" }
    }
  ]
}
"""


def archive_knobs(name: str, members: list[tuple[str, str, str]], sha256: str | None = None) -> Callable:
    def knobs(work: Path) -> dict[str, Any]:
        path, digest = tarball(work, name, members)
        return {
            "triton_install_method": "tarball",
            "triton_install_tarball_path": str(path),
            "triton_install_tarball_sha256": sha256 or digest,
        }

    return knobs


def repo_knobs(name: str, edit: Callable[[Path], None], **more: Any) -> Callable:
    return lambda work: {"triton_models_src": str(repo(work, name, edit)), **more}


CASES = [
    # --- inventory knobs: the plan, the install request, the models build ---------------
    Case("release-unknown", {"triton_release": "27.13"},
         ["Triton release '27.13' is not in the compatibility matrix", "Supported: container releases 23.01-26.08"]),
    Case("release-unquoted", {"triton_release": 24.1}, ["quote the release in YAML"]),
    Case("method-unknown", {"triton_install_method": "rpm"}, ["triton_platform_install_method", "rpm"]),
    Case("enable-gpu-without-gpu", {"triton_enable_gpu": True},
         ["the request contradicts the host: triton_enable_gpu=true", "set triton_enable_gpu: auto or false"]),
    Case("enable-gpu-garbage", {"triton_enable_gpu": "maybe"}, ["triton_platform_enable_gpu", "maybe"]),
    Case("gpus-pinned-without-gpu", {"triton_gpus": [0]}, ["triton_gpus"]),
    Case("instance-policy-unknown", {"triton_instance_policy": "sometimes"},
         ["triton_models_instance_policy", "sometimes"]),
    Case("container-engine-unknown", {"triton_install_method": "container", "triton_container_engine": "lxc"},
         ["triton_platform_container_engine", "lxc", "auto, docker, podman"]),
    Case("source-without-repo", {"triton_install_method": "source", "triton_install_source_repo": ""},
         ["needs a server repository and ref", "Set triton_install_source_repo"]),
    Case("wheel-of-another-release", {"triton_release": "24.09", "triton_install_method": "wheel"},
         ["install method wheel cannot install Triton 2.50.0 (24.09)", 'set triton_release: "24.10"']),
    Case("instance-count-zero", {"triton_models_instance_count": {"add_sub": 0}},
         ["triton_models_instance_count[add_sub] is 0", "set it to 1 or more"]),
    Case("override-unknown-model", {"triton_models_instance_policy_overrides": {"add_subb": "keep"}},
         ["triton_models_instance_policy_overrides names models that are not in the repository: add_subb",
          "fix or remove the entries"]),
    Case("override-unknown-policy", {"triton_models_instance_policy_overrides": {"add_sub": "sometimes"}},
         ["triton_models_instance_policy_overrides has unknown policies", "use one of those"]),
    Case("models-key-header-empty", {"triton_models_api_key_header": ""},
         ["triton_models_api_key_header=''", "letters, digits and dashes", "Fix these variables"]),
    Case("models-load-timeout-zero", {"triton_models_load_timeout": 0},
         ["triton_models_load_timeout='0'", "seconds above 0"]),
    # --- service options ---------------------------------------------------------------
    Case("http-port-equals-grpc-port", {"triton_service_http_port": 8001},
         ["triton_service_http_port and triton_service_grpc_port are all 8001", "three different free ports"]),
    Case("port-out-of-range", {"triton_service_grpc_port": 70000},
         ["triton_service_grpc_port is 70000, not a TCP port", "1 to 65535"]),
    Case("port-taken-by-sshd", {"triton_service_metrics_port": 22},
         ["triton_service_metrics_port 22 is taken on this host", "sshd",
          "set triton_service_metrics_port to a free port"]),
    Case("http-port-taken-by-sshd", {"triton_service_http_port": 22, "triton_service_http_address": "127.0.0.1"},
         ["triton_service_http_port 22 is taken on this host", "stop that process"]),
    Case("address-not-ip", {"triton_service_http_address": "localhost"},
         ["triton_service_http_address is 'localhost'", "set triton_service_http_address to an IP address"]),
    Case("user-root", {"triton_service_user": "root"},
         ["triton_service_user is 'root'", "must never have root's rights", "unprivileged account"]),
    Case("uid-zero", {"triton_service_uid": 0}, ["triton_service_uid is 0: the server would run as root"]),
    Case("group-root", {"triton_service_group": "root"}, ["triton_service_group is 'root'", "root's group"]),
    Case("login-account", {"triton_service_user": LOGIN_USER},
         [f"triton_service_user is '{LOGIN_USER}', an existing login account",
          "triton_service_allow_login_account: true"]),
    Case("key-header-empty", {"triton_service_api_key_header": ""},
         ["triton_service_api_key_header is ''", "(default tritonfleet-admin-key)"]),
    Case("key-file-empty", {"triton_service_api_key_file": ""},
         ["triton_service_api_key_file is ''", "absolute path"]),
    Case("ready-timeout-zero", {"triton_service_ready_timeout": 0}, ["triton_service_ready_timeout is 0"]),
    Case("manager-unknown", {"triton_service_manager": "upstart"}, ["triton_service_manager", "upstart"]),
    Case("extra-arg-unknown", {"triton_service_extra_args": ["--no-such-flag=1"]},
         ["triton_service_extra_args has '--no-such-flag=1': the server has no option --no-such-flag",
          "remove it from triton_service_extra_args"]),
    Case("extra-arg-typo", {"triton_service_extra_args": ["--log-verbse=1"]},
         ["has '--log-verbse=1'", "closest: --log-verbose"]),
    Case("extra-arg-without-value", {"triton_service_extra_args": ["--log-verbose"]},
         ["--log-verbose needs a value and none follows", "--log-verbose=<value>"]),
    Case("extra-arg-value-on-flag", {"triton_service_extra_args": ["--disable-auto-complete-config=1"]},
         ["--disable-auto-complete-config takes no value"]),
    Case("extra-arg-ambiguous", {"triton_service_extra_args": ["--model=x"]}, ["--model is ambiguous"]),
    Case("extra-arg-stray-word", {"triton_service_extra_args": ["verbose"]},
         ["has 'verbose': it is not an option", "remove stray words"]),
    # --- release archives (tarball method) -------------------------------------------
    Case("tarball-wrong-checksum", archive_knobs("good", [SERVER], sha256="0" * 64),
         ["Checksum mismatch", "triton_install_tarball_sha256 expects " + "0" * 64,
          "the installed release is unchanged"]),
    Case("tarball-without-checksum", {"triton_install_method": "tarball", "triton_install_tarball_path": "/x.tgz",
                                      "triton_install_tarball_sha256": ""},
         ["needs an archive and its checksum", "Set triton_install_tarball_url"]),
    Case("tarball-missing", {"triton_install_method": "tarball", "triton_install_tarball_path": "/nonexistent.tgz",
                             "triton_install_tarball_sha256": "1" * 64},
         ["/nonexistent.tgz", "Fix the path or URL"]),
    Case("tarball-member-escapes", archive_knobs("dotdot", [SERVER, ("../../etc/evil", "file", "x")]),
         ["../../etc/evil", "outside"]),
    Case("tarball-member-absolute", archive_knobs("absolute", [SERVER, ("/etc/evil", "file", "x")]),
         ["/etc/evil", "outside"]),
    Case("tarball-link-escapes",
         archive_knobs("link", [SERVER, ("tritonserver/lib/libx.so", "symlink", "/etc/passwd")]),
         ["tritonserver/lib/libx.so", "points outside"]),
    Case("tarball-not-a-tar", lambda work: _garbage(work),
         ["Cannot unpack the Triton release archive", "Check the file is a complete download"]),
    # --- model repositories (judged whole on the controller, with Triton's rules) --------
    Case("repository-missing", {"triton_models_src": "/nonexistent/models"},
         ["model repository /nonexistent/models is not a directory", "set triton_models_src to such a directory"]),
    Case("repository-is-a-file", lambda work: {"triton_models_src": str(_file(work))},
         ["a file at", "set triton_models_src to such a directory"]),
    Case("model-without-config", repo_knobs("noconfig", add_model("extra", {"config.pbtxt": None})),
         ["model extra has no config.pbtxt", "write extra/config.pbtxt"]),
    Case("stray-file-in-repository", repo_knobs("stray", lambda p: (p / "README.txt").write_text("x")),
         ["has files at its top level: README.txt", "move or remove those files"]),
    Case("config-syntax-error", repo_knobs("syntax", set_config("add_sub", "max_batch_size: 0", "max_batch_size 0 {")),
         ["add_sub/config.pbtxt: line 6 column 16", "Fix: correct"]),
    Case("config-unknown-field", repo_knobs("unknown", set_config("add_sub", "max_batch_size: 0", "max_batch_sise: 0")),
         ["has no field named", "max_batch_sise", "Fix: correct"]),
    Case("gpu-model-under-keep", lambda work: {"triton_models_src": str(FIXTURE_REPOS / "gpu_model"),
                                               "triton_instance_policy": "keep"},
         ["instance group add_gpu_0 of model add_gpu has kind KIND_GPU but no GPUs are available",
          "use instance policy auto"]),
    Case("no-version-directory", repo_knobs("noversion", move_version_file),
         ["at least one version must be available under the version policy of model 'add_sub'",
          "put the model in add_sub/1/"]),
    Case("version-policy-unmet",
         repo_knobs("policy", set_config("add_sub", "max_batch_size: 0",
                                         "max_batch_size: 0\nversion_policy: { specific: { versions: [ 2 ] } }")),
         ["version 2 is specified for model 'add_sub', but the version directory is not present",
          "or correct version_policy"]),
    Case("python-model-without-model-py", repo_knobs("nopy", add_model("nopy", {"1/model.py": None})),
         ["Python model file not found in 'nopy/1/model.py'", "put model.py in nopy/1/"]),
    Case("config-name-differs", repo_knobs("name", set_config("add_sub", 'name: "add_sub"', 'name: "adder"')),
         ["unexpected directory name 'add_sub' for model 'adder'", "set name: 'add_sub' in add_sub/config.pbtxt"]),
    Case("config-name-path", repo_knobs("namepath", set_config("add_sub", 'name: "add_sub"', 'name: "../add_sub"')),
         ["for model '../add_sub'", "or rename the directory"]),
    Case("negative-max-batch-size", repo_knobs("mbs", set_config("add_sub", "max_batch_size: 0", "max_batch_size: -1")),
         ["'max_batch_size' must be non-negative value for add_sub", "set max_batch_size to 0 or a positive number"]),
    Case("ensemble-step-missing",
         repo_knobs("ensemble", add_model("pipeline", {"config.pbtxt": ENSEMBLE, "1/model.py": None})),
         ["ensemble pipeline contains models that are not available or ambiguous: missing_model",
          "correct the step's model_name"]),
    Case("link-out-of-repository", repo_knobs("link", link_out),
         ["add_sub/1/weights.bin links outside the model repository, to /etc/passwd", "or remove the link"]),
    Case("onnx-model-on-python-only-release",
         {"triton_models_src": str(REPO_ROOT / "examples" / "detector_repository")},
         ["unable to find backend library for backend 'onnxruntime'", "peoplenet"]),
]  # fmt: skip


def _garbage(work: Path) -> dict[str, Any]:
    path = work / "archives" / "tritonserver2.51.0-garbage.tgz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a tar archive\n" * 10)
    return {
        "triton_install_method": "tarball",
        "triton_install_tarball_path": str(path),
        "triton_install_tarball_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def _file(work: Path) -> Path:
    path = work / "repos" / "a-file"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a repository\n")
    return path


@pytest.fixture(scope="module")
def corpus() -> Iterator[Corpus]:
    # Under the repository's work dir: the host sees it (its /tmp is its own).
    work = REPO_ROOT / "tests" / ".work" / f"corpus-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fleet = Fleet(work / "fleet")
    inventory = fleet.up(parse_spec({"hosts": [{"name": HOST, "profile": "cpu"}]}), owner_pid=os.getpid())
    try:
        fixture = Corpus(fleet, inventory, work)
        write_vars(inventory, fleet_group_vars(fixture.reports))
        # Somebody's login account on the host (no home: /home is this machine's).
        made = fixture.inside("useradd", "--no-create-home", "--shell", "/bin/bash", LOGIN_USER)
        assert made.returncode == 0, made.stderr
        first = fixture.site()
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
        fixture.baseline = fixture.wait_serving()
        assert fixture.baseline["ready"] == 200, fixture.baseline
        assert fixture.baseline["served"] == ["add_sub:READY", "scale:READY"]
        yield fixture
    finally:
        fleet.down()
        shutil.rmtree(work, ignore_errors=True)


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [case.param() for case in CASES])
def test_a_bad_input_fails_clearly_and_changes_nothing(corpus: Corpus, case: Case) -> None:
    grouped = corpus.grouped()
    said = grouped.failure_of(alias(case.id))
    if said and grouped.after == grouped.before:
        # The case's own host failed in the grouped run, with its own message, and the host is
        # as it was: every case of the run left it unchanged.
        out = folded(said)
        assert grouped.returncode != 0 and recap(grouped.output, alias(case.id))[2] >= 1, said
        missing = [fragment for fragment in case.expect if folded(fragment) not in out]
        assert not missing, f"the message lacks {missing}:\n{said}"
        return
    # This case did not fail there, or some case of the run changed the host: judge it alone,
    # on a host serving again (the grouped run repaired it), to say which.
    knobs = case.knobs(corpus.work) if callable(case.knobs) else case.knobs
    before = corpus.baseline
    run = corpus.site(knobs)
    after = corpus.wait_serving(timeout=10)
    if after != before:
        # This case failed; the next ones start from a serving host again.
        corpus.repair()
    out = folded(run.stdout + run.stderr)
    tail = run.stdout[-5000:] + run.stderr[-2000:]
    assert run.returncode != 0, tail
    assert "fatal: [" in out or "ERROR!" in out, tail
    missing = [fragment for fragment in case.expect if folded(fragment) not in out]
    assert not missing, f"the message lacks {missing}:\n{tail}"
    assert after == before, tail


def recap(run: subprocess.CompletedProcess[str] | str, host: str = HOST) -> tuple[int, int, int]:
    """(changed, unreachable, failed) of ``host``'s PLAY RECAP line."""
    text = run if isinstance(run, str) else run.stdout
    pattern = rf"^{re.escape(host)}\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
    match = re.search(pattern, text, re.M)
    assert match, text[-3000:]
    return int(match[1]), int(match[2]), int(match[3])


def test_after_the_corpus_a_plain_site_run_changes_nothing(corpus: Corpus) -> None:
    run = corpus.site()
    assert run.returncode == 0, run.stdout[-4000:]
    assert recap(run) == (0, 0, 0), run.stdout[-4000:]
    assert corpus.fingerprint() == corpus.baseline


# --- faults during a switch ------------------------------------------------------------------

# add_sub that takes a while to import: the switch is still loading it when the fault strikes.
SLOW_MODEL_PY = "import time\n\ntime.sleep({seconds})\n\n" + (EXAMPLE_MODELS / "add_sub" / "1" / "model.py").read_text()


def slow_repo(work: Path, name: str, seconds: int) -> Path:
    """The examples plus a model ``name`` whose python module sleeps ``seconds`` when the stub imports it."""
    return repo(work, name, add_model(name, {"1/model.py": SLOW_MODEL_PY.format(seconds=seconds)}))


def start_site(corpus: Corpus, extra: dict[str, Any], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            playbook_argv(corpus.inventory, "site.yml", extra),
            cwd=REPO_ROOT, env=playbook_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def wait_for_server_log(corpus: Corpus, text: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Wait until the host's server log holds ``text`` (the switch reached that point)."""
    deadline = time.monotonic() + timeout
    while corpus.inside("grep", "-qF", text, LOG_FILE).returncode != 0:
        assert proc.poll() is None, f"the run ended before the server logged {text!r}"
        assert time.monotonic() < deadline, f"{text!r} not in {LOG_FILE}"
        time.sleep(0.3)


def served_models(found: dict[str, Any]) -> list[str]:
    return sorted(entry.split(":")[0] for entry in found["served"] if entry.endswith(":READY"))


def test_server_killed_mid_switch_is_restored_and_a_rerun_serves(corpus: Corpus) -> None:
    extra = {"triton_models_src": str(slow_repo(corpus.work, "slow_a", 12)), "triton_models_load_timeout": 120}
    log = corpus.work / "killed.log"
    proc = start_site(corpus, extra, log)
    wait_for_server_log(corpus, "loading: slow_a:1", proc)
    victims = corpus.server_pids()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=900) != 0
    out = folded(log.read_text())
    assert "the server stopped answering during the switch, so the service was restarted on it" in out, out[-4000:]
    restored = corpus.wait_serving()
    assert restored["ready"] == 200 and served_models(restored) == ["add_sub", "scale"], restored
    assert not set(corpus.server_pids()) & set(victims)

    rerun = corpus.site(extra)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    after = corpus.fingerprint()
    assert after["ready"] == 200 and served_models(after) == ["add_sub", "scale", "slow_a"], after


def ssh_masters(corpus: Corpus) -> list[int]:
    """Pids of the ControlPersist master connections (and their ProxyCommand) to the host."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(corpus.fleet.workdir / "cp") in cmdline or (
            cmdline.startswith("ip netns exec") and corpus.record["netns"] in cmdline
        ):
            pids.append(int(entry.name))
    return pids


def test_ssh_connection_lost_mid_switch_and_a_rerun_serves(corpus: Corpus) -> None:
    extra = {"triton_models_src": str(slow_repo(corpus.work, "slow_b", 12)), "triton_models_load_timeout": 120}
    log = corpus.work / "ssh-lost.log"
    proc = start_site(corpus, extra, log)
    wait_for_server_log(corpus, "loading: slow_b:1", proc)
    cut = ssh_masters(corpus)
    assert cut, "no SSH connection to the host while the switch runs"
    for pid in cut:
        # A ProxyCommand ends with its master: gone already is as good as killed.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=900) != 0
    # The module's connection died under it: Ansible reports the host unreachable or the result lost.
    lost = re.search(r"UNREACHABLE|unreachable=1|Module result deserialization failed", log.read_text())
    assert lost, log.read_text()[-4000:]

    rerun = corpus.site(extra)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    after = corpus.fingerprint()
    assert after["ready"] == 200 and served_models(after) == ["add_sub", "scale", "slow_b"], after


def host_module_pids(corpus: Corpus) -> list[int]:
    """Module processes Ansible left running on the host (its AnsiballZ payloads)."""
    pids = []
    for pid in netns_pids(corpus.record["netns"]):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "AnsiballZ" in cmdline or "ansible_module" in cmdline or "_ansiballz" in cmdline.lower():
            pids.append(pid)
    return pids


def test_run_killed_while_a_load_hangs_and_a_plain_site_run_recovers(corpus: Corpus) -> None:
    # The switch loads a model that never finishes; the run dies there (controller and the
    # module on the host): current points at the hanging release and the server is live but
    # not ready. A plain run with the release that served before must bring it back.
    before = corpus.fingerprint()
    hanging = slow_repo(corpus.work, "hang", 3600)
    log = corpus.work / "killed-run.log"
    proc = start_site(corpus, {"triton_models_src": str(hanging), "triton_models_load_timeout": 900}, log)
    wait_for_server_log(corpus, "loading: hang:1", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    for pid in host_module_pids(corpus):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stuck = corpus.fingerprint()
    assert stuck["ready"] != 200, stuck

    rerun = corpus.site({"triton_models_src": str(slow_repo(corpus.work, "slow_b", 12))})
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    after = corpus.wait_serving(timeout=30)
    assert after["ready"] == 200 and served_models(after) == served_models(before), after
