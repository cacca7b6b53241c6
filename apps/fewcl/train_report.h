/* A training job as `fewcl train` and `fewcl demo` run it: open the splits and the device,
 * train with progress and one line per epoch, optionally test the best weights, and report
 * (text, or one JSON object with --json). */
#ifndef FEWCL_APP_TRAIN_REPORT_H
#define FEWCL_APP_TRAIN_REPORT_H

#include "data_flags.h"
#include "progress.h"

typedef struct train_job {
    fewcl_train_params opt; /* opt.model is set to &cfg when the job runs */
    fewcl_model_config cfg;
    int test_episodes; /* 0: no test */
    int quiet, json;
    const char *cmd;      /* for messages: "train" or "demo" */
    const char *device;   /* --device (NULL: FEWCL_DEVICE or the default) */
    int check_image_size; /* warn when the images are smaller than --image-size */
    progress_state progress;
    /* Filled by train_job_run. */
    fewcl_train_result result;
    fewcl_memory_info memory;
    fewcl_test_result test;
} train_job;

/* docs/spec.md §4 defaults: the default model, 50 epochs x 200 episodes, AdamW defaults, seed 1,
 * augmentation on. */
void train_job_init(train_job *j);
/* The flags `fewcl train` and `fewcl demo` share, as getopt_long entries (codes from
 * JOB_FLAG_BASE) and their parsing; returns as model_flag does (1, 0, or -1 after a usage
 * error). */
#define JOB_FLAG_BASE 1200
#define JOB_FLAG_OPTIONS                                                                           \
    {"epochs", required_argument, 0, JOB_FLAG_BASE + 0},                                           \
        {"episodes", required_argument, 0, JOB_FLAG_BASE + 1},                                     \
        {"test-episodes", required_argument, 0, JOB_FLAG_BASE + 2},                                \
        {"seed", required_argument, 0, JOB_FLAG_BASE + 3},                                         \
        {"device", required_argument, 0, JOB_FLAG_BASE + 4},                                       \
        {"quiet", no_argument, 0, JOB_FLAG_BASE + 5}, {"json", no_argument, 0, JOB_FLAG_BASE + 6}, \
        {"lr", required_argument, 0, JOB_FLAG_BASE + 7}, {                                         \
        "lr-schedule", required_argument, 0, JOB_FLAG_BASE + 8                                     \
    }
int job_flag(int code, const char *arg, train_job *j);

/* Returns the exit code (0, 1 runtime failure, 2 usage error). */
int train_job_run(train_job *j, const data_flags *data);

/* A test result as JSON (accuracy, ci95, episodes, split, weights, episode sizes, seconds). */
struct cJSON *test_result_json(const fewcl_test_result *r, const char *split, const char *weights,
                               const fewcl_model_config *c);
/* Keeps a test result beside `weights` when they are in a run folder (config.json beside
 * them), as test_<split>_<weights>_<way>w<shot>s_<episodes>.json (test_novel_best_5w5s_600.json),
 * so that tests of other weights, episode shapes or lengths do not replace it; says where on
 * stderr. A failure to write is a warning. */
void save_test_result(const char *cmd, const char *weights, const char *split,
                      const struct cJSON *result);

/* Prints the test result as the reference does: "600 test episodes: 78.12% ± 0.64%". */
void print_test_result(const char *what, const fewcl_test_result *r);

#endif
