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

/* ---- datasets (API 2) ----------------------------------------------------------------- */

/* A dataset opened once, for messages and for several jobs. */
typedef struct fewcl_dataset fewcl_dataset;

/* Opens a filelist or a class folder (see above): the list is read, no image is opened. Errors
 * name the file and the entry at fault. The caller owns *out (fewcl_dataset_destroy). Any
 * thread. */
FEWCL_API fewcl_status fewcl_dataset_open(const char *path, const char *data_root,
                                          fewcl_dataset **out);

typedef struct fewcl_dataset_info {
    size_t struct_size;
    int n_classes, n_images;
    char source[512]; /* the file or folder it was read from */
} fewcl_dataset_info;

/* Fills the first info->struct_size bytes (set struct_size = sizeof *info first). */
FEWCL_API fewcl_status fewcl_dataset_get_info(const fewcl_dataset *ds, fewcl_dataset_info *info);
/* Image i's path (0 ≤ i < n_images, grouped by class, resolved against the data root), owned by
 * the dataset; NULL out of range. */
FEWCL_API const char *fewcl_dataset_image_path(const fewcl_dataset *ds, int i);
/* The images of test episode `episode` (0, 1, ...) as fewcl_test with this seed draws them
 * (without skip_bad_images' replacements): classes[n_way] gets the dataset's class indices, in
 * the episode's order; images[n_way × (k_shot + n_query)] the image indices (for
 * fewcl_dataset_image_path), class-major, each class's k_shot supports first, then its
 * n_query queries. So any client can run `fewcl test`'s episodes its own way (tests/
 * test_same_answers.c). FEWCL_ERR_ARGUMENT when the dataset cannot give such episodes. Any
 * thread. */
FEWCL_API fewcl_status fewcl_dataset_episode(const fewcl_dataset *ds, int n_way, int k_shot,
                                             int n_query, uint64_t seed, long episode, int *classes,
                                             int *images);
/* Destroy only once no job uses it. NULL is accepted. */
FEWCL_API void fewcl_dataset_destroy(fewcl_dataset *ds);

/* ---- cancellation ---------------------------------------------------------------------- */

/* A flag another thread can raise to stop a job after its current episode. */
typedef struct fewcl_cancel fewcl_cancel;

FEWCL_API fewcl_status fewcl_cancel_create(fewcl_cancel **out);
/* Any thread, any time while the token lives (atomic); also from a signal handler (a
 * lock-free atomic store: async-signal-safe). A job reads the token after every episode and
 * after every epoch's checkpoint. */
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
    double seconds;                           /* the whole epoch, validation included */
    /* API 2: */
    double episodes_per_s;    /* training episodes per second, data loading included */
    double images_per_s;      /* the loader's decoding, per worker-second */
    double device_peak_bytes; /* the device memory high-water mark during the epoch */
} fewcl_epoch_metrics;

/* Called on the job's thread after each epoch (the checkpoint is written by then). */
typedef void (*fewcl_epoch_fn)(void *user, const fewcl_epoch_metrics *m);

/* ---- training -------------------------------------------------------------------------- */

/* The device memory of a training run (API 3): its plan, made before anything is allocated,
 * and what the run held. The run places every tensor where the plan's layout puts it, so it
 * reserves exactly the planned footprint from the driver. */
#define FEWCL_REPLICAS_REPORTED 16

typedef struct fewcl_memory_info {
    size_t struct_size;
    uint64_t planned_peak_bytes;      /* live bytes at the plan's peak (a lower bound) */
    uint64_t planned_footprint_bytes; /* the device buffers of the plan's layout */
    uint64_t reserved_bytes;          /* the device buffers the run held at most in its last
                                         epoch: the footprint when it followed the plan */
    /* API 3, training over devices (or MPI ranks: this rank's): the replicas (0 without), and
     * for replica w < FEWCL_REPLICAS_REPORTED, in the devices list's order, its plan's
     * footprint (fewcl_plan with `replica` set, or ctx's own: the fields above) and the device
     * buffers its context held at most over the run (equal when it followed its plan). */
    int replicas;
    uint64_t replica_footprint_bytes[FEWCL_REPLICAS_REPORTED];
    uint64_t replica_reserved_bytes[FEWCL_REPLICAS_REPORTED];
} fewcl_memory_info;

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
    /* API 2: open datasets, used instead of train_data / val_data when set (borrowed during
     * the call); and the published 1.15 resize for validation episodes. */
    const fewcl_dataset *train_dataset, *val_dataset;
    int scale_115;
    /* API 3: episodes per optimiser step (1); their gradients are averaged in a fixed order
     * (docs/maths.md §7.1). `episodes` must be a multiple of it; a resumed run keeps it. */
    int meta_batch;
    fewcl_memory_info *memory; /* API 3, optional: filled on success (set its struct_size) */
    /* API 3: several devices in this process, as `--devices` takes them (as in
     * fewcl_test_params); NULL or "": ctx's device alone. With meta_batch > 1 the episodes of
     * each step are split into one contiguous block per entry and their gradients reduced in
     * the fixed order, so the weights equal the one-device run's with the same meta_batch (on
     * devices of one kind, with the same convolution choices); validation is split too. ctx
     * serves the first entry naming its device. */
    const char *devices;
    /* API 3: 1 = split each step's episodes over the ranks of the MPI job too (fewcl_dist_init
     * started MPI; meta_batch >= 2): every rank calls fewcl_train with the same parameters
     * (and the same run_dir, which rank 0 alone writes; resuming ranks read it); the weights
     * equal the one-process run's with the same meta_batch. Default 0. */
    int distributed;
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
/* Trains as `fewcl train` does (train_data or train_dataset required): run_dir gets config.json,
 * last.safetensors (every epoch, and on cancellation), best.safetensors, metrics.csv and
 * curves.svg. The episode is planned against the device first (FEWCL_ERR_OUT_OF_MEMORY when it does
 * not fit). Cancelled: returns FEWCL_ERR_INTERRUPTED after saving; resume with p->resume = 1. r
 * (may be NULL) is filled on success; r->struct_size must be set. */
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
    const fewcl_dataset *dataset; /* API 2: used instead of data when set (borrowed) */
    /* API 3: 1 = split the episodes over the ranks of the MPI job (fewcl_dist_init started MPI):
     * every rank calls fewcl_test with the same weights and parameters, and every rank gets
     * the result of the whole run (equal to a one-process run's). Default 0: each call is its
     * own test (docs/api.md, "Several processes"). */
    int distributed;
    /* API 3: several devices in this process, as `--devices` takes them (fewcl_parse_device_list:
     * "all" or "P:D,P:D,..."); NULL or "": the model's device alone. The episodes are split into
     * one contiguous block per entry, each run by a copy of the model on its own context and
     * thread (the model's context serves the first entry naming its device); accuracy and CI
     * equal the one-device run's on devices of one kind. */
    const char *devices;
} fewcl_test_params;

typedef struct fewcl_test_result {
    size_t struct_size;
    double accuracy, ci95; /* %: mean and 1.96·σ/√N over the episodes */
    int episodes;
    int uniform_weights; /* the shape is not the trained one: shots averaged uniformly */
    double seconds;
} fewcl_test_result;

FEWCL_API fewcl_status fewcl_test_params_default(fewcl_test_params *p, size_t struct_size);
/* Accuracy of m over random episodes (of p->data or p->dataset) of the data, as `fewcl test`
 * measures it (same episodes for the same seed and shape). Another n_way × k_shot than the trained
 * one weights the shots uniformly and sets r->uniform_weights. Cancelled: FEWCL_ERR_INTERRUPTED. */
FEWCL_API fewcl_status fewcl_test(fewcl_model *m, const fewcl_test_params *p, fewcl_test_result *r);

/* ---- run folders (API 2) -------------------------------------------------------------- */

/* A training run's settings (run_dir/config.json, as fewcl_train wrote them) and where it
 * stands (the trainer's state in run_dir/last.safetensors, read from its header). */
typedef struct fewcl_run_info {
    size_t struct_size;
    int epochs, episodes, val_episodes, augment;
    double lr, weight_decay;
    int cosine_lr;
    uint64_t seed;
    char train_data[2048], val_data[2048]; /* "" when not recorded */
    int epochs_done;                       /* epochs finished */
    long episodes_done;                    /* episodes of the next epoch already trained */
    int best_epoch;                        /* 0: none yet */
    double best_val_accuracy;              /* %, NAN or negative without validation */
    fewcl_model_config model;              /* stays the last member */
} fewcl_run_info;

/* Reads a run folder into the first info->struct_size bytes of *info (set struct_size first).
 * Errors name the file: a missing or unreadable config.json (FEWCL_ERR_IO), incomplete
 * settings or a last.safetensors without trainer state (FEWCL_ERR_FORMAT). Any thread. */
FEWCL_API fewcl_status fewcl_run_read(const char *run_dir, fewcl_run_info *info);
/* The run's meta-batch (episodes per optimiser step; 1 for runs from before it existed), from
 * run_dir/config.json. Errors as fewcl_run_read's. Any thread. (API 3) */
FEWCL_API fewcl_status fewcl_run_meta_batch(const char *run_dir, int *meta_batch);

/* ---- memory plans ---------------------------------------------------------------------- */

/* What a plan was made against (API 2). */
typedef struct fewcl_plan_info {
    size_t struct_size;
    uint64_t device_memory; /* the global memory of the device planned for */
    uint64_t max_alloc;     /* its largest buffer */
    uint64_t budget;        /* the bytes the episode had to fit */
    int candidates;         /* configurations planned (with fit: every candidate tried) */
    char reason[1024];      /* fewcl_plan_result.reason whole (that one keeps 511 bytes) */
} fewcl_plan_info;

typedef struct fewcl_plan_params {
    size_t struct_size;
    int training;           /* 1: a training step (forward, backward, AdamW); 0: evaluation */
    uint64_t device_memory; /* 0: this context's device; else plan for a device of this size */
    uint64_t max_alloc;     /* the largest buffer: with device_memory, 0 is a quarter of it;
                               without, 0 is this device's own (API 1 read it only with
                               device_memory) */
    uint64_t budget;        /* 0: the device's memory (or FEWCL_MEM_LIMIT) */
    int fit;                /* 1: find the cheapest settings that fit (fewcl plan --fit) */
    fewcl_plan_info *info;  /* API 2, optional: filled on success (set its struct_size) */
    int meta_batch;         /* API 3: training with this many episodes per step (1) */
    /* API 3: 1 = what a replica other than ctx's own holds in a training over devices
     * (fewcl_train_params.devices: every entry but the one ctx serves) or a test over devices:
     * its model copy and, with training and meta_batch > 1, its block of each step's episodes
     * (gradients only: ctx's replica updates) and validation; with meta_batch 1 or training 0
     * it only evaluates (the evaluation plan). 0 (default): ctx's own, the whole schedule. */
    int replica;
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
/* Parses a byte size as FEWCL_MEM_LIMIT and `fewcl plan` take it: "1073741824", "512M", "8gb",
 * "1.5GiB" (K, M, G, T: powers of 1024). FEWCL_ERR_ARGUMENT when it is not one. Any thread.
 * (API 2) */
FEWCL_API fewcl_status fewcl_parse_size(const char *text, uint64_t *bytes);
/* The name of memory category i ("activation", ...), NULL out of range. Any thread. */
FEWCL_API const char *fewcl_mem_category_name(int i);
/* Plans one episode of cfg without allocating (the real schedule on a counting allocator).
 * Not fitting is not an error: r->fits = 0 and r->reason says why. */
FEWCL_API fewcl_status fewcl_plan(fewcl_context *ctx, const fewcl_model_config *cfg,
                                  const fewcl_plan_params *p, fewcl_plan_result *r);

/* ---- glyph data (API 2) ---------------------------------------------------------------- */

/* `fewcl demo`'s dataset: Omniglot-style glyph classes rendered from the DejaVu fonts, whole
 * scripts per split, written as FS-CT filelists out_dir/{base,val,novel}.json. */
typedef struct fewcl_glyph_params {
    size_t struct_size;
    const char *out_dir;  /* required; created if missing */
    const char *font_dir; /* NULL: /usr/share/fonts/truetype/dejavu */
    int images_per_class; /* 20 */
    int size;             /* square image side in pixels (84) */
    int min_faces;        /* a character is a class when this many faces draw it (12) */
    uint64_t seed;        /* 1 */
} fewcl_glyph_params;

typedef struct fewcl_glyph_summary {
    size_t struct_size;
    int faces;
    int classes[3]; /* base, val, novel */
    int images;
} fewcl_glyph_summary;

FEWCL_API fewcl_status fewcl_glyph_params_default(fewcl_glyph_params *p, size_t struct_size);
/* Renders the dataset; out_dir/version, written last, holds fewcl_glyph_data_version(). s
 * (may be NULL; set its struct_size) gets what was written. One call at a time per out_dir;
 * distinct folders from distinct threads. */
FEWCL_API fewcl_status fewcl_glyph_render(const fewcl_glyph_params *p, fewcl_glyph_summary *s);
/* The version of the glyph data this library renders: raised whenever the scripts, splits or
 * drawing change, so a folder of another version is to be rendered again. Any thread. */
FEWCL_API int fewcl_glyph_data_version(void);

#ifdef __cplusplus
}
#endif
#endif
