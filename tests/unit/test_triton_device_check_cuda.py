"""The ctypes CUDA driver binding (module_utils/triton_cuda.py) against a test-built libcuda.so.1.

The fake library exports the driver API calls the binding makes and answers from environment
variables read at call time, so ``CudaDriver`` runs its real ctypes path (dlopen, argument
passing, error codes) on a machine without a GPU. Building it needs gcc.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ansible.module_utils.triton_cuda import CudaDriver, CudaError, CudaUnavailable, format_uuid, probe_cuda

FAKE_LIBCUDA_C = r"""
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;

/* FAKE_CUDA_DEVICES="name|major|minor;name|major|minor"; FAKE_CUDA_INIT=<error code for cuInit>. */
static int field(int device, int index, char *out, size_t size) {
    const char *p = getenv("FAKE_CUDA_DEVICES");
    int d = 0, f = 0;
    size_t n = 0;
    if (!p) return 0;
    for (; *p; p++) {
        if (*p == ';') { d++; f = 0; continue; }
        if (*p == '|') { f++; continue; }
        if (d == device && f == index && n + 1 < size) out[n++] = *p;
    }
    out[n] = 0;
    return n > 0;
}

static int all_devices(void) {
    const char *p = getenv("FAKE_CUDA_DEVICES");
    int n = 1;
    if (!p || !*p) return 0;
    for (; *p; p++) if (*p == ';') n++;
    return n;
}

/* Like libcuda: CUDA_VISIBLE_DEVICES="" hides everything, "1,0" selects and reorders. */
static int visible(int ordinal) {
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    char copy[256];
    char *tok;
    int i = 0;
    if (!v) return ordinal < all_devices() ? ordinal : -1;
    strncpy(copy, v, sizeof(copy) - 1);
    copy[sizeof(copy) - 1] = 0;
    for (tok = strtok(copy, ","); tok; tok = strtok(NULL, ","), i++) {
        int id = atoi(tok);
        if (id < 0 || id >= all_devices()) break;
        if (i == ordinal) return id;
    }
    return -1;
}

static int count(void) { int n = 0; while (visible(n) >= 0) n++; return n; }

CUresult cuInit(unsigned int flags) {
    const char *e = getenv("FAKE_CUDA_INIT");
    if (flags) return 1;
    if (e) return atoi(e);
    return count() ? 0 : 100;
}
CUresult cuDeviceGetCount(int *n) { *n = count(); return 0; }
CUresult cuDeviceGet(CUdevice *d, int ordinal) {
    int id = visible(ordinal);
    if (id < 0) return 101;
    *d = id;
    return 0;
}
CUresult cuDeviceGetName(char *name, int len, CUdevice d) { return field(d, 0, name, len) ? 0 : 101; }
CUresult cuDeviceGetAttribute(int *value, int attr, CUdevice d) {
    char buf[16];
    if (attr != 75 && attr != 76) return 1;
    if (!field(d, attr == 75 ? 1 : 2, buf, sizeof(buf))) return 101;
    *value = atoi(buf);
    return 0;
}
CUresult cuDeviceGetUuid(unsigned char *uuid, CUdevice d) {
    for (int i = 0; i < 16; i++) uuid[i] = (unsigned char)(d * 16 + i);
    return 0;
}
CUresult cuGetErrorName(CUresult e, const char **name) {
    switch (e) {
    case 100: *name = "CUDA_ERROR_NO_DEVICE"; return 0;
    case 35: *name = "CUDA_ERROR_INSUFFICIENT_DRIVER"; return 0;
    case 999: *name = "CUDA_ERROR_UNKNOWN"; return 0;
    default: return 1;
    }
}
"""


@pytest.fixture(scope="module")
def libcuda(tmp_path_factory):
    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed to build the fake libcuda.so.1 (tests/ensure-system-packages installs it)"
    root = tmp_path_factory.mktemp("libcuda")
    source = root / "fake_libcuda.c"
    source.write_text(FAKE_LIBCUDA_C)
    library = root / "libcuda.so.1"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(library), str(source)], check=True)
    return str(library)


@pytest.fixture
def cuda_env(monkeypatch):
    for name in ("FAKE_CUDA_DEVICES", "FAKE_CUDA_INIT", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_devices_through_ctypes(libcuda, cuda_env):
    cuda_env.setenv("FAKE_CUDA_DEVICES", "NVIDIA A10|8|6;Tesla M60|5|2")
    result = probe_cuda(CudaDriver(libcuda))
    assert result["available"] is True
    assert result["error"] is None
    assert result["count"] == 2
    assert result["devices"] == [
        {
            "index": 0,
            "name": "NVIDIA A10",
            "compute_capability": "8.6",
            "uuid": "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f",
        },
        {
            "index": 1,
            "name": "Tesla M60",
            "compute_capability": "5.2",
            "uuid": "GPU-10111213-1415-1617-1819-1a1b1c1d1e1f",
        },
    ]


def test_cuda_visible_devices_selects_and_reorders(libcuda, cuda_env):
    cuda_env.setenv("FAKE_CUDA_DEVICES", "A|8|6;B|7|5")
    cuda_env.setenv("CUDA_VISIBLE_DEVICES", "1")
    result = probe_cuda(CudaDriver(libcuda))
    assert [(d["index"], d["name"]) for d in result["devices"]] == [(0, "B")]


def test_empty_cuda_visible_devices_is_no_device(libcuda, cuda_env):
    cuda_env.setenv("FAKE_CUDA_DEVICES", "A|8|6")
    cuda_env.setenv("CUDA_VISIBLE_DEVICES", "")
    result = probe_cuda(CudaDriver(libcuda))
    assert (result["available"], result["count"], result["error"]) == (True, 0, "CUDA_ERROR_NO_DEVICE")
    assert result["reason"] == "cuInit returned CUDA_ERROR_NO_DEVICE (100)"


def test_init_error_without_a_name_keeps_the_code(libcuda, cuda_env):
    cuda_env.setenv("FAKE_CUDA_INIT", "304")
    driver = CudaDriver(libcuda)
    with pytest.raises(CudaError) as err:
        driver.init()
    assert (err.value.code, err.value.name) == (304, "CUDA_ERROR_OPERATING_SYSTEM")


def test_missing_library_is_unavailable(tmp_path):
    driver = CudaDriver(str(tmp_path / "libcuda.so.1"))
    with pytest.raises(CudaUnavailable):
        driver.init()
    result = probe_cuda(driver)
    assert result["available"] is False
    assert result["reason"].startswith(f"unavailable: {tmp_path / 'libcuda.so.1'} not found")
    assert result["count"] == 0


def test_format_uuid_matches_nvml_layout():
    assert format_uuid(bytes(range(16))) == "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"
