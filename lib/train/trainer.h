/* Episodic training and evaluation (docs/spec.md §4): AdamW over epochs × episodes, validation each
 * epoch, best and last checkpoints, exact resume, and test accuracy with its 95% interval.
 *
 * A run folder holds: config.json (model and training settings), last.safetensors (weights,
 * AdamW moments and the trainer's state: written after every epoch and on interruption),
 * best.safetensors (weights of the epoch with the best validation accuracy), metrics.csv and
 * curves.svg (one row / point per epoch, rewritten from the checkpoint's history so they
 * always agree with it). */
#ifndef FEWCL_TRAIN_TRAINER_H
#define FEWCL_TRAIN_TRAINER_H

#include <signal.h>

#include "../data/dataset.h"
#include "step.h"

/* Where a long phase stands, for progress bars. */
typedef struct fcl_progress {
    const char *phase; /* "train", "val" or "test" */
    int epoch, epochs; /* 1-based; 0 outside training */
    long done, total;  /* episodes of this phase */
    double loss;       /* running mean of the training loss (training only) */
    double accuracy;   /* running mean accuracy of this phase, % */
    double seconds;    /* since the phase started */
} fcl_progress;

typedef void (*fcl_progress_fn)(void *user, const fcl_progress *p);

/* How episodes are read (shared by training, validation and test). */
typedef struct fcl_data_options {
    int workers;        /* decoding threads */
    size_t cache_bytes; /* decoded-image cache per loader */
    int skip_bad;       /* --skip-bad-images */
    int scale_115;      /* evaluation transform with the published 1.15 scale */
} fcl_data_options;

typedef struct fcl_epoch_metrics {
    int epoch;                                /* 1-based */
    double loss, loss_ce, loss_var, loss_cov; /* means over the epoch's training episodes */
    double train_acc;                         /* %, training episodes */
    double val_acc, val_ci95;                 /* %, NAN without validation */
    double episodes_per_s;                    /* training episodes per second, data included */
    double images_per_s;                      /* loader decode+augment, per worker-second */
    double seconds;                           /* the whole epoch, validation included */
    double device_peak;                       /* bytes: the arena's high-water mark */
} fcl_epoch_metrics;

/* One epoch's metrics as a JSON object: "epoch" and the fields of metrics.csv, absent values
 * (no validation) as null. The caller owns it (cJSON_Delete). */
struct cJSON *fcl_epoch_metrics_json(const fcl_epoch_metrics *m);

/* How the learning rate moves over a run. Constant is the reference's choice
 * (docs/spec.md §4); cosine anneals it from lr to 0 over the run's epochs·episodes training
 * episodes (with a meta-batch M: over its epochs·episodes/M steps, evaluated per step). */
typedef enum fcl_lr_schedule { FCL_LR_CONSTANT = 0, FCL_LR_COSINE } fcl_lr_schedule;

const char *fcl_lr_schedule_name(fcl_lr_schedule s);
/* "constant" or "cosine"; returns -1 for anything else. */
int fcl_lr_schedule_parse(const char *name, fcl_lr_schedule *out);
/* The learning rate of training episode `index` (0-based, counted over all epochs) of a run of
 * `total` episodes: constant: lr; cosine: lr·(1 + cos(π·index/total))/2, from lr at the first
 * episode down to lr·(1 − cos(π/total))/2 ≈ 0 at the last. A pure function of the index, so a
 * resumed run replays it exactly. */
double fcl_lr_at(fcl_lr_schedule s, double lr, long index, long total);

typedef struct fcl_train_options {
    fcl_model_config cfg;
    const fcl_dataset *train, *val; /* val may be NULL: no validation, best = last */
    const char *run_dir;            /* created if missing */
    int epochs, episodes, val_episodes;
    fcl_adamw_config adam;
    fcl_lr_schedule lr_schedule; /* over epochs·episodes; kept in the checkpoint for resume */
    uint64_t seed;               /* weights, episodes and augmentation */
    int augment;                 /* training augmentation (RandomResizedCrop + flip) */
    int resume;                  /* continue from run_dir/last.safetensors */
    const char *init_weights;    /* optional safetensors of initial weights (not with resume) */
    const char *init_prefix;     /* key prefix in init_weights ("" for fewcl/PyTorch files) */
    /* Optional backbone weights in the backbone's own layout (a torchvision ResNet state_dict
     * saved as safetensors), applied after init_weights; keys are backbone_prefix + key. */
    const char *backbone_weights, *backbone_prefix;
    fcl_data_options data;
    fcl_progress_fn progress;
    void (*epoch_done)(void *user, const fcl_epoch_metrics *m);
    void *user;
    /* Set (e.g. by a SIGINT handler) to stop after the current episode (meta-batch: step)
     * with a checkpoint. */
    volatile sig_atomic_t *stop;
    /* Episodes per optimiser step (docs/spec.md §4): their gradients averaged by the fixed
     * tree (reduce.h). 0 or 1: one episode per step (fcl_train_step). `episodes` must be a
     * multiple of it; kept in the checkpoint for resume. */
    int meta_batch;
    /* Several devices (a list as fcl_device_list_parse takes it; NULL or "": ctx's alone):
     * validation is split over replicas on them (lib/train/replicas.h), and so are the
     * episodes of each meta-batch step (M > 1: contiguous blocks, the gradients reduced by the
     * fixed tree; the result equals the one-device run's with the same M). */
    const char *devices;
    /* 1: the episodes of each step are split over the ranks of the MPI job too (M >= 2): rank
     * r takes block fcl_dist_block(M, r, R), rank 0 reduces the ranks' gradient trees in rank
     * order, updates, broadcasts the state, validates and alone writes the run folder. Every
     * rank calls fcl_train with the same options (docs/distributed.md). */
    int distributed;
} fcl_train_options;

#define FCL_REPLICAS_REPORTED 16

typedef struct fcl_train_result {
    int epochs_done;
    double best_val_acc; /* NAN without validation */
    int best_epoch;
    fcl_epoch_metrics last;
    size_t planned_peak;      /* live bytes at the peak of the trainer's schedule, planned first */
    size_t planned_footprint; /* the device buffers the run reserves: its plan's layout */
    size_t reserved_peak;     /* the device buffers the run held at most in its last epoch */
    /* With a replica group (devices, or several ranks): its replicas, and for replica w <
     * FCL_REPLICAS_REPORTED (the list's order) its plan's footprint and the device buffers its
     * context held at most over the run (for ctx's own replica: the two fields above). */
    int replicas;
    size_t replica_footprint[FCL_REPLICAS_REPORTED], replica_reserved[FCL_REPLICAS_REPORTED];
} fcl_train_result;

/* Trains. Before any allocation the training episode is planned against the device's memory;
 * a configuration that does not fit is refused (FEWCL_ERR_OUT_OF_MEMORY). A non-finite loss
 * stops the run (FEWCL_ERR_NUMERIC, naming the epoch and episode) with the last checkpoint
 * intact; a stop request returns FEWCL_ERR_INTERRUPTED after writing a checkpoint. */
fewcl_status fcl_train(fewcl_context *ctx, const fcl_train_options *o, fcl_train_result *r);

typedef struct fcl_eval_options {
    const fcl_dataset *data;
    int episodes;
    uint64_t seed;
    fcl_data_options io;
    fcl_progress_fn progress;
    void *user;
    volatile sig_atomic_t *stop;
    /* A share of a longer evaluation (sharded over devices or ranks): this call evaluates
     * episodes first .. first+episodes-1 of the stream (0: from the start), and, when
     * accuracies is set, writes each episode's accuracy (%) there in order, so that the
     * caller can take mean and CI over all shares' accuracies in episode order. */
    long first;
    double *accuracies;
} fcl_eval_options;

typedef struct fcl_eval_result {
    double accuracy, ci95; /* %: mean and 1.96·σ/√N over episodes (population σ) */
    int episodes;
    double seconds;
    double images_per_s;      /* loader throughput per worker-second */
    size_t planned_peak;      /* fcl_evaluate: live bytes at the planned episode's peak */
    size_t planned_footprint; /* and its layout's buffers, what the evaluation reserves */
} fcl_eval_result;

/* Evaluation-mode accuracy of m over o->episodes episodes of m->cfg's shape (episode i of the
 * stream is a pure function of o->seed and i, so shares of a run see the run's episodes).
 * Like the trainer, it plans an episode first (a configuration that does not fit is refused)
 * and, when m is all the context holds, moves m's tensors where the plan puts them and follows
 * the plan's layout: the context then reserves exactly the planned footprint. */
fewcl_status fcl_evaluate(fewcl_context *ctx, fcl_model *m, const fcl_eval_options *o,
                          fcl_eval_result *r);

/* mean ± 1.96·σ/√n (population σ) of n accuracies. */
void fcl_mean_ci95(const double *acc, int n, double *mean, double *ci95);

#endif
