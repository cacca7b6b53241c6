/* fewcl — few-shot image classification on any OpenCL device.
 *
 * Public C API: this header (status codes, versions, devices, contexts) and, included below,
 * fewcl/model.h (models, images, embeddings, enrolment and classification) and fewcl/jobs.h
 * (training, testing, memory plans). docs/api.md walks through them with tested examples.
 *
 * Conventions, for every function of the API:
 * - It returns a fewcl_status (or a plain value that cannot fail); on failure
 *   fewcl_last_error() holds a message naming the operation, the argument, shape or file
 *   involved and a hint. Outputs are untouched or zeroed on failure. The library never exits
 *   or aborts the process; a NULL where an object is required is FEWCL_ERR_ARGUMENT.
 * - Ownership: what a *_create / *_load / *_enroll / *_list function returns belongs to the
 *   caller, who frees it with the matching *_destroy / *_free (NULL is accepted there). Input
 *   arrays and strings are only read during the call (copied if kept). Output arrays are the
 *   caller's, of the size the function states.
 * - Lifetimes: a model borrows its context, an enrolment borrows its model: destroy them in
 *   reverse order of creation.
 * - Threads: a context and everything made from it (models, enrolments) may be used by one
 *   thread at a time; distinct contexts may be used from distinct threads at once, on the same
 *   device or not. fewcl_last_error() is per thread. Functions that take no context (versions,
 *   defaults, status names, image preparation, device listing) may be called from any thread.
 * - Parameter structs start with `struct_size`: fill them with the matching *_default
 *   function, passing sizeof the struct, then change fields. A library built later with more
 *   fields reads only the struct_size bytes the caller knows (the rest keep their defaults), so
 *   programs keep working across versions. FEWCL_API_VERSION only grows: a program may check
 *   fewcl_api_version() >= the version it was written for.
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

/* Exported from libfewcl.so; everything else in the library is hidden. */
#if defined(FEWCL_BUILDING_LIBRARY) && defined(__GNUC__)
#define FEWCL_API __attribute__((visibility("default")))
#else
#define FEWCL_API
#endif
#ifdef __GNUC__
#define FEWCL_NORETURN __attribute__((noreturn))
#else
#define FEWCL_NORETURN
#endif

#define FEWCL_VERSION "0.1.0"
/* The API's version: raised whenever a function, field or value is added, never lowered.
 * 2: names of settings, config sizes and differences, reading a weights file's config,
 * loading for another episode shape, datasets, run folders, plan targets, sizes, glyph data,
 * image dimensions; the epoch metrics' speeds and device peak; train/test on open datasets.
 * 3: scale-out (issue 16): the meta-batch of training and plans (fewcl_train_params.meta_batch,
 * fewcl_plan_params.meta_batch, fewcl_run_meta_batch), and what docs/api.md marks "API 3". */
#define FEWCL_API_VERSION 3

/* The library's version ("0.1.0") and API version, as built (may be newer than the header). */
FEWCL_API const char *fewcl_version(void);
FEWCL_API int fewcl_api_version(void);

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

/* Short name of a status code, e.g. "out of memory" (a static string). Any thread. */
FEWCL_API const char *fewcl_status_name(fewcl_status s);
/* Message of the last failure on this thread (empty when none); valid until this thread's next
 * fewcl call. */
FEWCL_API const char *fewcl_last_error(void);

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

/* All devices of all platforms: *out (count entries) is the caller's, freed with
 * fewcl_free_device_list. Any thread. */
FEWCL_API fewcl_status fewcl_list_devices(fewcl_device_info **out, int *count);
FEWCL_API void fewcl_free_device_list(fewcl_device_info *list);
/* API 3. The devices of a list as `--devices` takes it: "all" (every GPU, else every CPU device;
 * a device two platforms show is counted once) or "P:D,P:D,..." in order (an entry may repeat:
 * "0:0,0:0" runs two replicas on one device). *out (count entries) is freed with
 * fewcl_free_device_list. A bad entry: FEWCL_ERR_ARGUMENT (not P:D) or FEWCL_ERR_NO_DEVICE
 * (no such device), the message naming it and listing the devices. Any thread. */
FEWCL_API fewcl_status fewcl_parse_device_list(const char *list, fewcl_device_info **out,
                                               int *count);

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
FEWCL_API fewcl_status fewcl_context_create(const char *device, fewcl_context **out);
/* Frees the context and its device memory; destroy its models (and their enrolments) first. */
FEWCL_API void fewcl_context_destroy(fewcl_context *ctx);
/* The device the context runs on (owned by the context, valid until it is destroyed). */
FEWCL_API const fewcl_device_info *fewcl_context_device(const fewcl_context *ctx);
/* Turn per-kernel profiling on or off (off by default: it synchronises every launch). */
FEWCL_API void fewcl_context_set_profiling(fewcl_context *ctx, int on);
/* Wait for all queued device work. */
FEWCL_API fewcl_status fewcl_finish(fewcl_context *ctx);

/* ---- several processes: MPI (API 3) ------------------------------------------------------- */

/* Where this process stands in a job that mpirun or srun launched (docs/distributed.md). */
typedef struct fewcl_dist_info {
    size_t struct_size;
    int rank, size;             /* this process's rank among size ranks: 0 of 1 without MPI */
    int local_rank, local_size; /* among the ranks of this host */
    int mpi_built;              /* this library was built with MPI (-DFEWCL_MPI) */
    int mpi_active;             /* MPI is running in this process */
    char host[256];
} fewcl_dist_info;

/* Call first in main (before other threads start), with main's argc/argv. When a launcher
 * (mpirun, srun) started the process and the library has MPI, starts MPI (thread level
 * serialised: one thread of the process calls the distributed functions at a time) unless the
 * program started it already; a plain run never starts MPI. Fills info (may be NULL; set its
 * struct_size). A launch of several ranks with a library built without MPI is
 * FEWCL_ERR_ARGUMENT (each rank would run alone). Jobs with `distributed` set then split their
 * work over the ranks (fewcl_test_params). */
FEWCL_API fewcl_status fewcl_dist_init(int *argc, char ***argv, fewcl_dist_info *info);
/* Ends MPI if fewcl_dist_init started it (call last, on every rank); otherwise nothing. */
FEWCL_API void fewcl_dist_finalize(void);
/* The one function that ends the process: prints "fewcl: rank R of S (host H): msg" on stderr
 * and ends every rank of the job (MPI_Abort; exit(code) without MPI). For a failure of one rank
 * outside a distributed job (e.g. a file only this rank cannot read); inside one, the job's
 * status already reaches every rank. */
FEWCL_API FEWCL_NORETURN void fewcl_dist_abort(int code, const char *msg);
/* Every rank of the job passes `bytes` bytes and receives every rank's, in rank order, in
 * all[0 .. size × bytes): for a tool that reports one table for the whole job (`fewcl plan`
 * under mpirun). Every rank must call it; one rank alone (no MPI): a copy. */
FEWCL_API fewcl_status fewcl_dist_allgather(const void *mine, size_t bytes, void *all);

#ifdef __cplusplus
}
#endif

#include "fewcl/jobs.h"
#include "fewcl/model.h"

#endif
