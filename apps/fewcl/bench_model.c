/* `fewcl bench --model`: the whole model on one episode — evaluation forward, training step
 * (forward, backward, AdamW) — median of N after a warm-up, then one profiled evaluation
 * forward and one profiled training step, each broken down per kernel from OpenCL events
 * (docs/spec.md §11), so the gap to PyTorch is visible. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "bench_session.h"
#include "cli.h"
#include "data_flags.h"
#include "model_flags.h"
#include "train/step.h"

static int cmp_kernel_time(const void *a, const void *b) {
    const fcl_kernel_entry *x = *(fcl_kernel_entry *const *)a, *y = *(fcl_kernel_entry *const *)b;
    return (x->profile_ms < y->profile_ms) - (x->profile_ms > y->profile_ms);
}

enum { OPT_MODEL = 1, OPT_DEVICE, OPT_REPEAT, OPT_TEST_EPISODES, OPT_JSON, OPT_HELP };

/* Median seconds of `repeat` runs of one phase (training or evaluation), after one warm-up. */
static fewcl_status time_phase(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x, int train,
                               int repeat, double *median) {
    fcl_adamw_config adam = fcl_adamw_defaults();
    double *t = malloc((size_t)repeat * sizeof *t);
    if (!t) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "timings");
    fewcl_status s = FEWCL_OK;
    for (int r = -1; r < repeat && s == FEWCL_OK; r++) {
        fcl_step_result res;
        double t0 = cli_now();
        s = train ? fcl_train_step(ctx, m, x, &adam, &res) : fcl_eval_step(ctx, m, x, &res);
        if (s == FEWCL_OK) s = fewcl_finish(ctx);
        if (r >= 0) t[r] = cli_now() - t0;
    }
    if (s == FEWCL_OK) {
        qsort(t, (size_t)repeat, sizeof *t, cli_cmp_double);
        *median = t[repeat / 2];
    }
    free(t);
    return s;
}

/* Seconds for `episodes` evaluation episodes back to back, as `fewcl test` runs them (each
 * reads its accuracy back), without the data loading. */
static fewcl_status time_test(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x, int episodes,
                              double *seconds) {
    double t0 = cli_now();
    for (int e = 0; e < episodes; e++) {
        fcl_step_result res;
        FCL_TRY(fcl_eval_step(ctx, m, x, &res));
    }
    FCL_TRY(fewcl_finish(ctx));
    *seconds = cli_now() - t0;
    return FEWCL_OK;
}

/* One profiled training step or evaluation forward: per-kernel device time (launches wait for
 * their events, so the step itself runs slower; the shares are what matter). */
static fewcl_status profile_step(fewcl_context *ctx, fcl_model *m, const fcl_tensor *x, int train,
                                 int json, cJSON *out, cJSON *gemm, double *wall) {
    for (int i = 0; i < ctx->n_kernels; i++)
        ctx->kernels[i].profile_ms = 0, ctx->kernels[i].launches = 0;
    ctx->gemm_profile_ms = ctx->host_profile_ms = 0, ctx->gemm_calls = 0;
    fewcl_context_set_profiling(ctx, 1);
    fcl_adamw_config adam = fcl_adamw_defaults();
    fcl_step_result res;
    double t0 = cli_now();
    fewcl_status s =
        train ? fcl_train_step(ctx, m, x, &adam, &res) : fcl_eval_step(ctx, m, x, &res);
    if (s == FEWCL_OK) s = fewcl_finish(ctx);
    *wall = cli_now() - t0;
    fewcl_context_set_profiling(ctx, 0);
    FCL_TRY(s);
    fcl_kernel_entry *order[FCL_MAX_KERNELS];
    double total = 0;
    int n = 0;
    for (int i = 0; i < ctx->n_kernels; i++)
        if (ctx->kernels[i].launches)
            order[n++] = &ctx->kernels[i], total += ctx->kernels[i].profile_ms;
    qsort(order, (size_t)n, sizeof *order, cmp_kernel_time);
    double ms = *wall * 1e3;
    if (json) {
        cJSON_AddNumberToObject(gemm, "ms", ctx->gemm_profile_ms);
        cJSON_AddNumberToObject(gemm, "calls", (double)ctx->gemm_calls);
        cJSON_AddNumberToObject(gemm, "host_work_ms", ctx->host_profile_ms);
    } else {
        /* CLBlast reports the event of a routine's last kernel only (its pad/transpose
         * helpers are not in it); the host path's times are wall times. */
        printf("\nprofiled %s: %.1f ms wall\n  fewcl kernels %10.1f ms (%.0f%%)\n  "
               "GEMMs %18.1f ms (%.0f%%), %ld calls\n  host-path work %9.1f ms (%.0f%%: im2col, "
               "col2im, bias on the CPU)\n  the rest %14.1f ms (%.0f%%: launch gaps, "
               "transfers, host code)\n%-28s %10s %8s %8s\n",
               train ? "training step" : "evaluation forward", ms, total, 100 * total / ms,
               ctx->gemm_profile_ms, 100 * ctx->gemm_profile_ms / ms,
               ctx->gemm_calls, ctx->host_profile_ms, 100 * ctx->host_profile_ms / ms,
               ms - total - ctx->gemm_profile_ms - ctx->host_profile_ms,
               100 * (ms - total - ctx->gemm_profile_ms - ctx->host_profile_ms) / ms, "kernel",
               "ms", "share", "launches");
    }
    for (int i = 0; i < n; i++) {
        const fcl_kernel_entry *k = order[i];
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "kernel", k->name);
            cJSON_AddNumberToObject(o, "ms", k->profile_ms);
            cJSON_AddNumberToObject(o, "launches", (double)k->launches);
            cJSON_AddItemToArray(out, o);
        } else if (i < 20) {
            printf("%-28s %10.2f %7.1f%% %8ld\n", k->name, k->profile_ms,
                   100 * k->profile_ms / (*wall * 1e3), k->launches);
        }
    }
    return FEWCL_OK;
}

int cmd_bench_model(int argc, char **argv) {
    static const struct option opts[] = {{"model", no_argument, 0, OPT_MODEL},
                                         {"device", required_argument, 0, OPT_DEVICE},
                                         {"repeat", required_argument, 0, OPT_REPEAT},
                                         {"test-episodes", required_argument, 0, OPT_TEST_EPISODES},
                                         {"json", no_argument, 0, OPT_JSON},
                                         {"help", no_argument, 0, OPT_HELP},
                                         MODEL_FLAG_OPTIONS,
                                         {0, 0, 0, 0}};
    fewcl_model_config flags = model_config_default();
    const char *device = NULL;
    int repeat = 5, test_episodes = 0, json = 0, c;
    long v = 0;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        int r = model_flag(c, optarg, &flags, "bench");
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case OPT_MODEL: break;
        case OPT_DEVICE: device = optarg; break;
        case OPT_REPEAT: /* the timings array is sized by it: keep it modest */
            if (parse_count("bench", "repeat", optarg, 1, &v)) return EXIT_USAGE;
            if (v > 1000) {
                fprintf(stderr, "fewcl bench: --repeat %ld: at most 1000\n", v);
                return EXIT_USAGE;
            }
            repeat = (int)v;
            break;
        case OPT_TEST_EPISODES:
            if (parse_count("bench", "test-episodes", optarg, 0, &v)) return EXIT_USAGE;
            test_episodes = v > 1000000 ? 1000000 : (int)v;
            break;
        case OPT_JSON: json = 1; break;
        case 'h':
        case OPT_HELP: {
            printf("usage: fewcl bench --model [--repeat N] [--test-episodes N] [--device D] "
                   "[--json]\n                   [model flags]\n\nTimes one episode of the "
                   "model (pattern input): the evaluation forward and the\ntraining step "
                   "(forward, backward, AdamW), median of N (5) after a warm-up; with\n"
                   "--test-episodes, that many evaluation episodes back to back (as fewcl test, "
                   "without\nloading); then profiles one evaluation forward and one "
                   "training step per kernel.\n");
            fewcl_model_config d = model_config_default();
            model_flags_help(stdout, &d, NULL);
            return 0;
        }
        default: return cli_bad_option("bench", c, argv, opts);
        }
    }
    bench_session b;
    int rc_open = bench_session_open(&flags, optind < argc, device, &b);
    if (rc_open) return rc_open;
    fewcl_context *ctx = b.ctx;
    const fcl_model_config cfg = b.cfg;
    fcl_model *m = b.m;
    const fcl_tensor *x = &b.x;
    fewcl_status s = FEWCL_OK;
    double eval_s = 0, train_s = 0, test_s = 0, wall = 0, eval_wall = 0;
    cJSON *kernels = cJSON_CreateArray(), *gemm = cJSON_CreateObject();
    cJSON *eval_kernels = cJSON_CreateArray(), *eval_gemm = cJSON_CreateObject();
    if (s == FEWCL_OK && !json)
        printf("device: %s (%s)\nmodel: %s %dx%d %s %s, %d-way %d-shot %d-query (%d images), "
               "median of %d\n",
               ctx->info.name, ctx->info.platform, fcl_backbone_name(cfg.backbone), cfg.image_size,
               cfg.image_size, fcl_method_name(cfg.method), fcl_variant_name(cfg.variant),
               cfg.n_way, cfg.k_shot, cfg.n_query, x->shape[0], repeat);
    if (s == FEWCL_OK) s = time_phase(ctx, m, x, 0, repeat, &eval_s);
    if (s == FEWCL_OK && !json) printf("evaluation forward   %9.4f s\n", eval_s), fflush(stdout);
    if (s == FEWCL_OK) s = time_phase(ctx, m, x, 1, repeat, &train_s);
    if (s == FEWCL_OK && !json) printf("training step        %9.4f s\n", train_s), fflush(stdout);
    if (s == FEWCL_OK && test_episodes) s = time_test(ctx, m, x, test_episodes, &test_s);
    if (s == FEWCL_OK && test_episodes && !json)
        printf("%d test episodes   %9.4f s\n", test_episodes, test_s), fflush(stdout);
    if (s == FEWCL_OK) s = profile_step(ctx, m, x, 0, json, eval_kernels, eval_gemm, &eval_wall);
    if (s == FEWCL_OK) s = profile_step(ctx, m, x, 1, json, kernels, gemm, &wall);
    if (s == FEWCL_OK && json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", ctx->info.name);
        cJSON_AddNumberToObject(o, "eval_forward_s", eval_s);
        cJSON_AddNumberToObject(o, "train_step_s", train_s);
        if (test_episodes) {
            cJSON_AddNumberToObject(o, "test_episodes", test_episodes);
            cJSON_AddNumberToObject(o, "test_episodes_s", test_s);
        }
        cJSON_AddNumberToObject(o, "profiled_step_s", wall);
        cJSON_AddItemToObject(o, "kernels", kernels);
        cJSON_AddItemToObject(o, "gemm", gemm);
        cJSON_AddNumberToObject(o, "profiled_eval_s", eval_wall);
        cJSON_AddItemToObject(o, "eval_kernels", eval_kernels);
        cJSON_AddItemToObject(o, "eval_gemm", eval_gemm);
        kernels = gemm = eval_kernels = eval_gemm = NULL;
        char *text = cJSON_PrintUnformatted(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    }
    cJSON_Delete(kernels);
    cJSON_Delete(gemm);
    cJSON_Delete(eval_kernels);
    cJSON_Delete(eval_gemm);
    return bench_session_close(&b, s);
}
