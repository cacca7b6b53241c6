/* Device context: OpenCL context and in-order queue, effective limits, the arena, and the
 * per-context table of compiled programs and kernels. A context is used by one thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "runtime.h"

/* FEWCL_DEVICE_PROFILE=<name>: a GPU family's typical limits imposed on the device, which then
 * also takes the GPU kernel variants, so that kernels written and tested on PoCL (4096-item
 * groups, 1 MiB+ of local memory) also fit real GPUs; fcl_launch enforces the limits. */
typedef struct device_profile {
    const char *name;
    size_t work_group; /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    size_t local_mem;  /* CL_DEVICE_LOCAL_MEM_SIZE, bytes */
    size_t simd;       /* CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE: the SIMD width */
} device_profile;

static const device_profile profiles[] = {
    /* A typical discrete GPU (NVIDIA): 48 KiB of static shared memory per block, warps of 32,
     * and 256 of the 1024 items a block may hold. */
    {"gpu", 256, 48 * 1024, 32},
    /* AMD GCN/CDNA under ROCm: 256-item work-groups (the OpenCL runtime's default
     * GPU_MAX_WORKGROUP_SIZE; HIP allows 1024), wavefronts of 64 (clinfo: "Preferred work
     * group size multiple (kernel) 64"). The LDS holds 64 KiB per work-group; 32 KiB is
     * stricter: TeraScale's LDS, and what rusticl's llvmpipe reports. */
    {"amd-like", 256, 32 * 1024, 64},
    /* Intel Gen9-Gen11 iGPUs (compute-runtime): 256-item work-groups, 64 KiB of shared local
     * memory per subslice (Intel's OpenCL optimization guide); the compiler picks SIMD8, 16 or
     * 32 per kernel, SIMD8 for the largest register use: multiples of 8. */
    {"intel-like", 256, 64 * 1024, 8},
};

static fewcl_status find_profile(const char *name, const device_profile **out) {
    *out = NULL;
    if (!name || !*name) return FEWCL_OK;
    for (size_t i = 0; i < sizeof profiles / sizeof *profiles; i++)
        if (strcmp(name, profiles[i].name) == 0) {
            *out = &profiles[i];
            return FEWCL_OK;
        }
    return fcl_fail(FEWCL_ERR_ARGUMENT,
                    "FEWCL_DEVICE_PROFILE='%s' is not a device profile (gpu, amd-like, intel-like; "
                    "unset for the device's own limits)",
                    name);
}

/* The SIMD width kernels are scheduled in, where no profile sets it: the device's preferred
 * multiple (OpenCL 3.0), else by vendor (AMD wavefronts of 64, NVIDIA warps of 32, Intel
 * SIMD8-32: 8), else 1. */
static size_t default_simd(const fewcl_context *ctx) {
    size_t multiple = 0;
    if (clGetDeviceInfo(ctx->device, 0x1067 /* CL_DEVICE_PREFERRED_WORK_GROUP_SIZE_MULTIPLE */,
                        sizeof multiple, &multiple, NULL) == CL_SUCCESS &&
        multiple > 0)
        return multiple;
    cl_uint vendor = 0;
    clGetDeviceInfo(ctx->device, CL_DEVICE_VENDOR_ID, sizeof vendor, &vendor, NULL);
    switch (vendor) {
    case 0x1002: return 64;
    case 0x10de: return 32;
    case 0x8086: return ctx->info.is_gpu ? 8 : 1;
    default: return 1;
    }
}

static fewcl_status effective_limits(fewcl_context *ctx) {
    const device_profile *profile;
    FCL_TRY(find_profile(getenv("FEWCL_DEVICE_PROFILE"), &profile));
    fcl_limits *l = &ctx->limits;
    cl_uint align_bits = 1024;
    clGetDeviceInfo(ctx->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits,
                    NULL);
    l->base_align = align_bits / 8;
    l->max_work_group = ctx->info.max_work_group;
    l->local_mem = ctx->info.local_mem;
    l->max_alloc = ctx->info.max_alloc;
    l->global_mem = ctx->info.global_mem;
    for (int i = 0; i < 3; i++)
        l->max_items[i] = l->max_work_group;
    clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof l->max_items, l->max_items,
                    NULL);
    l->simd = profile ? profile->simd : default_simd(ctx);
    l->profile = profile ? profile->name : NULL;
    l->row_kernels = ctx->info.is_cpu && !ctx->info.is_gpu && !profile;
    if (profile) {
        if (l->max_work_group > profile->work_group) l->max_work_group = profile->work_group;
        if (l->local_mem > profile->local_mem) l->local_mem = profile->local_mem;
    }
    return FEWCL_OK;
}

fewcl_status fcl_limits_apply_profile(fcl_limits *l, const char *name) {
    const device_profile *profile;
    FCL_TRY(find_profile(name, &profile));
    if (!profile) return FEWCL_OK;
    l->profile = profile->name;
    l->simd = profile->simd;
    l->row_kernels = 0;
    if (l->max_work_group > profile->work_group) l->max_work_group = profile->work_group;
    if (l->local_mem > profile->local_mem) l->local_mem = profile->local_mem;
    return FEWCL_OK;
}

static void choose_cache_dir(fewcl_context *ctx) {
    const char *off = getenv("FEWCL_CACHE");
    const char *dir = getenv("FEWCL_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    ctx->cache_enabled = 1;
    if (off && (strcmp(off, "off") == 0 || strcmp(off, "0") == 0))
        ctx->cache_enabled = 0;
    else if (dir && *dir)
        snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s", dir);
    else if (xdg && *xdg)
        snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s/fewcl", xdg);
    else if (home && *home)
        snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s/.cache/fewcl", home);
    else
        ctx->cache_enabled = 0;
}

fewcl_status fewcl_context_create(const char *device, fewcl_context **out) {
    *out = NULL;
    fewcl_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "creating a context");
    fewcl_status s = fcl_device_select(device, &ctx->platform, &ctx->device, &ctx->info);
    cl_int err = CL_SUCCESS;
    if (s == FEWCL_OK) {
        ctx->context = clCreateContext(NULL, 1, &ctx->device, NULL, NULL, &err);
        if (err != CL_SUCCESS) s = fcl_fail_cl(err, "creating a context on %s", ctx->info.name);
    }
    if (s == FEWCL_OK) {
        ctx->queue =
            clCreateCommandQueue(ctx->context, ctx->device, CL_QUEUE_PROFILING_ENABLE, &err);
        if (err != CL_SUCCESS) s = fcl_fail_cl(err, "creating a queue on %s", ctx->info.name);
    }
    size_t limit = 0;
    const char *limit_env = getenv("FEWCL_MEM_LIMIT");
    if (s == FEWCL_OK && limit_env && *limit_env && fcl_parse_bytes(limit_env, &limit) != 0)
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "FEWCL_MEM_LIMIT='%s' is not a size (examples: 1073741824, 512M, 2G)",
                     limit_env);
    if (s == FEWCL_OK) s = effective_limits(ctx);
#ifdef FEWCL_CHECK_ARGS
    ctx->check_args = 1;
#endif
    const char *check = getenv("FEWCL_CHECK_ARGS");
    if (check && *check) ctx->check_args = strcmp(check, "0") != 0;
    if (s == FEWCL_OK) {
        choose_cache_dir(ctx);
        s = fcl_arena_create(ctx, &ctx->limits, limit, &ctx->arena);
    }
    if (s != FEWCL_OK) {
        fewcl_context_destroy(ctx);
        return s;
    }
    *out = ctx;
    return FEWCL_OK;
}

void fewcl_context_destroy(fewcl_context *ctx) {
    if (!ctx) return;
    if (ctx->queue) clFinish(ctx->queue);
    if (ctx->conv_state_free) ctx->conv_state_free(ctx->conv_state);
    if (ctx->fft_state_free) ctx->fft_state_free(ctx->fft_state);
    for (int i = 0; i < ctx->n_kernels; i++)
        clReleaseKernel(ctx->kernels[i].kernel);
    for (int i = 0; i < ctx->n_programs; i++)
        clReleaseProgram(ctx->programs[i].program);
    if (ctx->real_arena) fcl_arena_destroy(ctx->real_arena); /* destroyed while planning */
    fcl_arena_destroy(ctx->arena);
    if (ctx->queue) clReleaseCommandQueue(ctx->queue);
    if (ctx->context) clReleaseContext(ctx->context);
    free(ctx);
}

const fewcl_device_info *fewcl_context_device(const fewcl_context *ctx) { return &ctx->info; }

void fewcl_context_set_profiling(fewcl_context *ctx, int on) { ctx->profiling = on; }

fewcl_status fewcl_finish(fewcl_context *ctx) {
    cl_int err = clFinish(ctx->queue);
    if (err != CL_SUCCESS) return fcl_fail_cl(err, "waiting for the device");
    return FEWCL_OK;
}

static fewcl_status get_program(fewcl_context *ctx, const char *family, const char *options,
                                fcl_program **out) {
    for (int i = 0; i < ctx->n_programs; i++) {
        fcl_program *p = &ctx->programs[i];
        if (strcmp(p->family, family) == 0 && strcmp(p->options, options) == 0) {
            *out = p;
            return FEWCL_OK;
        }
    }
    if (ctx->n_programs == FCL_MAX_PROGRAMS)
        return fcl_fail(FEWCL_ERR_INTERNAL, "more than %d kernel programs", FCL_MAX_PROGRAMS);
    fcl_program *p = &ctx->programs[ctx->n_programs];
    snprintf(p->family, sizeof p->family, "%s", family);
    snprintf(p->options, sizeof p->options, "%s", options);
    /* Every program is cl/common.cl (shared helpers) followed by the family's file; the
     * #line directive keeps the compiler's line numbers those of the family's file. */
    char *common, *own, *source;
    size_t common_len, own_len;
    FCL_TRY(fcl_kernel_source("common", &common, &common_len));
    fewcl_status got = fcl_kernel_source(family, &own, &own_len);
    if (got != FEWCL_OK) {
        free(common);
        return got;
    }
    char line[96];
    int line_len = snprintf(line, sizeof line, "\n#line 1\n");
    size_t len = common_len + (size_t)line_len + own_len;
    source = malloc(len + 1);
    if (source) {
        memcpy(source, common, common_len);
        memcpy(source + common_len, line, (size_t)line_len);
        memcpy(source + common_len + line_len, own, own_len + 1);
    }
    free(common);
    free(own);
    if (!source) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "kernel source %s", family);
    /* NVIDIA's driver reports OpenCL C 1.2: pin the language so every device compiles the
     * same dialect. */
    char full[512];
    snprintf(full, sizeof full, "-cl-std=CL1.2%s %s", ctx->check_args ? " -cl-kernel-arg-info" : "",
             options);
    char label[64];
    snprintf(label, sizeof label, "cl/%s.cl", family);
    fewcl_status s = fcl_program_build(ctx, label, source, len, full, &p->program);
    free(source);
    FCL_TRY(s);
    ctx->n_programs++;
    *out = p;
    return FEWCL_OK;
}

/* The kinds fcl_args checks (see fcl_kernel_entry.arg_kinds); empty when the driver has no
 * argument information for the kernel. */
static void arg_kinds(cl_kernel k, char *kinds) {
    cl_uint n = 0;
    kinds[0] = 0;
    if (clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof n, &n, NULL) != CL_SUCCESS ||
        n > FCL_MAX_KERNEL_ARGS)
        return;
    for (cl_uint i = 0; i < n; i++) {
        cl_kernel_arg_address_qualifier where = 0;
        char type[64] = "";
        if (clGetKernelArgInfo(k, i, CL_KERNEL_ARG_ADDRESS_QUALIFIER, sizeof where, &where, NULL) !=
                CL_SUCCESS ||
            clGetKernelArgInfo(k, i, CL_KERNEL_ARG_TYPE_NAME, sizeof type - 1, type, NULL) !=
                CL_SUCCESS) {
            kinds[0] = 0;
            return;
        }
        char kind = '?';
        if (where == CL_KERNEL_ARG_ADDRESS_GLOBAL || where == CL_KERNEL_ARG_ADDRESS_CONSTANT)
            kind = 'g';
        else if (where == CL_KERNEL_ARG_ADDRESS_LOCAL)
            kind = 'l';
        else if (strcmp(type, "uint") == 0)
            kind = 'u';
        else if (strcmp(type, "int") == 0)
            kind = 'i';
        else if (strcmp(type, "float") == 0)
            kind = 'f';
        kinds[i] = kind;
    }
    kinds[n] = 0;
}

fewcl_status fcl_kernel(fewcl_context *ctx, const char *family, const char *options,
                        const char *name, fcl_kernel_entry **out) {
    if (!options) options = "";
    for (int i = 0; i < ctx->n_kernels; i++) {
        fcl_kernel_entry *k = &ctx->kernels[i];
        if (strcmp(k->name, name) == 0 && strcmp(k->program->family, family) == 0 &&
            strcmp(k->program->options, options) == 0) {
            *out = k;
            return FEWCL_OK;
        }
    }
    if (ctx->n_kernels == FCL_MAX_KERNELS)
        return fcl_fail(FEWCL_ERR_INTERNAL, "more than %d kernels", FCL_MAX_KERNELS);
    fcl_program *p;
    FCL_TRY(get_program(ctx, family, options, &p));
    cl_int err;
    cl_kernel k = clCreateKernel(p->program, name, &err);
    if (err != CL_SUCCESS) return fcl_fail_cl(err, "kernel %s in cl/%s.cl", name, family);
    fcl_kernel_entry *e = &ctx->kernels[ctx->n_kernels++];
    memset(e, 0, sizeof *e);
    e->program = p;
    e->kernel = k;
    /* A kernel that needs many registers may allow fewer items than the device. */
    e->max_wg = ctx->limits.max_work_group;
    size_t kernel_wg = 0;
    if (clGetKernelWorkGroupInfo(k, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kernel_wg,
                                 &kernel_wg, NULL) == CL_SUCCESS &&
        kernel_wg > 0 && kernel_wg < e->max_wg)
        e->max_wg = kernel_wg;
    cl_ulong local = 0;
    clGetKernelWorkGroupInfo(k, ctx->device, CL_KERNEL_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
    e->local_static = (size_t)local;
    snprintf(e->name, sizeof e->name, "%s", name);
    if (ctx->check_args) arg_kinds(k, e->arg_kinds);
    *out = e;
    return FEWCL_OK;
}

/* `name`_rows where ctx->limits.row_kernels is set, else `name`. */
static fewcl_status kernel_rows(fewcl_context *ctx, const char *family, const char *options,
                                const char *name, fcl_kernel_entry **out) {
    if (!ctx->limits.row_kernels) return fcl_kernel(ctx, family, options, name, out);
    char rows[96];
    snprintf(rows, sizeof rows, "%s_rows", name);
    return fcl_kernel(ctx, family, options, rows, out);
}

/* Each slot number belongs to one handle in the whole process; contexts index by it. */
static atomic_int handles_numbered;

fewcl_status fcl_kernel_get(fewcl_context *ctx, fcl_kernel_handle *h, fcl_kernel_entry **out) {
    int slot = atomic_load_explicit(&h->slot, memory_order_acquire);
    if (slot > 0 && ctx->by_handle[slot - 1]) {
        *out = ctx->by_handle[slot - 1];
        return FEWCL_OK;
    }
    if (slot == 0) {
        int mine = atomic_fetch_add(&handles_numbered, 1) + 1, none = 0;
        /* Another thread may have numbered it first: its number stands. */
        slot = atomic_compare_exchange_strong(&h->slot, &none, mine) ? mine : none;
    }
    if (slot > FCL_MAX_KERNELS)
        return fcl_fail(FEWCL_ERR_INTERNAL, "kernel %s: more than %d kernel handles", h->name,
                        FCL_MAX_KERNELS);
    char options[256] = "";
    if (h->options_of)
        h->options_of(ctx, options, sizeof options);
    else if (h->options)
        snprintf(options, sizeof options, "%s", h->options);
    FCL_TRY(h->rows ? kernel_rows(ctx, h->family, options, h->name, out)
                    : fcl_kernel(ctx, h->family, options, h->name, out));
    ctx->by_handle[slot - 1] = *out;
    return FEWCL_OK;
}
