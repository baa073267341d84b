// SPDX-License-Identifier: MIT
/*
 * Test-only libnvidia-ml.so.1: answers the NVML calls that nvidia-ml-py (pynvml) makes for
 * host detection, from a text file instead of a GPU. Built by tests/fleet (gcc) and installed
 * only into a simulated host's /usr overlay, so that host's detection runs its production path
 * (pynvml -> dlopen("libnvidia-ml.so.1") -> these symbols). Never install it on a real machine.
 *
 * Configuration: $FAKE_NVML_CONFIG, else /etc/fake-nvml/gpus.conf. Format (README.md):
 *   driver_version: 550.54.15
 *   cuda_driver_version: 12040
 *   nvml_version: 12.550.54.15
 *   init_error: 9
 *   gpu: 0 | NVIDIA A100-SXM4-40GB | GPU-... | 00000000:07:00.0 | 8 | 0 | 40960 | disabled
 *   process: 0 | 4242 | 1024
 *
 * Functions that are not implemented are not exported, so pynvml raises
 * NVMLError_FunctionNotFound for them exactly as with an old real driver.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API __attribute__((visibility("default")))

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_UNKNOWN = 999,
};

#define MAX_GPUS 16
#define MAX_PROCS 64
#define TEXT 96

typedef struct {
    unsigned int index;
    char name[TEXT];
    char uuid[TEXT];
    char bus_id[32];
    int cc_major;
    int cc_minor;
    unsigned long long memory_mib;
    int mig; /* -1 unsupported, 0 disabled, 1 enabled */
} fake_gpu_t;

typedef struct {
    unsigned int gpu;
    unsigned int pid;
    unsigned long long used_mib;
} fake_proc_t;

typedef fake_gpu_t *nvmlDevice_t;

/* Layouts as in nvml.h and pynvml.py (nvmlPciInfo_t v3, nvmlMemory_t v1/v2, nvmlProcessInfo_v2_t). */
typedef struct {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_v2_t;

static int init_count;
static char driver_version[80]; /* NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE */
static char nvml_version[128];
static int cuda_driver_version;
static int init_error;
static fake_gpu_t gpus[MAX_GPUS];
static unsigned int gpu_count;
static fake_proc_t procs[MAX_PROCS];
static unsigned int proc_count;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static void copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

/* Splits "a | b | c" in place; returns the number of fields. */
static int split_fields(char *value, char **fields, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(value, "|", &save); tok && n < max; tok = strtok_r(NULL, "|", &save))
        fields[n++] = trim(tok);
    return n;
}

static int parse_gpu(char *value)
{
    char *f[8];
    if (gpu_count >= MAX_GPUS || split_fields(value, f, 8) != 8)
        return -1;
    fake_gpu_t *g = &gpus[gpu_count];
    g->index = (unsigned int)strtoul(f[0], NULL, 10);
    if (g->index != gpu_count)
        return -1; /* NVML enumerates 0..n-1: the file must list GPUs in that order */
    copy_text(g->name, sizeof g->name, f[1]);
    copy_text(g->uuid, sizeof g->uuid, f[2]);
    copy_text(g->bus_id, sizeof g->bus_id, f[3]);
    g->cc_major = atoi(f[4]);
    g->cc_minor = atoi(f[5]);
    g->memory_mib = strtoull(f[6], NULL, 10);
    if (strcmp(f[7], "enabled") == 0)
        g->mig = 1;
    else if (strcmp(f[7], "disabled") == 0)
        g->mig = 0;
    else if (strcmp(f[7], "unsupported") == 0)
        g->mig = -1;
    else
        return -1;
    gpu_count++;
    return 0;
}

static int parse_process(char *value)
{
    char *f[3];
    if (proc_count >= MAX_PROCS || split_fields(value, f, 3) != 3)
        return -1;
    procs[proc_count].gpu = (unsigned int)strtoul(f[0], NULL, 10);
    procs[proc_count].pid = (unsigned int)strtoul(f[1], NULL, 10);
    procs[proc_count].used_mib = strtoull(f[2], NULL, 10);
    proc_count++;
    return 0;
}

/* Returns NVML_SUCCESS, DRIVER_NOT_LOADED when the file is missing (as a host without the
 * kernel module answers), or UNKNOWN for a malformed file (the line is named on stderr). */
static nvmlReturn_t load_config(void)
{
    const char *path = getenv("FAKE_NVML_CONFIG");
    if (!path || !*path)
        path = "/etc/fake-nvml/gpus.conf";
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NVML_ERROR_DRIVER_NOT_LOADED;

    gpu_count = proc_count = 0;
    init_error = 0;
    cuda_driver_version = 0;
    copy_text(driver_version, sizeof driver_version, "");
    copy_text(nvml_version, sizeof nvml_version, "");

    char line[512];
    int lineno = 0;
    nvmlReturn_t ret = NVML_SUCCESS;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *colon = strchr(s, ':');
        if (!colon) {
            ret = NVML_ERROR_UNKNOWN;
            break;
        }
        *colon = '\0';
        char *key = trim(s), *value = trim(colon + 1);
        int bad = 0;
        if (strcmp(key, "driver_version") == 0)
            copy_text(driver_version, sizeof driver_version, value);
        else if (strcmp(key, "nvml_version") == 0)
            copy_text(nvml_version, sizeof nvml_version, value);
        else if (strcmp(key, "cuda_driver_version") == 0)
            cuda_driver_version = atoi(value);
        else if (strcmp(key, "init_error") == 0)
            init_error = atoi(value);
        else if (strcmp(key, "gpu") == 0)
            bad = parse_gpu(value);
        else if (strcmp(key, "process") == 0)
            bad = parse_process(value);
        else
            bad = -1;
        if (bad) {
            ret = NVML_ERROR_UNKNOWN;
            break;
        }
    }
    fclose(fp);
    if (ret != NVML_SUCCESS)
        fprintf(stderr, "fake libnvidia-ml: %s line %d is not valid; see tests/fakes/libnvidia-ml/README.md\n",
                path, lineno);
    else if (init_error)
        ret = init_error;
    if (ret == NVML_SUCCESS && !nvml_version[0])
        snprintf(nvml_version, sizeof nvml_version, "%d.%s", cuda_driver_version / 1000, driver_version);
    return ret;
}

static nvmlReturn_t put_text(char *buf, unsigned int length, const char *text)
{
    if (!buf)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(text) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, text, strlen(text) + 1);
    return NVML_SUCCESS;
}

static nvmlReturn_t check_device(nvmlDevice_t device)
{
    if (!init_count)
        return NVML_ERROR_UNINITIALIZED;
    if (device < gpus || device >= gpus + gpu_count)
        return NVML_ERROR_INVALID_ARGUMENT;
    return NVML_SUCCESS;
}

static unsigned long long used_mib(const fake_gpu_t *g)
{
    unsigned long long used = 0;
    for (unsigned int i = 0; i < proc_count; i++)
        if (procs[i].gpu == g->index)
            used += procs[i].used_mib;
    return used;
}

API nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags;
    if (init_count) {
        init_count++;
        return NVML_SUCCESS;
    }
    nvmlReturn_t ret = load_config();
    if (ret == NVML_SUCCESS)
        init_count = 1;
    return ret;
}

API nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
API nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

API nvmlReturn_t nvmlShutdown(void)
{
    if (!init_count)
        return NVML_ERROR_UNINITIALIZED;
    init_count--;
    return NVML_SUCCESS;
}

API const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 6: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    default: return "Unknown Error";
    }
}

API nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    return init_count ? put_text(version, length, driver_version) : NVML_ERROR_UNINITIALIZED;
}

API nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
    return init_count ? put_text(version, length, nvml_version) : NVML_ERROR_UNINITIALIZED;
}

API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cuda_version)
{
    if (!cuda_version)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!init_count)
        return NVML_ERROR_UNINITIALIZED;
    *cuda_version = cuda_driver_version;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cuda_version)
{
    return nvmlSystemGetCudaDriverVersion(cuda_version);
}

API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    if (!init_count)
        return NVML_ERROR_UNINITIALIZED;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = gpu_count;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    if (!init_count)
        return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= gpu_count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    nvmlReturn_t ret = check_device(device);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!index)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = device->index;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    nvmlReturn_t ret = check_device(device);
    return ret != NVML_SUCCESS ? ret : put_text(name, length, device->name);
}

API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    nvmlReturn_t ret = check_device(device);
    return ret != NVML_SUCCESS ? ret : put_text(uuid, length, device->uuid);
}

API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    nvmlReturn_t ret = check_device(device);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    memset(pci, 0, sizeof *pci);
    unsigned int domain = 0, bus = 0, dev = 0, fn = 0;
    if (sscanf(device->bus_id, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) != 4)
        return NVML_ERROR_UNKNOWN;
    pci->domain = domain;
    pci->bus = bus;
    pci->device = dev;
    copy_text(pci->busId, sizeof pci->busId, device->bus_id);
    /* The legacy field is 16 bytes, so NVML fills it with a 4-digit domain. */
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04x:%02x:%02x.%x", domain & 0xffff, bus, dev, fn);
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    return nvmlDeviceGetPciInfo_v3(device, pci);
}

API nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    return nvmlDeviceGetPciInfo_v3(device, pci);
}

API nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
    nvmlReturn_t ret = check_device(device);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!major || !minor)
        return NVML_ERROR_INVALID_ARGUMENT;
    *major = device->cc_major;
    *minor = device->cc_minor;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    nvmlReturn_t ret = check_device(device);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = device->memory_mib << 20;
    memory->used = used_mib(device) << 20;
    memory->free = memory->total > memory->used ? memory->total - memory->used : 0;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    nvmlMemory_t v1;
    nvmlReturn_t ret = nvmlDeviceGetMemoryInfo(device, &v1);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = v1.total;
    memory->reserved = 0;
    memory->free = v1.free;
    memory->used = v1.used;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending)
{
    nvmlReturn_t ret = check_device(device);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!current || !pending)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (device->mig < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = (unsigned int)device->mig;
    return NVML_SUCCESS;
}

/* Two-call protocol: a too-small buffer gets INSUFFICIENT_SIZE and the needed count. */
API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                          nvmlProcessInfo_v2_t *infos)
{
    nvmlReturn_t ret = check_device(device);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int needed = 0;
    for (unsigned int i = 0; i < proc_count; i++)
        needed += procs[i].gpu == device->index;
    if (*count < needed || (needed && !infos)) {
        *count = needed;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int n = 0;
    for (unsigned int i = 0; i < proc_count; i++) {
        if (procs[i].gpu != device->index)
            continue;
        infos[n].pid = procs[i].pid;
        infos[n].usedGpuMemory = procs[i].used_mib << 20;
        infos[n].gpuInstanceId = 0xFFFFFFFFu;
        infos[n].computeInstanceId = 0xFFFFFFFFu;
        n++;
    }
    *count = n;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count,
                                                          nvmlProcessInfo_v2_t *infos)
{
    return nvmlDeviceGetComputeRunningProcesses_v3(device, count, infos);
}
