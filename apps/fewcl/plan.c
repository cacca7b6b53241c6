/* `fewcl plan`: the device memory one episode needs, per category, found by running the real
 * schedule on a counting allocator (SPEC §8), before anything is allocated. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "model_flags.h"
#include "plan/episode_plan.h"

static void usage(FILE *f) {
    fprintf(f, "usage: fewcl plan [--eval] [--device D] [--json] [model flags]\n\n"
               "Plans one training episode (model, forward, backward, AdamW step; --eval: one\n"
               "evaluation episode) on the chosen device without allocating: peak device memory\n"
               "per category and whether it fits (global memory, largest allocation, and\n"
               "FEWCL_MEM_LIMIT). Exit 0 when it fits, 1 when it does not.\n\n" MODEL_FLAG_HELP);
}

int cmd_plan(int argc, char **argv) {
    static const struct option opts[] = {{"eval", no_argument, 0, 'e'},
                                         {"device", required_argument, 0, 'd'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         MODEL_FLAG_OPTIONS,
                                         {0, 0, 0, 0}};
    fcl_model_config cfg = fcl_config_default();
    const char *device = NULL;
    int training = 1, json = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = model_flag(c, optarg, &cfg, "plan");
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'e': training = 0; break;
        case 'd': device = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
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
    fewcl_status s;
    const char *limit_env = getenv("FEWCL_MEM_LIMIT");
    size_t limit = 0;
    if (limit_env && *limit_env) fcl_parse_bytes(limit_env, &limit); /* validated by the context */
    fcl_arena_stats st;
    s = fcl_episode_plan(ctx, &cfg, training, limit, &st);
    int fits = s == FEWCL_OK;
    char why[1024] = "";
    if (!fits) snprintf(why, sizeof why, "%s", fewcl_last_error());
    if (s != FEWCL_OK && s != FEWCL_ERR_OUT_OF_MEMORY) {
        fewcl_context_destroy(ctx);
        return cli_fail("plan", s);
    }
    int ch, h, w;
    fcl_config_feature_shape(&cfg, &ch, &h, &w);
    int D = ch * h * w, Dp = fcl_config_working_dim(&cfg, D);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", ctx->info.name);
        cJSON_AddStringToObject(o, "mode", training ? "training" : "evaluation");
        cJSON_AddNumberToObject(o, "feature_dim", D);
        cJSON_AddNumberToObject(o, "working_dim", Dp);
        cJSON *cat = cJSON_AddObjectToObject(o, "bytes_at_peak");
        for (int k = 0; k < FCL_MEM_CATEGORIES; k++)
            cJSON_AddNumberToObject(cat, fcl_mem_category_name((fcl_mem_category)k),
                                    fits ? (double)st.by_category_at_peak[k] : 0);
        cJSON_AddNumberToObject(o, "peak_bytes", fits ? (double)st.peak : 0);
        cJSON_AddNumberToObject(o, "device_bytes", (double)ctx->limits.global_mem);
        cJSON_AddNumberToObject(o, "max_alloc_bytes", (double)ctx->limits.max_alloc);
        cJSON_AddBoolToObject(o, "fits", fits);
        if (!fits) cJSON_AddStringToObject(o, "reason", why);
        char *text = cJSON_Print(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    } else {
        char b[32];
        printf("plan: one %s episode, %s %dx%d, %s head, %d-way %d-shot %d-query, D %d -> D' %d\n",
               training ? "training" : "evaluation", fcl_backbone_name(cfg.backbone),
               cfg.image_size, cfg.image_size, fcl_method_name(cfg.method), cfg.n_way, cfg.k_shot,
               cfg.n_query, D, Dp);
        printf("device: %s, %s global, ", ctx->info.name,
               cli_bytes((double)ctx->limits.global_mem, b, sizeof b));
        printf("%s largest allocation\n", cli_bytes((double)ctx->limits.max_alloc, b, sizeof b));
        if (fits) {
            for (int k = 0; k < FCL_MEM_CATEGORIES; k++)
                printf("  %-12s %12s\n", fcl_mem_category_name((fcl_mem_category)k),
                       cli_bytes((double)st.by_category_at_peak[k], b, sizeof b));
            printf("  %-12s %12s  (planned with the real schedule; a run peaks at exactly this)\n",
                   "peak", cli_bytes((double)st.peak, b, sizeof b));
            printf("fits: yes\n");
        } else {
            printf("fits: no — %s\n", why);
        }
    }
    fewcl_context_destroy(ctx);
    return fits ? 0 : EXIT_RUNTIME;
}
