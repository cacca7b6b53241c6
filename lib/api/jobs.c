/* Public API: training and test jobs over the trainer (lib/train), with cancellation. */
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../data/dataset.h"
#include "../dist/dist.h"
#include "../runtime/sha256.h"
#include "../train/replicas.h"
#include "../train/trainer.h"
#include "api.h"
#include "fewcl/jobs.h"

struct fewcl_cancel {
    atomic_int requested;
};
/* fewcl_cancel_request is documented as safe in a signal handler: a lock-free store is. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic_int is lock-free");

fewcl_status fewcl_cancel_create(fewcl_cancel **out) {
    API_REQUIRE(out, "fewcl_cancel_create", "out");
    *out = calloc(1, sizeof **out);
    if (!*out) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "fewcl_cancel_create: out of memory");
    atomic_init(&(*out)->requested, 0);
    return FEWCL_OK;
}
void fewcl_cancel_request(fewcl_cancel *c) {
    if (c) atomic_store(&c->requested, 1);
}
int fewcl_cancel_requested(const fewcl_cancel *c) {
    return c ? atomic_load(&((fewcl_cancel *)c)->requested) : 0;
}
void fewcl_cancel_destroy(fewcl_cancel *c) { free(c); }

/* A job's bridge between the caller's callbacks and cancel token and the trainer's progress
 * function and stop flag. Everything runs on the job's thread: the token is read there (an
 * atomic) and the trainer's flag is only ever written there. */
typedef struct job {
    fewcl_progress_fn progress;
    fewcl_epoch_fn epoch_done;
    void *user;
    fewcl_cancel *cancel;
    volatile sig_atomic_t stop;
} job;

static void on_progress(void *user, const fcl_progress *p) {
    job *j = user;
    if (j->progress) {
        fewcl_progress pub = {sizeof pub, p->phase, p->epoch,    p->epochs, p->done,
                              p->total,   p->loss,  p->accuracy, p->seconds};
        if (j->progress(j->user, &pub)) j->stop = 1;
    }
    if (fewcl_cancel_requested(j->cancel)) j->stop = 1;
}

static fewcl_epoch_metrics metrics_out(const fcl_epoch_metrics *m) {
    return (fewcl_epoch_metrics){sizeof(fewcl_epoch_metrics),
                                 m->epoch,
                                 m->loss,
                                 m->loss_ce,
                                 m->loss_var,
                                 m->loss_cov,
                                 m->train_acc,
                                 m->val_acc,
                                 m->val_ci95,
                                 m->seconds,
                                 m->episodes_per_s,
                                 m->images_per_s,
                                 m->device_peak};
}

/* After the epoch's checkpoints: the trainer checks its stop flag next, so a request made
 * during validation or the saving stops the run here, not one episode later. */
static void on_epoch(void *user, const fcl_epoch_metrics *m) {
    job *j = user;
    if (j->epoch_done) {
        fewcl_epoch_metrics pub = metrics_out(m);
        j->epoch_done(j->user, &pub);
    }
    if (fewcl_cancel_requested(j->cancel)) j->stop = 1;
}

static fcl_data_options data_defaults(void) {
    return (fcl_data_options){.workers = 2, .cache_bytes = (size_t)1024 << 20};
}

fewcl_status fewcl_train_params_default(fewcl_train_params *p, size_t struct_size) {
    API_REQUIRE(p, "fewcl_train_params_default", "p");
    FCL_TRY(api_check_size("fewcl_train_params_default", "p", struct_size));
    fcl_adamw_config adam = fcl_adamw_defaults();
    fcl_data_options io = data_defaults();
    fewcl_train_params full = {.struct_size = sizeof full,
                               .epochs = 50,
                               .episodes = 200,
                               .val_episodes = 200,
                               .lr = adam.lr,
                               .weight_decay = adam.weight_decay,
                               .seed = 1,
                               .augment = 1,
                               .workers = io.workers,
                               .cache_bytes = io.cache_bytes,
                               .meta_batch = 1};
    api_copy_out(p, struct_size, &full, sizeof full);
    return FEWCL_OK;
}

static fewcl_status open_data(const char *fn, const char *what, const char *path, const char *root,
                              fcl_dataset **out) {
    fewcl_status s = fcl_dataset_open(path, root, out);
    return s == FEWCL_OK ? s : fcl_wrap(s, "%s: %s: ", fn, what);
}

fewcl_status fewcl_train(fewcl_context *ctx, const fewcl_train_params *params,
                         fewcl_train_result *r) {
    const char *fn = "fewcl_train";
    API_REQUIRE(ctx, fn, "ctx");
    API_REQUIRE(params, fn, "the parameters");
    FCL_TRY(api_check_size(fn, "the parameters", params->struct_size));
    if (r) FCL_TRY(api_check_size(fn, "the result", r->struct_size));
    fewcl_train_params p;
    fewcl_train_params_default(&p, sizeof p);
    api_copy_in(&p, sizeof p, params, params->struct_size);
    if (!p.train_dataset) API_REQUIRE(p.train_data, fn, "train_data");
    API_REQUIRE(p.run_dir, fn, "run_dir");
    if (p.memory) FCL_TRY(api_check_size(fn, "the memory info", p.memory->struct_size));
    if (p.meta_batch < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: meta_batch %d: at least 1 episode per step", fn,
                        p.meta_batch);
    fcl_model_config cfg = fcl_config_default();
    if (p.model) FCL_TRY(api_read_config(fn, p.model, &cfg));
    /* A request made before the job starts counts from its first check. */
    job j = {p.progress, p.epoch_done, p.user, p.cancel, fewcl_cancel_requested(p.cancel)};
    fcl_train_options o = {.cfg = cfg,
                           .run_dir = p.run_dir,
                           .epochs = p.epochs,
                           .episodes = p.episodes,
                           .val_episodes = p.val_episodes,
                           .adam = fcl_adamw_defaults(),
                           .lr_schedule = p.cosine_lr ? FCL_LR_COSINE : FCL_LR_CONSTANT,
                           .seed = p.seed,
                           .augment = p.augment,
                           .resume = p.resume,
                           .init_weights = p.init_weights,
                           .init_prefix = "",
                           .backbone_weights = p.backbone_weights,
                           .backbone_prefix = p.backbone_prefix ? p.backbone_prefix : "",
                           .data = {.workers = p.workers,
                                    .cache_bytes = p.cache_bytes,
                                    .skip_bad = p.skip_bad_images,
                                    .scale_115 = p.scale_115},
                           .progress = on_progress,
                           .epoch_done = on_epoch,
                           .user = &j,
                           .stop = &j.stop,
                           .meta_batch = p.meta_batch,
                           .devices = p.devices,
                           .distributed = p.distributed};
    o.adam.lr = p.lr, o.adam.weight_decay = p.weight_decay;
    fcl_dataset *train = NULL, *val = NULL;
    fewcl_status s = FEWCL_OK;
    if (!p.train_dataset) s = open_data(fn, "train_data", p.train_data, p.data_root, &train);
    if (s == FEWCL_OK && p.val_data && !p.val_dataset)
        s = open_data(fn, "val_data", p.val_data, p.data_root, &val);
    fcl_train_result tr;
    o.train = p.train_dataset ? p.train_dataset->d : train;
    o.val = p.val_dataset ? p.val_dataset->d : val;
    if (s == FEWCL_OK) s = fcl_train(ctx, &o, &tr);
    fcl_dataset_free(val);
    fcl_dataset_free(train);
    if (s == FEWCL_OK && r) {
        fewcl_train_result full = {sizeof full,   tr.epochs_done,  tr.best_val_acc,
                                   tr.best_epoch, tr.planned_peak, metrics_out(&tr.last)};
        api_copy_out(r, r->struct_size, &full, sizeof full);
        api_fix_nested_size(r, r->struct_size, offsetof(fewcl_train_result, last),
                            sizeof full.last);
    }
    if (s == FEWCL_OK && p.memory) {
        fewcl_memory_info mem = {.struct_size = sizeof mem,
                                 .planned_peak_bytes = tr.planned_peak,
                                 .planned_footprint_bytes = tr.planned_footprint,
                                 .reserved_bytes = tr.reserved_peak,
                                 .replicas = tr.replicas};
        for (int w = 0; w < tr.replicas && w < FEWCL_REPLICAS_REPORTED; w++) {
            mem.replica_footprint_bytes[w] = tr.replica_footprint[w];
            mem.replica_reserved_bytes[w] = tr.replica_reserved[w];
        }
        api_copy_out(p.memory, p.memory->struct_size, &mem, sizeof mem);
    }
    return s;
}

_Static_assert(FCL_REPLICAS_REPORTED == FEWCL_REPLICAS_REPORTED, "replicas reported match");

fewcl_status fewcl_test_params_default(fewcl_test_params *p, size_t struct_size) {
    API_REQUIRE(p, "fewcl_test_params_default", "p");
    FCL_TRY(api_check_size("fewcl_test_params_default", "p", struct_size));
    fcl_data_options io = data_defaults();
    fewcl_test_params full = {.struct_size = sizeof full,
                              .episodes = 600,
                              .seed = 1,
                              .workers = io.workers,
                              .cache_bytes = io.cache_bytes};
    api_copy_out(p, struct_size, &full, sizeof full);
    return FEWCL_OK;
}

/* ---- a test sharded over the ranks of an MPI job (docs/distributed.md §2) ---------- */

/* SHA-256 of every parameter's name and values (downloaded), and of what decides the episodes
 * (count, seed, shape, transform, the data's classes and file names): ranks that disagree on
 * either would merge accuracies of different runs. */
static fewcl_status run_digests(fewcl_context *ctx, const fcl_model *model,
                                const fcl_eval_options *o, uint8_t weights[32],
                                uint8_t settings[32]) {
    fcl_sha256 h;
    fcl_sha256_init(&h);
    fewcl_status s = FEWCL_OK;
    float *host = NULL;
    size_t cap = 0;
    for (int i = 0; s == FEWCL_OK && i < model->params.n; i++) {
        const fcl_param *q = &model->params.items[i];
        if (q->value.numel > cap) {
            free(host);
            cap = q->value.numel;
            host = malloc(cap * sizeof *host);
            if (!host) s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%zu floats of %s", cap, q->name);
        }
        if (s == FEWCL_OK) s = fcl_tensor_download(ctx, &q->value, host);
        fcl_sha256_update(&h, q->name, strlen(q->name) + 1);
        if (s == FEWCL_OK) fcl_sha256_update(&h, host, q->value.numel * sizeof *host);
    }
    free(host);
    fcl_sha256_final(&h, weights);
    const fcl_model_config *c = &model->cfg;
    long long fields[] = {o->episodes,        (long long)o->seed, c->n_way,        c->k_shot,
                          c->n_query,         c->image_size,      o->io.scale_115, o->io.skip_bad,
                          o->data->n_classes, o->data->n_images};
    fcl_sha256_init(&h);
    fcl_sha256_update(&h, fields, sizeof fields);
    for (int k = 0; k < o->data->n_classes; k++) {
        fcl_sha256_update(&h, o->data->class_names[k], strlen(o->data->class_names[k]) + 1);
        fcl_sha256_update(&h, &o->data->class_count[k], sizeof(int));
    }
    for (int k = 0; k < o->data->n_images; k++) { /* file names; folders may differ by node */
        const char *slash = strrchr(o->data->paths[k], '/');
        const char *name = slash ? slash + 1 : o->data->paths[k];
        fcl_sha256_update(&h, name, strlen(name) + 1);
    }
    fcl_sha256_final(&h, settings);
    return s;
}

/* Every rank checks its digests against rank 0's; the first rank that differs is named. */
static fewcl_status same_run_everywhere(fewcl_context *ctx, const fcl_model *model,
                                        const fcl_eval_options *o, const fcl_dist *d) {
    uint8_t mine[64], lead[64];
    fewcl_status s = run_digests(ctx, model, o, mine, mine + 32);
    FCL_TRY(fcl_dist_agree(d, s));
    memcpy(lead, mine, sizeof lead);
    s = fcl_dist_bcast(d, lead, sizeof lead, 0);
    if (s == FEWCL_OK && memcmp(mine, lead, 32)) {
        char a[65], b[65];
        fcl_sha256_hex(mine, a), fcl_sha256_hex(lead, b);
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "its weights differ from rank 0's (SHA-256 of the parameters %.12s…, rank "
                     "0's %.12s…): every rank must load the same weights file",
                     a, b);
    } else if (s == FEWCL_OK && memcmp(mine + 32, lead + 32, 32))
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "its test settings or data differ from rank 0's (episodes, seed, episode "
                     "shape, the data's classes and file names): give every rank the same "
                     "arguments and the same data folder");
    return fcl_dist_agree(d, s);
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Episodes [first, first + n) of the run into acc[0 .. n): this rank's share, on its one
 * context, or split again over this process's replicas (--devices). */
static fewcl_status evaluate_share(fewcl_context *ctx, fcl_model *model, fcl_replica_group *g,
                                   const fcl_eval_options *o, long first, long n, double *acc) {
    if (n == 0) return FEWCL_OK; /* more ranks than episodes */
    fcl_eval_options share = *o;
    share.first = first, share.episodes = (int)n, share.accuracies = acc;
    fcl_eval_result ignored;
    /* with --devices: the rank's block split again over this process's replicas */
    return g ? fcl_evaluate_sharded(g, &share, &ignored)
             : fcl_evaluate(ctx, model, &share, &ignored);
}

/* The test over the ranks of d: rank r evaluates the balanced contiguous block [c_r, d_r) of
 * the episodes; rank 0 gathers the accuracies in episode order and takes mean and CI over the
 * whole array, the same doubles in the same order as one process, so the result equals a
 * one-process run's to the last digit. Every rank returns it. */
static fewcl_status evaluate_over_ranks(fewcl_context *ctx, fcl_model *model, fcl_replica_group *g,
                                        const fcl_eval_options *o, const fcl_dist *d,
                                        fcl_eval_result *r) {
    double t0 = seconds_now();
    FCL_TRY(same_run_everywhere(ctx, model, o, d));
    long first, end, n = o->episodes;
    fcl_dist_block(n, d->rank, d->size, &first, &end);
    int lead = d->rank == 0;
    double *acc = malloc((size_t)(lead ? n : (end > first ? end - first : 1)) * sizeof *acc);
    int *counts = lead ? malloc(2 * (size_t)d->size * sizeof *counts) : NULL;
    fewcl_status s = FEWCL_OK;
    if (!acc || (lead && !counts))
        s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "the accuracies of %ld episodes", n);
    if (s == FEWCL_OK)
        s = evaluate_share(ctx, model, g, o, first, end - first, lead ? acc + first : acc);
    /* After an agreement every rank holds the same status, so the steps below are taken by
     * all ranks or by none (an agreed failure is not agreed on again). */
    s = fcl_dist_agree(d, s);
    for (int k = 0; s == FEWCL_OK && lead && k < d->size; k++) {
        long c, e;
        fcl_dist_block(n, k, d->size, &c, &e);
        counts[k] = (int)(e - c), counts[d->size + k] = (int)c;
    }
    if (s == FEWCL_OK) {
        s = fcl_dist_gatherv_doubles(d, lead ? acc + first : acc, (int)(end - first), acc, counts,
                                     counts ? counts + d->size : NULL, 0);
        s = fcl_dist_agree(d, s);
    }
    double out[3] = {NAN, NAN, 0};
    if (s == FEWCL_OK && lead) {
        fcl_mean_ci95(acc, (int)n, &out[0], &out[1]);
        out[2] = seconds_now() - t0;
    }
    if (s == FEWCL_OK) s = fcl_dist_bcast(d, out, sizeof out, 0);
    if (s == FEWCL_OK)
        *r = (fcl_eval_result){
            .accuracy = out[0], .ci95 = out[1], .episodes = (int)n, .seconds = out[2]};
    free(counts);
    free(acc);
    return s;
}

fewcl_status fewcl_test(fewcl_model *m, const fewcl_test_params *params, fewcl_test_result *r) {
    const char *fn = "fewcl_test";
    API_REQUIRE(m, fn, "the model");
    API_REQUIRE(params, fn, "the parameters");
    API_REQUIRE(r, fn, "the result");
    FCL_TRY(api_check_size(fn, "the parameters", params->struct_size));
    FCL_TRY(api_check_size(fn, "the result", r->struct_size));
    fewcl_test_params p;
    fewcl_test_params_default(&p, sizeof p);
    api_copy_in(&p, sizeof p, params, params->struct_size);
    /* Under MPI (distributed) every failure from here on goes through the ranks' agreement,
     * so that a rank whose data folder is missing ends the job instead of hanging it. */
    fcl_dist world;
    fcl_dist_world(&world);
    if (!p.distributed) world.size = 1, world.rank = 0;
    fewcl_status s = FEWCL_OK;
    if (!p.dataset && !p.data)
        s = fcl_fail(FEWCL_ERR_ARGUMENT, "%s: data is NULL", fn);
    else if (p.episodes < 1 || p.n_way < 0 || p.k_shot < 0 || p.n_query < 0)
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "%s: %d episodes of %d-way %d-shot %d-query (episodes >= 1, sizes >= 0; "
                     "0 keeps the trained size)",
                     fn, p.episodes, p.n_way, p.k_shot, p.n_query);
    /* The episode shape asked for; another one than the model's runs on a reshaped copy. */
    fcl_model_config cfg = m->m->cfg;
    if (p.n_way) cfg.n_way = p.n_way;
    if (p.k_shot) cfg.k_shot = p.k_shot;
    if (p.n_query) cfg.n_query = p.n_query;
    if (s == FEWCL_OK) s = fcl_config_validate(&cfg);
    fcl_dataset *data = NULL;
    if (s == FEWCL_OK && !p.dataset) s = open_data(fn, "data", p.data, p.data_root, &data);
    fcl_model *model = m->m;
    int uniform = 0;
    if (s == FEWCL_OK && (cfg.n_way != model->cfg.n_way || cfg.k_shot != model->cfg.k_shot ||
                          cfg.n_query != model->cfg.n_query))
        s = fcl_model_reshape(m->ctx, m->m, &cfg, &model, &uniform);
    job j = {p.progress, NULL, p.user, p.cancel, fewcl_cancel_requested(p.cancel)};
    fcl_eval_options o = {.data = p.dataset ? p.dataset->d : data,
                          .episodes = p.episodes,
                          .seed = p.seed,
                          .io = {.workers = p.workers,
                                 .cache_bytes = p.cache_bytes,
                                 .skip_bad = p.skip_bad_images,
                                 .scale_115 = p.scale_115},
                          .progress = on_progress,
                          .user = &j,
                          .stop = &j.stop};
    fcl_eval_result er;
    fcl_replica_group *g = NULL; /* p.devices: this process's replicas */
    if (s == FEWCL_OK && p.devices && *p.devices)
        s = fcl_replicas_open(p.devices, m->ctx, model, 0, &g);
    if (world.size > 1)
        s = s == FEWCL_OK ? evaluate_over_ranks(m->ctx, model, g, &o, &world, &er)
                          : fcl_dist_agree(&world, s);
    else if (s == FEWCL_OK)
        s = g ? fcl_evaluate_sharded(g, &o, &er) : fcl_evaluate(m->ctx, model, &o, &er);
    fcl_replicas_close(g);
    if (model != m->m) fcl_model_destroy(m->ctx, model);
    fcl_dataset_free(data);
    if (s == FEWCL_OK) {
        fewcl_test_result full = {sizeof full, er.accuracy, er.ci95,
                                  er.episodes, uniform,     er.seconds};
        api_copy_out(r, r->struct_size, &full, sizeof full);
    }
    return s;
}
