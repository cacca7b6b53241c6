/* `fewcl bench`: times kernels on one device (median of repeats, after a warm-up) and checks
 * each result once against a double-precision computation on the host; `--model` times the
 * whole model instead (bench_model.c), `--conv` each of its convolutions by algorithm
 * (bench_conv.c). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "ops/ops.h"

typedef struct bench_case {
    const char *name;
    int kind; /* 0 linear forward, 1 linear backward, 2 relu forward */
    int rows, in, out;
    int big; /* skipped by --quick */
} bench_case;

static const bench_case cases[] = {
    {"linear fwd 105x1600->512 (conv4 projection)", 0, 105, 1600, 512, 0},
    {"linear bwd 105x1600->512", 1, 105, 1600, 512, 0},
    {"linear fwd 80x512->256 (attention q)", 0, 80, 512, 256, 0},
    {"linear fwd 1024x1024->1024", 0, 1024, 1024, 1024, 0},
    {"linear fwd 65x25088->512 (resnet projection)", 0, 65, 25088, 512, 1},
    {"linear bwd 65x25088->512", 1, 65, 25088, 512, 1},
    {"linear fwd 4096x4096->4096", 0, 4096, 4096, 4096, 1},
    {"relu fwd 105x64x42x42", 2, 105 * 64, 42 * 42, 0, 0},
};

static void fill_random(float *x, size_t n, unsigned seed) {
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0);
    }
}

typedef struct tensors {
    fcl_tensor x, w, b, y, dy, dx, dw, db;
    float *hx, *hw, *hb, *hy;
} tensors;

static fewcl_status run_once(fewcl_context *ctx, const bench_case *c, tensors *t) {
    if (c->kind == 0) return fcl_linear_forward(ctx, &t->x, &t->w, &t->b, &t->y);
    if (c->kind == 1) return fcl_linear_backward(ctx, &t->x, &t->w, &t->y, &t->dx, &t->dw, &t->db);
    return fcl_relu_forward(ctx, &t->x, &t->y);
}

/* Normalised error Σ(a−r)²/Σr² of the device output against a double host reference. */
static double check(const bench_case *c, tensors *t, fewcl_context *ctx) {
    size_t n = (size_t)c->rows * (size_t)(c->kind == 2 ? c->in : c->out);
    if (c->kind == 1) return -1; /* backward is verified by the tests, not here */
    if ((double)c->rows * c->in * c->out > 2e9) return -1; /* too slow to redo on the host */
    if (fcl_tensor_download(ctx, &t->y, t->hy) != FEWCL_OK) return INFINITY;
    double num = 0, den = 0;
    for (size_t idx = 0; idx < n; idx++) {
        double ref;
        if (c->kind == 2) {
            ref = t->hx[idx] > 0 ? t->hx[idx] : 0;
        } else {
            size_t i = idx / (size_t)c->out, j = idx % (size_t)c->out;
            ref = t->hb[j];
            for (int k = 0; k < c->in; k++)
                ref += (double)t->hx[i * (size_t)c->in + (size_t)k] *
                       t->hw[j * (size_t)c->in + (size_t)k];
        }
        num += (t->hy[idx] - ref) * (t->hy[idx] - ref);
        den += ref * ref;
    }
    return den > 0 ? num / den : num;
}

static void free_all(fewcl_context *ctx, tensors *t) {
    fcl_tensor *all[] = {&t->x, &t->w, &t->b, &t->y, &t->dy, &t->dx, &t->dw, &t->db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]->numel) fcl_tensor_free(ctx, all[i]);
    free(t->hx), free(t->hw), free(t->hb), free(t->hy);
}

static fewcl_status setup(fewcl_context *ctx, const bench_case *c, tensors *t) {
    memset(t, 0, sizeof *t);
    int cols_out = c->kind == 2 ? c->in : c->out;
    fewcl_status s;
#define T(expr)                                                                                    \
    if ((s = (expr)) != FEWCL_OK) return s
    T(fcl_tensor_alloc2(ctx, &t->x, FCL_MEM_ACTIVATION, c->rows, c->in));
    T(fcl_tensor_alloc2(ctx, &t->y, FCL_MEM_ACTIVATION, c->rows, cols_out));
    t->hx = malloc((size_t)c->rows * (size_t)c->in * sizeof(float));
    t->hy = malloc((size_t)c->rows * (size_t)cols_out * sizeof(float));
    if (!t->hx || !t->hy) return FEWCL_ERR_OUT_OF_MEMORY;
    fill_random(t->hx, t->x.numel, 1);
    T(fcl_tensor_upload(ctx, &t->x, t->hx));
    if (c->kind == 2) return FEWCL_OK;
    T(fcl_tensor_alloc2(ctx, &t->w, FCL_MEM_PARAM, c->out, c->in));
    T(fcl_tensor_alloc1(ctx, &t->b, FCL_MEM_PARAM, c->out));
    t->hw = malloc(t->w.numel * sizeof(float));
    t->hb = malloc(t->b.numel * sizeof(float));
    if (!t->hw || !t->hb) return FEWCL_ERR_OUT_OF_MEMORY;
    fill_random(t->hw, t->w.numel, 2);
    fill_random(t->hb, t->b.numel, 3);
    T(fcl_tensor_upload(ctx, &t->w, t->hw));
    T(fcl_tensor_upload(ctx, &t->b, t->hb));
    if (c->kind == 1) {
        T(fcl_tensor_alloc2(ctx, &t->dx, FCL_MEM_GRAD, c->rows, c->in));
        T(fcl_tensor_alloc2(ctx, &t->dw, FCL_MEM_GRAD, c->out, c->in));
        T(fcl_tensor_alloc1(ctx, &t->db, FCL_MEM_GRAD, c->out));
        T(fcl_fill(ctx, &t->dw, 0));
        T(fcl_fill(ctx, &t->db, 0));
        T(fcl_linear_forward(ctx, &t->x, &t->w, &t->b, &t->y)); /* y doubles as dy */
    }
#undef T
    return FEWCL_OK;
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {
        {"device", required_argument, 0, 'd'}, {"repeat", required_argument, 0, 'r'},
        {"quick", no_argument, 0, 'q'},        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--model")) return cmd_bench_model(argc, argv);
        else if (!strcmp(argv[i], "--conv")) return cmd_bench_conv(argc, argv);
        else if (!strcmp(argv[i], "--reduce")) return cmd_bench_reduce(argc, argv);
    const char *device = NULL;
    int repeat = 5, quick = 0, json = 0, c;
    while ((c = cli_getopt(argc, argv, "d:r:qh", opts)) != -1) {
        switch (c) {
        case 'd': device = optarg; break;
        case 'r': repeat = atoi(optarg); break;
        case 'q': quick = 1; break;
        case 'j': json = 1; break;
        case 'h':
            printf("usage: fewcl bench [--device D] [--repeat N] [--quick] [--json]\n"
                   "       fewcl bench --model [model flags] (fewcl bench --model --help)\n"
                   "       fewcl bench --conv [model flags] (fewcl bench --conv --help)\n"
                   "       mpirun -np 2 fewcl bench --reduce (fewcl bench --reduce --help)\n\n"
                   "Times each kernel case (median of --repeat N runs after one warm-up,\n"
                   "default 5),\n"
                   "prints seconds, GFLOP/s or GB/s, and the normalised error against a\n"
                   "double-precision host computation. --quick skips the large cases.\n");
            return 0;
        default: return cli_bad_option("bench", c, argv, opts);
        }
    }
    if (repeat < 1 || repeat > 1000) {
        fprintf(stderr, "fewcl bench: --repeat must be 1..1000\n");
        return EXIT_USAGE;
    }
    fewcl_context *ctx;
    int rc_open = cli_open_device("bench", device, &ctx);
    if (rc_open) return rc_open;
    fewcl_status s;
    if (!json)
        printf("device: %s (%s)\n%-46s %12s %12s %12s\n", ctx->info.name, ctx->info.platform,
               "case", "median s", "rate", "norm. error");
    cJSON *results = cJSON_CreateArray();
    double *times = malloc((size_t)repeat * sizeof *times);
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases && rc == 0; i++) {
        const bench_case *bc = &cases[i];
        if (quick && bc->big) continue;
        tensors t;
        double t_first = cli_now();
        s = setup(ctx, bc, &t);
        if (s == FEWCL_OK) s = run_once(ctx, bc, &t); /* warm-up: compiles kernels */
        if (s == FEWCL_OK) s = fewcl_finish(ctx);
        double first = cli_now() - t_first;
        for (int r = 0; r < repeat && s == FEWCL_OK; r++) {
            double t0 = cli_now();
            s = run_once(ctx, bc, &t);
            if (s == FEWCL_OK) s = fewcl_finish(ctx);
            times[r] = cli_now() - t0;
        }
        if (s != FEWCL_OK) {
            rc = cli_fail("bench", s);
            free_all(ctx, &t);
            break;
        }
        qsort(times, (size_t)repeat, sizeof *times, cli_cmp_double);
        double med = times[repeat / 2];
        double err = check(bc, &t, ctx);
        double work, rate;
        const char *unit;
        if (bc->kind == 2) {
            work = 2.0 * bc->rows * bc->in * sizeof(float); /* bytes read + written */
            rate = work / med / 1e9;
            unit = "GB/s";
        } else {
            work = (bc->kind == 1 ? 4.0 : 2.0) * bc->rows * bc->in * (double)bc->out;
            rate = work / med / 1e9;
            unit = "GFLOP/s";
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "case", bc->name);
            cJSON_AddNumberToObject(o, "median_s", med);
            cJSON_AddNumberToObject(o, "first_run_s", first);
            cJSON_AddNumberToObject(o, "rate", rate);
            cJSON_AddStringToObject(o, "unit", unit);
            if (err >= 0) cJSON_AddNumberToObject(o, "normalised_error", err);
            cJSON_AddItemToArray(results, o);
        } else {
            char e[32] = "-";
            if (err >= 0) snprintf(e, sizeof e, "%.2e", err);
            printf("%-46s %12.6f %7.1f %-7s %9s\n", bc->name, med, rate, unit, e);
            fflush(stdout);
        }
        free_all(ctx, &t);
    }
    const fcl_cache_stats *cs = &ctx->cache;
    if (json && rc == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", ctx->info.name);
        cJSON_AddNumberToObject(o, "program_build_ms", cs->build_ms);
        cJSON_AddNumberToObject(o, "program_cache_hits", cs->hits);
        cJSON_AddNumberToObject(o, "program_cache_misses", cs->misses);
        cJSON_AddItemToObject(o, "results", results);
        char *text = cJSON_Print(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    } else {
        cJSON_Delete(results);
        if (rc == 0)
            printf("fewcl programs: %.1f ms to create (%d from the binary cache, %d compiled)%s\n",
                   cs->build_ms, cs->hits, cs->misses, ctx->cache_enabled ? "" : ", cache off");
    }
    free(times);
    fewcl_context_destroy(ctx);
    return rc;
}
