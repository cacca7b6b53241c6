/* CLBlast tuning parameters for the devices we have measured, applied through
 * CLBlastOverrideParameters the first time a context runs a GEMM.
 *
 * CLBlast ships a database of tuned kernels, but devices newer than the Debian package
 * (the H200, for one) fall back to generic parameters that reach a small fraction of the
 * device. The table below comes from CLBlast's own tuners (Debian clblast-utils) run on the
 * device; tools/gpu/tune-clblast.sh is the script and docs/gpu.md records the runs.
 * FEWCL_CLBLAST_TUNING=<folder> applies the tuners' JSON output files (clblast_*.json) from
 * that folder instead, so any device can be tuned the same way. */
#include <cjson/cJSON.h>
#include <clblast_c.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef struct tuning_entry {
    const char *device;     /* substring of CL_DEVICE_NAME */
    const char *kernel;     /* CLBlast kernel family */
    const char *parameters; /* "NAME=value ..." as the tuners print them */
} tuning_entry;

/* NVIDIA H200 (driver 580.159.04), 2026-11-27: xgemm at 1024³ (fixed-set phase; 23.1 TFLOP/s
 * against 11.8 untuned), xgemm_direct at 128x512x1024 (2.9 TFLOP/s), copy/pad/transpose at
 * 1024², and the direct/indirect switch point. */
static const tuning_entry table[] = {
    {"NVIDIA H200", "Xgemm",
     "GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=16 MDIMC=16 MWG=64 NDIMB=16 NDIMC=16 NWG=64 SA=1 SB=1 "
     "STRM=0 STRN=0 VWM=4 VWN=4"},
    {"NVIDIA H200", "XgemmDirect",
     "KWID=2 MDIMAD=16 MDIMCD=16 NDIMBD=16 NDIMCD=16 PADA=1 PADB=1 VWMD=1 VWND=1 WGD=16"},
    {"NVIDIA H200", "Copy", "COPY_DIMX=8 COPY_DIMY=32 COPY_VW=4 COPY_WPT=4"},
    {"NVIDIA H200", "Pad", "PAD_DIMX=32 PAD_DIMY=16 PAD_WPTX=4 PAD_WPTY=1"},
    {"NVIDIA H200", "Transpose", "TRA_DIM=16 TRA_PAD=1 TRA_SHUFFLE=0 TRA_WPT=2"},
    {"NVIDIA H200", "Padtranspose", "PADTRA_PAD=1 PADTRA_TILE=32 PADTRA_WPT=2"},
    {"NVIDIA H200", "GemmRoutine", "XGEMM_MIN_INDIRECT_SIZE=768"},
};

#define MAX_PARAMS 32

/* Applies "NAME=value NAME=value ..." (PRECISION is the routine's, not a parameter). */
static fewcl_status apply(fewcl_context *ctx, const char *kernel, const char *parameters) {
    char copy[512];
    snprintf(copy, sizeof copy, "%s", parameters);
    const char *names[MAX_PARAMS];
    size_t values[MAX_PARAMS];
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(copy, " ", &save); tok && n < MAX_PARAMS;
         tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        if (strcmp(tok, "PRECISION") == 0) continue;
        names[n] = tok;
        values[n++] = strtoul(eq + 1, NULL, 10);
    }
    CLBlastStatusCode st =
        CLBlastOverrideParameters(ctx->device, kernel, CLBlastPrecisionSingle, n, names, values);
    if (st != CLBlastSuccess)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "CLBlast tuning for kernel %s on %s rejected (%d): %s",
                        kernel, ctx->info.name, (int)st, parameters);
    return FEWCL_OK;
}

/* The CLBlast kernel name of a tuner output's "kernel_family". */
static const char *kernel_of_family(const char *family) {
    static const struct {
        const char *prefix, *kernel;
    } map[] = {{"xgemm_direct", "XgemmDirect"},  {"xgemm", "Xgemm"}, {"copy", "Copy"},
               {"padtranspose", "Padtranspose"}, {"pad", "Pad"},     {"transpose", "Transpose"},
               {"gemm_routine", "GemmRoutine"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strncmp(family, map[i].prefix, strlen(map[i].prefix)) == 0) return map[i].kernel;
    return NULL;
}

/* Applies every clblast_*_32.json of a folder. Where several tuner phases wrote files for
 * one kernel (xgemm_1 .. xgemm_4), the one with the lowest best_time wins. */
static fewcl_status apply_folder(fewcl_context *ctx, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return fcl_fail(FEWCL_ERR_IO, "FEWCL_CLBLAST_TUNING=%s: cannot open the folder", dir);
    struct {
        const char *kernel;
        double time;
        char params[512];
    } best[16];
    int n_best = 0;
    fewcl_status s = FEWCL_OK;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "clblast_", 8) != 0 || len < 8 ||
            strcmp(e->d_name + len - 8, "_32.json"))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        char *text = calloc(1, 1 << 20);
        size_t got = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
        fclose(f);
        cJSON *json = got ? cJSON_Parse(text) : NULL;
        free(text);
        const cJSON *fam = cJSON_GetObjectItemCaseSensitive(json, "kernel_family");
        const cJSON *par = cJSON_GetObjectItemCaseSensitive(json, "best_parameters");
        const cJSON *tim = cJSON_GetObjectItemCaseSensitive(json, "best_time");
        const char *kernel = cJSON_IsString(fam) ? kernel_of_family(fam->valuestring) : NULL;
        if (!kernel || !cJSON_IsString(par)) {
            cJSON_Delete(json);
            s = fcl_fail(FEWCL_ERR_FORMAT,
                         "%s: not a CLBlast tuner result (kernel_family and "
                         "best_parameters expected)",
                         path);
            break;
        }
        double t = cJSON_IsString(tim) ? atof(tim->valuestring) : 0;
        int i = 0;
        while (i < n_best && strcmp(best[i].kernel, kernel) != 0)
            i++;
        if (i == n_best && n_best < 16) n_best++;
        if (i < n_best && (best[i].kernel != kernel || t < best[i].time)) {
            best[i].kernel = kernel;
            best[i].time = t;
            snprintf(best[i].params, sizeof best[i].params, "%s", par->valuestring);
        }
        cJSON_Delete(json);
    }
    closedir(d);
    for (int i = 0; i < n_best && s == FEWCL_OK; i++)
        s = apply(ctx, best[i].kernel, best[i].params);
    return s;
}

fewcl_status fcl_gemm_tune(fewcl_context *ctx) {
    if (ctx->gemm_tuned) return FEWCL_OK;
    ctx->gemm_tuned = 1;
    const char *dir = getenv("FEWCL_CLBLAST_TUNING");
    if (dir && *dir) return apply_folder(ctx, dir);
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strstr(ctx->info.name, table[i].device))
            FCL_TRY(apply(ctx, table[i].kernel, table[i].parameters));
    return FEWCL_OK;
}
