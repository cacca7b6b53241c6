/* `fewcl demo`: the whole product with no download (docs/spec.md §5): render the glyph dataset from
 * the installed DejaVu fonts, show the memory plan, train the enhanced model on conv4 with the
 * projection active, test on novel alphabets and print accuracy ± CI. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "data_flags.h"
#include "model_flags.h"
#include "train_report.h"

/* Sized for a 2-core CPU: 56x56 glyphs give conv4 features of 64x3x3 = 576, above
 * reduced_dim 128, so the learnable projection is part of the demo. Measured on the glyphs
 * (novel alphabets, 5-way 5-shot, 8 epochs x 100 episodes unless said): 42 px 80%, 56 px 87.6%
 * (validation 94.2%); 10 queries per class 83.3%, a 512-d projection learned too slowly,
 * RandomResizedCrop 77.4%, 10 epochs 88.0%. Then, with validation on Greek lower-case + Lao:
 * a cosine learning-rate schedule 89.6% (validation 96.4%, steadier from epoch to epoch),
 * and with it 1032 base classes instead of 445 (Latin-1, Latin Extended-A/B, IPA, Cyrillic
 * Supplement added to the base alphabets) 92.6% ± 0.6% (validation 96.8%). */
#define DEMO_IMAGE 56
#define DEMO_REDUCED 128
#define DEMO_IMAGES_PER_CLASS 20

/* The demo's settings, before its flags. */
static void demo_defaults(train_job *job) {
    train_job_init(job);
    job->cmd = "demo";
    fewcl_model_config *cfg = &job->cfg;
    cfg->image_size = DEMO_IMAGE;
    cfg->reduced_dim = DEMO_REDUCED;
    cfg->n_query = 5;
    job->opt.epochs = 8;
    job->opt.episodes = 100;
    job->opt.val_episodes = 50;
    job->opt.augment = 0; /* the glyphs are already randomly distorted */
    job->opt.cosine_lr = 1;
    job->test_episodes = 600;
}

static void usage(FILE *f) {
    train_job d;
    demo_defaults(&d);
    const fewcl_model_config *c = &d.cfg;
    fprintf(f,
            "usage: fewcl demo [options]\n\n"
            "Renders an Omniglot-style glyph dataset from the DejaVu fonts into DIR/data-<N>\n"
            "(reused when present), trains the enhanced FS-CT (%s, %dx%d, projection\n"
            "to %d, %d-way %d-shot %d-query, %d validation episodes per epoch) on base\n"
            "alphabets, validates on others and tests on novel alphabets. The run folder is\n"
            "DIR/run-<time>. Exit status 130 when stopped by Ctrl-C.\n",
            setting_name(FEWCL_SETTING_BACKBONE, c->backbone), c->image_size, c->image_size,
            c->reduced_dim, c->n_way, c->k_shot, c->n_query, d.opt.val_episodes);
    char v[6][32];
    snprintf(v[0], 32, "%d", c->image_size);
    snprintf(v[1], 32, "%d", d.opt.epochs);
    snprintf(v[2], 32, "%d", d.opt.episodes);
    snprintf(v[3], 32, "%d", d.test_episodes);
    snprintf(v[4], 32, "%llu", (unsigned long long)d.opt.seed);
    snprintf(v[5], 32, "%g", d.opt.lr);
    const cli_flag_help items[] = {
        {"--out DIR", "where the data and the run go", "fewcl-demo"},
        {"--image-size N", "glyph images and model input side", v[0]},
        {"--epochs N", "epochs", v[1]},
        {"--episodes N", "training episodes per epoch", v[2]},
        {"--test-episodes N", "test episodes on the novel alphabets", v[3]},
        {"--seed N", "for weights and episodes", v[4]},
        {"--lr X", "AdamW learning rate", v[5]},
        {"--lr-schedule S", "constant or cosine",
         setting_name(FEWCL_SETTING_LR_SCHEDULE, d.opt.cosine_lr)},
        {"--device D", "P:D or part of a name", "the first GPU"},
        {"--quiet", "no progress bars", NULL},
        {"--json", "one JSON object on stdout", NULL},
    };
    cli_help_flags(f, "options:", items, (int)(sizeof items / sizeof *items));
}

enum { OPT_OUT = 1, OPT_IMAGE_SIZE, OPT_HELP };

/* Renders the data unless a previous demo left it complete and of this version (the version
 * file is written last). */
static fewcl_status ensure_data(const char *dir, int size, int quiet) {
    char path[4300];
    int version = 0;
    snprintf(path, sizeof path, "%s/version", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%d", &version) != 1) version = 0;
        fclose(f);
    }
    if (version == fewcl_glyph_data_version()) {
        if (!quiet) printf("demo data: %s (already rendered)\n", dir);
        return FEWCL_OK;
    }
    fewcl_glyph_params o;
    fewcl_glyph_params_default(&o, sizeof o);
    o.out_dir = dir;
    o.images_per_class = DEMO_IMAGES_PER_CLASS;
    o.size = size;
    o.min_faces = 12;
    o.seed = 1;
    fewcl_glyph_summary s = {.struct_size = sizeof s};
    fewcl_status st = fewcl_glyph_render(&o, &s);
    if (st != FEWCL_OK) return st;
    if (!quiet)
        printf("demo data: %s: %d glyph classes base / %d val / %d novel from %d DejaVu faces, "
               "%d images\n",
               dir, s.classes[0], s.classes[1], s.classes[2], s.faces, s.images);
    return FEWCL_OK;
}

int cmd_demo(int argc, char **argv) {
    static const struct option opts[] = {{"out", required_argument, 0, OPT_OUT},
                                         {"image-size", required_argument, 0, OPT_IMAGE_SIZE},
                                         JOB_FLAG_OPTIONS,
                                         {"help", no_argument, 0, OPT_HELP},
                                         {0, 0, 0, 0}};
    train_job job;
    demo_defaults(&job);
    fewcl_model_config *cfg = &job.cfg;
    const char *out = "fewcl-demo";
    long v;
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        int r = job_flag(c, optarg, &job);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        switch (c) {
        case OPT_OUT: out = optarg; break;
        case OPT_IMAGE_SIZE:
            if (parse_count("demo", "image-size", optarg, 16, &v)) return EXIT_USAGE;
            cfg->image_size = (int)v;
            break;
        case 'h':
        case OPT_HELP: usage(stdout); return 0;
        default: return cli_bad_option("demo", c, argv, opts);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fewcl demo: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (cli_single_rank_only("demo")) return EXIT_USAGE; /* it trains */
    char data_dir[4200], run_dir[4300], stamp[32];
    snprintf(data_dir, sizeof data_dir, "%.4000s/data-%d", out, cfg->image_size);
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
    snprintf(run_dir, sizeof run_dir, "%.4000s/run-%s", out, stamp);
    job.opt.run_dir = run_dir;
    if (fewcl_model_config_validate(cfg) != FEWCL_OK) {
        fprintf(stderr, "fewcl demo: %s\n", fewcl_last_error());
        return EXIT_USAGE;
    }
    fewcl_status s = ensure_data(data_dir, cfg->image_size, job.quiet || job.json);
    if (s != FEWCL_OK) return cli_fail("demo", s);
    data_flags data;
    data_flags_init(&data);
    data.data = data_dir;
    if (!job.quiet && !job.json)
        printf(
            "model: conv4 %dx%d (features %d) -> projection %d, enhanced FS-CT %s, "
            "Mahalanobis; %d-way %d-shot %d-query; %d epochs x %d episodes, lr %g (%s schedule)\n",
            cfg->image_size, cfg->image_size, 64 * (cfg->image_size / 16) * (cfg->image_size / 16),
            cfg->reduced_dim, setting_name(FEWCL_SETTING_VARIANT, cfg->variant), cfg->n_way,
            cfg->k_shot, cfg->n_query, job.opt.epochs, job.opt.episodes, job.opt.lr,
            setting_name(FEWCL_SETTING_LR_SCHEDULE, job.opt.cosine_lr));
    return train_job_run(&job, &data);
}
