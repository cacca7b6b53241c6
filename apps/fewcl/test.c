/* `fewcl test`: accuracy of trained weights over test episodes, mean ± 1.96·σ/√N
 * (docs/maths.md §6.2). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data_flags.h"
#include "model_flags.h"
#include "progress.h"
#include "train_report.h"

static void usage(FILE *f) {
    data_flags d;
    data_flags_init(&d);
    fprintf(f, "usage: fewcl test --weights FILE --data DIR [--split novel|val|base]\n"
               "                  [--episodes N] [--seed N] [--device D | --devices L]\n"
               "                  [--quiet] [--json]\n"
               "                  [data flags] [model flags]\n\n"
               "Evaluates the weights (a fewcl checkpoint, whose stored config gives the\n"
               "architecture, or PyTorch-exported weights described by the model flags) on N\n"
               "episodes (default 600) of the split (default novel) in evaluation mode;\n"
               "episode sizes are the training's unless --n-way/--k-shot/--n-query say\n"
               "otherwise; --seed (default 1) picks the episodes. Prints accuracy %% = mean\n"
               "± 1.96·σ/√N; inside a run folder also writes it next to the weights as\n"
               "test_<split>_<weights>_<way>w<shot>s_<N>.json. Exit status 130 when stopped\n"
               "by Ctrl-C. Under mpirun/srun the ranks share the episodes and rank 0\n"
               "prints the result, equal to one process's (docs/distributed.md).\n"
               "--devices L splits the episodes (or a rank's share) over several devices of\n"
               "this machine, one block each, with the same result: L is all (every GPU, else\n"
               "every CPU device) or P:D,P:D,... from `fewcl devices` (an entry may repeat).\n");
    data_flags_help(f, &d);
    fewcl_model_config m = model_config_default();
    model_flags_help(f, &m, "a fewcl checkpoint's own values; these defaults for other weights");
}

enum {
    OPT_WEIGHTS = 1,
    OPT_SPLIT,
    OPT_EPISODES,
    OPT_SEED,
    OPT_DEVICE,
    OPT_DEVICES,
    OPT_QUIET,
    OPT_JSON,
    OPT_HELP
};

/* Model flags as given, replayed over the checkpoint's config. */
typedef struct given_flag {
    int code;
    const char *arg;
} given_flag;

int cmd_test(int argc, char **argv) {
    static const struct option opts[] = {{"weights", required_argument, 0, OPT_WEIGHTS},
                                         {"split", required_argument, 0, OPT_SPLIT},
                                         {"episodes", required_argument, 0, OPT_EPISODES},
                                         {"seed", required_argument, 0, OPT_SEED},
                                         {"device", required_argument, 0, OPT_DEVICE},
                                         {"devices", required_argument, 0, OPT_DEVICES},
                                         {"quiet", no_argument, 0, OPT_QUIET},
                                         {"json", no_argument, 0, OPT_JSON},
                                         {"help", no_argument, 0, OPT_HELP},
                                         MODEL_FLAG_OPTIONS,
                                         DATA_FLAG_OPTIONS,
                                         {0, 0, 0, 0}};
    fewcl_model_config flags_cfg = model_config_default();
    data_flags data;
    data_flags_init(&data);
    given_flag given[64];
    int n_given = 0, split = SPLIT_NOVEL, quiet = 0, json = 0, c;
    const char *weights = NULL, *device = NULL, *devices = NULL;
    const char *split_names[] = {"base", "val", "novel"};
    long episodes = 600, seed = 1;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        int r = model_flag(c, optarg, &flags_cfg, "test");
        if (r > 0 && n_given < 64) given[n_given++] = (given_flag){c, optarg};
        if (r == 0) r = data_flag(c, optarg, &data, "test");
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case OPT_WEIGHTS: weights = optarg; break;
        case OPT_SPLIT:
            split = -1;
            for (int i = 0; i < SPLITS; i++)
                if (!strcmp(optarg, split_names[i])) split = i;
            if (split < 0) {
                fprintf(stderr, "fewcl test: --split '%s': expected novel, val or base\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_EPISODES:
            if (parse_count("test", "episodes", optarg, 1, &episodes)) return EXIT_USAGE;
            break;
        case OPT_SEED:
            if (parse_count("test", "seed", optarg, 0, &seed)) return EXIT_USAGE;
            break;
        case OPT_DEVICE: device = optarg; break;
        case OPT_DEVICES: devices = optarg; break;
        case OPT_QUIET: quiet = 1; break;
        case OPT_JSON: json = 1; break;
        case 'h':
        case OPT_HELP: usage(stdout); return 0;
        default: return cli_bad_option("test", c, argv, opts);
        }
    }
    if (optind < argc || !weights || !data_has_split(&data, split)) {
        if (optind < argc) fprintf(stderr, "fewcl test: unexpected argument '%s'\n", argv[optind]);
        if (!weights) fprintf(stderr, "fewcl test: give the trained weights with --weights FILE\n");
        if (!data_has_split(&data, split))
            fprintf(stderr, "fewcl test: no data for the %s split: give --data DIR or %s F\n",
                    split_names[split], split_list_flag(split));
        return EXIT_USAGE;
    }
    /* The checkpoint's config, with the given flags replayed over it: architecture flags that
     * contradict the checkpoint are a usage error, episode sizes may differ. */
    fewcl_model_config saved = model_config_default(), cfg = flags_cfg;
    int found = 0;
    fewcl_status s = fewcl_model_read_config(weights, &saved, &found);
    if (s != FEWCL_OK) return cli_fail_alone("test", s);
    if (found) {
        cfg = saved;
        for (int i = 0; i < n_given; i++)
            model_flag(given[i].code, given[i].arg, &cfg, "test");
        char diff[512];
        int n_diff = 0;
        fewcl_model_config_diff(&saved, &cfg, diff, sizeof diff, &n_diff);
        if (n_diff) {
            fprintf(stderr,
                    "fewcl test: %s was trained with a different model (saved vs given: %s); "
                    "drop those flags\n",
                    weights, diff);
            return EXIT_USAGE;
        }
    }
    if (fewcl_model_config_validate(&cfg) != FEWCL_OK) {
        fprintf(stderr, "fewcl test: %s\n", fewcl_last_error());
        return EXIT_USAGE;
    }
    fewcl_dataset *ds = NULL;
    fewcl_context *ctx = NULL;
    fewcl_model *m = NULL;
    fewcl_test_result r = {.struct_size = sizeof r};
    int uniform = 0; /* another support shape than the trained one: uniform shot weights */
    progress_state ps;
    progress_init(&ps, quiet || json);
    install_stop_handler();
    char first[32]; /* with --devices: the model is loaded on the list's first device */
    if (devices) {
        fewcl_device_info *list;
        int n;
        if (device) {
            fprintf(stderr, "fewcl test: give --device or --devices, not both\n");
            return EXIT_USAGE;
        }
        s = fewcl_parse_device_list(devices, &list, &n);
        if (s != FEWCL_OK) return cli_fail("test", s);
        snprintf(first, sizeof first, "%d:%d", list[0].platform_index, list[0].device_index);
        fewcl_free_device_list(list);
        device = first;
    }
    int rc_open = cli_open_device("test", device, &ctx);
    if (rc_open) return rc_open;
    s = data_open_split(&data, split, &ds);
    if (s != FEWCL_OK && cli_dist.size > 1) cli_fail_alone("test", s);
    /* The checkpoint's architecture run at the episode shape asked for (the learned prototype
     * weights only fit the trained one). */
    if (s == FEWCL_OK) s = fewcl_model_load_as(ctx, weights, &cfg, &m, &uniform);
    if (s != FEWCL_OK && cli_dist.size > 1) cli_fail_alone("test", s);
    if (s == FEWCL_OK) fewcl_model_get_config(m, &cfg);
    int lead = cli_dist.rank == 0; /* results from rank 0 only; every rank gets them */
    if (s == FEWCL_OK && uniform && found && lead)
        fprintf(stderr,
                "fewcl test: note: %s's learned prototype weights are for %d-way %d-shot; for "
                "%d-way %d-shot the shots are averaged uniformly\n",
                weights, saved.n_way, saved.k_shot, cfg.n_way, cfg.k_shot);
    else if (s == FEWCL_OK && uniform && lead)
        fprintf(stderr,
                "fewcl test: note: %s's learned prototype weights have another shape than "
                "%d-way %d-shot; the shots are averaged uniformly\n",
                weights, cfg.n_way, cfg.k_shot);
    if (s == FEWCL_OK) {
        fewcl_test_params tp;
        fewcl_test_params_default(&tp, sizeof tp);
        tp.dataset = ds;
        tp.episodes = (int)episodes;
        tp.seed = (uint64_t)seed;
        tp.workers = data.io.workers, tp.cache_bytes = data.io.cache_bytes;
        tp.skip_bad_images = data.io.skip_bad, tp.scale_115 = data.io.scale_115;
        tp.progress = progress_update, tp.user = &ps, tp.cancel = g_stop_token;
        tp.distributed = 1; /* under mpirun: this rank's share of the episodes */
        tp.devices = devices;
        s = fewcl_test(m, &tp, &r);
        progress_break(&ps);
    }
    if (s == FEWCL_OK && lead) {
        cJSON *o = test_result_json(&r, split_names[split], weights, &cfg);
        cJSON_AddBoolToObject(o, "uniform_prototype_weights", uniform);
        save_test_result("test", weights, split_names[split], o);
        if (json) {
            char *text = cJSON_PrintUnformatted(o);
            if (text) puts(text);
            free(text);
        } else {
            char what[64];
            snprintf(what, sizeof what, "%s, %d-way %d-shot", split_names[split], cfg.n_way,
                     cfg.k_shot);
            print_test_result(what, &r);
        }
        cJSON_Delete(o);
    }
    fewcl_model_destroy(m);
    fewcl_dataset_destroy(ds);
    if (ctx) fewcl_context_destroy(ctx);
    return s == FEWCL_OK ? 0 : cli_fail("test", s);
}
