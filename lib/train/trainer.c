/* Episodic training and evaluation (see trainer.h). */
#include "trainer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../data/loader.h"
#include "../dist/dist.h"
#include "../io/atomic_file.h"
#include "../ops/conv_algo.h"
#include "../plan/episode_plan.h"
#include "checkpoint.h"
#include "reduce.h"
#include "replicas.h"
#include "runlog.h"

/* Validation episodes come from their own stream, so they never repeat training draws. */
#define VAL_SEED_SALT 0x76616c6964617465ull

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

void fcl_mean_ci95(const double *acc, int n, double *mean, double *ci95) {
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        sum += acc[i];
    *mean = n ? sum / n : NAN;
    for (int i = 0; i < n; i++)
        sq += (acc[i] - *mean) * (acc[i] - *mean);
    *ci95 = n ? 1.96 * sqrt(sq / n) / sqrt((double)n) : NAN;
}

const char *fcl_lr_schedule_name(fcl_lr_schedule s) {
    return s == FCL_LR_COSINE ? "cosine" : "constant";
}

int fcl_lr_schedule_parse(const char *name, fcl_lr_schedule *out) {
    if (!strcmp(name, "constant"))
        *out = FCL_LR_CONSTANT;
    else if (!strcmp(name, "cosine"))
        *out = FCL_LR_COSINE;
    else
        return -1;
    return 0;
}

double fcl_lr_at(fcl_lr_schedule s, double lr, long index, long total) {
    const double pi = 3.14159265358979323846;
    if (s != FCL_LR_COSINE || total < 1) return lr;
    return lr * 0.5 * (1.0 + cos(pi * (double)index / (double)total));
}

static double loader_images_per_s(fcl_loader *l) {
    fcl_loader_stats st = fcl_loader_stats_get(l);
    double busy = st.decode_seconds + st.transform_seconds;
    return busy > 0 ? st.images_decoded / busy : 0;
}

static fewcl_status make_loader(const fcl_dataset *d, const fcl_model_config *c, int augment,
                                uint64_t seed, long first, const fcl_data_options *io,
                                fcl_loader **out) {
    fcl_loader_options lo = {.data = d,
                             .n_way = c->n_way,
                             .k_shot = c->k_shot,
                             .n_query = c->n_query,
                             .image_size = c->image_size,
                             .augment = augment,
                             .scale_115 = augment ? 0 : io->scale_115,
                             .seed = seed,
                             .first_episode = first,
                             .workers = io->workers,
                             .prefetch = io->workers > 0 ? 2 * io->workers : 1,
                             .skip_bad = io->skip_bad,
                             .cache_bytes = io->cache_bytes};
    return fcl_loader_create(&lo, out);
}

/* The episode tensor on the device and its host staging buffer. */
typedef struct episode_input {
    fcl_tensor x;
    float *host;
} episode_input;

static fewcl_status input_alloc(fewcl_context *ctx, const fcl_model_config *c, episode_input *in) {
    int shape[4] = {c->n_way * (c->k_shot + c->n_query), 3, c->image_size, c->image_size};
    FCL_TRY(fcl_tensor_alloc(ctx, &in->x, FCL_MEM_ACTIVATION, 4, shape));
    in->host = malloc(in->x.numel * sizeof *in->host);
    return in->host ? FEWCL_OK
                    : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "episode buffer (%zu floats)", in->x.numel);
}

static void input_free(fewcl_context *ctx, episode_input *in) {
    if (in->x.numel) fcl_tensor_free(ctx, &in->x);
    free(in->host);
}

static fewcl_status input_next(fewcl_context *ctx, fcl_loader *l, episode_input *in) {
    FCL_TRY(fcl_loader_next(l, in->host, NULL));
    return fcl_tensor_upload(ctx, &in->x, in->host);
}

/* Evaluation over `episodes` episodes from an open loader. */
static fewcl_status evaluate_with(fewcl_context *ctx, fcl_model *m, fcl_loader *l, int episodes,
                                  const char *phase, int epoch, int epochs,
                                  fcl_progress_fn progress, void *user, volatile sig_atomic_t *stop,
                                  double *accuracies, fcl_eval_result *r) {
    *r = (fcl_eval_result){.accuracy = NAN, .ci95 = NAN};
    double *acc =
        accuracies ? accuracies : malloc((size_t)(episodes > 0 ? episodes : 1) * sizeof *acc);
    episode_input in = {0};
    if (!acc) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%d accuracies", episodes);
    fcl_arena_phase(ctx->arena, FCL_PHASE_EVAL_INPUT); /* where every plan puts it */
    fewcl_status s = input_alloc(ctx, &m->cfg, &in);
    double t0 = now(), sum = 0;
    for (int e = 0; s == FEWCL_OK && e < episodes; e++) {
        if (stop && *stop) {
            s = fcl_fail(FEWCL_ERR_INTERRUPTED, "%s stopped after %d of %d episodes", phase, e,
                         episodes);
            break;
        }
        fcl_step_result sr;
        s = input_next(ctx, l, &in);
        if (s == FEWCL_OK) s = fcl_eval_step(ctx, m, &in.x, &sr);
        if (s != FEWCL_OK) break;
        acc[e] = 100.0 * sr.correct / sr.queries;
        sum += acc[e];
        if (progress)
            progress(user, &(fcl_progress){.phase = phase,
                                           .epoch = epoch,
                                           .epochs = epochs,
                                           .done = e + 1,
                                           .total = episodes,
                                           .accuracy = sum / (e + 1),
                                           .seconds = now() - t0});
    }
    if (s == FEWCL_OK) {
        fcl_mean_ci95(acc, episodes, &r->accuracy, &r->ci95);
        r->episodes = episodes;
        r->seconds = now() - t0;
        r->images_per_s = loader_images_per_s(l);
    }
    input_free(ctx, &in);
    if (acc != accuracies) free(acc);
    return s;
}

/* Plans an evaluation episode of m's configuration on this context, refusing one that does
 * not fit (as the trainer does), and, when m's tensors are all the context's arena holds,
 * moves them to where the plan puts the model and follows the layout (*followed): the
 * evaluation then reserves exactly the planned footprint. With other tensors live and a
 * layout followed (a trainer's validation, a replica of a training over devices) that layout
 * planned this evaluation too: it stays, unplanned again. With other tensors live and no
 * layout (another model, an enrolment) it allocates first fit as before. */
static fewcl_status follow_evaluation_plan(fewcl_context *ctx, fcl_model *m, size_t *peak,
                                           size_t *footprint, int *followed) {
    fcl_arena_stats stats = {0};
    fcl_layout *layout;
    *followed = 0;
    *peak = *footprint = 0;
    int alone = fcl_params_device_bytes(&m->params) == fcl_arena_stats_get(ctx->arena)->in_use;
    if (!alone && fcl_arena_following(ctx->arena)) return FEWCL_OK;
    fewcl_status s =
        fcl_episode_layout(ctx, &m->cfg, 0, fcl_arena_limit(ctx->arena), &stats, &layout);
    *peak = stats.peak, *footprint = stats.peak_reserved;
    if (s != FEWCL_OK) {
        char why[2048];
        snprintf(why, sizeof why, "%s", fewcl_last_error());
        return fcl_fail(s,
                        "this configuration's evaluation episode does not fit the device (plan "
                        "made before the first episode): %s. `fewcl plan --eval` with the same "
                        "flags shows where the memory goes",
                        why);
    }
    if (!fcl_arena_follows_layouts(ctx->arena) || !alone) {
        fcl_layout_free(layout);
        return FEWCL_OK;
    }
    fcl_params_stash *stash;
    s = fcl_params_stash_out(ctx, &m->params, &stash);
    if (s == FEWCL_OK) {
        fewcl_status follow = fcl_arena_follow(ctx->arena, layout);
        s = fcl_params_unstash(ctx, &m->params, stash);
        if (s == FEWCL_OK) s = follow;
    }
    fcl_layout_free(layout);
    *followed = s == FEWCL_OK;
    return s;
}

fewcl_status fcl_evaluate(fewcl_context *ctx, fcl_model *m, const fcl_eval_options *o,
                          fcl_eval_result *r) {
    if (o->episodes < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "--episodes %d: evaluate at least one episode",
                        o->episodes);
    fcl_loader *l;
    if (o->first < 0)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "evaluation share starts at episode %ld (>= 0)",
                        o->first);
    size_t peak, footprint;
    int followed;
    FCL_TRY(follow_evaluation_plan(ctx, m, &peak, &footprint, &followed));
    fewcl_status s = make_loader(o->data, &m->cfg, 0, o->seed, o->first, &o->io, &l);
    if (s == FEWCL_OK) {
        s = evaluate_with(ctx, m, l, o->episodes, "test", 0, 0, o->progress, o->user, o->stop,
                          o->accuracies, r);
        fcl_loader_destroy(l);
    }
    r->planned_peak = peak, r->planned_footprint = footprint;
    /* The model stays in the planned buffers. A layout this call did not start (a trainer's)
     * goes on: stopping it would send the trainer's next tensors to new buffers. */
    if (followed) fcl_arena_unfollow(ctx->arena);
    return s;
}

/* ---- the trainer's state, kept in the last checkpoint's metadata ----------------------- */

typedef struct run_state {
    int epoch;     /* epochs completed */
    long in_epoch; /* training episodes done in the epoch under way */
    double sum_loss, sum_ce, sum_var, sum_cov, sum_acc;
    double best_val;
    int best_epoch;
    fcl_epoch_metrics *history; /* one per completed epoch */
    uint64_t seed;
    int episodes;
    fcl_lr_schedule lr_schedule;
    int schedule_epochs; /* the run length the schedule spans (cosine: fixed at the start) */
    int meta_batch;      /* episodes per step; in_epoch is a multiple of it */
} run_state;

/* The metrics' fields, by CSV/JSON name. */
#define METRIC_FIELDS(X)                                                                           \
    X(loss)                                                                                        \
    X(loss_ce)                                                                                     \
    X(loss_var)                                                                                    \
    X(loss_cov) X(train_acc) X(val_acc) X(val_ci95) X(episodes_per_s) X(images_per_s) X(seconds)   \
        X(device_peak)

/* JSON has no NaN: absent values (no validation) are written as null. */
static void add_number(cJSON *o, const char *key, double v) {
    if (isnan(v))
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, v);
}

static double get_number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

cJSON *fcl_epoch_metrics_json(const fcl_epoch_metrics *m) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "epoch", m->epoch);
#define ADD(f) add_number(e, #f, m->f);
    METRIC_FIELDS(ADD)
#undef ADD
    return e;
}

static char *state_to_json(const run_state *st) {
    cJSON *o = cJSON_CreateObject();
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)st->seed);
    cJSON_AddStringToObject(o, "seed", seed); /* as text: a double cannot hold every uint64 */
    cJSON_AddNumberToObject(o, "episodes", st->episodes);
    cJSON_AddStringToObject(o, "lr_schedule", fcl_lr_schedule_name(st->lr_schedule));
    cJSON_AddNumberToObject(o, "schedule_epochs", st->schedule_epochs);
    cJSON_AddNumberToObject(o, "meta_batch", st->meta_batch);
    cJSON_AddNumberToObject(o, "epoch", st->epoch);
    cJSON_AddNumberToObject(o, "in_epoch", (double)st->in_epoch);
    add_number(o, "sum_loss", st->sum_loss);
    add_number(o, "sum_ce", st->sum_ce);
    add_number(o, "sum_var", st->sum_var);
    add_number(o, "sum_cov", st->sum_cov);
    add_number(o, "sum_acc", st->sum_acc);
    add_number(o, "best_val", st->best_val);
    cJSON_AddNumberToObject(o, "best_epoch", st->best_epoch);
    cJSON *h = cJSON_AddArrayToObject(o, "history");
    for (int i = 0; i < st->epoch; i++)
        cJSON_AddItemToArray(h, fcl_epoch_metrics_json(&st->history[i]));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static fewcl_status state_from_json(const char *path, const char *text, int max_epochs,
                                    run_state *st) {
    cJSON *o = cJSON_Parse(text);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "history");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(o, "seed");
    /* Checkpoints from before schedules existed trained with a constant rate. */
    const cJSON *sched = cJSON_GetObjectItemCaseSensitive(o, "lr_schedule");
    st->lr_schedule = FCL_LR_CONSTANT;
    int sched_ok = !sched || (cJSON_IsString(sched) &&
                              fcl_lr_schedule_parse(sched->valuestring, &st->lr_schedule) == 0);
    st->schedule_epochs = (int)get_number(o, "schedule_epochs");
    st->epoch = (int)get_number(o, "epoch");
    st->in_epoch = (long)get_number(o, "in_epoch");
    st->episodes = (int)get_number(o, "episodes");
    /* Checkpoints from before meta-batches took one episode per step. */
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "meta_batch");
    st->meta_batch = meta ? (int)get_number(o, "meta_batch") : 1;
    int ok = cJSON_IsObject(o) && cJSON_IsArray(h) && cJSON_IsString(seed) && sched_ok &&
             (st->lr_schedule == FCL_LR_CONSTANT || st->schedule_epochs > 0) && st->epoch >= 0 &&
             st->in_epoch >= 0 && cJSON_GetArraySize(h) == st->epoch && st->meta_batch >= 1 &&
             st->in_epoch % st->meta_batch == 0;
    if (ok) {
        st->seed = strtoull(seed->valuestring, NULL, 10);
        st->sum_loss = get_number(o, "sum_loss"), st->sum_ce = get_number(o, "sum_ce");
        st->sum_var = get_number(o, "sum_var"), st->sum_cov = get_number(o, "sum_cov");
        st->sum_acc = get_number(o, "sum_acc");
        st->best_val = get_number(o, "best_val");
        st->best_epoch = (int)get_number(o, "best_epoch");
        int cap = st->epoch > max_epochs ? st->epoch : max_epochs;
        st->history = calloc((size_t)(cap > 0 ? cap : 1), sizeof *st->history);
        ok = st->history != NULL;
    }
    for (int i = 0; ok && i < st->epoch; i++) {
        const cJSON *e = cJSON_GetArrayItem(h, i);
        st->history[i].epoch = (int)get_number(e, "epoch");
#define GET(f) st->history[i].f = get_number(e, #f);
        METRIC_FIELDS(GET)
#undef GET
    }
    cJSON_Delete(o);
    if (!ok)
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "%s: the trainer's state (\"training\" in __metadata__) is missing or "
                        "damaged; start a new run or resume from a copy of an intact checkpoint",
                        path);
    return FEWCL_OK;
}

/* ---- the run folder ---------------------------------------------------------------------- */

static int meta_batch_of(const fcl_train_options *o) {
    return o->meta_batch > 1 ? o->meta_batch : 1;
}

static void join(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

static fewcl_status make_dirs(const char *path) {
    if (fcl_mkdirs(path) == 0) return FEWCL_OK;
    return fcl_fail(FEWCL_ERR_IO, "cannot create the run folder %s: %s", path, strerror(errno));
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static fewcl_status write_run_config(const fcl_train_options *o, const char *path) {
    char *model = fcl_config_to_json(&o->cfg);
    cJSON *root = cJSON_CreateObject();
    cJSON *m = model ? cJSON_Parse(model) : NULL;
    free(model);
    if (!root || !m) {
        cJSON_Delete(root), cJSON_Delete(m);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "writing %s", path);
    }
    cJSON_AddItemToObject(root, "model", m);
    cJSON *t = cJSON_AddObjectToObject(root, "training");
    cJSON_AddNumberToObject(t, "epochs", o->epochs);
    cJSON_AddNumberToObject(t, "episodes", o->episodes);
    cJSON_AddNumberToObject(t, "meta_batch", meta_batch_of(o));
    cJSON_AddNumberToObject(t, "val_episodes", o->val ? o->val_episodes : 0);
    cJSON_AddBoolToObject(t, "augment", o->augment);
    cJSON_AddNumberToObject(t, "lr", o->adam.lr);
    cJSON_AddStringToObject(t, "lr_schedule", fcl_lr_schedule_name(o->lr_schedule));
    cJSON_AddNumberToObject(t, "weight_decay", o->adam.weight_decay);
    cJSON_AddNumberToObject(t, "beta1", o->adam.beta1);
    cJSON_AddNumberToObject(t, "beta2", o->adam.beta2);
    cJSON_AddNumberToObject(t, "eps", o->adam.eps);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(t, "seed", seed);
    cJSON_AddStringToObject(t, "train_data", o->train->source);
    if (o->val) cJSON_AddStringToObject(t, "val_data", o->val->source);
    if (o->init_weights) cJSON_AddStringToObject(t, "init_weights", o->init_weights);
    if (o->backbone_weights) cJSON_AddStringToObject(t, "backbone_weights", o->backbone_weights);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "writing %s", path);
    fewcl_status s = fcl_atomic_write_text(path, text);
    free(text);
    return s;
}

/* ---- training ---------------------------------------------------------------------------- */

/* A meta-batch's host side: the gradient tree, its mean, the BatchNorm records and the
 * episodes' results of the step under way. */
/* A replica's part of a meta-batch step (--devices): its own tree over its block of episodes
 * and, off the caller's context, its own episode tensor; made and freed on its thread. */
typedef struct meta_worker {
    fcl_tree tree;
    fcl_tensor x;
    int ready;
} meta_worker;

typedef struct meta_host {
    fcl_tree tree;
    float *mean, *bn;
    size_t R; /* BatchNorm record floats per episode */
    fcl_step_result *results;
    /* With replicas: the step's M episodes on the host (loaded in episode order by the caller,
     * as one device would), one worker per replica, the lead's convolution choices. */
    float **episodes;
    meta_worker *workers;
    int phase;         /* 0: every replica; 1: the lead alone; 2: all but the lead */
    int lead;          /* the first replica with episodes */
    int warm;          /* the lead's choices have been shared */
    int M;             /* with replicas: the meta-batch */
    long first, count; /* this rank's block of the step's episodes (all of them on one rank) */
    double *packed;    /* the step's results, 6 doubles per episode, gathered over the ranks */
    int release;       /* the command frees the workers */
    char *choices;
} meta_host;

typedef struct trainer {
    fewcl_context *ctx;
    const fcl_train_options *o;
    fcl_model *model;
    fcl_loader *train, *val;
    fcl_replica_group *group; /* o->devices: validation's replicas */
    fcl_dist d;               /* o->distributed: the MPI world, else rank 0 of 1 */
    episode_input in;
    run_state st;
    meta_host meta;
    char last_path[4200], best_path[4200];
} trainer;

static fewcl_status save_last(trainer *t) {
    if (t->d.rank) return FEWCL_OK; /* rank 0 alone writes the run folder */
    char *json = state_to_json(&t->st);
    if (!json) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "trainer state");
    fewcl_status s = fcl_checkpoint_save(t->ctx, t->model, 1, json, t->last_path);
    free(json);
    return s;
}

static fewcl_status write_logs(trainer *t) {
    char path[4200], title[256];
    const fcl_model_config *c = &t->o->cfg;
    join(path, sizeof path, t->o->run_dir, "metrics.csv");
    FCL_TRY(fcl_runlog_write_csv(path, t->st.history, t->st.epoch));
    snprintf(title, sizeof title, "fewcl: %s %dx%d, %s %s, %d-way %d-shot %d-query",
             fcl_backbone_name(c->backbone), c->image_size, c->image_size,
             fcl_method_name(c->method), fcl_variant_name(c->variant), c->n_way, c->k_shot,
             c->n_query);
    join(path, sizeof path, t->o->run_dir, "curves.svg");
    FCL_TRY(fcl_runlog_write_svg(path, t->st.history, t->st.epoch, title));
    /* The algorithm of each convolution the run has met (training and validation shapes). */
    char *used, *text;
    FCL_TRY(fcl_conv_algo_used(t->ctx, &used));
    const char *head = "# fewcl: each convolution of this run (find database key: path, "
                       "direction, shapes), its algorithm, how it was chosen\n";
    text = malloc(strlen(head) + strlen(used) + 1);
    if (text) strcat(strcpy(text, head), used);
    free(used);
    if (!text) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "writing conv-algorithms.txt");
    join(path, sizeof path, t->o->run_dir, "conv-algorithms.txt");
    fewcl_status s = fcl_atomic_write_text(path, text);
    free(text);
    return s;
}

/* Refuses, before anything is allocated, a configuration whose training episode does not
 * fit the device (the plan runs the trainer's schedule on a tracing arena and lays it out:
 * the footprint is what must fit), and returns the layout the run then follows. */
static fewcl_status check_plan(fewcl_context *ctx, const fcl_model_config *cfg, int meta_batch,
                               fcl_train_result *r, fcl_layout **layout) {
    fcl_arena_stats stats;
    size_t limit = fcl_arena_limit(ctx->arena);
    fewcl_status s = fcl_episode_layout(ctx, cfg, meta_batch, limit, &stats, layout);
    r->planned_peak = stats.peak;
    r->planned_footprint = stats.peak_reserved;
    if (s == FEWCL_OK) return FEWCL_OK;
    char why[2048];
    snprintf(why, sizeof why, "%s", fewcl_last_error());
    return fcl_fail(s,
                    "this configuration's training episode does not fit the device (plan made "
                    "before allocating anything): %s. `fewcl plan` with the same flags shows where "
                    "the memory goes; `fewcl plan --fit device` picks settings that fit",
                    why);
}

/* Opens the model: fresh (seeded, optionally from initial weights) or from the last
 * checkpoint of the run folder. */
static fewcl_status open_model(trainer *t) {
    const fcl_train_options *o = t->o;
    FCL_TRY(fcl_model_create(t->ctx, &o->cfg, o->seed, &t->model));
    if (!o->resume) {
        t->st.seed = o->seed, t->st.episodes = o->episodes;
        t->st.lr_schedule = o->lr_schedule, t->st.schedule_epochs = o->epochs;
        t->st.meta_batch = meta_batch_of(o);
        t->st.best_val = NAN, t->st.best_epoch = 0;
        t->st.history = calloc((size_t)o->epochs, sizeof *t->st.history);
        if (!t->st.history) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "history");
        if (o->init_weights) {
            fcl_safetensors *st;
            FCL_TRY(fcl_st_load(o->init_weights, &st));
            fewcl_status s =
                fcl_params_load(t->ctx, &t->model->params, st, o->init_prefix ? o->init_prefix : "",
                                FCL_LOAD_COMPLETE);
            fcl_st_free(st);
            FCL_TRY(s);
        }
        if (o->backbone_weights)
            FCL_TRY(fcl_model_load_backbone(t->ctx, t->model, o->backbone_weights,
                                            o->backbone_prefix ? o->backbone_prefix : ""));
        return FEWCL_OK;
    }
    fcl_safetensors *st;
    FCL_TRY(fcl_st_load(t->last_path, &st));
    fcl_model_config saved;
    int found = 0;
    char diff[512] = "";
    fewcl_status s = fcl_checkpoint_config(st, &saved, &found);
    if (s == FEWCL_OK && !found)
        s = fcl_fail(FEWCL_ERR_FORMAT, "%s holds no model config: not a fewcl training checkpoint",
                     t->last_path);
    if (s == FEWCL_OK && (fcl_config_architecture_diff(&saved, &o->cfg, diff, sizeof diff) ||
                          saved.n_way != o->cfg.n_way || saved.k_shot != o->cfg.k_shot ||
                          saved.n_query != o->cfg.n_query))
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "--resume: the run in %s was trained as %s %d-way %d-shot %d-query%s%s; give "
                     "the same model flags to resume it",
                     o->run_dir, fcl_backbone_name(saved.backbone), saved.n_way, saved.k_shot,
                     saved.n_query, diff[0] ? ", differences (saved vs given): " : "", diff);
    char *json = s == FEWCL_OK ? fcl_checkpoint_training(st) : NULL;
    if (s == FEWCL_OK) s = state_from_json(t->last_path, json ? json : "", o->epochs, &t->st);
    free(json);
    if (s == FEWCL_OK && (t->st.seed != o->seed || t->st.episodes != o->episodes))
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "--resume: the run in %s used --seed %llu and --episodes %d; give the same "
                     "values to continue it exactly",
                     o->run_dir, (unsigned long long)t->st.seed, t->st.episodes);
    if (s == FEWCL_OK && t->st.meta_batch != meta_batch_of(o))
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "--resume: the run in %s used --meta-batch %d; give the same value to "
                     "continue it exactly",
                     o->run_dir, t->st.meta_batch);
    /* A cosine schedule spans the run's length as first given: another --epochs would change
     * the rate of episodes already trained. A constant rate may be extended. */
    if (s == FEWCL_OK &&
        (t->st.lr_schedule != o->lr_schedule ||
         (o->lr_schedule != FCL_LR_CONSTANT && t->st.schedule_epochs != o->epochs)))
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "--resume: the run in %s used --lr-schedule %s over %d epochs; give the same "
                     "to continue it exactly",
                     o->run_dir, fcl_lr_schedule_name(t->st.lr_schedule), t->st.schedule_epochs);
    if (s == FEWCL_OK) s = fcl_checkpoint_load(t->ctx, t->model, st, 1);
    fcl_st_free(st);
    return s;
}

static void accumulate(run_state *st, const fcl_step_result *r) {
    st->sum_loss += r->loss, st->sum_ce += r->loss_ce;
    st->sum_var += r->loss_var, st->sum_cov += r->loss_cov;
    st->sum_acc += 100.0 * r->correct / r->queries;
}

/* The failure of a training episode, with where the run stands. */
static fewcl_status episode_failed(trainer *t, fewcl_status s, int epoch, long step, long episode) {
    char why[2048];
    snprintf(why, sizeof why, "%s", fewcl_last_error());
    char kept[4300] = "no checkpoint had been written yet";
    if (file_exists(t->last_path))
        snprintf(kept, sizeof kept, "the last checkpoint, %s, is intact", t->last_path);
    if (step < 0)
        return fcl_fail(s, "epoch %d, episode %ld: %s (%s)", epoch + 1, episode, why, kept);
    return fcl_fail(s, "epoch %d, step %ld, episode %ld: %s (%s)", epoch + 1, step, episode, why,
                    kept);
}

static void report_progress(trainer *t, int epoch, long done, double t0) {
    const fcl_train_options *o = t->o;
    if (o->progress)
        o->progress(o->user, &(fcl_progress){.phase = "train",
                                             .epoch = epoch + 1,
                                             .epochs = o->epochs,
                                             .done = done,
                                             .total = o->episodes,
                                             .loss = t->st.sum_loss / done,
                                             .accuracy = t->st.sum_acc / done,
                                             .seconds = now() - t0});
}

static fewcl_status meta_alloc(trainer *t) {
    int M = meta_batch_of(t->o);
    meta_host *mh = &t->meta;
    size_t n = fcl_params_flat_count(&t->model->params, FCL_FLAT_GRADS);
    mh->R = fcl_params_buffer_floats(&t->model->params);
    FCL_TRY(fcl_tree_init(&mh->tree, n));
    mh->mean = malloc((n ? n : 1) * sizeof *mh->mean);
    mh->bn = malloc((mh->R * (size_t)M + 1) * sizeof *mh->bn);
    mh->results = malloc((size_t)M * sizeof *mh->results);
    if (!mh->mean || !mh->bn || !mh->results)
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "meta-batch host vectors (%zu floats each)", n);
    /* As the plan's schedule: the moments before the first episode (episode_plan.h). */
    return fcl_params_alloc_moments(t->ctx, &t->model->params);
}

static void meta_free(meta_host *mh) {
    fcl_tree_free(&mh->tree);
    free(mh->mean);
    free(mh->bn);
    free(mh->results);
    if (mh->episodes)
        for (int m = 0; m < mh->M; m++)
            free(mh->episodes[m]);
    free(mh->episodes);
    free(mh->workers);
    free(mh->choices);
    free(mh->packed);
}

/* The host episodes and the replicas' workers of a meta-batch over t->group. */
static fewcl_status meta_replicas_alloc(trainer *t) {
    meta_host *mh = &t->meta;
    int M = t->st.meta_batch;
    mh->M = M;
    long end;
    fcl_dist_block(M, t->d.rank, t->d.size, &mh->first, &end);
    mh->count = end - mh->first;
    mh->packed = malloc((size_t)M * 6 * sizeof *mh->packed);
    mh->episodes = calloc((size_t)M, sizeof *mh->episodes);
    mh->workers = calloc((size_t)t->group->n, sizeof *mh->workers);
    if (!mh->episodes || !mh->workers || !mh->packed)
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%d episodes of a meta-batch", M);
    for (int m = 0; m < M; m++)
        if (!(mh->episodes[m] = malloc(t->in.x.numel * sizeof **mh->episodes)))
            return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "episode %d of a meta-batch (%zu floats)",
                            m + 1, t->in.x.numel);
    long start, count = 0;
    for (mh->lead = 0; mh->lead < t->group->n; mh->lead++) {
        fcl_shard_block(mh->first, mh->count, t->group->n, mh->lead, &start, &count);
        if (count > 0) break;
    }
    return FEWCL_OK;
}

/* On replica r's thread: the gradients of its block of the step's episodes into its tree
 * (leaves pushed in episode order), their BatchNorm records and results into the shared
 * arrays at their episode index; or, with mh->release, frees its worker. */
static fewcl_status meta_share(fcl_replica *r, void *arg) {
    trainer *t = arg;
    meta_host *mh = &t->meta;
    meta_worker *me = &mh->workers[r->w];
    if (mh->release) {
        if (me->ready) {
            fcl_tree_free(&me->tree);
            if (me->x.numel) fcl_tensor_free(r->ctx, &me->x);
        }
        me->ready = 0;
        return FEWCL_OK;
    }
    if ((mh->phase == 1 && r->w != mh->lead) || (mh->phase == 2 && r->w == mh->lead))
        return FEWCL_OK;
    if (mh->phase == 2 && mh->choices) FCL_TRY(fcl_conv_algo_import(r->ctx, mh->choices));
    if (!me->ready) {
        FCL_TRY(fcl_tree_init(&me->tree, mh->tree.n));
        if (!r->on_caller) {
            int shape[4];
            for (int i = 0; i < 4; i++)
                shape[i] = t->in.x.shape[i];
            FCL_TRY(fcl_tensor_alloc(r->ctx, &me->x, FCL_MEM_ACTIVATION, 4, shape));
        }
        me->ready = 1;
    }
    fcl_tensor *x = r->on_caller ? &t->in.x : &me->x;
    long a, count;
    fcl_shard_block(mh->first, mh->count, r->group->n, r->w, &a, &count);
    for (long m = a; m < a + count; m++) {
        if (atomic_load(&r->group->failed)) return FEWCL_ERR_INTERRUPTED;
        float *g = fcl_tree_buffer(&me->tree);
        if (!g) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "a gradient (%zu floats)", me->tree.n);
        fewcl_status s = fcl_tensor_upload(r->ctx, x, mh->episodes[m]);
        if (s == FEWCL_OK)
            s = fcl_grad_step(r->ctx, r->model, x, g, mh->bn + (size_t)m * mh->R, &mh->results[m]);
        if (s != FEWCL_OK) {
            free(g);
            return fcl_wrap(s, "episode %ld of the step: ", m + 1);
        }
        FCL_TRY(fcl_tree_push(&me->tree, m, 1, g));
    }
    if (mh->phase == 1 && r->group->n > 1) FCL_TRY(fcl_conv_algo_export(r->ctx, &mh->choices));
    return FEWCL_OK;
}

/* Node i of the canonical dyadic cover of [lo, end) (what a tree holds after the leaves of
 * that range were pushed): the longest aligned node at each start; returns the count. */
static int dyadic_cover(long lo, long end, long *los, long *lens) {
    int k = 0;
    while (lo < end) {
        long len = 1;
        while (lo % (2 * len) == 0 && lo + 2 * len <= end)
            len *= 2;
        los[k] = lo, lens[k++] = len;
        lo += len;
    }
    return k;
}

enum { TAG_NODE = 160, TAG_BN = 161 };

/* Rank r > 0 sends its cover (the nodes of its tree) and its episodes' BatchNorm records to
 * rank 0, which pushes them in rank order (= episode order) after its own: the sum has the
 * bits of one process pushing the M leaves. The results (6 doubles per episode) are gathered
 * and broadcast, so every rank accumulates the same metrics. Every rank reaches this after
 * fcl_dist_agree said all succeeded. */
static fewcl_status meta_gather(trainer *t) {
    meta_host *mh = &t->meta;
    const fcl_dist *d = &t->d;
    size_t n = mh->tree.n;
    long los[FCL_TREE_DEPTH], lens[FCL_TREE_DEPTH];
    for (long m = mh->first; m < mh->first + mh->count; m++) {
        const fcl_step_result *r = &mh->results[m];
        double *p = mh->packed + 6 * m;
        p[0] = r->loss, p[1] = r->loss_ce, p[2] = r->loss_var, p[3] = r->loss_cov;
        p[4] = r->correct, p[5] = r->queries;
    }
    if (d->rank > 0) {
        const fcl_tree_node *nodes;
        int k = fcl_tree_nodes(&mh->tree, &nodes);
        int want = dyadic_cover(mh->first, mh->first + mh->count, los, lens);
        for (int i = 0; i < k && k == want; i++)
            if (nodes[i].lo != los[i] || nodes[i].len != lens[i]) want = -1;
        if (k != want)
            return fcl_fail(FEWCL_ERR_INTERNAL,
                            "rank %d: its gradient tree is not the dyadic "
                            "cover of episodes [%ld, %ld)",
                            d->rank, mh->first, mh->first + mh->count);
        for (int i = 0; i < k; i++)
            FCL_TRY(fcl_dist_send_floats(d, 0, TAG_NODE, nodes[i].v, n));
        if (mh->count)
            FCL_TRY(fcl_dist_send_floats(d, 0, TAG_BN, mh->bn + (size_t)mh->first * mh->R,
                                         (size_t)mh->count * mh->R));
        fcl_tree_clear(&mh->tree);
    } else {
        for (int r = 1; r < d->size; r++) {
            long first, end;
            fcl_dist_block(mh->M, r, d->size, &first, &end);
            int k = dyadic_cover(first, end, los, lens);
            for (int i = 0; i < k; i++) {
                float *v = fcl_tree_buffer(&mh->tree);
                if (!v) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "a gradient (%zu floats)", n);
                fewcl_status s = fcl_dist_recv_floats(d, r, TAG_NODE, v, n);
                if (s != FEWCL_OK) {
                    free(v);
                    return s;
                }
                FCL_TRY(fcl_tree_push(&mh->tree, los[i], lens[i], v));
            }
            if (end > first)
                FCL_TRY(fcl_dist_recv_floats(d, r, TAG_BN, mh->bn + (size_t)first * mh->R,
                                             (size_t)(end - first) * mh->R));
        }
    }
    int *counts = malloc((size_t)d->size * 2 * sizeof *counts);
    if (!counts) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%d ranks' counts", d->size);
    for (int r = 0; r < d->size; r++) {
        long first, end;
        fcl_dist_block(mh->M, r, d->size, &first, &end);
        counts[r] = (int)(6 * (end - first)), counts[d->size + r] = (int)(6 * first);
    }
    fewcl_status s = fcl_dist_gatherv_doubles(d, mh->packed + 6 * mh->first, (int)(6 * mh->count),
                                              mh->packed, counts, counts + d->size, 0);
    free(counts);
    if (s == FEWCL_OK) s = fcl_dist_bcast(d, mh->packed, (size_t)mh->M * 6 * sizeof *mh->packed, 0);
    for (int m = 0; s == FEWCL_OK && m < mh->M; m++) {
        const double *p = mh->packed + 6 * m;
        mh->results[m] = (fcl_step_result){.loss = p[0],
                                           .loss_ce = p[1],
                                           .loss_var = p[2],
                                           .loss_cov = p[3],
                                           .correct = (int)p[4],
                                           .queries = (int)p[5]};
    }
    return s;
}

/* Rank 0's new state (values and BatchNorm buffers) to every other rank. */
static fewcl_status state_bcast(trainer *t) {
    fcl_params *P = &t->model->params;
    size_t n = fcl_params_flat_count(P, FCL_FLAT_STATE);
    float *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "the model's state (%zu floats)", n);
    fewcl_status s = t->d.rank ? FEWCL_OK : fcl_params_download_flat(t->ctx, P, FCL_FLAT_STATE, v);
    if (s == FEWCL_OK) s = fcl_dist_bcast(&t->d, v, n * sizeof *v, 0);
    if (s == FEWCL_OK && t->d.rank) s = fcl_params_upload_flat(t->ctx, P, FCL_FLAT_STATE, v);
    free(v);
    return s;
}

/* Whether to stop: this process's request, or, over several ranks, any rank's (every rank
 * reaches this at the same step and gets the same answer). */
static int stop_requested(trainer *t) {
    int mine = t->o->stop && *t->o->stop;
    if (t->d.size <= 1) return mine;
    if (mine) fcl_fail(FEWCL_ERR_INTERRUPTED, "stop requested (SIGINT or SIGTERM)");
    return fcl_dist_agree(&t->d, mine ? FEWCL_ERR_INTERRUPTED : FEWCL_OK) != FEWCL_OK;
}

static void meta_clear(trainer *t) {
    fcl_tree_clear(&t->meta.tree);
    if (t->meta.workers)
        for (int w = 0; w < t->group->n; w++)
            if (t->meta.workers[w].ready) fcl_tree_clear(&t->meta.workers[w].tree);
}

/* A meta-batch step over the replicas (docs/design/scale-out.md, parts 1.3 and 2): replica w
 * computes the contiguous block fcl_shard_block(w) of the step's episodes (of this rank's
 * block under MPI); the coordinator pushes each
 * replica's dyadic cover in replica order (= episode order) into the master tree, so the sum
 * has the bits of one device pushing the M leaves. The first step runs the lead alone first,
 * so every replica takes its convolution choices (as sharded evaluation does). */
static fewcl_status meta_step_sharded(trainer *t) {
    meta_host *mh = &t->meta;
    int M = mh->M;
    for (int m = 0; m < M; m++)
        FCL_TRY(fcl_loader_next(t->train, mh->episodes[m], NULL));
    fewcl_status s;
    if (!mh->warm) {
        mh->phase = 1;
        s = fcl_replicas_run(t->group, meta_share, t, NULL);
        mh->phase = 2;
        if (s == FEWCL_OK) s = fcl_replicas_run(t->group, meta_share, t, NULL);
        mh->phase = 0;
        if (s == FEWCL_OK) mh->warm = 1;
    } else {
        s = fcl_replicas_run(t->group, meta_share, t, NULL);
    }
    for (int w = 0; s == FEWCL_OK && w < t->group->n; w++) {
        const fcl_tree_node *nodes;
        int k = fcl_tree_nodes(&mh->workers[w].tree, &nodes);
        for (int i = 0; s == FEWCL_OK && i < k; i++) {
            float *v = fcl_tree_buffer(&mh->tree);
            if (!v) {
                s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "a gradient (%zu floats)", mh->tree.n);
                break;
            }
            memcpy(v, nodes[i].v, mh->tree.n * sizeof *v);
            s = fcl_tree_push(&mh->tree, nodes[i].lo, nodes[i].len, v);
        }
        fcl_tree_clear(&mh->workers[w].tree);
    }
    if (s != FEWCL_OK) meta_clear(t);
    return s;
}

/* Step s of an epoch with a meta-batch of M episodes (docs/maths.md §7.1): episode m is global
 * episode epoch·E + s·M + m; each episode's gradient from zero, into the tree; their mean and
 * the BatchNorm records applied in one update. Nothing is updated when an episode fails. */
static fewcl_status meta_step(trainer *t, int epoch, long step, const fcl_adamw_config *adam) {
    int M = t->st.meta_batch;
    meta_host *mh = &t->meta;
    if (t->group) {
        fewcl_status s = meta_step_sharded(t);
        if (t->d.size > 1) { /* a failing rank's message reaches every rank, then the gather */
            if (s != FEWCL_OK) meta_clear(t);
            s = fcl_dist_agree(&t->d, s);
            if (s == FEWCL_OK) s = meta_gather(t);
        }
        if (s == FEWCL_OK && !t->d.rank) s = fcl_tree_finish(&mh->tree, M, mh->mean);
        if (s == FEWCL_OK && !t->d.rank)
            s = fcl_apply_step(t->ctx, t->model, mh->mean, mh->bn, M, adam);
        if (t->d.size > 1) {
            s = fcl_dist_agree(&t->d, s);
            if (s == FEWCL_OK) s = state_bcast(t);
        }
        /* every replica continues from the master's new state */
        if (s == FEWCL_OK) s = fcl_replicas_set_state(t->group, t->ctx, t->model);
        if (s != FEWCL_OK) return episode_failed(t, s, epoch, step + 1, (step + 1) * M);
        return FEWCL_OK;
    }
    for (int m = 0; m < M; m++) {
        float *g = fcl_tree_buffer(&mh->tree);
        fewcl_status s = g ? input_next(t->ctx, t->train, &t->in) : FEWCL_ERR_OUT_OF_MEMORY;
        if (s == FEWCL_OK)
            s = fcl_grad_step(t->ctx, t->model, &t->in.x, g, mh->bn + (size_t)m * mh->R,
                              &mh->results[m]);
        if (s == FEWCL_OK) {
            s = fcl_tree_push(&mh->tree, m, 1, g);
        } else if (g) {
            fcl_tree_clear(&mh->tree);
            free(g);
        }
        if (s != FEWCL_OK) return episode_failed(t, s, epoch, step + 1, step * M + m + 1);
    }
    fewcl_status s = fcl_tree_finish(&mh->tree, M, mh->mean);
    if (s == FEWCL_OK) s = fcl_apply_step(t->ctx, t->model, mh->mean, mh->bn, M, adam);
    if (s != FEWCL_OK) return episode_failed(t, s, epoch, step + 1, (step + 1) * M);
    return FEWCL_OK;
}

static void accumulate(run_state *st, const fcl_step_result *r);

/* The training steps of one epoch with a meta-batch, from where the state says it stands;
 * stops only between steps. */
static fewcl_status meta_epoch(trainer *t, int epoch, double *train_seconds, long *ran) {
    const fcl_train_options *o = t->o;
    double t0 = now();
    *ran = 0;
    int M = t->st.meta_batch;
    long steps = o->episodes / M, total = (long)t->st.schedule_epochs * steps;
    fcl_adamw_config adam = o->adam;
    for (long step = t->st.in_epoch / M; step < steps; step++) {
        adam.lr = fcl_lr_at(t->st.lr_schedule, o->adam.lr, (long)epoch * steps + step, total);
        FCL_TRY(meta_step(t, epoch, step, &adam));
        for (int m = 0; m < M; m++) /* in episode order, as one device would */
            accumulate(&t->st, &t->meta.results[m]);
        long done = (step + 1) * M;
        t->st.in_epoch = done;
        *ran += M;
        report_progress(t, epoch, done, t0);
        if (done < o->episodes && stop_requested(t)) {
            FCL_TRY(save_last(t));
            return fcl_fail(FEWCL_ERR_INTERRUPTED,
                            "stopped after step %ld (episode %ld) of epoch %d; saved %s — "
                            "continue with the same command and --resume",
                            step + 1, done, epoch + 1, t->last_path);
        }
    }
    *train_seconds = now() - t0;
    return FEWCL_OK;
}

/* The training episodes of one epoch, from where the state says it stands. */
static fewcl_status train_epoch(trainer *t, int epoch, double *train_seconds, long *ran) {
    const fcl_train_options *o = t->o;
    if (t->st.meta_batch > 1) return meta_epoch(t, epoch, train_seconds, ran);
    double t0 = now();
    *ran = 0;
    fcl_adamw_config adam = o->adam;
    long total = (long)t->st.schedule_epochs * o->episodes;
    for (long i = t->st.in_epoch; i < o->episodes; i++) {
        fcl_step_result r;
        adam.lr = fcl_lr_at(t->st.lr_schedule, o->adam.lr, (long)epoch * o->episodes + i, total);
        fewcl_status s = input_next(t->ctx, t->train, &t->in);
        if (s == FEWCL_OK) s = fcl_train_step(t->ctx, t->model, &t->in.x, &adam, &r);
        if (s != FEWCL_OK) return episode_failed(t, s, epoch, -1, i + 1);
        accumulate(&t->st, &r);
        t->st.in_epoch = i + 1;
        (*ran)++;
        long done = i + 1;
        report_progress(t, epoch, done, t0);
        if (done < o->episodes && stop_requested(t)) {
            FCL_TRY(save_last(t));
            return fcl_fail(FEWCL_ERR_INTERRUPTED,
                            "stopped after episode %ld of epoch %d; saved %s — continue with "
                            "the same command and --resume",
                            done, epoch + 1, t->last_path);
        }
    }
    *train_seconds = now() - t0;
    return FEWCL_OK;
}

/* Validation, the epoch's metrics, best and last checkpoints and the logs. */
static fewcl_status end_epoch(trainer *t, int epoch, double train_seconds, long ran,
                              double epoch_start) {
    const fcl_train_options *o = t->o;
    fcl_eval_result v = {.accuracy = NAN, .ci95 = NAN};
    fewcl_status vs = FEWCL_OK;
    if (t->val && t->d.rank) {
        /* rank 0 validates (below) and tells the others */
    } else if (t->val && t->group) { /* the same episodes as t->val's: epoch·V + j */
        fcl_eval_options vo = {.data = o->val,
                               .episodes = o->val_episodes,
                               .seed = o->seed ^ VAL_SEED_SALT,
                               .io = o->data,
                               .progress = o->progress,
                               .user = o->user,
                               .first = (long)epoch * o->val_episodes};
        vs = fcl_replicas_set_state(t->group, t->ctx, t->model);
        if (vs == FEWCL_OK)
            vs = fcl_evaluate_sharded_as(t->group, &vo, "val", epoch + 1, o->epochs, &v);
    } else if (t->val) {
        vs = evaluate_with(t->ctx, t->model, t->val, o->val_episodes, "val", epoch + 1, o->epochs,
                           o->progress, o->user, NULL, NULL, &v);
    }
    if (t->d.size > 1) vs = fcl_dist_agree(&t->d, vs); /* rank 0's failure ends every rank */
    FCL_TRY(vs);
    if (t->val && t->d.size > 1) {
        double both[2] = {v.accuracy, v.ci95};
        FCL_TRY(fcl_dist_bcast(&t->d, both, sizeof both, 0));
        v.accuracy = both[0], v.ci95 = both[1];
    }
    double n = o->episodes;
    fcl_epoch_metrics *m = &t->st.history[epoch];
    *m = (fcl_epoch_metrics){.epoch = epoch + 1,
                             .loss = t->st.sum_loss / n,
                             .loss_ce = t->st.sum_ce / n,
                             .loss_var = t->st.sum_var / n,
                             .loss_cov = t->st.sum_cov / n,
                             .train_acc = t->st.sum_acc / n,
                             .val_acc = v.accuracy,
                             .val_ci95 = v.ci95,
                             .episodes_per_s = train_seconds > 0 ? ran / train_seconds : 0,
                             .images_per_s = loader_images_per_s(t->train),
                             .seconds = now() - epoch_start,
                             .device_peak = (double)fcl_arena_stats_get(t->ctx->arena)->peak};
    t->st.epoch = epoch + 1;
    t->st.in_epoch = 0;
    t->st.sum_loss = t->st.sum_ce = t->st.sum_var = t->st.sum_cov = t->st.sum_acc = 0;
    /* Without validation every epoch is "best": best.safetensors is the latest weights. */
    if (!t->val || isnan(t->st.best_val) || v.accuracy > t->st.best_val) {
        t->st.best_val = v.accuracy;
        t->st.best_epoch = epoch + 1;
        char info[128];
        snprintf(info, sizeof info, "{\"epoch\":%d,\"val_acc\":%.6g}", epoch + 1,
                 isnan(v.accuracy) ? -1.0 : v.accuracy);
        if (!t->d.rank) FCL_TRY(fcl_checkpoint_save(t->ctx, t->model, 0, info, t->best_path));
    }
    FCL_TRY(save_last(t));
    if (!t->d.rank) FCL_TRY(write_logs(t));
    if (o->epoch_done) o->epoch_done(o->user, m);
    return FEWCL_OK;
}

/* Each replica's plan and what its context held (ctx's own: the run's). */
static fewcl_status replica_memory(trainer *t, fcl_train_result *r) {
    fcl_replica_group *g = t->group;
    FCL_TRY(fcl_replicas_memory(g));
    r->replicas = g->n;
    for (int w = 0; w < g->n && w < FCL_REPLICAS_REPORTED; w++) {
        const fcl_replica *p = &g->r[w];
        r->replica_footprint[w] = p->on_caller ? r->planned_footprint : p->planned_footprint;
        r->replica_reserved[w] =
            p->on_caller ? fcl_arena_stats_get(t->ctx->arena)->peak_reserved : p->reserved;
    }
    return FEWCL_OK;
}

static fewcl_status check_options(const fcl_train_options *o) {
    if (o->epochs < 1 || o->episodes < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "--epochs %d --episodes %d: both must be at least 1",
                        o->epochs, o->episodes);
    if (o->val && o->val_episodes < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "--val-episodes %d: at least 1 with a validation set",
                        o->val_episodes);
    if (!o->run_dir || !*o->run_dir) return fcl_fail(FEWCL_ERR_ARGUMENT, "no run folder given");
    if (o->resume && (o->init_weights || o->backbone_weights))
        return fcl_fail(FEWCL_ERR_ARGUMENT, "--resume continues from the run's own checkpoint; "
                                            "drop --weights/--backbone-weights");
    if (o->meta_batch < 0)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "--meta-batch %d: at least 1 episode per step",
                        o->meta_batch);
    if (o->episodes % meta_batch_of(o))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "--episodes %d is not a multiple of --meta-batch %d: an epoch is whole "
                        "steps of M episodes; give --episodes %d or %d",
                        o->episodes, o->meta_batch, o->episodes / o->meta_batch * o->meta_batch,
                        (o->episodes / o->meta_batch + 1) * o->meta_batch);
    return fcl_config_validate(&o->cfg);
}

fewcl_status fcl_train(fewcl_context *ctx, const fcl_train_options *o, fcl_train_result *r) {
    *r = (fcl_train_result){.best_val_acc = NAN};
    FCL_TRY(check_options(o));
    trainer t = {.ctx = ctx, .o = o};
    join(t.last_path, sizeof t.last_path, o->run_dir, "last.safetensors");
    join(t.best_path, sizeof t.best_path, o->run_dir, "best.safetensors");
    if (!o->resume && file_exists(t.last_path))
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s already holds a run (%s); continue it with --resume or choose "
                        "another --run-dir (nothing was changed)",
                        o->run_dir, t.last_path);
    if (o->resume && !file_exists(t.last_path))
        return fcl_fail(FEWCL_ERR_ARGUMENT, "--resume: %s does not exist; nothing to resume in %s",
                        t.last_path, o->run_dir);
    fcl_layout *layout;
    FCL_TRY(check_plan(ctx, &o->cfg, meta_batch_of(o), r, &layout));
    /* The run reserves exactly the planned footprint and places tensors where the plan did. */
    fewcl_status followed = fcl_arena_follow(ctx->arena, layout);
    fcl_layout_free(layout);
    FCL_TRY(followed);
    char path[4200];
    join(path, sizeof path, o->run_dir, "config.json");
    fcl_dist_world(&t.d);
    if (!o->distributed) t.d.size = 1, t.d.rank = 0;
    fewcl_status s = FEWCL_OK;
    if (t.d.size > 1 && meta_batch_of(o) < 2)
        s = fcl_fail(FEWCL_ERR_ARGUMENT,
                     "training across %d MPI ranks shares the episodes of a meta-batch step: "
                     "give --meta-batch M with M >= 2 (M >= %d keeps every rank busy)",
                     t.d.size, t.d.size);
    if (s == FEWCL_OK && !t.d.rank) s = make_dirs(o->run_dir);
    if (s == FEWCL_OK && !t.d.rank) s = write_run_config(o, path);
    if (s == FEWCL_OK) s = open_model(&t);
    if (s == FEWCL_OK) s = input_alloc(ctx, &o->cfg, &t.in);
    if (s == FEWCL_OK && meta_batch_of(o) > 1) s = meta_alloc(&t);
    long first = (long)t.st.epoch * o->episodes + t.st.in_epoch;
    if (s == FEWCL_OK)
        s = make_loader(o->train, &o->cfg, o->augment, o->seed, first, &o->data, &t.train);
    if (s == FEWCL_OK && o->val)
        s = make_loader(o->val, &o->cfg, 0, o->seed ^ VAL_SEED_SALT,
                        (long)t.st.epoch * o->val_episodes, &o->data, &t.val);
    /* --devices: the replicas share validation, and the episodes of a meta-batch step */
    char here[32]; /* several ranks without --devices: a group of ctx's device alone */
    const fewcl_device_info *dev = fewcl_context_device(ctx);
    snprintf(here, sizeof here, "%d:%d", dev->platform_index, dev->device_index);
    const char *devices = o->devices && *o->devices ? o->devices : t.d.size > 1 ? here : NULL;
    if (s == FEWCL_OK && (o->val || meta_batch_of(o) > 1) && devices)
        s = fcl_replicas_open(devices, ctx, t.model, fcl_replica_schedule(meta_batch_of(o)),
                              &t.group);
    if (s == FEWCL_OK && t.group && meta_batch_of(o) > 1) s = meta_replicas_alloc(&t);
    for (int epoch = t.st.epoch; s == FEWCL_OK && epoch < o->epochs; epoch++) {
        double start = now(), seconds = 0;
        long ran = 0;
        fcl_arena_reset_peak(ctx->arena);
        s = train_epoch(&t, epoch, &seconds, &ran);
        if (s == FEWCL_OK) s = end_epoch(&t, epoch, seconds, ran, start);
        if (s == FEWCL_OK && epoch + 1 < o->epochs && stop_requested(&t))
            s = fcl_fail(FEWCL_ERR_INTERRUPTED,
                         "stopped after epoch %d; saved %s — continue with the same command and "
                         "--resume",
                         epoch + 1, t.last_path);
    }
    /* Rank 0 has written the run folder when any rank returns (a test after training reads
     * best.safetensors on every rank). */
    if (s == FEWCL_OK && t.d.size > 1) s = fcl_dist_agree(&t.d, s);
    if (s == FEWCL_OK) {
        r->epochs_done = t.st.epoch;
        r->best_val_acc = t.st.best_val;
        r->best_epoch = t.st.best_epoch;
        if (t.st.epoch) r->last = t.st.history[t.st.epoch - 1];
        r->reserved_peak = fcl_arena_stats_get(ctx->arena)->peak_reserved;
    }
    if (s == FEWCL_OK && t.group) s = replica_memory(&t, r);
    if (t.group && t.meta.workers) { /* each worker's tensor belongs to its replica's thread */
        t.meta.release = 1;
        fcl_replicas_run(t.group, meta_share, &t, NULL);
    }
    fcl_replicas_close(t.group);
    if (t.val) fcl_loader_destroy(t.val);
    if (t.train) fcl_loader_destroy(t.train);
    meta_free(&t.meta);
    input_free(ctx, &t.in);
    fcl_model_destroy(ctx, t.model);
    fcl_arena_unfollow(ctx->arena);
    free(t.st.history);
    return s;
}
