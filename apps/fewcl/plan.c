/* `fewcl plan`: the device memory one episode needs, per category, found by running the real
 * schedule on a counting allocator (docs/spec.md §8), before anything is allocated; with --fit, the
 * cheapest settings that fit. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data_flags.h"
#include "model_flags.h"

static void usage(FILE *f) {
    fprintf(f, "usage: fewcl plan [--eval] [--meta-batch M] [--fit BYTES|device]\n"
               "                  [--device-mem BYTES] [--max-alloc BYTES]\n"
               "                  [--device D | --devices L] [--json]\n"
               "                  [model flags]\n\n"
               "Plans the trainer's schedule (model, two training steps, a validation episode;\n"
               "--meta-batch M: steps of M episodes as `fewcl train --meta-batch M` runs them;\n"
               "--eval: one evaluation episode) on the chosen device without allocating: device\n"
               "memory per category at the peak and each category's own peak, the live peak and\n"
               "the footprint (the device buffers a run reserves), and whether the footprint\n"
               "fits the global memory (or FEWCL_MEM_LIMIT) with no buffer over the largest\n"
               "allocation. --device-mem plans for another device of that size, a GPU (its\n"
               "kernels, CLBlast's GEMMs and workspaces), whose largest allocation is\n"
               "--max-alloc (default a quarter, NVIDIA's rule). --fit picks the cheapest\n"
               "settings that fit BYTES (or the device): the low-rank Mahalanobis path, then\n"
               "gradient checkpointing, then a smaller projection. Sizes: 512M, 16G, 8gb,\n"
               "1.5GiB, ... (K, M, G, T: powers of 1024). Exit 0 when it fits (or a fit was\n"
               "found), 1 when not. --devices L (as `fewcl train/test --devices`): what each\n"
               "replica holds (replica 1, the first entry, is the trainer's context: the model,\n"
               "the optimiser, the whole schedule; every other one a model copy with its block\n"
               "of each step of M episodes and validation), and per device the sum of its\n"
               "replicas' footprints against its memory (entries that repeat share one device).\n"
               "Under `mpirun -np R`: every rank plans its own device (or --devices list) as\n"
               "`mpirun -np R fewcl train --meta-batch M` uses it, and rank 0 prints one table\n"
               "(ranks of one host naming one device share it); exit 1 when any rank does not\n"
               "fit.\n");
    fewcl_model_config d = model_config_default();
    model_flags_help(f, &d, NULL);
}

enum {
    OPT_EVAL = 1,
    OPT_FIT,
    OPT_DEVICE_MEM,
    OPT_MAX_ALLOC,
    OPT_DEVICE,
    OPT_DEVICES,
    OPT_JSON,
    OPT_META_BATCH,
    OPT_HELP
};

static int parse_size(const char *flag, const char *arg, uint64_t *out) {
    if (fewcl_parse_size(arg, out) == FEWCL_OK && *out > 0) return 0;
    fprintf(stderr,
            "fewcl plan: --%s '%s' is not a size (examples: 1073741824, 512M, 8gb, 1.5GiB)\n", flag,
            arg);
    return -1;
}

static void print_plan(const fewcl_plan_result *st) {
    char a[32], b[32];
    printf("  %-12s %12s %14s\n", "category", "at peak", "own peak");
    for (int k = 0; k < FEWCL_MEM_CATEGORIES; k++)
        printf("  %-12s %12s %14s\n", fewcl_mem_category_name(k),
               cli_bytes((double)st->at_peak[k], a, sizeof a),
               cli_bytes((double)st->category_peak[k], b, sizeof b));
    printf("  %-12s %12s  (live bytes, planned with the real schedule: the lower bound)\n",
           "live peak", cli_bytes((double)st->peak_bytes, a, sizeof a));
    printf("  %-12s %12s  (%.3f x the live peak: the device buffers a run reserves; this is "
           "what the budget bounds)\n",
           "footprint", cli_bytes((double)st->reserved_bytes, b, sizeof b),
           st->peak_bytes ? (double)st->reserved_bytes / (double)st->peak_bytes : 0.0);
}

static cJSON *plan_json(const fewcl_plan_result *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON *at = cJSON_AddObjectToObject(o, "bytes_at_peak");
    cJSON *own = cJSON_AddObjectToObject(o, "category_peak_bytes");
    for (int k = 0; k < FEWCL_MEM_CATEGORIES; k++) {
        const char *name = fewcl_mem_category_name(k);
        cJSON_AddNumberToObject(at, name, (double)st->at_peak[k]);
        cJSON_AddNumberToObject(own, name, (double)st->category_peak[k]);
    }
    cJSON_AddNumberToObject(o, "peak_bytes", (double)st->peak_bytes);
    cJSON_AddNumberToObject(o, "footprint_bytes", (double)st->reserved_bytes);
    return o;
}

/* The plan of cfg for the device and budget of `base` (fit or not as base says). */
static fewcl_status plan(fewcl_context *ctx, const fewcl_model_config *cfg,
                         const fewcl_plan_params *base, fewcl_plan_result *r,
                         fewcl_plan_info *info) {
    fewcl_plan_params p = *base;
    p.info = info;
    r->struct_size = sizeof *r;
    return fewcl_plan(ctx, cfg, &p, r);
}

/* By how much a configuration misses the budget: the footprint of its plan without a budget
 * (the largest allocation still applies), as ": its planned buffers take 2.34 GiB, 0.88 GiB
 * (60%) over the budget". */
static const char *shortfall(fewcl_context *ctx, const fewcl_model_config *cfg,
                             const fewcl_plan_params *base, uint64_t budget, char *buf,
                             size_t cap) {
    fewcl_plan_params p = *base;
    p.fit = 0, p.budget = (uint64_t)1 << 62;
    fewcl_plan_result st;
    buf[0] = 0;
    if (plan(ctx, cfg, &p, &st, NULL) != FEWCL_OK || !st.fits || st.reserved_bytes <= budget)
        return buf;
    char need[32], over[32];
    snprintf(buf, cap, ": its planned buffers take %s, %s (%.0f%%) over the budget",
             cli_bytes((double)st.reserved_bytes, need, sizeof need),
             cli_bytes((double)(st.reserved_bytes - budget), over, sizeof over),
             100.0 * (double)(st.reserved_bytes - budget) / (double)budget);
    return buf;
}

int cmd_plan(int argc, char **argv) {
    static const struct option opts[] = {{"eval", no_argument, 0, OPT_EVAL},
                                         {"fit", required_argument, 0, OPT_FIT},
                                         {"device-mem", required_argument, 0, OPT_DEVICE_MEM},
                                         {"max-alloc", required_argument, 0, OPT_MAX_ALLOC},
                                         {"device", required_argument, 0, OPT_DEVICE},
                                         {"devices", required_argument, 0, OPT_DEVICES},
                                         {"json", no_argument, 0, OPT_JSON},
                                         {"meta-batch", required_argument, 0, OPT_META_BATCH},
                                         {"help", no_argument, 0, OPT_HELP},
                                         MODEL_FLAG_OPTIONS,
                                         {0, 0, 0, 0}};
    fewcl_model_config cfg = model_config_default();
    const char *device = NULL, *devices = NULL, *fit = NULL;
    uint64_t device_mem = 0, max_alloc = 0, fit_bytes = 0;
    int training = 1, json = 0, c;
    long meta_batch = 1;
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
        case OPT_DEVICES: devices = optarg; break;
        case OPT_JSON: json = 1; break;
        case OPT_META_BATCH:
            if (parse_count("plan", "meta-batch", optarg, 1, &meta_batch)) return EXIT_USAGE;
            break;
        case 'h':
        case OPT_HELP: usage(stdout); return 0;
        default: return cli_bad_option("plan", c, argv, opts);
        }
    }
    if (!training && meta_batch > 1) {
        fprintf(stderr, "fewcl plan: --meta-batch %ld plans training steps; drop it or --eval\n",
                meta_batch);
        return EXIT_USAGE;
    }
    if (optind < argc || fewcl_model_config_validate(&cfg) != FEWCL_OK) {
        if (optind < argc)
            fprintf(stderr, "fewcl plan: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "fewcl plan: %s\n", fewcl_last_error());
        return EXIT_USAGE;
    }
    if (devices && (device || fit || device_mem || max_alloc)) {
        fprintf(stderr, "fewcl plan: --devices plans the listed devices as they are: drop "
                        "--device, --fit, --device-mem and --max-alloc\n");
        return EXIT_USAGE;
    }
    if (cli_dist.size > 1 && (fit || device_mem || max_alloc)) {
        if (cli_dist.rank == 0)
            fprintf(stderr,
                    "fewcl plan: under %d ranks every rank plans its own device as it "
                    "is: drop --fit, --device-mem and --max-alloc (or run one process)\n",
                    cli_dist.size);
        return EXIT_USAGE;
    }
    if (cli_dist.size > 1 && training && meta_batch < 2) {
        if (cli_dist.rank == 0)
            fprintf(stderr,
                    "fewcl plan: training across %d MPI ranks shares the episodes of a "
                    "meta-batch step: give --meta-batch M with M >= 2 (as `fewcl train` needs), "
                    "or --eval for a test across ranks\n",
                    cli_dist.size);
        return EXIT_USAGE;
    }
    if (devices || cli_dist.size > 1) {
        fewcl_plan_params params;
        fewcl_plan_params_default(&params, sizeof params);
        params.training = training;
        params.meta_batch = (int)meta_batch;
        if (cli_dist.size > 1) return plan_ranks(devices, device, &cfg, &params, json);
        return plan_devices(devices, &cfg, &params, json);
    }
    fewcl_context *ctx;
    int rc_open = cli_open_device("plan", device, &ctx);
    if (rc_open) return rc_open;
    /* The device planned for: this one, or one of --device-mem bytes (--max-alloc: its largest
     * buffer). The budget: its memory, FEWCL_MEM_LIMIT (for this device), or --fit BYTES. */
    fewcl_plan_params params;
    fewcl_plan_params_default(&params, sizeof params);
    params.training = training;
    params.meta_batch = (int)meta_batch;
    params.device_memory = device_mem, params.max_alloc = max_alloc;
    params.budget = fit_bytes;
    params.fit = fit != NULL;
    const char *limit_env = getenv("FEWCL_MEM_LIMIT");
    uint64_t env_limit = 0;
    if (limit_env && *limit_env && !device_mem && fewcl_parse_size(limit_env, &env_limit))
        env_limit = 0;
    const char *budget_from = fit_bytes ? "--fit" : env_limit ? "FEWCL_MEM_LIMIT" : "device memory";
    fewcl_plan_result fr;
    fewcl_plan_info info = {.struct_size = sizeof info};
    fewcl_status s = plan(ctx, &cfg, &params, &fr, &info);
    if (s != FEWCL_OK) {
        int rc = cli_fail("plan", s);
        fewcl_context_destroy(ctx);
        return rc;
    }
    int D = 0, Dp = 0;
    fewcl_model_config_dims(&fr.config, &D, &Dp);
    uint64_t budget = info.budget;
    const char *device_name = fewcl_context_device(ctx)->name;
    if (json) {
        cJSON *o = plan_json(&fr);
        cJSON_AddStringToObject(o, "device", device_name);
        cJSON_AddStringToObject(o, "mode", training ? "training" : "evaluation");
        if (training) cJSON_AddNumberToObject(o, "meta_batch", (double)meta_batch);
        cJSON_AddNumberToObject(o, "feature_dim", D);
        cJSON_AddNumberToObject(o, "working_dim", Dp);
        cJSON_AddNumberToObject(o, "device_bytes", (double)info.device_memory);
        cJSON_AddNumberToObject(o, "max_alloc_bytes", (double)info.max_alloc);
        cJSON_AddNumberToObject(o, "budget_bytes", (double)budget);
        cJSON_AddNumberToObject(o, "reserved_bytes", (double)fr.reserved_bytes);
        cJSON_AddBoolToObject(o, "fits", fr.fits);
        if (info.reason[0]) cJSON_AddStringToObject(o, "reason", info.reason);
        if (fit) {
            cJSON_AddStringToObject(o, "fit_changes", fr.changes);
            cJSON_AddNumberToObject(o, "fit_candidates", info.candidates);
        }
        char *text = cJSON_Print(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    } else {
        char a[32], b[32], d[32], why[192];
        char what[64];
        if (meta_batch > 1)
            snprintf(what, sizeof what, "training step of %ld episodes", meta_batch);
        else
            snprintf(what, sizeof what, "%s episode", training ? "training" : "evaluation");
        printf("plan: one %s, %s %dx%d, %s head, %d-way %d-shot %d-query, D %d -> D' %d, "
               "Mahalanobis %s, checkpointing %s\n",
               what, setting_name(FEWCL_SETTING_BACKBONE, cfg.backbone), cfg.image_size,
               cfg.image_size, setting_name(FEWCL_SETTING_METHOD, cfg.method), cfg.n_way,
               cfg.k_shot, cfg.n_query, D, Dp,
               setting_name(FEWCL_SETTING_MAHALANOBIS, fr.config.mahalanobis),
               setting_name(FEWCL_SETTING_CHECKPOINTING, fr.config.checkpointing));
        printf("device: %s%s, %s global, %s largest allocation; budget %s (%s)\n",
               device_mem ? "planned as a device like " : "", device_name,
               cli_bytes((double)info.device_memory, a, sizeof a),
               cli_bytes((double)info.max_alloc, b, sizeof b),
               cli_bytes((double)budget, d, sizeof d), budget_from);
        if (fit && info.reason[0])
            printf("as given: does not fit — %s%s\n", info.reason,
                   shortfall(ctx, &cfg, &params, budget, why, sizeof why));
        if (fr.fits) {
            print_plan(&fr);
            if (fit && fr.changes[0])
                printf("fits: yes, with %s (%d candidates planned)\n", fr.changes, info.candidates);
            else
                printf("fits: yes%s\n", fit ? ", as given" : "");
        } else if (fit) {
            printf("fits: no — nothing fits: the cheapest candidate (--mahalanobis %s "
                   "--checkpoint %s, D' %d) does not%s; make the episode smaller: another "
                   "backbone, --image-size, --n-way, --k-shot or --n-query\n",
                   setting_name(FEWCL_SETTING_MAHALANOBIS, fr.config.mahalanobis),
                   setting_name(FEWCL_SETTING_CHECKPOINTING, fr.config.checkpointing), Dp,
                   shortfall(ctx, &fr.config, &params, budget, why, sizeof why));
        } else {
            printf("fits: no — %s%s\n(add --fit %s to find the cheapest settings that do)\n",
                   info.reason, shortfall(ctx, &cfg, &params, budget, why, sizeof why),
                   fit_bytes || !env_limit ? "device" : limit_env);
        }
    }
    fewcl_context_destroy(ctx);
    return fr.fits ? 0 : EXIT_RUNTIME;
}
