/* Enumerating OpenCL platforms and devices, and choosing one. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver_allocs.h"
#include "runtime.h"

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

static void info_string(cl_device_id d, cl_device_info what, char *out, size_t cap) {
    out[0] = 0;
    if (clGetDeviceInfo(d, what, cap, out, NULL) != CL_SUCCESS) snprintf(out, cap, "?");
    out[cap - 1] = 0;
}

static int has_extension(cl_device_id d, const char *ext) {
    size_t n = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &n) != CL_SUCCESS || n == 0) return 0;
    char *all = malloc(n + 1);
    if (!all) return 0;
    int found = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, n, all, NULL) == CL_SUCCESS) {
        all[n] = 0;
        size_t len = strlen(ext);
        for (char *p = strstr(all, ext); p; p = strstr(p + 1, ext))
            if ((p == all || p[-1] == ' ') && (p[len] == ' ' || p[len] == 0)) found = 1;
    }
    free(all);
    return found;
}

void fcl_device_query(cl_platform_id p, cl_device_id d, int pi, int di, fewcl_device_info *info) {
    memset(info, 0, sizeof *info);
    info->platform_index = pi;
    info->device_index = di;
    if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof info->platform, info->platform, NULL) !=
        CL_SUCCESS)
        snprintf(info->platform, sizeof info->platform, "?");
    info->platform[sizeof info->platform - 1] = 0;
    info_string(d, CL_DEVICE_NAME, info->name, sizeof info->name);
    info_string(d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    info_string(d, CL_DEVICE_VERSION, info->device_version, sizeof info->device_version);
    info_string(d, CL_DEVICE_OPENCL_C_VERSION, info->c_version, sizeof info->c_version);
    info_string(d, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    cl_device_type type = 0;
    cl_uint cu = 0, clock = 0;
    cl_ulong gmem = 0, maxalloc = 0, lmem = 0;
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof clock, &clock, NULL);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxalloc, &maxalloc, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    info->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    info->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    info->compute_units = cu;
    info->clock_mhz = clock;
    info->global_mem = gmem;
    info->max_alloc = maxalloc;
    info->local_mem = lmem;
    info->max_work_group = wg;
    info->fp16 = has_extension(d, "cl_khr_fp16");
    info->fp64 = has_extension(d, "cl_khr_fp64");
}

/* Calls `visit` for every device of every platform; stops early when it returns non-zero. */
typedef int (*device_visitor)(cl_platform_id, cl_device_id, int, int, void *);

static fewcl_status for_each_device(device_visitor visit, void *arg, int *total) {
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    cl_int err = FCL_DRIVER_KEEPS(clGetPlatformIDs(MAX_PLATFORMS, plats, &np));
    *total = 0;
    if (err == -1001 || (err == CL_SUCCESS && np == 0))
        return fcl_fail(FEWCL_ERR_NO_DEVICE,
                        "no OpenCL platform found: install a driver (Debian: pocl-opencl-icd for "
                        "the CPU; the GPU vendor's OpenCL ICD otherwise) and check "
                        "/etc/OpenCL/vendors/");
    if (err != CL_SUCCESS) return fcl_fail_cl(err, "listing OpenCL platforms");
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd) != CL_SUCCESS)
            continue; /* a platform without devices is not an error */
        for (cl_uint d = 0; d < nd; d++) {
            (*total)++;
            if (visit(plats[p], devs[d], (int)p, (int)d, arg)) return FEWCL_OK;
        }
    }
    return FEWCL_OK;
}

typedef struct {
    fewcl_device_info *list;
    int n, cap;
} collect_state;

static int collect(cl_platform_id p, cl_device_id d, int pi, int di, void *arg) {
    collect_state *s = arg;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        fewcl_device_info *grown = realloc(s->list, (size_t)cap * sizeof *grown);
        if (!grown) return 1;
        s->list = grown;
        s->cap = cap;
    }
    fcl_device_query(p, d, pi, di, &s->list[s->n++]);
    return 0;
}

fewcl_status fewcl_list_devices(fewcl_device_info **out, int *count) {
    collect_state s = {0};
    int total = 0;
    fewcl_status st = for_each_device(collect, &s, &total);
    if (st == FEWCL_OK && s.n != total) st = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "listing devices");
    if (st != FEWCL_OK) {
        free(s.list);
        return st;
    }
    *out = s.list;
    *count = s.n;
    return FEWCL_OK;
}

void fewcl_free_device_list(fewcl_device_info *list) { free(list); }

static int contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return 1;
    }
    return n == 0;
}

/* How a device choice is matched: by index, by name, or by the default rule. */
typedef struct {
    const char *spec;
    int want_p, want_d; /* index form, else -1 */
    int pass;           /* default rule: 0 = first GPU, 1 = first CPU, 2 = anything */
    int found;
    cl_platform_id platform;
    cl_device_id device;
    fewcl_device_info info;
} select_state;

static int matches(cl_platform_id p, cl_device_id d, int pi, int di, void *arg) {
    select_state *s = arg;
    fewcl_device_info info;
    fcl_device_query(p, d, pi, di, &info);
    int ok;
    if (s->want_p >= 0)
        ok = pi == s->want_p && di == s->want_d;
    else if (s->spec)
        ok = contains_nocase(info.name, s->spec) || contains_nocase(info.vendor, s->spec) ||
             contains_nocase(info.platform, s->spec) ||
             contains_nocase(info.device_version, s->spec); /* "OpenCL 3.0 PoCL ..." */
    else
        ok = s->pass == 2 || (s->pass == 0 && info.is_gpu) || (s->pass == 1 && info.is_cpu);
    if (ok) {
        s->found = 1;
        s->platform = p;
        s->device = d;
        s->info = info;
    }
    return ok;
}

void fcl_device_list_describe(const fewcl_device_info *list, int n, char *buf, size_t cap) {
    for (int i = 0; i < n; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, "\n  %d:%d  %s — %s (%s)", list[i].platform_index,
                 list[i].device_index, list[i].platform, list[i].name,
                 list[i].is_gpu   ? "GPU"
                 : list[i].is_cpu ? "CPU"
                                  : "other");
    }
}

static void append_device_list(char *buf, size_t cap) {
    fewcl_device_info *list;
    int n;
    if (fewcl_list_devices(&list, &n) != FEWCL_OK) return;
    fcl_device_list_describe(list, n, buf, cap);
    fewcl_free_device_list(list);
}

fewcl_status fcl_device_select(const char *spec, cl_platform_id *platform, cl_device_id *device,
                               fewcl_device_info *info) {
    if (!spec || !*spec) spec = getenv("FEWCL_DEVICE");
    if (spec && !*spec) spec = NULL;
    select_state s = {.spec = spec, .want_p = -1, .want_d = -1};
    if (spec) {
        int p, d, used = 0;
        if (sscanf(spec, "%d:%d%n", &p, &d, &used) == 2 && spec[used] == 0) {
            s.want_p = p;
            s.want_d = d;
        }
    }
    int total = 0;
    for (s.pass = 0; s.pass < 3 && !s.found; s.pass++) {
        FCL_TRY(for_each_device(matches, &s, &total));
        if (spec) break; /* an explicit choice has one pass */
    }
    if (!s.found) {
        char list[2048] = "";
        append_device_list(list, sizeof list);
        if (total == 0)
            return fcl_fail(FEWCL_ERR_NO_DEVICE,
                            "no OpenCL device found: install a driver (Debian: pocl-opencl-icd)");
        return fcl_fail(FEWCL_ERR_NO_DEVICE,
                        "no OpenCL device matches '%s' (from --device or FEWCL_DEVICE); use an "
                        "index P:D or part of a name. Devices:%s",
                        spec, list);
    }
    *platform = s.platform;
    *device = s.device;
    *info = s.info;
    return FEWCL_OK;
}
