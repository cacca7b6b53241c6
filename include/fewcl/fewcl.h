/* fewcl — few-shot image classification on any OpenCL device.
 *
 * Public C API. Every call returns a fewcl_status; on failure fewcl_last_error()
 * holds a message naming the operation, the shapes or file involved and a hint.
 * The library never exits the process.
 *
 * Example: list the devices, then open the default one.
 *
 *     fewcl_device_info *devs; int n;
 *     if (fewcl_list_devices(&devs, &n) != FEWCL_OK) { puts(fewcl_last_error()); return 1; }
 *     for (int i = 0; i < n; i++) printf("%d:%d %s\n", devs[i].platform_index,
 *                                        devs[i].device_index, devs[i].name);
 *     fewcl_free_device_list(devs);
 *
 *     fewcl_context *ctx;
 *     if (fewcl_context_create(NULL, &ctx) != FEWCL_OK) { puts(fewcl_last_error()); return 1; }
 *     ...
 *     fewcl_context_destroy(ctx);
 */
#ifndef FEWCL_FEWCL_H
#define FEWCL_FEWCL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FEWCL_VERSION "0.1.0"

typedef enum fewcl_status {
    FEWCL_OK = 0,
    FEWCL_ERR_ARGUMENT,      /* a caller passed a bad value (shape, flag, size) */
    FEWCL_ERR_NO_DEVICE,     /* no OpenCL device, or the requested one does not exist */
    FEWCL_ERR_OPENCL,        /* an OpenCL call failed */
    FEWCL_ERR_BUILD,         /* a kernel did not compile; the message holds the build log */
    FEWCL_ERR_OUT_OF_MEMORY, /* host or device memory (or FEWCL_MEM_LIMIT) exhausted */
    FEWCL_ERR_IO,            /* a file could not be read or written */
    FEWCL_ERR_FORMAT,        /* a file is corrupt or of the wrong kind */
    FEWCL_ERR_NUMERIC,       /* a numerical failure (non-SPD matrix, NaN) */
    FEWCL_ERR_INTERNAL,      /* a broken invariant inside fewcl: a bug, please report */
    FEWCL_ERR_INTERRUPTED    /* stopped on request (Ctrl-C) after saving what was done */
} fewcl_status;

/* Short name of a status code, e.g. "out of memory". */
const char *fewcl_status_name(fewcl_status s);
/* Message of the last failure on this thread (empty when none). */
const char *fewcl_last_error(void);

/* ---- devices --------------------------------------------------------------------------- */

typedef struct fewcl_device_info {
    int platform_index, device_index; /* the "P:D" index accepted by --device */
    char platform[128];
    char name[128];
    char vendor[128];
    char device_version[128]; /* e.g. "OpenCL 3.0 CUDA" */
    char c_version[128];      /* OpenCL C version */
    char driver_version[128];
    int is_gpu, is_cpu;
    unsigned compute_units;
    unsigned clock_mhz;
    uint64_t global_mem; /* bytes */
    uint64_t max_alloc;  /* CL_DEVICE_MAX_MEM_ALLOC_SIZE, bytes */
    uint64_t local_mem;  /* bytes */
    size_t max_work_group;
    int fp16, fp64;
} fewcl_device_info;

/* All devices of all platforms. Free the list with fewcl_free_device_list. */
fewcl_status fewcl_list_devices(fewcl_device_info **out, int *count);
void fewcl_free_device_list(fewcl_device_info *list);

/* ---- context --------------------------------------------------------------------------- */

typedef struct fewcl_context fewcl_context;

/* Opens a device. `device` is "P:D" (platform:device index), or a case-insensitive substring
 * of the platform, vendor or device name ("nvidia", "pocl"), or NULL/"" for the FEWCL_DEVICE
 * environment variable, else the first GPU, else the first CPU device.
 * Environment: FEWCL_DEVICE_PROFILE=gpu|amd-like|intel-like imposes a GPU family's limits
 * (256-item work-groups; 48, 32 or 64 KiB of local memory) and takes the GPU kernel variants,
 * to test GPU limits on a CPU device (another name is an error); FEWCL_MEM_LIMIT=bytes[K|M|G]
 * caps device memory; FEWCL_CACHE_DIR / FEWCL_CACHE=off control the program-binary cache;
 * FEWCL_KERNEL_DIR loads kernels from disk instead of the embedded copies. */
fewcl_status fewcl_context_create(const char *device, fewcl_context **out);
void fewcl_context_destroy(fewcl_context *ctx);
/* The device the context runs on. */
const fewcl_device_info *fewcl_context_device(const fewcl_context *ctx);
/* Turn per-kernel profiling on or off (off by default: it synchronises every launch). */
void fewcl_context_set_profiling(fewcl_context *ctx, int on);
/* Wait for all queued device work. */
fewcl_status fewcl_finish(fewcl_context *ctx);

#ifdef __cplusplus
}
#endif
#endif
