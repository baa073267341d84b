# SPDX-License-Identifier: Apache-2.0
"""The container install method for real: podman on this machine, playbooks/site.yml end to end.

One deployment per module, from the embedded default inventory (``inventory/local.yml``) with
``triton_install_method: container`` and every path under a temporary directory (ports
48600-48602, a throwaway service account): preflight picks podman (this machine's docker client
has no daemon), the install takes the tritonserver image built on this machine
(``support.container_images``; no registry is reachable) through a registry source whose
reference the engine already holds, the service runs it in the foreground under supervisord,
the models are switched in through the repository API, verify writes its report. Then, on the
same deployment: a rerun and ``--check --diff`` change nothing; a model release that fails in
the container is rolled back; extra server arguments are judged by the image's own server, and
one it refuses at start ends on the previous launcher; the container killed from outside comes
back and verifies; an
image archive with a wrong checksum and an unpullable reference are refused with nothing
changed; a good archive installs; ``remove.yml`` leaves no container, service entry or mount.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from ansible.module_utils.triton_report import find_server_process
from support.container_images import podman, tritonserver_image
from support.local_site import LocalSite, changed

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_REPOS = REPO_ROOT / "tests" / "fixtures" / "repos"
EXAMPLES = REPO_ROOT / "examples" / "model_repository"
HTTP_PORT = 48600
URL = f"http://127.0.0.1:{HTTP_PORT}"
CONTAINER = "tf-ctr-it"
SERVICE_USER, SERVICE_UID = "tf-ctr-it", 28081


def container_site(base: Path, image: str) -> LocalSite:
    """The deployment: inventory/local.yml, the container method, the image the engine already holds."""
    return LocalSite(
        base,
        HTTP_PORT,
        SERVICE_USER,
        SERVICE_UID,
        {
            "triton_install_method": "container",
            "triton_install_container_source": {"type": "registry", "image": image},
            "triton_install_container_name": CONTAINER,
        },
    )


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*podman(), *args], capture_output=True, text=True, check=False)


def container_state() -> dict | None:
    """The server container as podman reports it, or None when there is none."""
    found = engine("container", "inspect", CONTAINER)
    return json.loads(found.stdout)[0] if found.returncode == 0 else None


def server() -> dict:
    return find_server_process(Path("/proc"), HTTP_PORT)


def ready() -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(f"{URL}/v2/health/ready", timeout=2) as response:
        return response.status == 200
    return False


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def infer(model: str, inputs: dict[str, list[float]], batch: bool = False) -> dict[str, list[float]]:
    shape = (lambda v: [1, len(v)]) if batch else (lambda v: [len(v)])
    body = {"inputs": [{"name": n, "shape": shape(v), "datatype": "FP32", "data": v} for n, v in inputs.items()]}
    request = urllib.request.Request(f"{URL}/v2/models/{model}/infer", json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return {o["name"]: o["data"] for o in json.load(response)["outputs"]}


def said(result: subprocess.CompletedProcess) -> str:
    """Everything a run printed, with the callback's YAML line folding undone (one space between words)."""
    return " ".join(re.sub(r"\\\n\s*", "", result.stdout + result.stderr).split())


def report(site: LocalSite) -> dict:
    return json.loads((site.base / "reports" / "verify.json").read_text())


def unchanged_state(site: LocalSite) -> dict:
    """What a refused change must leave as it was: the release, the container, the server process."""
    state = container_state() or {}
    return {
        "current": os.readlink(site.base / "opt" / "current"),
        "spec": (site.base / "opt" / "current" / "container.json").read_text(),
        "container": state.get("Id"),
        "pid": server()["pid"],
    }


def stop_supervisord(pidfile: Path) -> None:
    """Stop the supervisord this module started (it stops the container first)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 60)


@pytest.fixture(scope="module")
def site():
    image = tritonserver_image()
    base = Path(tempfile.mkdtemp(prefix="tf-ctr-", dir="/tmp"))
    base.chmod(0o755)
    deployment = container_site(base, image.reference)
    deployment.image = image
    deployment.first = deployment.play("site.yml")
    try:
        yield deployment
    finally:
        stop_supervisord(deployment.supervisord_pidfile)
        engine("rm", "--force", CONTAINER)
        subprocess.run(["userdel", SERVICE_USER], capture_output=True, check=False)
        subprocess.run(["groupdel", SERVICE_USER], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
        tritonserver_image()  # the last test removes the image: load it back for the next user


def test_site_serves_the_examples_from_a_podman_container(site):
    assert site.first.returncode == 0, site.first.stdout[-6000:] + site.first.stderr[-2000:]
    assert "container method engine podman" in said(site.first)
    verdict = report(site)
    assert verdict["verdict"] == "passed", verdict["findings"]
    assert {m["name"]: m["kinds"] for m in verdict["models"]} == {"add_sub": ["KIND_CPU"], "scale": ["KIND_CPU"]}
    assert verdict["versions"]["server_version"] == "2.51.0"
    assert infer("add_sub", {"INPUT0": [1, 2, 3, 4], "INPUT1": [4, 3, 2, 1]}) == {
        "OUTPUT0": [5, 5, 5, 5],
        "OUTPUT1": [-3, -1, 1, 3],
    }
    assert infer("scale", {"INPUT": [1.5, -2]}, batch=True) == {"OUTPUT": [3, -4]}
    # The server's own output reaches the service's log through the engine (podman --log-driver passthrough).
    assert f"Started HTTPService at 127.0.0.1:{HTTP_PORT}" in (site.base / "log" / "tritonserver.log").read_text()


def test_the_server_runs_in_the_container_unprivileged_on_the_hosts_network_with_every_gpu_hidden(site):
    state = container_state()
    assert state["State"]["Running"] is True
    assert state["ImageName"] == site.image.image_id or state["Image"] == site.image.image_id
    assert state["HostConfig"]["NetworkMode"] == "host"
    assert not state["HostConfig"].get("PortBindings")
    assert state["Config"]["User"] == "triton-server"
    models = str(site.base / "models")
    (mount,) = [m for m in state["Mounts"] if m["Destination"] == models]
    assert mount["Source"] == models and mount["RW"] is False
    process = server()
    assert process["found"], process["reason"]
    assert process["uid"] == 1000  # the image's triton-server user
    assert process["environment"]["CUDA_VISIBLE_DEVICES"] == ""
    assert process["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "libpod" in Path(f"/proc/{process['pid']}/cgroup").read_text()
    assert os.readlink(f"/proc/{process['pid']}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    spec = json.loads((site.base / "opt" / "current" / "container.json").read_text())
    assert spec["engine"]["global_args"][:2] == ["--runtime", "runc"]  # crun refuses this machine's cgroups


def test_second_run_changes_nothing(site):
    pid = server()["pid"]
    again = site.play("site.yml")
    assert again.returncode == 0, again.stdout[-4000:]
    assert changed(again) == 0
    assert server()["pid"] == pid


def test_check_diff_changes_nothing_and_says_so(site):
    before = unchanged_state(site)
    result = site.play("site.yml", "--check", "--diff")
    assert result.returncode == 0, result.stdout[-4000:]
    assert changed(result) == 0
    assert unchanged_state(site) == before


def test_a_model_release_that_fails_in_the_container_is_rolled_back(site, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    shutil.copy(FIXTURE_REPOS / "broken_model" / "add_sub" / "1" / "model.py", repo / "add_sub" / "1" / "model.py")
    serving = os.readlink(site.base / "models" / "current")
    pid = server()["pid"]

    result = site.play("site.yml", extra={"triton_models_src": str(repo)})

    assert result.returncode != 0
    output = said(result)
    assert "tritonfleet-test: weights file add_sub.bin is missing" in output
    assert f"release {Path(serving).name} was restored" in output
    assert os.readlink(site.base / "models" / "current") == serving
    assert server()["pid"] == pid
    assert infer("add_sub", {"INPUT0": [1, 2, 3, 4], "INPUT1": [1, 1, 1, 1]})["OUTPUT1"] == [0, 1, 2, 3]


def test_extra_arguments_are_judged_by_the_images_server_and_a_bad_value_ends_on_the_previous_launcher(site):
    launcher = site.base / "home" / "bin" / "tritonfleet-serve"
    cache = site.base / "home" / "cache" / "tritonserver-options.json"
    before, text = unchanged_state(site), launcher.read_text()
    image_id = json.loads(before["spec"])["image_id"]

    # An option the image's tritonserver does not list: refused before the launcher is written.
    refused = site.play("site.yml", extra={"triton_service_extra_args": ["--log-verbse=1"]})

    assert refused.returncode != 0
    message = said(refused)
    assert "triton_service_extra_args has '--log-verbse=1': the server has no option --log-verbse" in message
    assert f"tritonserver 2.51.0 of image {image_id}" in message
    assert "(closest: --log-verbose" in message
    assert unchanged_state(site) == before and launcher.read_text() == text and ready()
    assert not cache.exists()  # options are kept only once the arguments passed

    # An option it lists with a value it refuses at start: the previous launcher is put back and
    # the container runs on it again before the play fails with the server's own line.
    bad_value = site.play("site.yml", extra={"triton_service_extra_args": ["--backend-directory=/no-such-backends"]})

    assert bad_value.returncode != 0
    message = said(bad_value)
    assert "unable to find backend library for backend 'python'" in message
    assert f"The previous {launcher} were restored" in message
    assert "the server is live and ready again on them" in message
    assert launcher.read_text() == text and not Path(f"{launcher}.previous").exists()
    assert json.loads(cache.read_text())["key"] == {"image_id": image_id}
    assert ready() and os.readlink(site.base / "opt" / "current") == before["current"]
    assert infer("add_sub", {"INPUT0": [1, 2, 3, 4], "INPUT1": [1, 1, 1, 1]})["OUTPUT1"] == [0, 1, 2, 3]


def test_the_container_killed_from_outside_is_restarted_and_verifies(site):
    before = container_state()["Id"]
    assert engine("kill", CONTAINER).returncode == 0
    assert wait_for(lambda: (container_state() or {}).get("Id") not in (None, before) and ready(), 90)
    result = site.play("verify.yml")
    assert result.returncode == 0, result.stdout[-4000:]
    assert report(site)["verdict"] == "passed"


def test_an_image_archive_with_a_wrong_checksum_changes_nothing(site):
    before = unchanged_state(site)
    source = {"type": "archive", "path": str(site.image.archive), "sha256": "0" * 64}

    result = site.play("site.yml", extra={"triton_install_container_source": source})

    assert result.returncode != 0
    message = said(result)
    assert f"Checksum mismatch for the image archive {site.image.archive}" in message
    assert f"sha256 is {site.image.archive_sha256}" in message
    assert "Only an archive with the expected sha256 is loaded" in message
    assert "the running server are unchanged" in message
    assert unchanged_state(site) == before and ready()


def test_an_image_reference_that_cannot_be_pulled_changes_nothing(site):
    before = unchanged_state(site)
    source = {"type": "registry", "image": "registry.invalid/nvidia/tritonserver:24.10-py3"}

    result = site.play("site.yml", extra={"triton_install_container_source": source})

    assert result.returncode != 0
    message = said(result)
    assert "The server image cannot be pulled" in message
    assert "pull registry.invalid/nvidia/tritonserver:24.10-py3 exited" in message
    assert "A registry source needs a reference podman can pull" in message
    assert "pre-stage the image with an archive source" in message
    assert unchanged_state(site) == before and ready()


def test_an_image_archive_with_its_checksum_installs(site):
    source = {"type": "archive", "path": str(site.image.archive), "sha256": site.image.archive_sha256}
    result = site.play("site.yml", extra={"triton_install_container_source": source})
    assert result.returncode == 0, result.stdout[-4000:]
    assert changed(result) >= 1  # a new container release: its source changed (same image, loaded again)
    spec = json.loads((site.base / "opt" / "current" / "container.json").read_text())
    assert spec["source"]["type"] == "archive" and spec["image_id"] == site.image.image_id
    assert report(site)["verdict"] == "passed"
    again = site.play("site.yml", extra={"triton_install_container_source": source})
    assert changed(again) == 0, again.stdout[-3000:]


def test_remove_leaves_no_container_service_entry_or_mount(site):
    state = container_state()
    container_id, merged = state["Id"], state["GraphDriver"]["Data"]["MergedDir"]
    # While it runs, the engine's mounts for it (its root filesystem, its /dev/shm) are on this host.
    mounts = Path("/proc/self/mountinfo").read_text()
    assert merged in mounts and container_id in mounts

    result = site.play("remove.yml", extra={"triton_service_remove_container_image": True})

    assert result.returncode == 0, result.stdout[-4000:]
    assert container_state() is None
    assert engine("ps", "--all", "--filter", f"name={CONTAINER}", "--quiet").stdout.strip() == ""
    assert not server()["found"]
    assert not site.supervisord_pidfile.exists()
    assert not (site.base / "etc").exists() and not (site.base / "opt").exists()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert merged not in mounts and container_id not in mounts
    assert engine("image", "exists", site.image.image_id).returncode == 1
