/* SPDX-License-Identifier: Apache-2.0
 *
 * tritonfleet's example of an application that embeds Triton in-process (libtritonserver, the
 * C API), in the shape of Triton's Jetson people-detection example: server options, one model,
 * one request per frame, a response allocator. Its model is the add_sub model of
 * examples/model_repository (OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1); every
 * answer is checked, and a wrong one ends the application with an error.
 *
 * Two variants, chosen at build time (make VARIANT=honest|gpu):
 *   honest  honours the plan and Triton: the memory options come from the command line (the
 *           same flags as tritonserver: tritonfleet passes plan.runtime.server_args), inputs
 *           are appended in CPU memory, and the response allocator gives the memory type Triton
 *           prefers (CPU memory when it prefers GPU memory: this build has no CUDA).
 *   gpu     hard-codes GPU memory as the failing application did: cudaSetDevice(0), inputs
 *           copied to cudaMalloc'ed buffers and appended as TRITONSERVER_MEMORY_GPU, and a
 *           response allocator that always answers with cudaMalloc'ed GPU memory.
 *
 * Usage: embedded_app --model-repository DIR [--backend-directory DIR] [--model add_sub]
 *        [--iterations N (0: until SIGTERM)] [--interval-ms MS] [tritonserver memory flags...]
 * Defaults come from the environment tritonfleet gives the service: TRITONFLEET_MODEL_REPOSITORY,
 * TRITONFLEET_BACKEND_DIRECTORY.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tritonfleet_capi.h"

#ifdef TRITONFLEET_HARDCODE_GPU
/* The CUDA runtime calls of the failing application (libcudart, as its CUDA build linked). */
int cudaSetDevice(int device);
int cudaMalloc(void** pointer, size_t size);
int cudaFree(void* pointer);
int cudaMemcpy(void* dst, const void* src, size_t count, int kind);
const char* cudaGetErrorString(int error);
#define CUDA_MEMCPY_HOST_TO_DEVICE 1
#define CUDA_MEMCPY_DEVICE_TO_HOST 2
#define VARIANT "gpu"
#else
#define VARIANT "honest"
#endif

#define ELEMENTS 4
#define MAX_POOLS 16

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int signo) {
  (void)signo;
  stop_requested = 1;
}

/* Fail with Triton's own message; the service manager's log keeps it. */
static void check(TRITONSERVER_Error* err, const char* what) {
  if (err != NULL) {
    fprintf(stderr, "embedded_app: %s failed: %s\n", what, TRITONSERVER_ErrorMessage(err));
    TRITONSERVER_ErrorDelete(err);
    exit(1);
  }
}

struct options {
  const char* model_repository;
  const char* backend_directory;
  const char* model;
  long iterations;
  long interval_ms;
  long long pinned_pool; /* -1: Triton's default */
  int cuda_pool_count;
  int cuda_pool_device[MAX_POOLS];
  long long cuda_pool_bytes[MAX_POOLS];
  double min_compute_capability; /* < 0: Triton's default */
  int gpu_metrics;               /* -1: default */
  int peer_access;               /* -1: default */
};

static int parse_bool(const char* flag, const char* value) {
  if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0) return 1;
  if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0) return 0;
  fprintf(stderr, "embedded_app: %s needs true or false, got %s\n", flag, value);
  exit(2);
}

static const char* value_of(const char* arg, const char* flag, int* index, int argc, char** argv) {
  size_t length = strlen(flag);
  if (strncmp(arg, flag, length) != 0) return NULL;
  if (arg[length] == '=') return arg + length + 1;
  if (arg[length] == '\0' && *index + 1 < argc) return argv[++*index];
  return NULL;
}

static void parse(int argc, char** argv, struct options* o) {
  memset(o, 0, sizeof(*o));
  o->model_repository = getenv("TRITONFLEET_MODEL_REPOSITORY");
  o->backend_directory = getenv("TRITONFLEET_BACKEND_DIRECTORY");
  o->model = "add_sub";
  o->interval_ms = 1000;
  o->pinned_pool = -1;
  o->min_compute_capability = -1.0;
  o->gpu_metrics = -1;
  o->peer_access = -1;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* v;
    if ((v = value_of(a, "--model-repository", &i, argc, argv))) {
      o->model_repository = v;
    } else if ((v = value_of(a, "--backend-directory", &i, argc, argv))) {
      o->backend_directory = v;
    } else if ((v = value_of(a, "--model", &i, argc, argv))) {
      o->model = v;
    } else if ((v = value_of(a, "--iterations", &i, argc, argv))) {
      o->iterations = strtol(v, NULL, 10);
    } else if ((v = value_of(a, "--interval-ms", &i, argc, argv))) {
      o->interval_ms = strtol(v, NULL, 10);
    } else if ((v = value_of(a, "--pinned-memory-pool-byte-size", &i, argc, argv))) {
      o->pinned_pool = strtoll(v, NULL, 10);
    } else if ((v = value_of(a, "--cuda-memory-pool-byte-size", &i, argc, argv))) {
      const char* colon = strchr(v, ':');
      if (colon == NULL || o->cuda_pool_count == MAX_POOLS) {
        fprintf(stderr, "embedded_app: --cuda-memory-pool-byte-size needs <gpu>:<bytes>, got %s\n", v);
        exit(2);
      }
      o->cuda_pool_device[o->cuda_pool_count] = atoi(v);
      o->cuda_pool_bytes[o->cuda_pool_count++] = strtoll(colon + 1, NULL, 10);
    } else if ((v = value_of(a, "--min-supported-compute-capability", &i, argc, argv))) {
      o->min_compute_capability = strtod(v, NULL);
    } else if ((v = value_of(a, "--allow-gpu-metrics", &i, argc, argv))) {
      o->gpu_metrics = parse_bool(a, v);
    } else if ((v = value_of(a, "--enable-peer-access", &i, argc, argv))) {
      o->peer_access = parse_bool(a, v);
    } else {
      /* An option this application does not know would be silently dropped otherwise. */
      fprintf(stderr, "embedded_app: unknown option %s\n", a);
      exit(2);
    }
  }
  if (o->model_repository == NULL || o->backend_directory == NULL) {
    fprintf(stderr,
            "embedded_app: no model repository or backend directory: pass --model-repository and "
            "--backend-directory, or set TRITONFLEET_MODEL_REPOSITORY and TRITONFLEET_BACKEND_DIRECTORY\n");
    exit(2);
  }
}

/* ---- response allocator ------------------------------------------------------------------ */

static TRITONSERVER_Error* response_alloc(
    TRITONSERVER_ResponseAllocator* allocator, const char* tensor_name, size_t byte_size,
    TRITONSERVER_MemoryType preferred_type, int64_t preferred_id, void* userp, void** buffer,
    void** buffer_userp, TRITONSERVER_MemoryType* actual_type, int64_t* actual_id) {
  (void)allocator;
  (void)userp;
  *buffer = NULL;
  *buffer_userp = NULL;
#ifdef TRITONFLEET_HARDCODE_GPU
  /* The failing application's allocator: GPU memory whatever Triton prefers. */
  *actual_type = TRITONSERVER_MEMORY_GPU;
  *actual_id = 0;
  if (byte_size > 0) {
    int rc = cudaMalloc(buffer, byte_size);
    if (rc != 0) return TRITONSERVER_ErrorNew(13 /* INTERNAL */, cudaGetErrorString(rc));
  }
#else
  /* Honour Triton's preference; this build has no CUDA, so GPU memory is answered with CPU memory,
     which Triton copies into. */
  *actual_type = preferred_type == TRITONSERVER_MEMORY_GPU ? TRITONSERVER_MEMORY_CPU : preferred_type;
  *actual_id = preferred_type == TRITONSERVER_MEMORY_GPU ? 0 : preferred_id;
  if (byte_size > 0) {
    *buffer = malloc(byte_size);
    if (*buffer == NULL) return TRITONSERVER_ErrorNew(13, "out of memory");
  }
#endif
  fprintf(stdout, "allocator: %s asked %s:%lld, given %s:%lld (%zu bytes)\n", tensor_name,
          TRITONSERVER_MemoryTypeString(preferred_type), (long long)preferred_id,
          TRITONSERVER_MemoryTypeString(*actual_type), (long long)*actual_id, byte_size);
  return NULL;
}

static TRITONSERVER_Error* response_release(
    TRITONSERVER_ResponseAllocator* allocator, void* buffer, void* buffer_userp, size_t byte_size,
    TRITONSERVER_MemoryType memory_type, int64_t memory_type_id) {
  (void)allocator;
  (void)buffer_userp;
  (void)byte_size;
  (void)memory_type_id;
#ifdef TRITONFLEET_HARDCODE_GPU
  if (memory_type == TRITONSERVER_MEMORY_GPU) {
    cudaFree(buffer);
    return NULL;
  }
#else
  (void)memory_type;
#endif
  free(buffer);
  return NULL;
}

/* ---- one request ------------------------------------------------------------------------- */

struct exchange {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int responded;
  int released;
  TRITONSERVER_InferenceResponse* response;
};

static void request_released(TRITONSERVER_InferenceRequest* request, const uint32_t flags, void* userp) {
  struct exchange* x = userp;
  (void)request;
  if ((flags & TRITONSERVER_REQUEST_RELEASE_ALL) == 0) return;
  pthread_mutex_lock(&x->lock);
  x->released = 1;
  pthread_cond_broadcast(&x->changed);
  pthread_mutex_unlock(&x->lock);
}

static void response_complete(TRITONSERVER_InferenceResponse* response, const uint32_t flags, void* userp) {
  struct exchange* x = userp;
  pthread_mutex_lock(&x->lock);
  if (response != NULL) x->response = response;
  if (flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL) x->responded = 1;
  pthread_cond_broadcast(&x->changed);
  pthread_mutex_unlock(&x->lock);
}

static void wait_for(struct exchange* x, int* flag) {
  pthread_mutex_lock(&x->lock);
  while (!*flag) pthread_cond_wait(&x->changed, &x->lock);
  pthread_mutex_unlock(&x->lock);
}

static void* input_buffer(const float* host, size_t bytes, TRITONSERVER_MemoryType* type) {
#ifdef TRITONFLEET_HARDCODE_GPU
  void* device = NULL;
  int rc = cudaMalloc(&device, bytes);
  if (rc == 0) rc = cudaMemcpy(device, host, bytes, CUDA_MEMCPY_HOST_TO_DEVICE);
  if (rc != 0) {
    fprintf(stderr, "embedded_app: cudaMalloc/cudaMemcpy of an input failed: %s\n", cudaGetErrorString(rc));
    exit(1);
  }
  *type = TRITONSERVER_MEMORY_GPU;
  return device;
#else
  (void)bytes;
  *type = TRITONSERVER_MEMORY_CPU;
  return (void*)host;
#endif
}

static void free_input(void* buffer, TRITONSERVER_MemoryType type) {
#ifdef TRITONFLEET_HARDCODE_GPU
  if (type == TRITONSERVER_MEMORY_GPU) cudaFree(buffer);
#else
  (void)buffer;
  (void)type;
#endif
}

/* Infer once; return 0 when both outputs are right. */
static int infer(TRITONSERVER_Server* server, TRITONSERVER_ResponseAllocator* allocator, const char* model, long frame) {
  float in0[ELEMENTS], in1[ELEMENTS];
  for (int i = 0; i < ELEMENTS; ++i) {
    in0[i] = (float)(frame + i + 1);
    in1[i] = (float)(i + 1);
  }
  const int64_t shape[1] = {ELEMENTS};
  struct exchange x = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL};
  TRITONSERVER_InferenceRequest* request = NULL;
  check(TRITONSERVER_InferenceRequestNew(&request, server, model, -1), "TRITONSERVER_InferenceRequestNew");
  check(TRITONSERVER_InferenceRequestSetReleaseCallback(request, request_released, &x), "set release callback");
  check(TRITONSERVER_InferenceRequestSetResponseCallback(request, allocator, NULL, response_complete, &x),
        "set response callback");
  TRITONSERVER_MemoryType type0, type1;
  void* buffer0 = input_buffer(in0, sizeof(in0), &type0);
  void* buffer1 = input_buffer(in1, sizeof(in1), &type1);
  check(TRITONSERVER_InferenceRequestAddInput(request, "INPUT0", TRITONSERVER_TYPE_FP32, shape, 1), "add INPUT0");
  check(TRITONSERVER_InferenceRequestAddInput(request, "INPUT1", TRITONSERVER_TYPE_FP32, shape, 1), "add INPUT1");
  check(TRITONSERVER_InferenceRequestAppendInputData(request, "INPUT0", buffer0, sizeof(in0), type0, 0), "INPUT0 data");
  check(TRITONSERVER_InferenceRequestAppendInputData(request, "INPUT1", buffer1, sizeof(in1), type1, 0), "INPUT1 data");
  check(TRITONSERVER_InferenceRequestAddRequestedOutput(request, "OUTPUT0"), "request OUTPUT0");
  check(TRITONSERVER_InferenceRequestAddRequestedOutput(request, "OUTPUT1"), "request OUTPUT1");
  check(TRITONSERVER_ServerInferAsync(server, request, NULL), "TRITONSERVER_ServerInferAsync");
  wait_for(&x, &x.responded);

  int wrong = 0;
  TRITONSERVER_Error* err = x.response ? TRITONSERVER_InferenceResponseError(x.response) : NULL;
  if (x.response == NULL) {
    fprintf(stderr, "embedded_app: frame %ld: no response\n", frame);
    wrong = 1;
  } else if (err != NULL) {
    /* The response owns its error. */
    fprintf(stderr, "embedded_app: frame %ld: inference failed: %s\n", frame, TRITONSERVER_ErrorMessage(err));
    wrong = 1;
  } else {
    uint32_t count = 0;
    check(TRITONSERVER_InferenceResponseOutputCount(x.response, &count), "output count");
    for (uint32_t o = 0; o < count; ++o) {
      const char* name;
      TRITONSERVER_DataType datatype;
      const int64_t* oshape;
      uint64_t dims;
      const void* base;
      size_t bytes;
      TRITONSERVER_MemoryType memory_type;
      int64_t memory_id;
      void* userp;
      check(TRITONSERVER_InferenceResponseOutput(x.response, o, &name, &datatype, &oshape, &dims, &base, &bytes,
                                                 &memory_type, &memory_id, &userp),
            "read output");
      const float* host = base;
#ifdef TRITONFLEET_HARDCODE_GPU
      float values[ELEMENTS] = {0};
      if (memory_type == TRITONSERVER_MEMORY_GPU) {
        cudaMemcpy(values, base, bytes < sizeof(values) ? bytes : sizeof(values), CUDA_MEMCPY_DEVICE_TO_HOST);
        host = values;
      }
#endif
      int sum = strcmp(name, "OUTPUT0") == 0;
      printf("frame %ld: %s =", frame, name);
      for (int i = 0; i < ELEMENTS && (size_t)i * sizeof(float) < bytes; ++i) {
        float want = sum ? in0[i] + in1[i] : in0[i] - in1[i];
        printf(" %g", host[i]);
        if (host[i] != want) wrong = 1;
      }
      printf(" (%s:%lld)\n", TRITONSERVER_MemoryTypeString(memory_type), (long long)memory_id);
    }
  }
  if (x.response) check(TRITONSERVER_InferenceResponseDelete(x.response), "delete response");
  /* Triton owns the request until it releases it: deleting it earlier crashes the python backend. */
  wait_for(&x, &x.released);
  check(TRITONSERVER_InferenceRequestDelete(request), "delete request");
  free_input(buffer0, type0);
  free_input(buffer1, type1);
  fflush(stdout);
  return wrong;
}

int main(int argc, char** argv) {
  struct options o;
  parse(argc, argv, &o);
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = on_signal;
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);

  uint32_t major = 0, minor = 0;
  check(TRITONSERVER_ApiVersion(&major, &minor), "TRITONSERVER_ApiVersion");
  if (major != TRITONSERVER_API_VERSION_MAJOR) {
    fprintf(stderr, "embedded_app: libtritonserver speaks C API %u.%u, this build needs %d.x\n", major, minor,
            TRITONSERVER_API_VERSION_MAJOR);
    return 1;
  }
#ifdef TRITONFLEET_HARDCODE_GPU
  int rc = cudaSetDevice(0);
  if (rc != 0) {
    fprintf(stderr, "embedded_app: cudaSetDevice(0) failed: %s\n", cudaGetErrorString(rc));
    return 1;
  }
#endif

  TRITONSERVER_ServerOptions* options = NULL;
  check(TRITONSERVER_ServerOptionsNew(&options), "TRITONSERVER_ServerOptionsNew");
  check(TRITONSERVER_ServerOptionsSetModelRepositoryPath(options, o.model_repository), "model repository");
  check(TRITONSERVER_ServerOptionsSetModelControlMode(options, TRITONSERVER_MODEL_CONTROL_EXPLICIT), "control mode");
  check(TRITONSERVER_ServerOptionsSetBackendDirectory(options, o.backend_directory), "backend directory");
  check(TRITONSERVER_ServerOptionsSetStrictModelConfig(options, false), "strict model config");
  /* The C API leaves this count uninitialised (core src/tritonserver.cc): without it a model that
     fails to load is retried an arbitrary number of times. 0 is tritonserver's default. */
  check(TRITONSERVER_ServerOptionsSetModelLoadRetryCount(options, 0), "model load retry count");
  if (o.pinned_pool >= 0)
    check(TRITONSERVER_ServerOptionsSetPinnedMemoryPoolByteSize(options, (uint64_t)o.pinned_pool), "pinned pool");
  for (int i = 0; i < o.cuda_pool_count; ++i)
    check(TRITONSERVER_ServerOptionsSetCudaMemoryPoolByteSize(options, o.cuda_pool_device[i],
                                                              (uint64_t)o.cuda_pool_bytes[i]),
          "CUDA pool");
  if (o.min_compute_capability >= 0)
    check(TRITONSERVER_ServerOptionsSetMinSupportedComputeCapability(options, o.min_compute_capability),
          "minimum compute capability");
  if (o.gpu_metrics >= 0)
    check(TRITONSERVER_ServerOptionsSetGpuMetrics(options, o.gpu_metrics), "GPU metrics");
  if (o.peer_access >= 0)
    check(TRITONSERVER_ServerOptionsSetEnablePeerAccess(options, o.peer_access), "peer access");

  TRITONSERVER_Server* server = NULL;
  check(TRITONSERVER_ServerNew(&server, options), "TRITONSERVER_ServerNew");
  check(TRITONSERVER_ServerOptionsDelete(options), "TRITONSERVER_ServerOptionsDelete");
  check(TRITONSERVER_ServerLoadModel(server, o.model), "TRITONSERVER_ServerLoadModel");
  bool ready = false;
  check(TRITONSERVER_ServerModelIsReady(server, o.model, -1, &ready), "TRITONSERVER_ServerModelIsReady");
  if (!ready) {
    fprintf(stderr, "embedded_app: model %s is not ready after loading\n", o.model);
    return 1;
  }
  printf("embedded_app (%s variant): Triton C API %u.%u, model %s ready\n", VARIANT, major, minor, o.model);
  fflush(stdout);

  TRITONSERVER_ResponseAllocator* allocator = NULL;
  check(TRITONSERVER_ResponseAllocatorNew(&allocator, response_alloc, response_release, NULL), "allocator");
  int status = 0;
  for (long frame = 0; !stop_requested && (o.iterations == 0 || frame < o.iterations); ++frame) {
    if (infer(server, allocator, o.model, frame) != 0) {
      status = 1;
      break;
    }
    struct timespec pause = {o.interval_ms / 1000, (o.interval_ms % 1000) * 1000000L};
    while (!stop_requested && o.iterations != frame + 1 && nanosleep(&pause, &pause) == -1 && errno == EINTR) {
    }
  }
  check(TRITONSERVER_ResponseAllocatorDelete(allocator), "delete allocator");
  check(TRITONSERVER_ServerStop(server), "TRITONSERVER_ServerStop");
  check(TRITONSERVER_ServerDelete(server), "TRITONSERVER_ServerDelete");
  printf("embedded_app: stopped\n");
  return status;
}
