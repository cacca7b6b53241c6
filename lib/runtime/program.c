/* Kernel sources, program builds and the on-disk program-binary cache.
 *
 * Cache entry: <dir>/<key>.bin holding the header "FEWCL-PROGRAM <format> <n> <sha256>\n"
 * followed by the n bytes of the device binary. The key is sha256 over the source, the
 * build options, the device name and version, the driver and platform versions and the
 * format version, so any change to one of them misses the cache. Entries are written to a
 * temporary file and renamed, so a crash never leaves a half-written entry under the key;
 * the checksum guards against a truncated or damaged file, which is then rebuilt. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "driver_allocs.h"
#include "kernels_embedded.h"
#include "runtime.h"
#include "sha256.h"

#define CACHE_FORMAT 1

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

fewcl_status fcl_kernel_source(const char *family, char **source, size_t *len) {
    const char *dir = getenv("FEWCL_KERNEL_DIR");
#ifdef FEWCL_DEFAULT_KERNEL_DIR
    if (!dir || !*dir) dir = FEWCL_DEFAULT_KERNEL_DIR; /* built with FEWCL_EMBED_KERNELS=OFF */
#endif
    if (dir && *dir) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.cl", dir, family);
        FILE *f = fopen(path, "rb");
        if (!f)
            return fcl_fail(FEWCL_ERR_IO,
                            "kernel source %s: %s (FEWCL_KERNEL_DIR is set; unset "
                            "it to use the embedded kernels)",
                            path, strerror(errno));
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            fclose(f);
            return fcl_fail(FEWCL_ERR_IO, "reading kernel source %s", path);
        }
        fclose(f);
        buf[n] = 0;
        *source = buf;
        *len = (size_t)n;
        return FEWCL_OK;
    }
    for (int i = 0; i < fcl_n_embedded_kernels; i++) {
        if (strcmp(fcl_embedded_kernels[i].family, family) == 0) {
            *len = fcl_embedded_kernels[i].length;
            *source = malloc(*len + 1);
            if (!*source) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "kernel source %s", family);
            memcpy(*source, fcl_embedded_kernels[i].source, *len + 1);
            return FEWCL_OK;
        }
    }
    return fcl_fail(FEWCL_ERR_INTERNAL, "no embedded kernel file cl/%s.cl", family);
}

static void hash_field(fcl_sha256 *h, const char *s, size_t n) {
    /* Length-prefixed, so that moving bytes between fields changes the key. */
    uint64_t len = n;
    fcl_sha256_update(h, &len, sizeof len);
    fcl_sha256_update(h, s, n);
}

void fcl_program_cache_key(const fewcl_context *ctx, const char *source, size_t len,
                           const char *options, char key[65]) {
    fcl_sha256 h;
    fcl_sha256_init(&h);
    char format[16];
    snprintf(format, sizeof format, "%d", CACHE_FORMAT);
    char platform_version[256] = "";
    clGetPlatformInfo(ctx->platform, CL_PLATFORM_VERSION, sizeof platform_version - 1,
                      platform_version, NULL);
    const char *fields[] = {format,
                            options,
                            ctx->info.name,
                            ctx->info.device_version,
                            ctx->info.driver_version,
                            ctx->info.platform,
                            platform_version};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        hash_field(&h, fields[i], strlen(fields[i]));
    hash_field(&h, source, len);
    uint8_t digest[32];
    fcl_sha256_final(&h, digest);
    fcl_sha256_hex(digest, key);
}

/* Reads and verifies a cache entry; NULL when absent or damaged. */
static unsigned char *cache_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    int format = 0;
    size_t len = 0;
    char sum[65] = "";
    unsigned char *bin = NULL;
    if (fscanf(f, "FEWCL-PROGRAM %d %zu %64s", &format, &len, sum) == 3 && fgetc(f) == '\n' &&
        format == CACHE_FORMAT && len > 0 && len < ((size_t)1 << 31)) {
        bin = malloc(len);
        char actual[65];
        if (bin && fread(bin, 1, len, f) == len && fgetc(f) == EOF) {
            fcl_sha256_hex_of(bin, len, actual);
            if (strcmp(actual, sum) != 0) {
                free(bin);
                bin = NULL;
            }
        } else {
            free(bin);
            bin = NULL;
        }
    }
    fclose(f);
    *n = len;
    return bin;
}

void fcl_temp_path(const char *path, char *out, size_t cap) {
    static atomic_long written;
    static atomic_int threads;
    static _Thread_local int thread_no; /* 1, 2, ... in the order threads first write */
    if (!thread_no) thread_no = atomic_fetch_add(&threads, 1) + 1;
    snprintf(out, cap, "%s.tmp.%ld.%d.%ld", path, (long)getpid(), thread_no,
             atomic_fetch_add(&written, 1));
}

int fcl_mkdirs(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Writes a cache entry atomically; -1 with errno set on failure. */
static int cache_write(const char *dir, const char *path, const unsigned char *bin, size_t n) {
    if (fcl_mkdirs(dir) != 0) return -1;
    char tmp[700];
    fcl_temp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    char sum[65];
    fcl_sha256_hex_of(bin, n, sum);
    int ok = fprintf(f, "FEWCL-PROGRAM %d %zu %s\n", CACHE_FORMAT, n, sum) > 0 &&
             fwrite(bin, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static fewcl_status build(fewcl_context *ctx, cl_program prog, const char *label,
                          const char *options) {
    cl_int err = FCL_DRIVER_KEEPS(clBuildProgram(prog, 1, &ctx->device, options, NULL, NULL));
    if (err == CL_SUCCESS) return FEWCL_OK;
    char log[3000] = "";
    size_t n = 0;
    clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, &n);
    log[sizeof log - 1] = 0;
    return fcl_fail(FEWCL_ERR_BUILD, "building kernels %s for %s with '%s' failed (%s):\n%s", label,
                    ctx->info.name, options, fcl_cl_error_name(err), log);
}

/* The device binary of a built program (single device). */
static unsigned char *program_binary(cl_program prog, size_t *n) {
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS ||
        size == 0)
        return NULL;
    unsigned char *bin = malloc(size);
    if (bin && FCL_DRIVER_KEEPS(clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin,
                                                 NULL)) != CL_SUCCESS) {
        free(bin);
        return NULL;
    }
    *n = size;
    return bin;
}

fewcl_status fcl_program_build(fewcl_context *ctx, const char *label, const char *source,
                               size_t len, const char *options, cl_program *out) {
    double t0 = now_ms();
    char key[65], path[700] = "";
    cl_int err;
    /* A binary keeps no argument information (FEWCL_CHECK_ARGS): such programs are always built
     * from source. */
    const int use_cache = ctx->cache_enabled && !strstr(options, "-cl-kernel-arg-info");
    if (use_cache) {
        fcl_program_cache_key(ctx, source, len, options, key);
        snprintf(path, sizeof path, "%s/%s.bin", ctx->cache_dir, key);
        size_t n = 0;
        unsigned char *bin = cache_read(path, &n);
        if (bin) {
            cl_int bin_status = CL_SUCCESS;
            const unsigned char *bins[1] = {bin};
            cl_program prog = clCreateProgramWithBinary(ctx->context, 1, &ctx->device, &n, bins,
                                                        &bin_status, &err);
            free(bin);
            if (err == CL_SUCCESS && bin_status == CL_SUCCESS &&
                FCL_DRIVER_KEEPS(clBuildProgram(prog, 1, &ctx->device, options, NULL, NULL)) ==
                    CL_SUCCESS) {
                ctx->cache.hits++;
                ctx->cache.build_ms += now_ms() - t0;
                *out = prog;
                return FEWCL_OK;
            }
            if (prog) clReleaseProgram(prog);
            unlink(path); /* stale or rejected by the driver: rebuild below */
        }
        ctx->cache.misses++;
    }
    const char *src = source;
    cl_program prog = clCreateProgramWithSource(ctx->context, 1, &src, &len, &err);
    if (err != CL_SUCCESS) return fcl_fail_cl(err, "creating program %s", label);
    fewcl_status s = build(ctx, prog, label, options);
    if (s != FEWCL_OK) {
        clReleaseProgram(prog);
        return s;
    }
    if (use_cache) {
        size_t n = 0;
        unsigned char *bin = program_binary(prog, &n);
        if (bin && cache_write(ctx->cache_dir, path, bin, n) == 0) {
            ctx->cache.stores++;
        } else if (bin) {
            /* Not an error (the program is built), but every later run would compile again:
             * say so once and stop trying for this context. */
            fprintf(stderr,
                    "fewcl: warning: cannot write the program cache in %s (%s); kernels will be "
                    "compiled on every run. Set FEWCL_CACHE_DIR to a writable folder (or "
                    "FEWCL_CACHE=off to silence this).\n",
                    ctx->cache_dir, strerror(errno));
            ctx->cache_enabled = 0;
        }
        free(bin);
    }
    ctx->cache.build_ms += now_ms() - t0;
    *out = prog;
    return FEWCL_OK;
}
