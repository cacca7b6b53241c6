/* `fewcl train`: episodic training with validation, checkpoints and resume
 * (docs/spec.md §4, §7). */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "data_flags.h"
#include "model_flags.h"
#include "progress.h"
#include "run_folder.h"
#include "train_report.h"

enum {
    OPT_RUN_DIR = 1,
    OPT_VAL_EPISODES,
    OPT_WD,
    OPT_NO_AUG,
    OPT_WEIGHTS,
    OPT_BACKBONE_WEIGHTS,
    OPT_BACKBONE_PREFIX,
    OPT_RESUME,
    OPT_META_BATCH,
    OPT_DEVICES,
    OPT_HELP
};

static void usage(FILE *f) {
    train_job d;
    train_job_init(&d);
    data_flags dd;
    data_flags_init(&dd);
    char epochs[16], episodes[16], lr[32], wd[32], seed[32];
    snprintf(epochs, sizeof epochs, "%d", d.opt.epochs);
    snprintf(episodes, sizeof episodes, "%d", d.opt.episodes);
    snprintf(lr, sizeof lr, "%g", d.opt.lr);
    snprintf(wd, sizeof wd, "%g", d.opt.weight_decay);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)d.opt.seed);
    fprintf(f, "usage: fewcl train --data DIR [--run-dir DIR] [options] [data/model flags]\n"
               "       fewcl train --run-dir DIR --resume [options]\n\n"
               "Trains a few-shot classifier on the base split with AdamW, validating every\n"
               "epoch on the val split. The run folder gets config.json, metrics.csv,\n"
               "curves.svg, best.safetensors (best validation accuracy) and last.safetensors\n"
               "(every epoch and on Ctrl-C). The episode is planned first and refused if it\n"
               "does not fit the device (see `fewcl plan`).\n");
    const cli_flag_help items[] = {
        {"--run-dir DIR", "the run folder", "runs/<model>-<time>"},
        {"--epochs N", "epochs", epochs},
        {"--episodes N", "training episodes per epoch", episodes},
        {"--meta-batch M", "episodes averaged per AdamW step", "1"},
        {"--val-episodes N", "validation episodes (0: none)", "--episodes"},
        {"--lr X", "AdamW learning rate", lr},
        {"--lr-schedule S", "constant, or cosine (lr to 0)",
         setting_name(FEWCL_SETTING_LR_SCHEDULE, d.opt.cosine_lr)},
        {"--weight-decay X", "AdamW weight decay", wd},
        {"--seed N", "for weights, episodes, crops", seed},
        {"--no-augment", "no random crops and flips", d.opt.augment ? "augmented" : "none"},
        {"--weights FILE", "start from trained weights", NULL},
        {"--backbone-weights FILE", "a torchvision ResNet backbone", NULL},
        {"--backbone-prefix P", "its key prefix", "none"},
        {"--resume", "continue the run in --run-dir", NULL},
        {"--test-episodes N", "then test on novel", "0: none"},
        {"--device D", "P:D or part of a name", "the first GPU"},
        {"--devices L", "all or P:D,P:D,...: split each step's episodes", NULL},
        {"--quiet", "no progress bars", NULL},
        {"--json", "one JSON object on stdout", NULL},
    };
    cli_help_flags(f, "options:", items, (int)(sizeof items / sizeof *items));
    data_flags_help(f, &dd);
    model_flags_help(f, &d.cfg, NULL);
    fprintf(f, "\n--resume takes every setting and the data from the run folder's config.json;\n"
               "flags given with it must agree with them (--epochs may grow with a constant\n"
               "learning rate). Exit status: 0 done, 1 failure, 2 usage error, 130 stopped by\n"
               "Ctrl-C after saving (143 by SIGTERM): add --resume to the command to go on.\n");
}

/* Applies one option to the job; as model_flag: 1 handled, -1 usage error printed, 0 not one
 * of ours. */
static int apply(int c, const char *arg, train_job *job, data_flags *data, long *val_episodes) {
    int r = model_flag(c, arg, &job->cfg, "train");
    if (r == 0) r = data_flag(c, arg, data, "train");
    if (r == 0) r = job_flag(c, arg, job);
    if (r != 0) return r;
    switch (c) {
    case OPT_RUN_DIR: job->opt.run_dir = arg; return 1;
    case OPT_VAL_EPISODES:
        return parse_count("train", "val-episodes", arg, 0, val_episodes) ? -1 : 1;
    case OPT_WD: return parse_real("train", "weight-decay", arg, &job->opt.weight_decay) ? -1 : 1;
    case OPT_NO_AUG: job->opt.augment = 0; return 1;
    case OPT_WEIGHTS: job->opt.init_weights = arg; return 1;
    case OPT_BACKBONE_WEIGHTS: job->opt.backbone_weights = arg; return 1;
    case OPT_BACKBONE_PREFIX: job->opt.backbone_prefix = arg; return 1;
    case OPT_RESUME: job->opt.resume = 1; return 1;
    case OPT_DEVICES: job->opt.devices = arg; return 1;
    case OPT_META_BATCH: {
        long m;
        if (parse_count("train", "meta-batch", arg, 1, &m)) return -1;
        job->opt.meta_batch = (int)m;
        return 1;
    }
    }
    return 0;
}

/* The stored settings of the run as the starting point of a resumed job. */
static void take_stored(const fewcl_run_info *rf, train_job *job, long *val_eps) {
    job->cfg = rf->model;
    job->opt.epochs = rf->epochs;
    job->opt.episodes = rf->episodes;
    *val_eps = rf->val_episodes;
    job->opt.augment = rf->augment;
    job->opt.lr = rf->lr;
    job->opt.weight_decay = rf->weight_decay;
    job->opt.cosine_lr = rf->cosine_lr;
    job->opt.seed = rf->seed;
}

/* Settings given with --resume that contradict the stored ones, as "--flag stored vs given". */
static int contradictions(const fewcl_run_info *rf, const train_job *j, long val_eps, char *buf,
                          size_t cap) {
    int n = 0;
    if (fewcl_model_config_diff(&rf->model, &j->cfg, buf, cap, &n) != FEWCL_OK) buf[0] = 0;
    size_t used = strlen(buf);
#define ADD(cond, flag, fmt, a, b)                                                                 \
    if ((cond) && used < cap) {                                                                    \
        used += (size_t)snprintf(buf + used, cap - used, "%s--" flag " " fmt " vs " fmt,           \
                                 n++ ? ", " : "", a, b);                                           \
    }
    const fewcl_model_config *s = &rf->model, *g = &j->cfg;
    ADD(s->n_way != g->n_way, "n-way", "%d", s->n_way, g->n_way)
    ADD(s->k_shot != g->k_shot, "k-shot", "%d", s->k_shot, g->k_shot)
    ADD(s->n_query != g->n_query, "n-query", "%d", s->n_query, g->n_query)
    ADD(s->vic != g->vic, "no-vic", "%s", s->vic ? "off" : "on", g->vic ? "off" : "on")
    ADD(s->freeze_backbone != g->freeze_backbone, "freeze-backbone", "%s",
        s->freeze_backbone ? "on" : "off", g->freeze_backbone ? "on" : "off")
    ADD(rf->seed != j->opt.seed, "seed", "%llu", (unsigned long long)rf->seed,
        (unsigned long long)j->opt.seed)
    ADD(rf->episodes != j->opt.episodes, "episodes", "%d", rf->episodes, j->opt.episodes)
    ADD(rf->val_episodes != val_eps, "val-episodes", "%ld", (long)rf->val_episodes, val_eps)
    ADD(rf->lr != j->opt.lr, "lr", "%g", rf->lr, j->opt.lr)
    ADD(rf->weight_decay != j->opt.weight_decay, "weight-decay", "%g", rf->weight_decay,
        j->opt.weight_decay)
    ADD(rf->cosine_lr != j->opt.cosine_lr, "lr-schedule", "%s",
        setting_name(FEWCL_SETTING_LR_SCHEDULE, rf->cosine_lr),
        setting_name(FEWCL_SETTING_LR_SCHEDULE, j->opt.cosine_lr))
    ADD(rf->augment != j->opt.augment, "no-augment", "%s", rf->augment ? "augment" : "none",
        j->opt.augment ? "augment" : "none")
    /* A cosine rate spans the run as first given: other epochs would change episodes done. */
    ADD(rf->cosine_lr && rf->epochs != j->opt.epochs, "epochs", "%d", rf->epochs, j->opt.epochs)
#undef ADD
    return n;
}

/* --resume: the run folder's settings, the given flags over them, and the checks a user can
 * act on before any device work. Returns -1 to go on, else the exit code. */
static int prepare_resume(train_job *job, data_flags *data, long *val_eps, fewcl_run_info *rf,
                          const int *codes, char **args, int n_given) {
    const char *dir = job->opt.run_dir;
    if (!run_folder_has_run(dir)) {
        fprintf(stderr,
                "fewcl train: --resume: nothing to resume in %s (no last.safetensors there); "
                "start the run without --resume\n",
                dir);
        return EXIT_USAGE;
    }
    rf->struct_size = sizeof *rf;
    int stored_meta = 1;
    if (fewcl_run_read(dir, rf) != FEWCL_OK ||
        fewcl_run_meta_batch(dir, &stored_meta) != FEWCL_OK) {
        fprintf(stderr, "fewcl train: --resume: %s\n", fewcl_last_error());
        return EXIT_RUNTIME;
    }
    take_stored(rf, job, val_eps);
    job->opt.meta_batch = stored_meta;
    for (int i = 0; i < n_given; i++)
        apply(codes[i], args[i], job, data, val_eps);
    model_config_effective(&job->cfg);
    char diff[1024];
    int n_diff = contradictions(rf, job, *val_eps, diff, sizeof diff);
    if (stored_meta != job->opt.meta_batch) {
        size_t used = strlen(diff);
        snprintf(diff + used, sizeof diff - used, "%s--meta-batch %d vs %d", n_diff++ ? ", " : "",
                 stored_meta, job->opt.meta_batch);
    }
    if (n_diff) {
        fprintf(stderr,
                "fewcl train: --resume: the run in %s was trained with other settings (stored vs "
                "given): %s; drop those flags: --resume takes the settings from %s/config.json\n",
                dir, diff, dir);
        return EXIT_USAGE;
    }
    /* The data, unless given again: the lists the run was trained on. Other training data is
     * allowed (a run may move) but said, as it changes what the run learns from here on. */
    char given[4096], a[PATH_MAX], b[PATH_MAX];
    if (!data->data && !data->list[SPLIT_BASE] && rf->train_data[0]) {
        data->list[SPLIT_BASE] = rf->train_data;
        if (!data->list[SPLIT_VAL] && rf->val_data[0]) data->list[SPLIT_VAL] = rf->val_data;
    } else if (rf->train_data[0] && data_split_path(data, SPLIT_BASE, given, sizeof given) &&
               !(realpath(given, a) && realpath(rf->train_data, b) && !strcmp(a, b))) {
        fprintf(stderr,
                "fewcl train: warning: the run in %s was trained on %s; it goes on with %s\n", dir,
                rf->train_data, given);
    }
    char best[64] = "";
    if (rf->best_epoch > 0 && !isnan(rf->best_val_accuracy) && rf->best_val_accuracy >= 0)
        snprintf(best, sizeof best, "; best validation %.2f%% at epoch %d", rf->best_val_accuracy,
                 rf->best_epoch);
    if (rf->epochs_done >= job->opt.epochs && rf->episodes_done == 0) {
        if (!job->json)
            printf("the run in %s is already finished: %d of %d epochs%s. Nothing to train; give "
                   "--epochs N (above %d) to train longer%s, or test it with `fewcl test "
                   "--weights %s/best.safetensors --data DIR`\n",
                   dir, rf->epochs_done, job->opt.epochs, best, rf->epochs_done,
                   job->opt.cosine_lr ? " (not with a cosine schedule)" : "", dir);
        if (!job->test_episodes && !job->json) return 0;
    } else if (!job->json) {
        printf("resuming %s at epoch %d, episode %ld (%d of %d epochs done%s; settings from "
               "config.json)\n",
               dir, rf->epochs_done + 1, rf->episodes_done + 1, rf->epochs_done, job->opt.epochs,
               best);
    }
    return -1;
}

int cmd_train(int argc, char **argv) {
    static const struct option opts[] = {
        {"run-dir", required_argument, 0, OPT_RUN_DIR},
        {"val-episodes", required_argument, 0, OPT_VAL_EPISODES},
        {"weight-decay", required_argument, 0, OPT_WD},
        {"no-augment", no_argument, 0, OPT_NO_AUG},
        {"weights", required_argument, 0, OPT_WEIGHTS},
        {"backbone-weights", required_argument, 0, OPT_BACKBONE_WEIGHTS},
        {"backbone-prefix", required_argument, 0, OPT_BACKBONE_PREFIX},
        {"resume", no_argument, 0, OPT_RESUME},
        {"meta-batch", required_argument, 0, OPT_META_BATCH},
        {"devices", required_argument, 0, OPT_DEVICES},
        {"help", no_argument, 0, OPT_HELP},
        JOB_FLAG_OPTIONS,
        MODEL_FLAG_OPTIONS,
        DATA_FLAG_OPTIONS,
        {0, 0, 0, 0}};
    train_job job;
    train_job_init(&job);
    data_flags data;
    data_flags_init(&data);
    long val_episodes = -1;
    /* Every option is checked as it comes and kept, to be replayed over the run folder's
     * settings when resuming. */
    enum { MAX_GIVEN = 256 };
    int codes[MAX_GIVEN], n_given = 0, c;
    char *args[MAX_GIVEN];
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        if (c == 'h' || c == OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (c == '?' || c == ':') return cli_bad_option("train", c, argv, opts);
        if (apply(c, optarg, &job, &data, &val_episodes) < 0) return EXIT_USAGE;
        if (n_given == MAX_GIVEN) {
            fprintf(stderr, "fewcl train: more than %d options\n", MAX_GIVEN);
            return EXIT_USAGE;
        }
        codes[n_given] = c, args[n_given++] = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "fewcl train: unexpected argument '%s'\nsee `fewcl train --help`\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    /* Several ranks share each step's episodes; rank 0 alone writes the run folder. */
    job.opt.distributed = cli_dist.size > 1;
    if (job.opt.resume && !job.opt.run_dir) {
        fprintf(stderr, "fewcl train: --resume needs the --run-dir of the run to continue\n");
        return EXIT_USAGE;
    }
    if (job.opt.resume && (job.opt.init_weights || job.opt.backbone_weights)) {
        fprintf(stderr, "fewcl train: --resume continues from the run's own checkpoint; drop "
                        "--weights/--backbone-weights\n");
        return EXIT_USAGE;
    }
    fewcl_run_info rf;
    if (job.opt.resume) {
        int rc = prepare_resume(&job, &data, &val_episodes, &rf, codes, args, n_given);
        if (rc >= 0) return rc;
    } else if (job.opt.run_dir && run_folder_has_run(job.opt.run_dir)) {
        fprintf(stderr,
                "fewcl train: %s already holds a run (%s/last.safetensors); continue it with "
                "--resume or choose another --run-dir (nothing was changed)\n",
                job.opt.run_dir, job.opt.run_dir);
        return EXIT_USAGE;
    }
    if (fewcl_model_config_validate(&job.cfg) != FEWCL_OK) {
        fprintf(stderr, "fewcl train: %s\n", fewcl_last_error());
        return EXIT_USAGE;
    }
    model_config_effective(&job.cfg);
    if (!data_has_split(&data, SPLIT_BASE)) {
        fprintf(stderr, "fewcl train: no training data: give --data DIR (FS-CT filelists "
                        "base.json/val.json/novel.json) or --train-list\n");
        return EXIT_USAGE;
    }
    if (job.opt.backbone_prefix && !job.opt.backbone_weights) {
        fprintf(stderr, "fewcl train: --backbone-prefix needs --backbone-weights\n");
        return EXIT_USAGE;
    }
    if (job.opt.episodes % job.opt.meta_batch) {
        int m = job.opt.meta_batch, below = job.opt.episodes / m * m;
        fprintf(stderr,
                "fewcl train: --episodes %d is not a multiple of --meta-batch %d: an epoch is "
                "whole steps of %d episodes; give --episodes %d%s%d\n",
                job.opt.episodes, m, m, below ? below : below + m, below ? " or " : "",
                below ? below + m : 2 * m);
        return EXIT_USAGE;
    }
    if (cli_dist.size > 1 && job.opt.meta_batch < 2) { /* before the run folder is touched */
        if (cli_dist.rank == 0)
            fprintf(stderr,
                    "fewcl train: training across %d MPI ranks shares the episodes of a "
                    "meta-batch step: give --meta-batch M with M >= 2 (M >= %d keeps every rank "
                    "busy)\n",
                    cli_dist.size, cli_dist.size);
        return EXIT_USAGE;
    }
    job.opt.val_episodes = val_episodes >= 0 ? (int)val_episodes : job.opt.episodes;
    /* config.json records the data; absolute paths let --resume find it from any folder. */
    static char absolute[SPLITS + 2][PATH_MAX];
    const char **paths[SPLITS + 2] = {&data.list[SPLIT_BASE], &data.list[SPLIT_VAL],
                                      &data.list[SPLIT_NOVEL], &data.data, &data.data_root};
    for (int i = 0; i < SPLITS + 2; i++)
        if (*paths[i] && realpath(*paths[i], absolute[i])) *paths[i] = absolute[i];
    char default_dir[256];
    if (!job.opt.run_dir) {
        time_t now = time(NULL);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        snprintf(default_dir, sizeof default_dir, "runs/%s-%s-%dw%ds-%s",
                 setting_name(FEWCL_SETTING_BACKBONE, job.cfg.backbone),
                 setting_name(FEWCL_SETTING_METHOD, job.cfg.method), job.cfg.n_way, job.cfg.k_shot,
                 stamp);
        job.opt.run_dir = default_dir;
    }
    static char first[32]; /* with --devices: the model lives on the list's first device */
    if (job.opt.devices) {
        if (job.device) {
            fprintf(stderr, "fewcl train: give --device or --devices, not both\n");
            return EXIT_USAGE;
        }
        fewcl_device_info *list;
        int n;
        fewcl_status s = fewcl_parse_device_list(job.opt.devices, &list, &n);
        if (s != FEWCL_OK) return cli_fail("train", s);
        snprintf(first, sizeof first, "%d:%d", list[0].platform_index, list[0].device_index);
        fewcl_free_device_list(list);
        job.device = first;
    }
    job.check_image_size = !job.opt.resume;
    return train_job_run(&job, &data);
}
