# SPDX-License-Identifier: Apache-2.0
"""The GPU proof kit's pure parts (tools/gpu-proof/gpuproof): launch rewriting, recaps, wheel tags,
the library closure, the size limits, the record and its Markdown. The kit end to end (prepare,
then a dry run in a simulated dGPU host) is tests/integration/test_gpu_proof_kit.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ansible.module_utils.triton_service import server_argv, server_env
from support.plans import make_plan
from test_triton_compat import PLAN_TABLE
from test_triton_service import options

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "gpu-proof"))

from gpuproof import carry, machine  # noqa: E402
from gpuproof.kit import main, recap  # noqa: E402
from gpuproof.launch import unhidden_launch  # noqa: E402
from gpuproof.record import Recorder, StepFailed, render_markdown, skipped  # noqa: E402

PORTS = {"http": 18000, "grpc": 18001, "metrics": 18002}
KEY_ARGS = [
    "--http-restricted-api=model-repository:tritonfleet-admin-key=s3cr3t",
    "--grpc-restricted-protocol=model-repository:tritonfleet-admin-key=s3cr3t",
    "--load-model=gpu_add",
]


def _served(plan: dict) -> tuple[list[str], dict[str, str]]:
    """The command line and environment the service gives the server for ``plan`` (and the key, models)."""
    manifest = {"server_version": "2.51.0", "gpu_build": True, "python_bin_dir": "/venv/bin"}
    return [*server_argv(plan, options()), *KEY_ARGS], server_env(plan, manifest, options())


@pytest.fixture(params=[pytest.param(case, id=case[0]) for case in PLAN_TABLE])
def plan(request) -> dict:
    _id, host_fn, release, method, kwargs, _expected = request.param
    return make_plan(host_fn(), release, method, **kwargs)


def test_unhidden_launch_drops_exactly_what_the_plans_runtime_adds(plan: dict) -> None:
    runtime = plan["runtime"]
    argv, env = _served(plan)
    launch = unhidden_launch(argv, env, runtime, PORTS)
    assert launch["missing"] == []
    # The server as the service starts it for a plan without device options, on the kit's ports.
    loopback = {
        f"{name}_{key}": value
        for name, port in PORTS.items()
        for key, value in (("address", "127.0.0.1"), ("port", port))
    }
    bare = {**plan, "runtime": {**runtime, "server_args": []}}
    assert launch["argv"] == [*server_argv(bare, options(**loopback)), "--load-model=gpu_add"]
    assert launch["env"] == {k: v for k, v in env.items() if k not in runtime["env"]}
    assert set(runtime["server_args"]) <= set(launch["dropped"])
    assert not any("s3cr3t" in item for item in [*launch["argv"], *launch["dropped"]])


def test_unhidden_launch_of_a_cpu_plan_shows_the_gpus_and_default_pools() -> None:
    cpu_plan = next(make_plan(c[1](), c[2], c[3], **c[4]) for c in PLAN_TABLE if c[0] == "dgpu-false-hides")
    argv, env = _served(cpu_plan)
    launch = unhidden_launch(argv, env, cpu_plan["runtime"], PORTS, keep=("--allow-gpu-metrics",))
    assert env["CUDA_VISIBLE_DEVICES"] == "" and "CUDA_VISIBLE_DEVICES" not in launch["env"]
    assert "CUDA_VISIBLE_DEVICES='' (environment)" in launch["dropped"]
    assert "--pinned-memory-pool-byte-size=0" in launch["dropped"]
    assert "--allow-gpu-metrics=false" in launch["argv"], "kept when asked (the dry run's DCGM hang)"
    assert not any(a.startswith(("--pinned-memory", "--cuda-memory", "--enable-peer")) for a in launch["argv"])


def test_unhidden_launch_names_what_the_running_server_lacks() -> None:
    cpu_plan = next(make_plan(c[1](), c[2], c[3], **c[4]) for c in PLAN_TABLE if c[0] == "dgpu-false-hides")
    argv, env = _served(cpu_plan)
    argv = [a for a in argv if not a.startswith("--pinned-memory-pool")]
    del env["CUDA_VISIBLE_DEVICES"]
    missing = unhidden_launch(argv, env, cpu_plan["runtime"], PORTS)["missing"]
    assert missing == ["--pinned-memory-pool-byte-size=0", "CUDA_VISIBLE_DEVICES='' (environment)"]


def test_recap_reads_the_host_line() -> None:
    out = "PLAY RECAP ***\nlocalhost                  : ok=31   changed=0    unreachable=0    failed=0    skipped=9\n"
    assert recap(out) == {"changed": 0, "failed": 0}
    assert recap("fatal: [localhost]: FAILED!") is None
    assert recap(out.replace("localhost", "other")) is None


@pytest.mark.parametrize(
    ("filename", "python", "fits"),
    [
        ("numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "3.12", True),
        ("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "3.12", False),
        ("protobuf-6.33.6-cp39-abi3-manylinux2014_x86_64.whl", "3.12", True),
        ("protobuf-6.33.6-cp313-abi3-manylinux2014_x86_64.whl", "3.12", False),
        ("supervisor-4.3.0-py2.py3-none-any.whl", "3.11", True),
        ("pyyaml-6.0.4-cp312-cp312-manylinux2014_aarch64.whl", "3.12", False),
        ("numpy-1.26.4-cp312-cp312-win_amd64.whl", "3.12", False),
        ("broken.whl", "3.12", False),
    ],
)
def test_wheel_fits_the_target_python_on_linux_x86_64(filename: str, python: str, fits: bool) -> None:
    assert carry.wheel_fits(filename, python) is fits


def test_cached_wheel_needs_the_exact_version_and_tags(tmp_path: Path) -> None:
    for name in ("MarkupSafe-3.0.4-cp311-cp311-manylinux2014_x86_64.whl", "markupsafe-3.0.40-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    assert carry.cached_wheel(tmp_path, "MarkupSafe==3.0.4", "3.11").name.startswith("MarkupSafe-3.0.4-")
    assert carry.cached_wheel(tmp_path, "MarkupSafe==3.0.4", "3.12") is None
    assert carry.cached_wheel(tmp_path / "absent", "MarkupSafe==3.0.4", "3.11") is None


def test_needed_closure_keeps_what_the_binaries_reach(tmp_path: Path) -> None:
    graph = {"tritonserver": ["libtriton.so", "libc.so.6"], "libtriton.so": ["libcurl.so"], "libcurl.so": []}
    for name in ("libtriton.so", "libcurl.so", "libpython3.13.so.1.0"):
        (tmp_path / name).write_bytes(b"")
    keep = carry.needed_closure([tmp_path / "tritonserver"], tmp_path, lambda path: graph.get(path.name, []))
    assert keep == {"libtriton.so", "libcurl.so"}


def test_requirement_pins_come_from_requirements_txt_and_its_includes(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# x\n-r requirements-controller.txt\nruff==0.17.6\n")
    (tmp_path / "requirements-controller.txt").write_text("ansible-core==2.19.14\ntritonclient[grpc]==2.73.0\n")
    assert carry.requirement_pins(requirements, ("ansible-core", "tritonclient", "ruff")) == [
        "ansible-core==2.19.14",
        "tritonclient==2.73.0",
        "ruff==0.17.6",
    ]
    with pytest.raises(carry.PrepareError, match="no pin for protobuf"):
        carry.requirement_pins(requirements, ("protobuf",))


def test_the_projects_requirements_pin_every_carried_controller_package() -> None:
    pins = carry.requirement_pins(REPO / "requirements.txt", carry.REQUIREMENTS_PINNED)
    assert [p.split("==")[0].lower() for p in pins] == [
        "ansible-core",
        "jinja2",
        "protobuf",
        "pyelftools",
        "tritonclient",
    ]


def test_the_carried_numpy_is_inside_the_install_roles_runtime_spec() -> None:
    pins = carry.runtime_pins()
    assert carry.NUMPY in pins
    assert "supervisor==" in " ".join(pins)


def _manifest(total: int, travel: int) -> dict:
    return {
        "total_bytes": total,
        "travel_bytes": travel,
        "wheels": [{"file": "numpy.whl", "bytes": 18}],
        "triton": {"file": carry.ARCHIVE_NAME, "bytes": 27},
    }


def test_check_limits_refuses_a_carry_folder_over_60_mib(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"\0" * 16)
    carry.check_limits(_manifest(16, 1000), tmp_path)
    with pytest.raises(carry.PrepareError, match="over the kit's limit") as err:
        limited = carry.LIMIT_BYTES
        try:
            carry.LIMIT_BYTES = 15
            carry.check_limits(_manifest(16, 1000), tmp_path)
        finally:
            carry.LIMIT_BYTES = limited
    assert "numpy.whl 18" in str(err.value)
    with pytest.raises(carry.PrepareError, match="64 MiB"):
        carry.check_limits(_manifest(16, carry.TRAVEL_LIMIT_BYTES + 1), tmp_path)


def test_loader_cache_and_preparations() -> None:
    text = (
        "3 libs found in cache\n"
        "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1\n"
        "\tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1\n"
        "\tlibpython3.12.so.1.0 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0\n"
    )
    cache = machine.loader_cache(text)
    assert cache == {
        "libcuda.so.1": "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "libpython3.12.so.1.0": "/usr/lib/x86_64-linux-gnu/libpython3.12.so.1.0",
    }
    probe = {
        "driver_libs": {
            "libcuda.so.1": {"in_loader_cache": None, "outside_cache": "/usr/local/nvidia/lib64"},
            "libnvidia-ml.so.1": {"in_loader_cache": "/x/libnvidia-ml.so.1", "outside_cache": None},
        },
        "libpython": {"soname": "libpython3.12.so.1.0", "outside_cache": None},
    }
    wanted = machine.loader_preparations(probe)
    assert [d for d, _ in wanted] == ["/usr/local/nvidia/lib64"]
    assert "env -i" in wanted[0][1]


def test_find_outside_cache_only_when_the_cache_lacks_it(tmp_path: Path) -> None:
    (tmp_path / "libpython3.12.so.1.0").write_bytes(b"")
    assert machine.find_outside_cache("libpython3.12.so.1.0", {}, ["/nonexistent", str(tmp_path)]) == str(tmp_path)
    assert machine.find_outside_cache("libpython3.12.so.1.0", {"libpython3.12.so.1.0": "/x"}, [str(tmp_path)]) is None


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, dry_run=False, command="tools/gpu-proof/run")
    with recorder.step("one", "fails with a reason") as step:
        step.figure("bytes", 512 * 1024 * 1024, "bytes", "NVML")
        raise StepFailed("the model did not load")
    with recorder.step("two", "breaks in the kit's own code") as step:
        raise KeyError("gpus")
    with recorder.step("three", "needs a GPU", "dry run: needs a real GPU") as step:
        assert skipped(step)
    with recorder.step("four", "passes") as step:
        step.note("fine")
    recorder.finish()
    record = json.loads((tmp_path / "gpu-proof.json").read_text())
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        ("one", "failed"),
        ("two", "failed"),
        ("three", "skipped"),
        ("four", "passed"),
    ]
    assert record["steps"][0]["reason"] == "the model did not load"
    assert "KeyError: 'gpus'" in record["steps"][1]["reason"]
    assert record["figures"] == [
        {"step": "one", "key": "bytes", "value": 536870912, "unit": "bytes", "source": "NVML", "evidence": True}
    ]
    summary = (tmp_path / "gpu-proof.md").read_text()
    assert "| one | bytes | 536870912 (512 MiB) | bytes | NVML |" in summary
    assert "### three: skipped" in summary
    assert "DRY RUN" not in summary


def test_a_dry_run_record_says_it_is_no_evidence(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, dry_run=True, command="tools/gpu-proof/run --dry-run")
    with recorder.step("unhidden", "memory with the GPUs visible") as step:
        step.figure("server_bytes_total", 0, "bytes", "NVML per-process")
    summary = render_markdown(recorder.record)
    assert "DRY RUN" in summary and "Nothing here is GPU evidence" in summary
    assert "NVML per-process (dry run)" in summary
    assert recorder.record["figures"][0]["evidence"] is False


def test_run_needs_an_output_folder(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OUT", raising=False)
    assert main(["--dry-run"]) == 2
    assert "no output folder" in capsys.readouterr().err


def test_run_never_empties_a_folder_that_is_not_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    assert main(["--out", str(tmp_path / "out"), "--work", str(work), "--dry-run"]) == 2
    assert (work / "keep.txt").read_text() == "mine"
    assert "is not the kit's" in capsys.readouterr().err
