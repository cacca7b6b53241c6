/* What a run folder says about its run, for `fewcl train --resume`: the settings of
 * config.json and where the last checkpoint stands (read from its header alone). */
#ifndef FEWCL_APP_RUN_FOLDER_H
#define FEWCL_APP_RUN_FOLDER_H

#include "train/trainer.h"

typedef struct run_folder {
    fcl_model_config cfg;
    int epochs, episodes, val_episodes, augment;
    double lr, weight_decay;
    fcl_lr_schedule lr_schedule;
    unsigned long long seed;
    char train_data[2048], val_data[2048]; /* "" when not recorded */
    int epoch;                             /* epochs finished */
    long in_epoch;                         /* episodes of the next epoch already trained */
    int best_epoch;                        /* 0: none yet */
    double best_val;
} run_folder;

/* Whether dir/last.safetensors exists: the folder holds a run that --resume can continue. */
int run_folder_has_run(const char *dir);
/* Reads dir/config.json and the trainer state in dir/last.safetensors; errors name the file. */
fewcl_status run_folder_read(const char *dir, run_folder *out);

#endif
