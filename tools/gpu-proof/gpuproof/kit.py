# SPDX-License-Identifier: Apache-2.0
"""``run``: one command on the GPU machine that records tritonfleet's GPU paths (docs/gpu-evidence.md).

Steps, in order; each is recorded with its commands, output and figures, and a failed step
does not stop the next (a later step that needs an earlier one's result says so):

``machine``   what the machine has (probe), the carry folder and whether the tree is the prepared one;
              libraries outside the loader cache are listed in /etc/ld.so.conf.d (recorded)
``install``   the carried wheels (pip --target, no index), the release archive with the stub of this
              Python, the inventory; venvs made by hand only where ``python -m venv`` makes no pip
``facts``     ``triton_host`` with real NVML, reasons included, and the plan for release 24.10
``capture``   tools/capture_host.sh: the files host detection reads, as a fixture candidate
``site_gpu``  site.yml with ``triton_enable_gpu: true``: the KIND_GPU python model loads on GPU 0
              (effective config and the model's own DEVICE_ID output say so), verification passes,
              the server's per-process GPU memory is read by verification and by the kit
``site_gpu_again``  the same run again: changed=0
``site_cpu``  site.yml with ``triton_enable_gpu: false``: KIND_CPU, and 0 bytes on every GPU by NVML
``unhidden``  the CPU-plan server started again with its GPUs visible and default pools: its bytes
``embedded``  the embedding example's variants and the app check (see ``embedded.py``)
``remove``    remove.yml: the machine is left as it was found

A dry run (``--dry-run``, on a machine without a GPU, NVML from the test-only library) skips
the steps that need a GPU and says so; its figures are marked as no evidence.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gpuproof import REPO, machine
from gpuproof.carry import sha256_of, tree_digest
from gpuproof.embedded import EMBEDDED_MODEL, step_embedded
from gpuproof.gpus import memory_of, snapshot
from gpuproof.launch import unhidden_launch
from gpuproof.procs import Server, quoted, run, wait_ready
from gpuproof.record import Recorder, Step, StepFailed, skipped

KIT = REPO / "tools" / "gpu-proof"
DEFAULT_CARRY = REPO / ".gpu-proof"
DEFAULT_WORK = Path("/var/tmp/tritonfleet-gpu-proof")
LOGS_ARCHIVE = "gpu-proof-logs.tar.gz"
MODEL = "gpu_add"
# verify's generated inputs are the ramp 1..4; gpu_add doubles them and names its GPU (-1: CPU).
EXPECTED_OUTPUT0 = [2.0, 4.0, 6.0, 8.0]
UNHIDDEN_PORTS = {"http": 18000, "grpc": 18001, "metrics": 18002}
_RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+failed=(?P<failed>\d+)", re.M
)
RESERVE_S = 20  # kept back from the budget to write the record and pack the logs


def recap(output: str, host: str = "localhost") -> dict[str, int] | None:
    """``{changed, failed}`` of ``host`` from an ansible-playbook recap; None when there is none."""
    found = [m for m in _RECAP.finditer(output) if m["host"] == host]
    return {"changed": int(found[-1]["changed"]), "failed": int(found[-1]["failed"])} if found else None


def stub_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def model_entry(report: Mapping[str, Any], name: str) -> dict[str, Any]:
    return next((m for m in report.get("models") or [] if m.get("name") == name), {})


class Kit:
    """One run of the kit: the settings, the paths, what earlier steps found."""

    def __init__(self, args: argparse.Namespace, recorder: Recorder) -> None:
        self.args = args
        self.rec = recorder
        self.dry_run = bool(args.dry_run)
        self.carry = Path(args.carry).resolve()
        self.work = Path(args.work).resolve()
        self.logs = self.work / "logs"
        self.site = self.work / "site"
        self.deadline = time.monotonic() + float(args.budget)
        self.overrides: dict[str, Any] = json.loads(Path(args.vars).read_text()) if args.vars else {}
        self.manifest: dict[str, Any] = {}
        self.probe: dict[str, Any] = {}
        self.env: dict[str, str] = {}
        self.modules: dict[str, Any] = {}
        self.host: dict[str, Any] = {}
        self.plan: dict[str, Any] = {}
        self.cpu_plan: dict[str, Any] | None = None
        self.expected: dict[str, Any] = {}
        self.installed = False

    # ---- plumbing -------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.deadline - time.monotonic() - RESERVE_S

    def timeout(self, wanted: float) -> float:
        return max(min(wanted, self.remaining()), 1.0)

    def skip_reason(self, needs_gpu: bool = False, needs_install: bool = True) -> str | None:
        if needs_gpu and self.dry_run:
            return "dry run: this step needs a real GPU and is not run (nothing here claims it passed)"
        if needs_install and not self.installed:
            return "the install step did not complete: ansible-core and the release are not in place"
        if self.remaining() < 15:
            return f"out of time: the run's budget of {self.args.budget} s is spent"
        return None

    def setting(self, name: str, role: str) -> Any:
        """A role variable as this run sets it: the kit's override, else the role's plain default."""
        if name in self.overrides:
            return self.overrides[name]
        import yaml

        return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())[name]

    def log(self, step: Step, label: str) -> Path:
        return self.logs / f"{step.name}-{len(step.entry['commands']) + 1}-{label}.log"

    def playbook(self, step: Step, playbook: Path, extra: Mapping[str, Any], wanted_s: float) -> tuple[int | None, str]:
        argv = [sys.executable, "-m", "ansible", "playbook", "-i", str(self.work / "inventory.yml"), str(playbook)]
        if extra:
            argv += ["-e", json.dumps(extra, sort_keys=True)]
        return run(step, argv, self.log(step, playbook.stem), self.timeout(wanted_s), env=self.env, cwd=REPO)

    def pack_logs(self) -> None:
        """The logs, reports and facts of the run as one archive in the output folder."""
        if not self.work.is_dir():
            return
        partial = Path(self.args.out) / f".{LOGS_ARCHIVE}.partial"
        with tarfile.open(partial, "w:gz") as tar:
            for name in ("logs", "reports", "facts.json", "capture", "inventory.yml"):
                if (self.work / name).exists():
                    tar.add(self.work / name, arcname=f"gpu-proof/{name}")
        partial.replace(Path(self.args.out) / LOGS_ARCHIVE)

    def nvml(self) -> tuple[Any | None, str | None]:
        return self.modules["triton_nvml"].load_nvml()

    def server_memory(self, step: Step, pid: int, label: str) -> dict[str, Any]:
        """GPU memory of a server and its stubs by NVML, recorded as figures of ``step``."""
        nvml, reason = self.nvml()
        memory = memory_of(self.modules["triton_server_check"].measure_gpu_memory, nvml, reason, pid)
        source = "NVML per-process, the server and its child processes (kit)"
        step.figure(f"{label}_measured", memory["measured"], "bool", source + f": {memory['reason']}")
        step.figure(f"{label}_bytes_total", memory["total_bytes"], "bytes", source)
        for gpu in memory["gpus"]:
            step.figure(f"{label}_bytes_gpu{gpu['index']}", gpu["used_bytes"], "bytes", f"{source}, pids {gpu['pids']}")
        step.note(f"{label}: processes measured {memory['processes']}")
        view = snapshot(nvml, reason)
        (self.logs / f"{step.name}-{label}-nvml.json").write_text(json.dumps(view, indent=2, default=str) + "\n")
        step.figure(f"{label}_nvml_library", view["library"], "path", "/proc/self/maps after nvmlInit (kit)")
        return memory

    def expected_outputs(self, gpu: bool) -> dict[str, Any]:
        """What each model answers verification's generated inputs with, on a GPU or a CPU plan."""
        return {**self.expected, MODEL: {"OUTPUT0": EXPECTED_OUTPUT0, "DEVICE_ID": [0 if gpu else -1]}}

    def release(self) -> Path:
        """The installed release (``<install prefix>/current``, resolved)."""
        return Path(os.path.realpath(Path(self.setting("triton_install_prefix", "triton_install")) / "current"))

    def server_log(self, step: Step) -> None:
        """Copy the service's server log next to the step's logs."""
        log = Path(self.setting("triton_service_log_dir", "triton_service")) / "tritonserver.log"
        if log.is_file():
            shutil.copy2(log, self.logs / f"{step.name}-tritonserver.log")

    def verify_report(self, step: Step) -> dict[str, Any]:
        path = self.work / "reports" / "localhost" / "verify.json"
        if not path.is_file():
            raise StepFailed(f"verification wrote no report ({path} is missing): see the playbook output")
        report = json.loads(path.read_text())
        for suffix in ("json", "md"):
            shutil.copy2(path.with_suffix(f".{suffix}"), self.logs / f"{step.name}-verify.{suffix}")
        return report

    # ---- steps ----------------------------------------------------------------------------

    def step_machine(self, step: Step) -> None:
        manifest_path = self.carry / "manifest.json"
        if manifest_path.is_file():
            self.manifest = json.loads(manifest_path.read_text())
            self.rec.record["carry"] = {k: v for k, v in self.manifest.items() if k != "tree"}
            files = self.manifest["tree"]["files"]
            digest = tree_digest(REPO, files)
            self.rec.record["tree"] = {
                "files": len(files),
                "digest": digest,
                "matches_carry": digest == self.manifest["tree"]["digest"],
            }
        self.probe = machine.probe()
        self.rec.record["machine"] = self.probe
        step.figure("gpus", self.probe["nvidia_smi_gpus"], "list", "nvidia-smi -L")
        step.figure("python", f"{self.probe['python_version']} {self.probe['python']}", "text", "sys")
        step.figure("libpython", self.probe["libpython"], "dict", "ldconfig -p and the Python's LIBDIR")
        step.figure("service_manager_hint", self.probe["pid1"], "text", "/proc/1/comm")
        step.figure("venv_makes_pip", self.probe["venv_makes_pip"], "bool", f"{self.probe['python_base']} -m venv")
        missing_tools = [t for t, where in self.probe["tools"].items() if where is None]
        step.figure("tools_missing", missing_tools, "list", "PATH")
        loader_dirs = machine.loader_preparations(self.probe)
        if loader_dirs:
            shown = machine.add_loader_dirs([d for d, _ in loader_dirs])
            for directory, why in loader_dirs:
                self.rec.record["preparations"].append(
                    {"what": f"loader cache += {directory}", "why": why, "command": shown}
                )
        if not self.manifest:
            raise StepFailed(
                f"no carry folder: {manifest_path} is missing. The kit installs only from the folder "
                "tools/gpu-proof/prepare writes. Run prepare here and name the folder in the device tool's carry list."
            )
        libpython = self.probe["libpython"]
        if not (libpython["in_loader_cache"] or libpython["outside_cache"]):
            step.note(
                f"no shared {libpython['soname']} on this machine (looked in the loader cache and "
                f"{', '.join(libpython['looked_in'])}): the python backend stub cannot start, so the python "
                "models of the site steps will not load; the unhidden step still measures a bare server"
            )

    def step_install(self, step: Step) -> None:
        wheels = sorted((self.carry / "wheels" / "controller").glob("*.whl"))
        rc, _ = run(
            step,
            [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check",
             "--quiet", "--target", str(self.site), *map(str, wheels)],
            self.log(step, "pip"),
            self.timeout(180),
            env={**self.clean_env(), "PIP_CONFIG_FILE": os.devnull},
        )  # fmt: skip
        if rc != 0:
            raise StepFailed(f"pip could not install the carried controller wheels into {self.site} (rc {rc})")
        self.env = self.ansible_env()
        sys.path.insert(0, str(self.site))
        import ansible
        import ansible.module_utils

        ansible.module_utils.__path__.append(str(REPO / "module_utils"))
        from ansible.module_utils import triton_nvml, triton_report, triton_server_check

        self.modules = {
            "triton_nvml": triton_nvml,
            "triton_report": triton_report,
            "triton_server_check": triton_server_check,
        }
        step.figure("ansible_core", ansible.__version__, "version", f"{self.site} (carried wheel)")
        step.figure("packages", self.package_versions(), "dict", f"importlib.metadata, {self.site} first")
        tarball, sha256 = self.release_tarball(step)
        models = self.models_source()
        base = self.probe["python_base"]
        inventory = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "triton_release": "24.10",
            "triton_install_method": "tarball",
            "triton_install_tarball_path": str(tarball),
            "triton_install_tarball_sha256": sha256,
            "triton_install_python": base,
            "triton_service_supervisor_python": base,
            "triton_models_src": str(models),
            "triton_models_build_dir": str(self.work / "build" / "triton_models"),
            "triton_verify_report_dir": str(self.work / "reports") + "/{{ inventory_hostname }}",
            "gpu_proof_facts_file": str(self.work / "facts.json"),
            **self.overrides,
        }
        (self.work / "inventory.yml").write_text(
            json.dumps({"all": {"hosts": {"localhost": inventory}}}, indent=2, sort_keys=True) + "\n"
        )
        if not self.probe["venv_makes_pip"]:
            self.venvs_without_ensurepip(step, base)
        self.installed = True

    def models_source(self) -> Path:
        """The kit's repository: its KIND_GPU model and the example model the embedding example serves."""
        import yaml

        models = self.work / "models"
        shutil.rmtree(models, ignore_errors=True)
        shutil.copytree(KIT / "models", models)
        shutil.copytree(REPO / "examples" / "model_repository" / EMBEDDED_MODEL, models / EMBEDDED_MODEL)
        local = yaml.safe_load((REPO / "inventory" / "local.yml").read_text())
        self.expected = {
            EMBEDDED_MODEL: local["all"]["hosts"]["localhost"]["triton_verify_expected_outputs"][EMBEDDED_MODEL]
        }
        return models

    @staticmethod
    def package_versions() -> dict[str, str | None]:
        """Versions of what the kit's Python imports for tritonfleet: carried, or the machine's own."""
        from importlib import metadata

        versions: dict[str, str | None] = {}
        for name in ("ansible-core", "Jinja2", "PyYAML", "protobuf", "tritonclient", "nvidia-ml-py", "requests"):
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = None
        return versions

    def clean_env(self) -> dict[str, str]:
        """The caller's environment without pip settings (this machine's pip config points elsewhere)."""
        return {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}

    def ansible_env(self) -> dict[str, str]:
        """Environment of every playbook run: the carried packages first, pip offline on the carried wheels."""
        return {
            **self.clean_env(),
            "PYTHONPATH": str(self.site),
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            # The roles' pip calls (runtime venv, supervisord) install from the carry folder only.
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(self.carry / "wheels" / "runtime"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }

    def release_tarball(self, step: Step) -> tuple[Path, str]:
        """Unpack the carried release, put this Python's stub in it, tar it for the tarball method."""
        unpacked = self.work / "triton"
        shutil.rmtree(unpacked, ignore_errors=True)
        unpacked.mkdir(parents=True)
        started = time.monotonic()
        with tarfile.open(self.carry / self.manifest["triton"]["file"]) as archive:
            # Python >= 3.11.4 (and Debian's 3.11.2) have extraction filters; the archive is our own.
            archive.extractall(unpacked, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        stub = unpacked / "stubs" / stub_version() / "triton_python_backend_stub"
        if not stub.is_file():
            raise StepFailed(
                f"the carried release has no python backend stub for Python {stub_version()} "
                f"({sys.executable}); it has {sorted(p.name for p in (unpacked / 'stubs').iterdir())}. "
                "The stub must match the Python the runtime venv is made from. Add the version to "
                "STUB_VERSIONS in tools/gpu-proof/gpuproof/carry.py and prepare again."
            )
        shutil.copy2(stub, unpacked / "tritonserver" / "backends" / "python" / stub.name)
        tarball = self.work / "tritonserver-2.51.0-gpu-proof.tar"
        with tarfile.open(tarball, "w") as tar:
            tar.add(unpacked / "tritonserver", arcname="tritonserver")
        shutil.rmtree(unpacked)
        digest = sha256_of(tarball)
        step.figure("release_tarball_seconds", round(time.monotonic() - started, 2), "s", "unpack xz, add stub, tar")
        step.figure("python_backend_stub", stub_version(), "version", "the kit's Python")
        return tarball, digest

    def venvs_without_ensurepip(self, step: Step, base: str) -> None:
        """Make the roles' two venvs with pip from the carried wheel, as ``python -m venv`` cannot here."""
        pip_wheel = next((self.carry / "wheels" / "runtime").glob("pip-*.whl"))
        runtime_venv = str(self.setting("triton_install_runtime_venv_dir", "triton_install")).replace(
            "{{ triton_install_prefix }}", str(self.setting("triton_install_prefix", "triton_install"))
        )
        supervisor_venv = f"{self.setting('triton_service_home', 'triton_service')}/supervisor"
        for venv in (runtime_venv, supervisor_venv):
            for argv in (
                [base, "-m", "venv", "--without-pip", venv],
                [f"{venv}/bin/python", f"{pip_wheel}/pip", "install", "--no-index", "--quiet", str(pip_wheel)],
            ):
                rc, _ = run(step, argv, self.log(step, "venv"), self.timeout(120), env=self.env)
                if rc != 0:
                    raise StepFailed(f"cannot make {venv} with pip from the carried wheel (rc {rc})")
            self.rec.record["preparations"].append(
                {
                    "what": f"venv {venv} made with pip from the carried wheel",
                    "why": f"{base} -m venv makes no pip here (no ensurepip); the roles' pip calls need one",
                    "command": f"{base} -m venv --without-pip {venv} && {venv}/bin/python {pip_wheel.name}/pip install",
                }
            )

    def step_facts(self, step: Step) -> None:
        rc, _ = self.playbook(step, KIT / "facts.yml", {}, 120)
        facts_file = self.work / "facts.json"
        if rc != 0 or not facts_file.is_file():
            raise StepFailed(f"facts.yml failed (rc {rc}): the host facts or the plan could not be made")
        facts = json.loads(facts_file.read_text())
        self.host, self.plan = facts["triton_host"], facts["triton_plan"]
        self.rec.record["triton_host"] = self.host
        self.rec.record["triton_plan"] = self.plan
        source = "triton_host_facts (ansible_facts.triton_host)"
        step.figure("platform", self.host["platform"], "text", source)
        step.figure("driver_version", self.host["driver_version"], "version", f"{source}, {self.host['driver_source']}")
        step.figure("cuda_driver_version", self.host["cuda_driver_version"], "version", source)
        step.figure("nvml", self.host["nvml"], "dict", source)
        for gpu in self.host["gpus"]:
            step.figure(
                f"gpu{gpu['index']}",
                f"{gpu['name']}, CC {gpu['compute_capability']}, {gpu['memory_mib']} MiB, MIG {gpu['mig_mode']}",
                "text",
                source,
            )
        step.figure("reasons", self.host["reasons"], "list", source)
        engines = [
            {k: engine.get(k) for k in ("name", "path", "version", "runtime", "cgroup_manager", "can_run", "problems")}
            for engine in self.host["container_engines"]
        ]
        step.figure("container_engines", engines, "list", f"{source}: what the container method would run")
        step.figure("nvidia_container_runtime", self.host["nvidia_container_runtime"], "dict", source)
        plan_source = "triton_compat (ansible_facts.triton_plan), release 24.10"
        for key in ("enable_gpu", "instance_kind", "gpu_ids", "hide_gpus", "cuda_version", "min_driver_version"):
            step.figure(f"plan_{key}", self.plan.get(key), "plan", plan_source)
        step.figure("plan_notes", self.plan.get("notes"), "list", plan_source)
        runtime = self.plan.get("runtime") or {}
        for key in ("env", "server_args", "container_devices"):
            step.figure(f"plan_runtime_{key}", runtime.get(key), "plan", plan_source + ", runtime section")

    def step_capture(self, step: Step) -> None:
        rc, _ = run(
            step,
            ["bash", str(REPO / "tools" / "capture_host.sh"), "gpu-proof", str(self.work / "capture")],
            self.log(step, "capture"),
            self.timeout(60),
            env=self.env,
            cwd=REPO,
        )
        if rc != 0:
            raise StepFailed(f"tools/capture_host.sh failed (rc {rc})")

    def step_site(self, step: Step, gpu: bool, again: bool = False) -> None:
        extra = {"triton_enable_gpu": gpu, "triton_verify_expected_outputs": self.expected_outputs(gpu)}
        # A report left by the previous site run must not pass for this one's.
        shutil.rmtree(self.work / "reports", ignore_errors=True)
        rc, output = self.playbook(step, REPO / "playbooks" / "site.yml", extra, 300)
        self.server_log(step)
        totals = recap(output)
        step.figure("playbook_seconds", step.entry["commands"][-1]["duration_s"], "s", "site.yml wall time")
        step.figure("changed", (totals or {}).get("changed"), "tasks", "ansible-playbook recap")
        if again:
            if rc != 0 or totals is None or totals["changed"] != 0:
                raise StepFailed(f"the second run is not a no-op: rc {rc}, recap {totals}")
            return
        report = self.verify_report(step)
        if not gpu:
            self.cpu_plan = report.get("plan")
        model = model_entry(report, MODEL)
        source = "verify.json (the server's effective config, GET /v2/models/gpu_add/config)"
        step.figure("verdict", report["verdict"], "text", "verify.json")
        server = report.get("server") or {}
        step.figure("server_version", server.get("version"), "version", "verify.json (GET /v2)")
        step.figure("server_extensions", server.get("extensions"), "list", "verify.json (GET /v2)")
        step.figure("instance_groups", model.get("instance_groups"), "list", source)
        step.figure("outputs_ok", model.get("outputs_ok"), "bool", "verify.json smoke inference (DEVICE_ID checked)")
        memory = report.get("gpu_memory") or {}
        step.figure(
            "server_gpu_memory_measured", memory.get("measured"), "bool", f"verify.json: {memory.get('reason')}"
        )
        step.figure(
            "server_gpu_memory_bytes", memory.get("total_bytes"), "bytes", "verify.json, NVML for the server pid"
        )
        for gpu_entry in memory.get("gpus") or []:
            step.figure(
                f"server_gpu_memory_bytes_gpu{gpu_entry['index']}", gpu_entry["used_bytes"], "bytes", "verify.json"
            )
        process = self.modules["triton_report"].find_server_process(
            Path("/proc"), int(self.setting("triton_service_http_port", "triton_service"))
        )
        tree = self.server_memory(step, process["pid"], "server_and_stubs") if process["found"] else None
        problems = []
        if rc != 0:
            problems.append(f"site.yml failed (rc {rc})")
        if report["verdict"] != "passed":
            problems.append(
                "verification failed: "
                + "; ".join(f"{f['code']}: {f['message']}" for f in report["findings"] if f["severity"] == "error")
            )
        kind = "KIND_GPU" if gpu else "KIND_CPU"
        groups = model.get("instance_groups") or []
        if not groups or any(g["kind"] != kind or g["gpus"] != ([0] if gpu else []) for g in groups):
            problems.append(f"{MODEL} runs {groups}, not {kind}" + (" on GPU 0" if gpu else ""))
        if not gpu and not (tree and tree["measured"] and tree["total_bytes"] == 0 and not tree["gpus"]):
            problems.append(f"the CPU-plan server and its stubs are not at 0 bytes on every GPU: {tree}")
        if problems:
            raise StepFailed("; ".join(problems))

    def running_server(self, needed_by: str) -> dict[str, Any]:
        """The service's tritonserver as it runs: {pid, argv, env, uid, gid}; the plan's runtime, applied."""
        port = int(self.setting("triton_service_http_port", "triton_service"))
        process = self.modules["triton_report"].find_server_process(Path("/proc"), port)
        if not process["found"]:
            raise StepFailed(
                f"no tritonserver serves port {port}: {needed_by} needs the CPU-plan server site_cpu leaves "
                "running (its environment and options are the plan's, as tritonfleet applied them); see site_cpu"
            )
        proc = Path("/proc") / str(process["pid"])
        items = (proc / "environ").read_bytes().decode("utf-8", "replace").split("\0")
        status = (proc / "status").read_text()
        return {
            "pid": process["pid"],
            "argv": (proc / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")[:-1],
            "env": dict(item.split("=", 1) for item in items if "=" in item),
            "uid": process["uid"],
            "gid": next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Gid:")),
        }

    def cpu_runtime(self, needed_by: str) -> Mapping[str, Any]:
        """``runtime`` of the CPU plan site_cpu verified: the device options and variables, decided once."""
        from ansible.module_utils.triton_runtime import RuntimeSectionError, plan_runtime

        if self.cpu_plan is None:
            raise StepFailed(
                f"site_cpu recorded no CPU plan (its verification report is missing): {needed_by} needs it"
            )
        try:
            return plan_runtime(self.cpu_plan, "the verification report of site_cpu")
        except RuntimeSectionError as err:
            raise StepFailed(str(err)) from err

    def step_unhidden(self, step: Step) -> None:
        runtime = self.cpu_runtime("starting the server again with its GPUs visible")
        server_now = self.running_server("starting the server again with its GPUs visible")
        # DCGM, behind Triton's GPU metrics, hangs the server's start on the test-only libnvidia-ml.
        keep = ("--allow-gpu-metrics",) if self.dry_run else ()
        launch = unhidden_launch(server_now["argv"], server_now["env"], runtime, UNHIDDEN_PORTS, keep)
        new_argv, new_env, dropped = launch["argv"], launch["env"], launch["dropped"]
        step.figure("plan_server_args", runtime["server_args"], "list", "plan.runtime.server_args (site_cpu's plan)")
        step.figure("plan_env", runtime["env"], "dict", "plan.runtime.env (site_cpu's plan)")
        if launch["missing"]:
            raise StepFailed(
                f"the CPU-plan server (pid {server_now['pid']}) runs without the plan's "
                f"{', '.join(launch['missing'])}: it is not the server plan.runtime describes; see site_cpu"
            )
        step.note(f"started again without: {', '.join(dropped) or 'nothing (no device options were set)'}")
        if keep:
            step.note(
                "dry run: GPU metrics stay off: with them on, the server hung after loading its models, before "
                "its HTTP service (they start DCGM, which the test-only libnvidia-ml does not serve)"
            )
        log = self.logs / f"{step.name}-tritonserver.log"
        shown = quoted(new_argv) + f"  (as uid {server_now['uid']}, environment {sorted(new_env)})"
        server = Server(new_argv, new_env, log, server_now["uid"], server_now["gid"])
        try:
            ready = wait_ready(f"http://127.0.0.1:{UNHIDDEN_PORTS['http']}", server.proc, self.timeout(90))
            step.figure("ready_seconds", ready, "s", "GET /v2/health/ready")
            if ready is None:
                raise StepFailed(f"the server with its GPUs visible did not become ready (log: {log.name})")
            memory = self.server_memory(step, server.proc.pid, "server_and_stubs")
        finally:
            rc = server.stop()
            step.command(shown, rc, time.monotonic() - server.started, log.name, log.read_text(errors="replace"))
        if not memory["measured"]:
            raise StepFailed(f"NVML did not measure the server: {memory['reason']}")

    def step_remove(self, step: Step) -> None:
        rc, _ = self.playbook(step, REPO / "playbooks" / "remove.yml", {}, 120)
        if rc != 0:
            raise StepFailed(f"remove.yml failed (rc {rc})")

    # ---- the run ----------------------------------------------------------------------------

    def steps(self) -> list[tuple[str, str, Callable[[Step], None], bool, bool]]:
        """(name, what it shows, body, needs a GPU, needs the install step) in run order."""
        return [
            ("install", "carried wheels and the release archive, installed offline", self.step_install, False, False),
            ("facts", "triton_host with real NVML, reasons included; the plan for 24.10", self.step_facts, False, True),
            ("capture", "tools/capture_host.sh: the files host detection reads", self.step_capture, False, True),
            (
                "site_gpu",
                "site.yml on a GPU plan: KIND_GPU on GPU 0, verified, server GPU memory",
                lambda s: self.step_site(s, gpu=True),
                True,
                True,
            ),
            (
                "site_gpu_again",
                "site.yml again on the GPU plan: changed=0",
                lambda s: self.step_site(s, gpu=True, again=True),
                True,
                True,
            ),
            (
                "site_cpu",
                "site.yml on a CPU plan: KIND_CPU, 0 bytes on every GPU by NVML",
                lambda s: self.step_site(s, gpu=False),
                False,
                True,
            ),
            (
                "unhidden",
                "the CPU-plan server again, GPUs visible, default pools: the memory it takes",
                self.step_unhidden,
                False,
                True,
            ),
            (
                "embedded",
                "Triton in-process on the CPU plan: the probe, the example's two variants, the app check",
                lambda s: step_embedded(self, s),
                False,
                True,
            ),
            ("remove", "remove.yml: nothing of tritonfleet left running", self.step_remove, False, True),
        ]

    def run(self) -> int:
        marker = self.work / ".gpu-proof-work"
        if self.work.exists() and not marker.exists():
            print(
                f"run: the scratch folder {self.work} exists and is not the kit's (no {marker.name} in it). The kit "
                "empties its scratch folder at the start of a run. Pass --work with a new or earlier kit folder.",
                file=sys.stderr,
            )
            return 2
        shutil.rmtree(self.work, ignore_errors=True)
        self.logs.mkdir(parents=True)
        marker.touch()
        self.rec.after_step.append(self.pack_logs)
        with self.rec.step("machine", "what the machine has; the carry folder; host preparations", None) as step:
            self.step_machine(step)
        for name, title, body, needs_gpu, needs_install in self.steps():
            reason = self.skip_reason(needs_gpu, needs_install)
            with self.rec.step(name, title, reason) as step:
                if not skipped(step):
                    print(f"[gpu-proof] {name}: {title}", flush=True)
                    body(step)
            print(f"[gpu-proof] {name}: {step.entry['status']} ({step.entry['duration_s']} s)", flush=True)
        self.rec.finish()
        failed = [s["name"] for s in self.rec.record["steps"] if s["status"] == "failed"]
        return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/gpu-proof/run", description="Record tritonfleet's GPU paths.")
    parser.add_argument("--carry", default=str(DEFAULT_CARRY), help="carry folder written by prepare")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="output folder (default: $OUT)")
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="scratch folder (emptied of earlier runs)")
    parser.add_argument("--budget", type=float, default=420, help="seconds for the whole run")
    parser.add_argument("--vars", help="JSON file of extra inventory variables (paths of a simulated host)")
    parser.add_argument("--dry-run", action="store_true", help="no GPU here: skip the steps that need one")
    args = parser.parse_args(argv)
    if not args.out:
        print(
            "run: no output folder: --out is not given and $OUT is unset. The kit writes its record there "
            "(the device tool sets $OUT). Pass --out DIR.",
            file=sys.stderr,
        )
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    recorder = Recorder(Path(args.out), args.dry_run, quoted(["tools/gpu-proof/run", *(argv or sys.argv[1:])]))
    code = Kit(args, recorder).run()
    summary = Path(args.out) / "gpu-proof.md"
    if summary.is_file():
        print(summary.read_text(), flush=True)
    return code
