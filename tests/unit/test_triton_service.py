"""Server argv/env construction per plan kind (module_utils/triton_service.py) and the release it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.triton_container_spec import container_run_argv, container_run_spec
from ansible.module_utils.triton_service import (
    SYSTEM_PATH,
    ServiceConfigError,
    container_launch,
    leftover_pids,
    probe_host,
    read_manifest,
    server_argv,
    server_env,
)
from ansible.module_utils.triton_service_config import compute_launch
from support.plans import base_host, dgpu_host, gpu, jetson_host, make_plan, podman_engine, with_containers

MIB64 = 64 * 1024 * 1024
RELEASE = "/opt/tritonserver/releases/2.51.0"
MANIFEST = {"server_version": "2.51.0", "gpu_build": True, "python_bin_dir": "/opt/tritonserver/venvs/python/bin"}
L4 = "NVIDIA L4"
# Plans as preflight makes them (tests/support/plans.py runs the real triton_compat).
CPU_PLAN = make_plan(base_host())
DGPU_CPU_PLAN = make_plan(dgpu_host([gpu(0, L4, "8.9"), gpu(1, L4, "8.9")]), enable_gpu="false")
DGPU_PINNED_PLAN = make_plan(dgpu_host([gpu(0, L4, "8.9"), gpu(1, L4, "8.9"), gpu(2, L4, "8.9")]), gpus=[0, 1])
JETSON_NANO_PLAN = make_plan(jetson_host("nano-jp4"), "2.19.0", "tarball")
ORIN_PLAN = make_plan(jetson_host("orin-jp6"), "24.08", "tarball")


# The server options every launch takes: repository, state dir, addresses and ports.
SERVER_OPTIONS = {
    "model_repository": "/srv/tritonfleet/models/current",
    "state_dir": "/var/lib/tritonfleet",
    "http_address": "0.0.0.0",
    "http_port": 8000,
    "grpc_address": "0.0.0.0",
    "grpc_port": 8001,
    "metrics_address": "127.0.0.1",
    "metrics_port": 8002,
}


def options(**overrides: Any) -> dict:
    base = {"release_dir": RELEASE, **SERVER_OPTIONS, "auto_complete_config": False, "extra_args": []}
    base.update(overrides)
    return base


def flags_with(argv: list[str], prefix: str) -> list[str]:
    return [arg for arg in argv if arg.startswith(prefix)]


# --- argv: the part every plan shares --------------------------------------------------------


def test_common_argv_runs_the_release_with_explicit_control_and_endpoints():
    argv = server_argv(CPU_PLAN, options())
    assert argv[0] == f"{RELEASE}/bin/tritonserver"
    for flag in (
        "--model-repository=/srv/tritonfleet/models/current",
        f"--backend-directory={RELEASE}/backends",
        "--model-control-mode=explicit",
        "--strict-readiness=true",
        "--exit-on-error=true",
        "--disable-auto-complete-config",
        "--http-address=0.0.0.0",
        "--http-port=8000",
        "--grpc-address=0.0.0.0",
        "--grpc-port=8001",
        "--metrics-address=127.0.0.1",
        "--metrics-port=8002",
    ):
        assert flag in argv


def test_argv_leaves_models_and_key_to_the_launcher():
    argv = server_argv(CPU_PLAN, options())
    assert not flags_with(argv, "--load-model")
    assert not flags_with(argv, "--http-restricted-api")
    assert not flags_with(argv, "--grpc-restricted-protocol")


def test_auto_complete_can_be_allowed():
    assert "--disable-auto-complete-config" not in server_argv(CPU_PLAN, options(auto_complete_config=True))


def test_extra_args_come_last():
    argv = server_argv(CPU_PLAN, options(extra_args=["--log-verbose=1", "--model-load-thread-count=2"]))
    assert argv[-2:] == ["--log-verbose=1", "--model-load-thread-count=2"]


# --- argv and env per plan: the runtime section, verbatim ------------------------------------

PLANS = {"cpu": CPU_PLAN, "dgpu-cpu": DGPU_CPU_PLAN, "dgpu-pinned": DGPU_PINNED_PLAN, "nano": JETSON_NANO_PLAN,
         "orin": ORIN_PLAN}  # fmt: skip


@pytest.mark.parametrize("name", PLANS)
def test_argv_carries_the_plans_server_args_between_the_endpoints_and_extra_args(name: str):
    the_plan = PLANS[name]
    argv = server_argv(the_plan, options(extra_args=["--log-verbose=1"]))
    args = the_plan["runtime"]["server_args"]
    start = argv.index("--metrics-port=8002") + 1
    assert argv[start : start + len(args)] == args
    assert argv[start + len(args) :] == ["--log-verbose=1"]


@pytest.mark.parametrize("name", PLANS)
def test_env_carries_the_plans_runtime_env(name: str):
    env = server_env(PLANS[name], MANIFEST, options())
    cuda = {key: value for key, value in env.items() if key.startswith(("CUDA_", "NVIDIA_"))}
    assert cuda == PLANS[name]["runtime"]["env"]


def test_cpu_plan_on_cpu_host_disables_pinned_pool_metrics_and_peer_access():
    argv = server_argv(CPU_PLAN, options())
    assert "--pinned-memory-pool-byte-size=0" in argv
    assert "--allow-gpu-metrics=false" in argv
    assert "--enable-peer-access=false" in argv
    assert flags_with(argv, "--cuda-memory-pool-byte-size") == []
    assert flags_with(argv, "--min-supported-compute-capability") == []


def test_cpu_plan_on_dgpu_host_with_two_gpus_zeroes_both_pools():
    argv = server_argv(DGPU_CPU_PLAN, options())
    assert flags_with(argv, "--cuda-memory-pool-byte-size") == [
        "--cuda-memory-pool-byte-size=0:0",
        "--cuda-memory-pool-byte-size=1:0",
    ]
    assert "--pinned-memory-pool-byte-size=0" in argv
    assert "--allow-gpu-metrics=false" in argv
    assert "--enable-peer-access=false" in argv


def test_dgpu_gpu_plan_keeps_defaults_for_its_gpus_and_zeroes_the_others():
    argv = server_argv(DGPU_PINNED_PLAN, options())
    assert flags_with(argv, "--cuda-memory-pool-byte-size") == ["--cuda-memory-pool-byte-size=2:0"]
    assert flags_with(argv, "--pinned-memory-pool-byte-size") == []
    assert "--allow-gpu-metrics=false" not in argv
    assert "--enable-peer-access=false" not in argv
    assert flags_with(argv, "--min-supported-compute-capability") == []


def test_jetson_plan_sets_min_cc_unified_memory_pools_and_no_gpu_metrics():
    argv = server_argv(JETSON_NANO_PLAN, options())
    assert "--min-supported-compute-capability=5.3" in argv
    assert "--allow-gpu-metrics=false" in argv
    assert flags_with(argv, "--pinned-memory-pool-byte-size") == [f"--pinned-memory-pool-byte-size={MIB64}"]
    assert flags_with(argv, "--cuda-memory-pool-byte-size") == [f"--cuda-memory-pool-byte-size=0:{MIB64}"]


def test_cpu_plan_env_hides_every_gpu_and_puts_the_python_runtime_first():
    env = server_env(DGPU_CPU_PLAN, MANIFEST, options())
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["PATH"] == f"{MANIFEST['python_bin_dir']}:{SYSTEM_PATH}"
    assert env["LD_LIBRARY_PATH"] == f"{RELEASE}/lib"
    assert env["HOME"] == "/var/lib/tritonfleet"
    assert "CUDA_DEVICE_ORDER" not in env


def test_gpu_plan_env_uses_pci_order_and_hides_nothing():
    for gpu_plan in (DGPU_PINNED_PLAN, ORIN_PLAN):
        env = server_env(gpu_plan, MANIFEST, options())
        assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert "CUDA_VISIBLE_DEVICES" not in env


def test_env_without_python_runtime_uses_the_system_path():
    env = server_env(CPU_PLAN, {**MANIFEST, "python_bin_dir": None}, options())
    assert env["PATH"] == SYSTEM_PATH


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_plan",
    [
        {key: value for key, value in CPU_PLAN.items() if key != "runtime"},
        {**CPU_PLAN, "runtime": {"env": {}}},
    ],
    ids=["no-runtime", "runtime-without-server-args"],
)
def test_plans_without_a_runtime_section_are_rejected_with_a_remedy(bad_plan: dict):
    for build in (lambda: server_argv(bad_plan, options()), lambda: server_env(bad_plan, MANIFEST, options())):
        with pytest.raises(ServiceConfigError) as err:
            build()
        assert "no complete runtime section" in str(err.value)
        assert "run preflight" in str(err.value)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"http_address": "localhost"}, "triton_service_http_address is 'localhost'"),
        ({"grpc_port": 0}, "triton_service_grpc_port is 0"),
        ({"metrics_port": 70000}, "triton_service_metrics_port is 70000"),
    ],
)
def test_bad_endpoints_name_the_variable(override: dict, needle: str):
    with pytest.raises(ServiceConfigError, match=needle):
        server_argv(CPU_PLAN, options(**override))


@pytest.mark.parametrize(
    ("address", "expected"),
    [("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("127.0.0.1", "127.0.0.1"), ("10.1.2.3", "10.1.2.3"), ("::1", "[::1]")],
)
def test_probe_host_reaches_wildcard_binds_on_loopback(address: str, expected: str):
    assert probe_host(address) == expected


def test_probe_host_rejects_names():
    with pytest.raises(ServiceConfigError, match="IP literal"):
        probe_host("triton.example")


# --- manifest --------------------------------------------------------------------------------


def test_read_manifest_returns_the_installed_manifest(tmp_path: Path):
    (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST))
    assert read_manifest(tmp_path) == MANIFEST


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "No installed Triton release"),
        ("{not json", "is not valid JSON"),
        ("[]", "holds a list"),
        (json.dumps({"server_version": "2.51.0"}), "gpu_build (boolean)"),
        (json.dumps({**MANIFEST, "python_bin_dir": "venv/bin"}), "python_bin_dir (absolute path or null)"),
    ],
    ids=["missing", "garbage", "not-an-object", "no-gpu_build", "relative-python"],
)
def test_read_manifest_errors_say_to_rerun_the_install(tmp_path: Path, content: str | None, needle: str):
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ServiceConfigError) as err:
        read_manifest(tmp_path)
    assert needle in str(err.value)
    assert str(tmp_path / "manifest.json") in str(err.value)
    assert "triton_install" in str(err.value)


# --- the release the launcher runs ------------------------------------------------------------


def launch_params(prefix: Path, **extra: Any) -> dict:
    return {
        "plan": DGPU_CPU_PLAN,
        "install_prefix": str(prefix),
        **SERVER_OPTIONS,
        "auto_complete_config": False,
        "extra_args": [],
        **extra,
    }


def installed_prefix(tmp_path: Path) -> Path:
    release = tmp_path / "releases" / "2.51.0"
    release.mkdir(parents=True)
    (release / "manifest.json").write_text(json.dumps(MANIFEST))
    (tmp_path / "current").symlink_to("releases/2.51.0")
    return tmp_path


def test_launch_resolves_current_and_returns_argv_and_env(tmp_path: Path):
    launch = compute_launch(launch_params(installed_prefix(tmp_path)), check_mode=False)
    release = str((tmp_path / "releases" / "2.51.0").resolve())
    assert launch["release_dir"] == release
    assert launch["server_version"] == "2.51.0"
    assert launch["container"] is False
    assert launch["argv"][0] == f"{release}/bin/tritonserver"
    assert "--cuda-memory-pool-byte-size=1:0" in launch["argv"]
    assert launch["env"]["CUDA_VISIBLE_DEVICES"] == ""


def test_launch_uses_the_release_triton_install_published_in_the_play(tmp_path: Path):
    installed_prefix(tmp_path)
    published = {**MANIFEST, "server_version": "2.52.0", "python_bin_dir": None}
    params = launch_params(tmp_path, release_dir=str(tmp_path / "releases" / "2.52.0"), manifest=published)
    launch = compute_launch(params, check_mode=True)
    assert launch["server_version"] == "2.52.0"
    assert launch["argv"][0] == f"{tmp_path.resolve()}/releases/2.52.0/bin/tritonserver"
    assert launch["env"]["PATH"] == SYSTEM_PATH


def test_launch_rejects_a_published_manifest_without_the_needed_keys(tmp_path: Path):
    params = launch_params(tmp_path, release_dir=str(tmp_path), manifest={"server_version": "2.51.0"})
    with pytest.raises(ServiceConfigError, match="gpu_build"):
        compute_launch(params, check_mode=False)


def test_launch_fails_without_a_release(tmp_path: Path):
    with pytest.raises(ServiceConfigError, match="No installed Triton release"):
        compute_launch(launch_params(tmp_path), check_mode=False)


def test_launch_in_check_mode_tolerates_a_release_still_to_come(tmp_path: Path):
    assert compute_launch(launch_params(tmp_path), check_mode=True) is None
    published_but_not_installed = launch_params(tmp_path, release_dir=str(tmp_path / "releases" / "2.51.0"))
    assert compute_launch(published_but_not_installed, check_mode=True) is None


# --- leftover processes ------------------------------------------------------------------------

OWN_NS = "mnt:[4026531832]"


def fake_proc(root: Path, processes: dict[str, tuple[int, str]]) -> Path:
    """A /proc with ``{pid: (real uid, mount namespace)}``, files as the kernel shows them."""
    for pid, (uid, namespace) in processes.items():
        (root / pid / "ns").mkdir(parents=True)
        (root / pid / "status").write_text(f"Name:\ttritonserver\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t1\t1\t1\t1\n")
        (root / pid / "ns" / "mnt").symlink_to(namespace)
    (root / "self").mkdir()
    (root / "meminfo").write_text("MemTotal: 1 kB\n")
    return root


def test_leftover_pids_are_the_users_in_this_mount_namespace_only(tmp_path: Path):
    proc = fake_proc(
        tmp_path,
        {
            "101": (995, OWN_NS),
            "102": (995, "mnt:[4026532959]"),  # a simulated host's server, same uid number
            "103": (0, OWN_NS),
            "250": (995, OWN_NS),
        },
    )
    assert leftover_pids(proc, 995, OWN_NS) == [101, 250]


def test_leftover_pids_skips_processes_that_vanish(tmp_path: Path):
    proc = fake_proc(tmp_path, {"101": (995, OWN_NS)})
    (proc / "102").mkdir()  # exited between listing and reading: no status, no ns
    assert leftover_pids(proc, 995, OWN_NS) == [101]


# --- container releases: the engine runs the image with the plan's server flags ------------

ONE_GPU_HOST = with_containers(dgpu_host([gpu(0, L4, "8.9")]))
CONTAINER_CPU_PLAN = make_plan(ONE_GPU_HOST, "24.10", "container", enable_gpu="false")
CONTAINER_GPU_PLAN = make_plan(ONE_GPU_HOST, "24.10", "container")


IMAGE_ID = "0fabea092a8e27ea3f9cdf19007b0fac4eb065f144597f01bf99e20c683c4557"


def write_container_release(tmp_path: Path, the_plan: dict, engine: str = "docker") -> Path:
    """Lay out what triton_install writes for a container release: the run spec with the image id."""
    spec = container_run_spec(the_plan, ONE_GPU_HOST, {"engine": engine, "models_root": "/srv/tritonfleet/models"})
    spec["image_id"] = IMAGE_ID
    (tmp_path / "container.json").write_text(json.dumps(dict(spec, argv=container_run_argv(spec))))
    return tmp_path


def launch_of(release: Path, the_plan: dict) -> dict:
    return container_launch(release, {"container_spec": "container.json"}, options(plan=the_plan))


def test_container_cpu_plan_on_gpu_host_runs_the_image_without_gpus_and_with_zero_pools(tmp_path):
    argv = launch_of(write_container_release(tmp_path, CONTAINER_CPU_PLAN), CONTAINER_CPU_PLAN)["argv"]
    image_at = argv.index(IMAGE_ID)
    engine, server = argv[:image_at], argv[image_at + 1 :]
    assert engine[:3] == ["/usr/bin/docker", "run", "--rm"]
    assert engine[engine.index("--network") + 1] == "host"
    assert "--gpus" not in engine and "CUDA_VISIBLE_DEVICES=" in engine and "NVIDIA_VISIBLE_DEVICES=void" in engine
    assert "-p" not in engine and "--publish" not in engine
    assert server[0] == "/opt/tritonserver/bin/tritonserver"
    assert "--backend-directory=/opt/tritonserver/backends" in server
    # The host's network: the server binds what the service asks for, as a native one does.
    assert "--http-address=0.0.0.0" in server and "--metrics-address=127.0.0.1" in server
    assert "--metrics-port=8002" in server
    assert {"--pinned-memory-pool-byte-size=0", "--cuda-memory-pool-byte-size=0:0"} <= set(server)


def test_container_gpu_plan_passes_gpus_to_the_engine_and_no_zero_pool(tmp_path):
    argv = launch_of(write_container_release(tmp_path, CONTAINER_GPU_PLAN), CONTAINER_GPU_PLAN)["argv"]
    assert argv[argv.index("--gpus") + 1] == "all"
    assert not flags_with(argv, "--cuda-memory-pool-byte-size=")


def test_docker_removes_a_stale_container_first_podman_replaces_it(tmp_path):
    (tmp_path / "d").mkdir()
    docker = launch_of(write_container_release(tmp_path / "d", CONTAINER_CPU_PLAN), CONTAINER_CPU_PLAN)
    assert docker["prepare"] == [["/usr/bin/docker", "rm", "--force", "tritonserver"]]
    assert "--replace" not in docker["argv"]
    host = with_containers(dgpu_host([gpu(0, L4, "8.9")]), engines=[podman_engine()])
    cpu_plan = make_plan(host, "24.10", "container", enable_gpu="false")
    spec = dict(container_run_spec(cpu_plan, host, {"models_root": "/srv/tritonfleet/models"}), image_id=IMAGE_ID)
    (tmp_path / "container.json").write_text(json.dumps(dict(spec, argv=container_run_argv(spec))))
    podman = launch_of(tmp_path, cpu_plan)
    assert podman["prepare"] == []
    assert podman["argv"][:6] == ["/usr/bin/podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "run"]
    assert "--replace" in podman["argv"]


def test_container_spec_without_the_image_id_at_the_end_is_refused(tmp_path):
    release = write_container_release(tmp_path, CONTAINER_CPU_PLAN)
    spec = json.loads((release / "container.json").read_text())
    (release / "container.json").write_text(json.dumps(dict(spec, argv=[*spec["argv"], "tritonserver"])))
    with pytest.raises(ServiceConfigError, match="does not end with the image id"):
        launch_of(release, CONTAINER_CPU_PLAN)


def test_container_release_without_a_spec_says_how_to_fix_it(tmp_path):
    with pytest.raises(ServiceConfigError, match="triton_install_method=container"):
        container_launch(tmp_path, {"container_spec": "container.json"}, options(plan=CPU_PLAN))


def test_launch_refuses_a_release_of_another_method_than_the_plans(tmp_path: Path):
    installed_prefix(tmp_path)  # a native release
    params = launch_params(tmp_path, plan=CONTAINER_CPU_PLAN)
    with pytest.raises(ServiceConfigError) as raised:
        compute_launch(params, check_mode=False)
    assert "installed by method None, but the plan is for method container" in str(raised.value)
    # In check mode the install of the same run would replace it: nothing to compare yet.
    assert compute_launch(params, check_mode=True) is None
