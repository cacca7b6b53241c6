/* `fewcl plan`: the device memory one episode needs, per category, found by running the real
 * schedule on a counting allocator (docs/spec.md §8), before anything is allocated; with --fit, the
 * cheapest settings that fit. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model_flags.h"
#include "plan/episode_plan.h"
#include "plan/fit.h"

static void usage(FILE *f) {
    fprintf(f, "usage: fewcl plan [--eval] [--fit BYTES|device] [--device-mem BYTES]\n"
               "                  [--max-alloc BYTES] [--device D] [--json] [model flags]\n\n"
               "Plans one training episode (model, forward, backward, AdamW step; --eval: one\n"
               "evaluation episode) on the chosen device without allocating: device memory per\n"
               "category at the peak and each category's own peak, and whether it fits the\n"
               "global memory (or FEWCL_MEM_LIMIT) with no buffer over the largest allocation.\n"
               "--device-mem plans for another device of that size, a GPU (its kernels,\n"
               "CLBlast's GEMMs and their workspaces; FEWCL_DEVICE_PROFILE names the family),\n"
               "whose largest allocation is --max-alloc (default a quarter, NVIDIA's rule).\n"
               "The footprint is what a run reserves. --fit picks the cheapest\n"
               "settings that fit BYTES (or the device): the low-rank Mahalanobis path, then\n"
               "gradient checkpointing, then a smaller projection. Sizes: 512M, 16G, 8gb,\n"
               "1.5GiB, ... (K, M, G, T: powers of 1024). Exit 0 when it fits (or a fit was\n"
               "found), 1 when not.\n");
    fcl_model_config d = fcl_config_default();
    model_flags_help(f, &d, NULL);
}

enum { OPT_EVAL = 1, OPT_FIT, OPT_DEVICE_MEM, OPT_MAX_ALLOC, OPT_DEVICE, OPT_JSON, OPT_HELP };

static int parse_size(const char *flag, const char *arg, size_t *out) {
    if (fcl_parse_bytes(arg, out) == 0 && *out > 0) return 0;
    fprintf(stderr,
            "fewcl plan: --%s '%s' is not a size (examples: 1073741824, 512M, 8gb, 1.5GiB)\n", flag,
            arg);
    return -1;
}

static void print_plan(const fcl_arena_stats *st) {
    char a[32], b[32];
    printf("  %-12s %12s %14s\n", "category", "at peak", "own peak");
    for (int k = 0; k < FCL_MEM_CATEGORIES; k++)
        printf("  %-12s %12s %14s\n", fcl_mem_category_name((fcl_mem_category)k),
               cli_bytes((double)st->by_category_at_peak[k], a, sizeof a),
               cli_bytes((double)st->category_peak[k], b, sizeof b));
    printf("  %-12s %12s  (live bytes, planned with the real schedule: the lower bound)\n",
           "live peak", cli_bytes((double)st->peak, a, sizeof a));
    printf("  %-12s %12s  (%.3f x the live peak: the device buffers a run reserves; this is "
           "what the budget bounds)\n",
           "footprint", cli_bytes((double)st->peak_reserved, b, sizeof b),
           st->peak ? (double)st->peak_reserved / (double)st->peak : 0.0);
}

static cJSON *plan_json(const fcl_arena_stats *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON *at = cJSON_AddObjectToObject(o, "bytes_at_peak");
    cJSON *own = cJSON_AddObjectToObject(o, "category_peak_bytes");
    for (int k = 0; k < FCL_MEM_CATEGORIES; k++) {
        const char *name = fcl_mem_category_name((fcl_mem_category)k);
        cJSON_AddNumberToObject(at, name, (double)st->by_category_at_peak[k]);
        cJSON_AddNumberToObject(own, name, (double)st->category_peak[k]);
    }
    cJSON_AddNumberToObject(o, "peak_bytes", (double)st->peak);
    cJSON_AddNumberToObject(o, "footprint_bytes", (double)st->peak_reserved);
    return o;
}

/* By how much a configuration misses the budget: the footprint of its plan without a budget
 * (the largest allocation still applies), as ": its planned buffers take 2.34 GiB, 0.88 GiB
 * (60%) over the budget". */
static const char *shortfall(fewcl_context *ctx, const fcl_model_config *cfg, int training,
                             const fcl_limits *target, size_t budget, char *buf, size_t cap) {
    fcl_arena_stats st;
    buf[0] = 0;
    if (fcl_episode_plan_as(ctx, cfg, training, target, (size_t)1 << 62, &st) != FEWCL_OK ||
        st.peak_reserved <= budget)
        return buf;
    char need[32], over[32];
    snprintf(buf, cap, ": its planned buffers take %s, %s (%.0f%%) over the budget",
             cli_bytes((double)st.peak_reserved, need, sizeof need),
             cli_bytes((double)(st.peak_reserved - budget), over, sizeof over),
             100.0 * (double)(st.peak_reserved - budget) / (double)budget);
    return buf;
}

int cmd_plan(int argc, char **argv) {
    static const struct option opts[] = {{"eval", no_argument, 0, OPT_EVAL},
                                         {"fit", required_argument, 0, OPT_FIT},
                                         {"device-mem", required_argument, 0, OPT_DEVICE_MEM},
                                         {"max-alloc", required_argument, 0, OPT_MAX_ALLOC},
                                         {"device", required_argument, 0, OPT_DEVICE},
                                         {"json", no_argument, 0, OPT_JSON},
                                         {"help", no_argument, 0, OPT_HELP},
                                         MODEL_FLAG_OPTIONS,
                                         {0, 0, 0, 0}};
    fcl_model_config cfg = fcl_config_default();
    const char *device = NULL, *fit = NULL;
    size_t device_mem = 0, max_alloc = 0, fit_bytes = 0;
    int training = 1, json = 0, c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        int r = model_flag(c, optarg, &cfg, "plan");
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case OPT_EVAL: training = 0; break;
        case OPT_FIT:
            fit = optarg;
            if (strcmp(optarg, "device") != 0 && parse_size("fit", optarg, &fit_bytes))
                return EXIT_USAGE;
            break;
        case OPT_DEVICE_MEM:
            if (parse_size("device-mem", optarg, &device_mem)) return EXIT_USAGE;
            break;
        case OPT_MAX_ALLOC:
            if (parse_size("max-alloc", optarg, &max_alloc)) return EXIT_USAGE;
            break;
        case OPT_DEVICE: device = optarg; break;
        case OPT_JSON: json = 1; break;
        case 'h':
        case OPT_HELP: usage(stdout); return 0;
        default: return cli_bad_option("plan", c, argv, opts);
        }
    }
    if (optind < argc || fcl_config_validate(&cfg) != FEWCL_OK) {
        if (optind < argc)
            fprintf(stderr, "fewcl plan: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "fewcl plan: %s\n", fewcl_last_error());
        return EXIT_USAGE;
    }
    fewcl_context *ctx;
    int rc_open = cli_open_device("plan", device, &ctx);
    if (rc_open) return rc_open;
    /* The device planned for: this one, or one of --device-mem bytes. The budget: its memory,
     * FEWCL_MEM_LIMIT, or --fit BYTES. */
    fcl_limits target = ctx->limits;
    if (device_mem) {
        target.global_mem = device_mem;
        target.max_alloc = max_alloc ? max_alloc : device_mem / 4;
        if (!target.profile) fcl_limits_apply_profile(&target, "gpu"); /* issue 18 */
    } else if (max_alloc) {
        target.max_alloc = max_alloc;
    }
    const char *limit_env = getenv("FEWCL_MEM_LIMIT");
    size_t limit = 0;
    if (limit_env && *limit_env && !device_mem) fcl_parse_bytes(limit_env, &limit);
    if (fit_bytes) limit = fit_bytes;
    const char *budget_from = fit_bytes ? "--fit" : limit ? "FEWCL_MEM_LIMIT" : "device memory";
    fcl_fit_result fr;
    fewcl_status s;
    if (fit) {
        s = fcl_plan_fit(ctx, &cfg, training, &target, limit, &fr);
    } else {
        memset(&fr, 0, sizeof fr);
        fr.cfg = cfg;
        s = fcl_episode_plan_as(ctx, &cfg, training, &target, limit, &fr.stats);
        fr.fits = s == FEWCL_OK;
        if (s == FEWCL_ERR_OUT_OF_MEMORY) {
            snprintf(fr.first_failure, sizeof fr.first_failure, "%s", fewcl_last_error());
            s = FEWCL_OK;
        }
    }
    if (s != FEWCL_OK) {
        int rc = cli_fail("plan", s);
        fewcl_context_destroy(ctx);
        return rc;
    }
    int ch, h, w;
    fcl_config_feature_shape(&fr.cfg, &ch, &h, &w);
    int D = ch * h * w, Dp = fcl_config_working_dim(&fr.cfg, D);
    size_t budget = limit ? limit : target.global_mem;
    if (json) {
        cJSON *o = plan_json(&fr.stats);
        cJSON_AddStringToObject(o, "device", ctx->info.name);
        cJSON_AddStringToObject(o, "mode", training ? "training" : "evaluation");
        cJSON_AddNumberToObject(o, "feature_dim", D);
        cJSON_AddNumberToObject(o, "working_dim", Dp);
        cJSON_AddNumberToObject(o, "device_bytes", (double)target.global_mem);
        cJSON_AddNumberToObject(o, "max_alloc_bytes", (double)target.max_alloc);
        cJSON_AddNumberToObject(o, "budget_bytes", (double)budget);
        cJSON_AddNumberToObject(o, "reserved_bytes", (double)fr.stats.peak_reserved);
        cJSON_AddBoolToObject(o, "fits", fr.fits);
        if (fr.first_failure[0]) cJSON_AddStringToObject(o, "reason", fr.first_failure);
        if (fit) {
            cJSON_AddStringToObject(o, "fit_changes", fr.changes);
            cJSON_AddNumberToObject(o, "fit_candidates", fr.tried);
        }
        char *text = cJSON_Print(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    } else {
        char a[32], b[32], d[32], why[192];
        printf("plan: one %s episode, %s %dx%d, %s head, %d-way %d-shot %d-query, D %d -> D' %d, "
               "Mahalanobis %s, checkpointing %s\n",
               training ? "training" : "evaluation", fcl_backbone_name(cfg.backbone),
               cfg.image_size, cfg.image_size, fcl_method_name(cfg.method), cfg.n_way, cfg.k_shot,
               cfg.n_query, D, Dp, fcl_mahalanobis_name(fr.cfg.mahalanobis),
               fcl_checkpointing_name(fr.cfg.checkpoint));
        printf("device: %s%s, %s global, %s largest allocation; budget %s (%s)\n",
               device_mem ? "planned as a device like " : "", ctx->info.name,
               cli_bytes((double)target.global_mem, a, sizeof a),
               cli_bytes((double)target.max_alloc, b, sizeof b),
               cli_bytes((double)budget, d, sizeof d), budget_from);
        if (fit && fr.first_failure[0])
            printf("as given: does not fit — %s%s\n", fr.first_failure,
                   shortfall(ctx, &cfg, training, &target, budget, why, sizeof why));
        if (fr.fits) {
            print_plan(&fr.stats);
            if (fit && fr.changes[0])
                printf("fits: yes, with %s (%d candidates planned)\n", fr.changes, fr.tried);
            else
                printf("fits: yes%s\n", fit ? ", as given" : "");
        } else if (fit) {
            printf("fits: no — nothing fits: the cheapest candidate (--mahalanobis %s "
                   "--checkpoint %s, D' %d) does not%s; make the episode smaller: another "
                   "backbone, --image-size, --n-way, --k-shot or --n-query\n",
                   fcl_mahalanobis_name(fr.cfg.mahalanobis),
                   fcl_checkpointing_name(fr.cfg.checkpoint), fcl_config_working_dim(&fr.cfg, D),
                   shortfall(ctx, &fr.cfg, training, &target, budget, why, sizeof why));
        } else {
            printf("fits: no — %s%s\n(add --fit %s to find the cheapest settings that do)\n",
                   fr.first_failure,
                   shortfall(ctx, &cfg, training, &target, budget, why, sizeof why),
                   fit_bytes || !limit ? "device" : limit_env);
        }
    }
    fewcl_context_destroy(ctx);
    return fr.fits ? 0 : EXIT_RUNTIME;
}
