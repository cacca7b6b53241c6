/* `fewcl bench --reduce`: under mpirun, the time to combine P floats from every rank on all of
 * them, two ways (docs/distributed.md §8): the fixed-order way a training step across ranks
 * needs (ranks > 0 send to rank 0 in rank order, rank 0 adds, then broadcasts the sum) and
 * MPI_Allreduce (for reference: its association is the implementation's). P: the parameter
 * counts of the conv4 defaults and of ResNet-34 (counted from the models), or --floats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli.h"
#include "dist/dist.h"
#include "nn/params.h"

/* Trainable floats of the default model with another backbone (rank 0 counts; all learn). */
static fewcl_status count_params(const fcl_dist *d, fewcl_backbone backbone, long *P) {
    fewcl_status s = FEWCL_OK;
    if (d->rank == 0) {
        fewcl_context *ctx = NULL;
        fewcl_model *m = NULL;
        fewcl_model_config cfg;
        fewcl_model_config_default(&cfg, sizeof cfg);
        cfg.backbone = backbone;
        s = fewcl_context_create(NULL, &ctx);
        if (s == FEWCL_OK) s = fewcl_model_create(ctx, &cfg, 1, &m);
        if (s == FEWCL_OK) *P = (long)fcl_params_count(&m->m->params);
        fewcl_model_destroy(m);
        fewcl_context_destroy(ctx);
    }
    FCL_TRY(fcl_dist_agree(d, s));
    return fcl_dist_bcast(d, P, sizeof *P, 0);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cli_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* One combination of P floats, each way; seconds on rank 0 from a common start. */
static fewcl_status time_once(const fcl_dist *d, float *v, float *in, long P, int allreduce,
                              double *seconds) {
    FCL_TRY(fcl_dist_agree(d, FEWCL_OK)); /* a barrier */
    double t0 = cli_now();
    if (allreduce)
        FCL_TRY(fcl_dist_allreduce_floats(d, v, (size_t)P));
    else if (d->rank > 0) {
        FCL_TRY(fcl_dist_send_floats(d, 0, 1, v, (size_t)P));
        FCL_TRY(fcl_dist_bcast(d, v, (size_t)P * sizeof *v, 0));
    } else {
        for (int r = 1; r < d->size; r++) {
            FCL_TRY(fcl_dist_recv_floats(d, r, 1, in, (size_t)P));
            for (long i = 0; i < P; i++)
                v[i] += in[i];
        }
        FCL_TRY(fcl_dist_bcast(d, v, (size_t)P * sizeof *v, 0));
    }
    *seconds = cli_now() - t0;
    return FEWCL_OK;
}

int cmd_bench_reduce(int argc, char **argv) {
    int repeat = 20;
    long sizes[8];
    const char *names[8];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--floats") && i + 1 < argc && n < 8)
            sizes[n] = atol(argv[++i]), names[n++] = "--floats";
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: mpirun -np R fewcl bench --reduce [--floats P]... [--repeat N]\n\n"
                   "Median of N (default 20) times to combine P floats over the ranks: send to\n"
                   "rank 0 in rank order + add + broadcast, and MPI_Allreduce. P defaults to the\n"
                   "parameter counts of the conv4 defaults and of ResNet-34.\n");
            return 0;
        } else if (strcmp(argv[i], "--reduce")) {
            fprintf(stderr, "fewcl bench --reduce: unknown argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (repeat < 1) repeat = 1;
    fcl_dist d;
    fcl_dist_world(&d);
    fewcl_status s = FEWCL_OK;
    if (n == 0) {
        names[0] = "conv4 defaults", names[1] = "ResNet-34 defaults";
        s = count_params(&d, FEWCL_CONV4, &sizes[0]);
        if (s == FEWCL_OK) s = count_params(&d, FEWCL_RESNET34, &sizes[1]);
        n = 2;
    }
    if (d.rank == 0)
        printf("%d ranks on %s%s; median of %d\n", d.size, d.host,
               d.size > 1 ? "" : " (one rank: run it under mpirun -np 2)", repeat);
    for (int k = 0; s == FEWCL_OK && k < n; k++) {
        long P = sizes[k];
        float *v = calloc((size_t)P, sizeof *v), *in = calloc((size_t)P, sizeof *in);
        double *t = malloc(2 * (size_t)repeat * sizeof *t);
        if (!v || !in || !t) s = cli_error(FEWCL_ERR_OUT_OF_MEMORY, "%ld floats", P);
        s = fcl_dist_agree(&d, s);
        for (int way = 0; s == FEWCL_OK && way < 2; way++)
            for (int i = 0; s == FEWCL_OK && i < repeat; i++)
                s = time_once(&d, v, in, P, way, &t[way * repeat + i]);
        if (s == FEWCL_OK && d.rank == 0)
            printf("P = %ld floats (%s, %.1f MB): send+add+bcast %.2f ms, MPI_Allreduce "
                   "%.2f ms\n",
                   P, names[k], P * 4e-6, 1e3 * median(t, repeat),
                   1e3 * median(t + repeat, repeat));
        free(v), free(in), free(t);
    }
    return s == FEWCL_OK ? 0 : cli_fail("bench", s);
}
