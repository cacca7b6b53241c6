/* `fewcl train`: episodic training with validation, checkpoints and resume (SPEC §4, §7). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "data_flags.h"
#include "model_flags.h"
#include "progress.h"
#include "train_report.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fewcl train --data DIR [--run-dir DIR] [--epochs N] [--episodes N]\n"
            "                   [--val-episodes N] [--lr X] [--lr-schedule constant|cosine]\n"
            "                   [--weight-decay X] [--seed N]\n"
            "                   [--no-augment] [--weights FILE] [--backbone-weights FILE\n"
            "                   [--backbone-prefix P]] [--resume] [--test-episodes N]\n"
            "                   [--device D] [--quiet] [--json] [data flags] [model flags]\n\n"
            "Trains on the base split with AdamW (lr 1e-3, weight decay 1e-5; --lr-schedule\n"
            "cosine anneals lr to 0 over the run, default constant), %s epochs of\n"
            "%s episodes, validating each epoch on the val split in evaluation mode. The run\n"
            "folder (default runs/<model>-<time>) gets config.json, metrics.csv, curves.svg,\n"
            "best.safetensors (best validation accuracy) and last.safetensors (written every\n"
            "epoch and on Ctrl-C); --resume continues a stopped run exactly. The configuration\n"
            "is planned first and refused if it does not fit the device. --test-episodes N\n"
            "tests the best weights on the novel split afterwards. --weights starts from a\n"
            "fewcl or PyTorch-exported model; --backbone-weights from a torchvision ResNet\n"
            "state_dict saved as safetensors (keys P + torchvision key).\n\n" DATA_FLAG_HELP
                MODEL_FLAG_HELP,
            "50", "200");
}

enum {
    OPT_RUN_DIR = 1,
    OPT_VAL_EPISODES,
    OPT_WD,
    OPT_NO_AUG,
    OPT_WEIGHTS,
    OPT_BACKBONE_WEIGHTS,
    OPT_BACKBONE_PREFIX,
    OPT_RESUME,
    OPT_HELP
};

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
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = model_flag(c, optarg, &job.opt.cfg, "train");
        if (r == 0) r = data_flag(c, optarg, &data, "train");
        if (r == 0) r = job_flag(c, optarg, &job);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case OPT_RUN_DIR: job.opt.run_dir = optarg; break;
        case OPT_VAL_EPISODES:
            if (parse_count("train", "val-episodes", optarg, 0, &val_episodes)) return EXIT_USAGE;
            break;
        case OPT_WD:
            if (parse_real("train", "weight-decay", optarg, &job.opt.adam.weight_decay))
                return EXIT_USAGE;
            break;
        case OPT_NO_AUG: job.opt.augment = 0; break;
        case OPT_WEIGHTS: job.opt.init_weights = optarg; break;
        case OPT_BACKBONE_WEIGHTS: job.opt.backbone_weights = optarg; break;
        case OPT_BACKBONE_PREFIX: job.opt.backbone_prefix = optarg; break;
        case OPT_RESUME: job.opt.resume = 1; break;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fewcl train: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (fcl_config_validate(&job.opt.cfg) != FEWCL_OK) {
        fprintf(stderr, "fewcl train: %s\n", fewcl_last_error());
        return EXIT_USAGE;
    }
    if (!data_has_split(&data, SPLIT_BASE)) {
        fprintf(stderr, "fewcl train: no training data: give --data DIR (FS-CT filelists "
                        "base.json/val.json/novel.json) or --train-list\n");
        return EXIT_USAGE;
    }
    if (job.opt.backbone_prefix && !job.opt.backbone_weights) {
        fprintf(stderr, "fewcl train: --backbone-prefix needs --backbone-weights\n");
        return EXIT_USAGE;
    }
    if (job.opt.resume && !job.opt.run_dir) {
        fprintf(stderr, "fewcl train: --resume needs the --run-dir of the run to continue\n");
        return EXIT_USAGE;
    }
    job.opt.val_episodes = val_episodes >= 0 ? (int)val_episodes : job.opt.episodes;
    char default_dir[256];
    if (!job.opt.run_dir) {
        time_t now = time(NULL);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        snprintf(default_dir, sizeof default_dir, "runs/%s-%s-%dw%ds-%s",
                 fcl_backbone_name(job.opt.cfg.backbone), fcl_method_name(job.opt.cfg.method),
                 job.opt.cfg.n_way, job.opt.cfg.k_shot, stamp);
        job.opt.run_dir = default_dir;
    }
    return train_job_run(&job, &data);
}
