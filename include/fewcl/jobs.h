/* fewcl public API: training, testing and memory plans. Included by fewcl/fewcl.h; the
 * conventions (status, ownership, threads, struct_size) are stated there.
 *
 * Datasets are named by path: an FS-CT JSON filelist ({"image_names", "image_labels",
 * "label_names"}, relative paths resolved against data_root or the file's folder) or a folder
 * of class folders (root/<class>/<image>). */
/* fewcl.h first, outside the guard: it includes this header back, after its own part. */
#include "fewcl/fewcl.h"

#ifndef FEWCL_JOBS_H
#define FEWCL_JOBS_H

#include "fewcl/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cancellation ---------------------------------------------------------------------- */

/* A flag another thread can raise to stop a job after its current episode. */
typedef struct fewcl_cancel fewcl_cancel;

FEWCL_API fewcl_status fewcl_cancel_create(fewcl_cancel **out);
/* Any thread, any time while the token lives (atomic). */
FEWCL_API void fewcl_cancel_request(fewcl_cancel *c);
FEWCL_API int fewcl_cancel_requested(const fewcl_cancel *c);
/* Destroy only once no job uses it. */
FEWCL_API void fewcl_cancel_destroy(fewcl_cancel *c);

/* ---- progress -------------------------------------------------------------------------- */

typedef struct fewcl_progress {
    size_t struct_size;
    const char *phase; /* "train", "val" or "test"; valid during the callback only */
    int epoch, epochs; /* 1-based; 0 outside training */
    long done, total;  /* episodes of this phase */
    double loss;       /* running mean training loss (training only) */
    double accuracy;   /* running mean accuracy of this phase, % */
    double seconds;    /* since the phase started */
} fewcl_progress;

/* Called on the job's thread after every episode; a non-zero return cancels the job as
 * fewcl_cancel_request does. Must not call into the job's context. */
typedef int (*fewcl_progress_fn)(void *user, const fewcl_progress *p);

typedef struct fewcl_epoch_metrics {
    size_t struct_size;
    int epoch;                                /* 1-based */
    double loss, loss_ce, loss_var, loss_cov; /* means over the epoch's training episodes */
    double train_accuracy;                    /* % */
    double val_accuracy, val_ci95;            /* %, NAN without validation */
    double seconds;
} fewcl_epoch_metrics;

/* Called on the job's thread after each epoch (the checkpoint is written by then). */
typedef void (*fewcl_epoch_fn)(void *user, const fewcl_epoch_metrics *m);

/* ---- training -------------------------------------------------------------------------- */

typedef struct fewcl_train_params {
    size_t struct_size;
    const fewcl_model_config *model;    /* NULL: the default model */
    const char *train_data;             /* filelist or class folder (required) */
    const char *val_data;               /* NULL: no validation (best = last) */
    const char *data_root;              /* NULL: relative paths from each filelist's folder */
    const char *run_dir;                /* required; created if missing */
    int epochs, episodes, val_episodes; /* 50, 200, 200 */
    double lr, weight_decay;            /* AdamW: 1e-3, 1e-5 */
    int cosine_lr;                      /* 0: constant learning rate (the reference's) */
    uint64_t seed;                      /* 1 */
    int augment;                        /* 1: RandomResizedCrop + flip */
    int resume;                         /* continue run_dir/last.safetensors exactly */
    const char *init_weights;           /* optional starting weights (not with resume) */
    const char *backbone_weights, *backbone_prefix; /* optional torchvision weights */
    int workers;                                    /* decoding threads (2) */
    size_t cache_bytes;                             /* decoded-image cache per loader (1 GiB) */
    int skip_bad_images;
    fewcl_progress_fn progress; /* optional */
    fewcl_epoch_fn epoch_done;  /* optional */
    void *user;
    fewcl_cancel *cancel; /* optional */
} fewcl_train_params;

typedef struct fewcl_train_result {
    size_t struct_size;
    int epochs_done;
    double best_val_accuracy; /* %, NAN without validation */
    int best_epoch;
    size_t planned_peak_bytes;
    fewcl_epoch_metrics last; /* the last epoch's metrics (stays the last member) */
} fewcl_train_result;

FEWCL_API fewcl_status fewcl_train_params_default(fewcl_train_params *p, size_t struct_size);
/* Trains as `fewcl train` does: run_dir gets config.json, last.safetensors (every epoch, and on
 * cancellation), best.safetensors, metrics.csv and curves.svg. The episode is planned against
 * the device first (FEWCL_ERR_OUT_OF_MEMORY when it does not fit). Cancelled: returns
 * FEWCL_ERR_INTERRUPTED after saving; resume with p->resume = 1. r (may be NULL) is filled on
 * success; r->struct_size must be set. */
FEWCL_API fewcl_status fewcl_train(fewcl_context *ctx, const fewcl_train_params *p,
                                   fewcl_train_result *r);

/* ---- testing --------------------------------------------------------------------------- */

typedef struct fewcl_test_params {
    size_t struct_size;
    const char *data;           /* filelist or class folder (required) */
    const char *data_root;      /* as in training */
    int episodes;               /* 600 */
    uint64_t seed;              /* 1 */
    int n_way, k_shot, n_query; /* 0: the model's training shape */
    int workers;
    size_t cache_bytes;
    int skip_bad_images;
    int scale_115; /* the published 1.15 test-time resize */
    fewcl_progress_fn progress;
    void *user;
    fewcl_cancel *cancel;
} fewcl_test_params;

typedef struct fewcl_test_result {
    size_t struct_size;
    double accuracy, ci95; /* %: mean and 1.96·σ/√N over the episodes */
    int episodes;
    int uniform_weights; /* the shape is not the trained one: shots averaged uniformly */
    double seconds;
} fewcl_test_result;

FEWCL_API fewcl_status fewcl_test_params_default(fewcl_test_params *p, size_t struct_size);
/* Accuracy of m over random episodes of the data, as `fewcl test` measures it (same episodes
 * for the same seed and shape). Another n_way × k_shot than the trained one weights the shots
 * uniformly and sets r->uniform_weights. Cancelled: FEWCL_ERR_INTERRUPTED. */
FEWCL_API fewcl_status fewcl_test(fewcl_model *m, const fewcl_test_params *p, fewcl_test_result *r);

/* ---- memory plans ---------------------------------------------------------------------- */

typedef struct fewcl_plan_params {
    size_t struct_size;
    int training;           /* 1: a training step (forward, backward, AdamW); 0: evaluation */
    uint64_t device_memory; /* 0: this context's device; else plan for a device of this size */
    uint64_t max_alloc;     /* with device_memory: its largest buffer (0: a quarter) */
    uint64_t budget;        /* 0: the device's memory (or FEWCL_MEM_LIMIT) */
    int fit;                /* 1: find the cheapest settings that fit (fewcl plan --fit) */
} fewcl_plan_params;

/* Memory categories, in this order: parameters, gradients, optimiser, activations,
 * workspace, covariance. */
#define FEWCL_MEM_CATEGORIES 6

typedef struct fewcl_plan_result {
    size_t struct_size;
    int fits;
    /* live bytes at the peak (a lower bound), and the footprint: the device buffers a run
     * following the plan's layout reserves */
    uint64_t peak_bytes, reserved_bytes;
    uint64_t at_peak[FEWCL_MEM_CATEGORIES];       /* per category at the peak */
    uint64_t category_peak[FEWCL_MEM_CATEGORIES]; /* each category's own peak */
    char reason[512];          /* why the configuration as given does not fit ("" if it does) */
    char changes[256];         /* with fit: the flags changed ("" when none) */
    fewcl_model_config config; /* the configuration planned (with fit: the one chosen); stays
                                  the last member */
} fewcl_plan_result;

FEWCL_API fewcl_status fewcl_plan_params_default(fewcl_plan_params *p, size_t struct_size);
/* The name of memory category i ("activation", ...), NULL out of range. Any thread. */
FEWCL_API const char *fewcl_mem_category_name(int i);
/* Plans one episode of cfg without allocating (the real schedule on a counting allocator).
 * Not fitting is not an error: r->fits = 0 and r->reason says why. */
FEWCL_API fewcl_status fewcl_plan(fewcl_context *ctx, const fewcl_model_config *cfg,
                                  const fewcl_plan_params *p, fewcl_plan_result *r);

#ifdef __cplusplus
}
#endif
#endif
