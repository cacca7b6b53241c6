/* `fewcl bench --conv`: every convolution of the model's training step (forward, input
 * gradient, weight gradient), each eligible algorithm timed on it (median of
 * FCL_CONV_FIND_RUNS) and the one the find step keeps. It runs the find step in search mode
 * (FEWCL_FIND=search), so the choices it shows are also written to the find database. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "bench_session.h"
#include "cli.h"
#include "model_flags.h"
#include "ops/conv_find.h"
#include "train/step.h"

#define MAX_ROWS 512

typedef struct row {
    fcl_conv_geom g;
    fcl_conv_dir dir;
    double ms[32];
    const fcl_conv_algo *chosen;
} row;

typedef struct rows {
    row r[MAX_ROWS];
    int n;
} rows;

static void remember(void *ud, const fcl_conv_geom *g, fcl_conv_dir dir, const double *ms,
                     const fcl_conv_algo *chosen) {
    rows *t = ud;
    if (t->n == MAX_ROWS) return;
    row *r = &t->r[t->n++];
    r->g = *g, r->dir = dir, r->chosen = chosen;
    memcpy(r->ms, ms, sizeof r->ms);
}

/* The table: a column per algorithm of the path that ran, then each algorithm's total over
 * the step's convolutions when chosen (its share of the convolution time). */
static void print_rows(const rows *t) {
    const fcl_conv_algo *const *algos = fcl_conv_algos();
    int host = t->n ? t->r[0].g.host : 1, cols[32], nc = 0;
    for (int i = 0; algos[i] && nc < 32; i++)
        if (algos[i]->host == host) cols[nc++] = i;
    printf("%-44s %-8s", "convolution (x, W, stride, padding)", "dir");
    for (int c = 0; c < nc; c++)
        printf(" %13s", algos[cols[c]]->name);
    printf("  chosen\n");
    double total[32] = {0}, all = 0;
    for (int i = 0; i < t->n; i++) {
        const row *r = &t->r[i];
        char what[64];
        snprintf(what, sizeof what, "[%d,%d,%d,%d] [%d,%d,%d,%d] s%d p%d", r->g.n, r->g.cin,
                 r->g.h, r->g.w, r->g.cout, r->g.cin, r->g.kh, r->g.kw, r->g.stride, r->g.pad);
        printf("%-44s %-8s", what, fcl_conv_dir_name(r->dir));
        for (int c = 0; c < nc; c++) {
            double ms = r->ms[cols[c]];
            if (ms < 0)
                printf(" %13s", "-");
            else
                printf(" %11.2fms", ms);
            if (algos[cols[c]] == r->chosen) total[c] += ms, all += ms;
        }
        printf("  %s\n", r->chosen->name);
    }
    printf("\nconvolution time of the step with the chosen algorithms: %.1f ms\n", all);
    for (int c = 0; c < nc; c++)
        if (total[c] > 0)
            printf("  %-13s %9.1f ms (%.0f%%)\n", algos[cols[c]]->name, total[c],
                   100 * total[c] / all);
}

int cmd_bench_conv(int argc, char **argv) {
    enum { OPT_CONV = 1, OPT_DEVICE, OPT_HELP };
    static const struct option opts[] = {{"conv", no_argument, 0, OPT_CONV},
                                         {"device", required_argument, 0, OPT_DEVICE},
                                         {"help", no_argument, 0, OPT_HELP},
                                         MODEL_FLAG_OPTIONS,
                                         {0, 0, 0, 0}};
    fewcl_model_config flags = model_config_default();
    const char *device = NULL;
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        int r = model_flag(c, optarg, &flags, "bench");
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case OPT_CONV: break;
        case OPT_DEVICE: device = optarg; break;
        case 'h':
        case OPT_HELP: {
            printf("usage: fewcl bench --conv [--device D] [model flags]\n\nTimes each "
                   "eligible convolution algorithm on every convolution of one training\nstep "
                   "of the model (pattern input) and shows the one kept; the choices go to\nthe "
                   "find database as with FEWCL_FIND=search.\n");
            fewcl_model_config d = model_config_default();
            model_flags_help(stdout, &d, NULL);
            return 0;
        }
        default: return cli_bad_option("bench", c, argv, opts);
        }
    }
    if (getenv("FEWCL_CONV_ALGO") && *getenv("FEWCL_CONV_ALGO")) {
        fprintf(stderr, "fewcl bench --conv: FEWCL_CONV_ALGO forces the algorithms, so there is "
                        "nothing to time; unset it\n");
        return EXIT_USAGE;
    }
    bench_session b;
    int rc_open = bench_session_open(&flags, optind < argc, device, &b);
    if (rc_open) return rc_open;
    fewcl_context *ctx = b.ctx;
    const fcl_model_config cfg = b.cfg;
    rows *t = calloc(1, sizeof *t);
    fewcl_status s = t ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "the table");
    fcl_conv_find_hook hook = {remember, t};
    if (s == FEWCL_OK) s = fcl_conv_algo_set_find(ctx, FCL_FIND_SEARCH);
    if (s == FEWCL_OK) s = fcl_conv_algo_set_hook(ctx, &hook);
    if (s == FEWCL_OK) {
        printf("device: %s (%s)\nmodel: %s %dx%d, %d-way %d-shot %d-query (%d images); median "
               "of %d runs per algorithm\n\n",
               ctx->info.name, ctx->info.platform, fcl_backbone_name(cfg.backbone),
               cfg.image_size, cfg.image_size, cfg.n_way, cfg.k_shot, cfg.n_query, b.x.shape[0],
               FCL_CONV_FIND_RUNS);
        fflush(stdout);
        fcl_adamw_config adam = fcl_adamw_defaults();
        fcl_step_result res;
        s = fcl_train_step(ctx, b.m, &b.x, &adam, &res);
        if (s == FEWCL_OK) s = fewcl_finish(ctx);
    }
    if (s == FEWCL_OK) print_rows(t);
    fcl_conv_algo_set_hook(ctx, NULL); /* the table goes next */
    free(t);
    return bench_session_close(&b, s);
}
