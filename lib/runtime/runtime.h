/* Internal runtime of fewcl: errors, device context, programs, arena, tensors, launches.
 * Everything here is private to the library (and its tests); the public API is fewcl.h. */
#ifndef FEWCL_RUNTIME_H
#define FEWCL_RUNTIME_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120 /* OpenCL 1.2 API: what every driver offers */
#endif
#include <CL/cl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "fewcl/fewcl.h"

/* ---- errors (status.c) ------------------------------------------------------------------ */

/* Records a message for fewcl_last_error() and returns `s`. */
fewcl_status fcl_fail(fewcl_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records "<what>: OpenCL error CL_... (code)" and returns FEWCL_ERR_OPENCL
 * (FEWCL_ERR_OUT_OF_MEMORY for the allocation failures). */
fewcl_status fcl_fail_cl(cl_int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with context ("linear forward x[8,64]: "). Returns `s`. */
fewcl_status fcl_wrap(fewcl_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *fcl_cl_error_name(cl_int err);

#define FCL_TRY(expr)                                                                              \
    do {                                                                                           \
        fewcl_status fcl_try_s_ = (expr);                                                          \
        if (fcl_try_s_ != FEWCL_OK) return fcl_try_s_;                                             \
    } while (0)

/* Internal invariant: a failure is a bug in fewcl, reported with file:line. */
#define FCL_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return fcl_fail(FEWCL_ERR_INTERNAL, "%s:%d: invariant failed: %s", __FILE__, __LINE__, \
                            #cond);                                                                \
    } while (0)

/* ---- devices (device.c) ----------------------------------------------------------------- */

/* Fills `info` for one device. */
void fcl_device_query(cl_platform_id p, cl_device_id d, int pi, int di, fewcl_device_info *info);
/* Resolves a device choice (see fewcl_context_create). */
/* Appends one line per device ("\n  P:D  platform — name (GPU|CPU|other)") to the string in
 * buf: the device list that errors naming a device show. */
void fcl_device_list_describe(const fewcl_device_info *list, int n, char *buf, size_t cap);
fewcl_status fcl_device_select(const char *spec, cl_platform_id *platform, cl_device_id *device,
                               fewcl_device_info *info);
/* A device list (device_list.c): "all" (every GPU, else every CPU device, each physical device
 * once) or "P:D,P:D,..." (in order; an entry may repeat). *out (count entries) is freed with
 * fewcl_free_device_list. A bad entry is FEWCL_ERR_ARGUMENT or FEWCL_ERR_NO_DEVICE, naming it
 * and listing the devices. */
fewcl_status fcl_device_list_parse(const char *text, fewcl_device_info **out, int *count);

/* ---- context (context.c) ---------------------------------------------------------------- */

/* The limits kernels must respect: the device's, or tighter under FEWCL_DEVICE_PROFILE. */
typedef struct fcl_limits {
    size_t max_work_group;
    size_t max_items[3]; /* CL_DEVICE_MAX_WORK_ITEM_SIZES */
    size_t local_mem;
    size_t max_alloc;
    size_t global_mem;
    size_t base_align;   /* bytes: CL_DEVICE_MEM_BASE_ADDR_ALIGN / 8 */
    size_t simd;         /* the SIMD width (warp, wavefront) work-groups are scheduled in */
    const char *profile; /* FEWCL_DEVICE_PROFILE's name, or NULL */
    /* Kernels where one work-item loops over a row (CPU devices: PoCL pays ~10 ns per
     * work-item) rather than one work-item per element (GPUs; any FEWCL_DEVICE_PROFILE). */
    int row_kernels;
} fcl_limits;

/* Imposes a FEWCL_DEVICE_PROFILE family's limits (and its GPU kernel variants) on `l`:
 * a plan for another device (lib/plan). NULL or "": nothing changes. */
fewcl_status fcl_limits_apply_profile(fcl_limits *l, const char *name);

#define FCL_MAX_PROGRAMS 32
#define FCL_MAX_KERNELS 256

typedef struct fcl_program {
    char family[32]; /* "elementwise" for cl/elementwise.cl */
    char options[256];
    cl_program program;
} fcl_program;

/* The most arguments a kernel's kinds are recorded for (the widest takes 19). */
#define FCL_MAX_KERNEL_ARGS 32

typedef struct fcl_kernel_entry {
    const fcl_program *program;
    char name[64];
    cl_kernel kernel;
    size_t max_wg;       /* CL_KERNEL_WORK_GROUP_SIZE (register use), within the limits */
    size_t local_static; /* CL_KERNEL_LOCAL_MEM_SIZE before any argument is set */
    size_t local_args;   /* the local-memory arguments of the last fcl_args, bytes */
    double profile_ms;   /* accumulated device time when profiling */
    long launches;
    /* With ctx->check_args: each argument's kind from clGetKernelArgInfo, as fcl_args checks
     * them: 'g' global pointer, 'l' local pointer, 'u' uint, 'i' int, 'f' float, '?' other.
     * Empty when the driver gives no argument information (nothing is checked then). */
    char arg_kinds[FCL_MAX_KERNEL_ARGS + 1];
} fcl_kernel_entry;

/* A kernel as the code that launches it names it: declared once per kernel (static, in the op's
 * file) and resolved once per context by fcl_kernel_get, which afterwards is an array index.
 *   static fcl_kernel_handle k_fill = FCL_KERNEL_HANDLE("elementwise", "fill");
 * `options` are build options (NULL: none); options_of, when set, writes options that depend
 * on the context (device limits) instead. `rows`: the kernel has a `name`_rows variant (one
 * work-item per row), used where ctx->limits.row_kernels is set (same arguments). */
typedef struct fcl_kernel_handle {
    const char *family, *name;
    const char *options;
    void (*options_of)(const fewcl_context *ctx, char *buf, size_t cap);
    int rows;
    atomic_int slot; /* 1 + the handle's index in every context's table (0: none yet) */
} fcl_kernel_handle;

#define FCL_KERNEL_HANDLE(family, name)                                                            \
    { (family), (name), NULL, NULL, 0, 0 }
#define FCL_KERNEL_ROWS_HANDLE(family, name)                                                       \
    { (family), (name), NULL, NULL, 1, 0 }

typedef struct fcl_cache_stats {
    int hits, misses, stores;
    double build_ms; /* wall time spent creating programs (source or binary) */
} fcl_cache_stats;

struct fcl_arena;

struct fewcl_context {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    fewcl_device_info info;
    fcl_limits limits;
    int profiling;
    int dry_run; /* planning: launches and GEMMs are skipped, allocations only counted */
    int cache_enabled;
    int gemm_tuned; /* CLBlast tuning applied (lib/ops/gemm_tuning.c) */
    int gemm_path;  /* 0 not chosen yet, else FCL_GEMM_CLBLAST, _TILED or _HOST (gemm_host.h) */
    double gemm_profile_ms; /* when profiling: time in GEMMs (device time or host wall time) */
    long gemm_calls;
    double host_profile_ms; /* when profiling: other host work of the host path (im2col...) */
    char cache_dir[512];
    fcl_cache_stats cache;
    fcl_program programs[FCL_MAX_PROGRAMS];
    int n_programs;
    fcl_kernel_entry kernels[FCL_MAX_KERNELS];
    int n_kernels;
    fcl_kernel_entry *by_handle[FCL_MAX_KERNELS]; /* by fcl_kernel_handle.slot − 1 */
    /* Debug check of every fcl_args against the kernel's argument kinds: on in builds with
     * FEWCL_CHECK_ARGS (CMake's Debug builds), or when the environment variable
     * FEWCL_CHECK_ARGS=1. Programs are then built from source with -cl-kernel-arg-info (the
     * binary cache keeps no argument information). */
    int check_args;
    struct fcl_arena *arena;
    struct fcl_arena *real_arena; /* set while planning: the arena set aside (lib/plan) */
    /* While planning for another device: the context's own limits and GEMM path, set aside
     * while the plan runs that device's kernels and workspaces. */
    fcl_limits own_limits;
    int own_gemm_path;
    /* The convolution's algorithm choice (lib/ops/conv_algo.c): its state, and how the
     * context frees it (the runtime knows nothing more of it). */
    void *conv_state;
    void (*conv_state_free)(void *state);
    /* clFFT's plans for the FFT convolution (lib/ops/conv_fft_plans.c), likewise opaque. */
    void *fft_state;
    void (*fft_state_free)(void *state);
};

/* The kernel of a handle on this context: the first call per context looks it up by name
 * (fcl_kernel), later ones read it from ctx->by_handle. */
fewcl_status fcl_kernel_get(fewcl_context *ctx, fcl_kernel_handle *h, fcl_kernel_entry **out);

/* The kernel `name` of cl/<family>.cl, compiled (once) with `options` added to the defaults:
 * a search by name over the context's kernels. Launch code uses handles (fcl_kernel_get);
 * this is how a handle is resolved. */
fewcl_status fcl_kernel(fewcl_context *ctx, const char *family, const char *options,
                        const char *name, fcl_kernel_entry **out);

/* ---- programs (program.c) --------------------------------------------------------------- */

/* Source of cl/<family>.cl: from FEWCL_KERNEL_DIR if set, else the embedded copy.
 * The caller frees the returned string. */
fewcl_status fcl_kernel_source(const char *family, char **source, size_t *len);
/* Builds a program from source, going through the on-disk binary cache. */
fewcl_status fcl_program_build(fewcl_context *ctx, const char *label, const char *source,
                               size_t len, const char *options, cl_program *out);
/* The cache key (64 hex chars + NUL) for a source/options on this context's device. */
void fcl_program_cache_key(const fewcl_context *ctx, const char *source, size_t len,
                           const char *options, char key[65]);

/* The temporary name a file is written under before its rename over `path`:
 * `path`.tmp.<pid>.<thread>.<n>, unique per process, thread and call (two threads of one
 * process replacing the same file must not share it; program.c). */
void fcl_temp_path(const char *path, char *out, size_t cap);

/* Creates a folder and its missing parents (mkdir -p, mode 0755); -1 with errno set on failure
 * (program.c). */
int fcl_mkdirs(const char *dir);

/* ---- launches (launch.c) ---------------------------------------------------------------- */

/* Sets kernel arguments from a format: 't' tensor (fcl_tensor*: buffer then uint element
 * offset, i.e. two arguments), 'i' int, 'u' unsigned, 'f' float (passed as double),
 * 'L' local memory of size_t bytes. With ctx->check_args, a format that does not match the
 * kernel's parameters (kind or count) fails naming the kernel and the argument's index. */
fewcl_status fcl_args(fcl_kernel_entry *k, const char *fmt, ...);
/* Enqueues over `dims` dimensions; global sizes are rounded up to the local size
 * (lws NULL: let the driver choose). Kernels must bounds-check. */
fewcl_status fcl_launch(fewcl_context *ctx, fcl_kernel_entry *k, int dims, const size_t *gws,
                        const size_t *lws);
/* Work-group size for a 1-D launch: min(256, device limit), a power of two. */
size_t fcl_wg_1d(const fewcl_context *ctx);
/* fcl_wg_1d for kernel k: also within what k's register use allows. */
size_t fcl_kernel_wg_1d(const fewcl_context *ctx, const fcl_kernel_entry *k);
/* The side of a square 2-D work-group for kernel k: 16 (256 items), or less where k allows
 * fewer items. */
size_t fcl_kernel_wg_side(const fewcl_context *ctx, const fcl_kernel_entry *k);

/* The most loop iterations (all loops together, loop exits included) one work-item of a launch
 * may run. Mesa's llvmpipe (rusticl's software device) silently ends every loop of an
 * invocation once they have run 65535 iterations in all (gallivm's loop limiter,
 * LP_MAX_TGSI_LOOP_ITERATIONS, counted per 8-lane SIMD group), so a kernel whose items loop
 * longer than this splits its work over launches; the margin covers rough counts. */
#define FCL_ITEM_LOOP_BUDGET 60000

#endif
