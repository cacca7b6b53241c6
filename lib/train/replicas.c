/* A group of model replicas on several contexts, one thread each (see replicas.h). */
#include "replicas.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ops/conv_algo.h"
#include "../ops/gemm_host.h"
#include "../plan/episode_plan.h"

void fcl_shard_block(long first, long n, int replicas, int w, long *start, long *count) {
    long a = (long)((long long)w * n / replicas), b = (long)((long long)(w + 1) * n / replicas);
    *start = first + a;
    *count = b - a;
}

/* ---- the model's state as one host vector (every value and buffer: FCL_FLAT_ALL) ---- */

static size_t state_floats(const fcl_model *m) {
    return fcl_params_flat_count(&m->params, FCL_FLAT_ALL);
}

static fewcl_status download_state(fewcl_context *ctx, const fcl_model *m, float *out) {
    return fcl_params_download_flat(ctx, &m->params, FCL_FLAT_ALL, out);
}

static fewcl_status upload_state(fewcl_context *ctx, fcl_model *m, const float *in, size_t n) {
    if (state_floats(m) != n)
        return fcl_fail(FEWCL_ERR_INTERNAL, "replica: the model copy has %zu floats, not %zu",
                        state_floats(m), n);
    FCL_TRY(fcl_params_upload_flat(ctx, &m->params, FCL_FLAT_ALL, in));
    return fewcl_finish(ctx);
}

/* ---- threads and commands ---- */

static void run_one(fcl_replica *r, fcl_replica_fn fn, void *arg) {
    r->status = fn(r, arg);
    r->error[0] = 0;
    if (r->status == FEWCL_OK) return;
    snprintf(r->error, sizeof r->error, "%s", fewcl_last_error());
    if (r->status != FEWCL_ERR_INTERRUPTED) atomic_store(&r->group->failed, 1);
}

static void *replica_main(void *arg) {
    fcl_replica *r = arg;
    fcl_replica_group *g = r->group;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        while (!g->quit && r->seen == g->generation)
            pthread_cond_wait(&g->go, &g->lock);
        if (g->quit) break;
        r->seen = g->generation;
        fcl_replica_fn fn = g->fn;
        void *fn_arg = g->arg;
        pthread_mutex_unlock(&g->lock);
        run_one(r, fn, fn_arg);
        pthread_mutex_lock(&g->lock);
        if (--g->pending == 0) pthread_cond_broadcast(&g->done);
    }
    pthread_mutex_unlock(&g->lock);
    /* What this thread opened, it closes. */
    if (r->model) fcl_model_destroy(r->ctx, r->model);
    fewcl_context_destroy(r->ctx);
    r->model = NULL, r->ctx = NULL;
    return NULL;
}

/* The failure to report: the lowest replica that failed by itself, else the lowest stopped. */
static fewcl_status collect(fcl_replica_group *g) {
    const fcl_replica *worst = NULL;
    for (int w = 0; w < g->n; w++) {
        const fcl_replica *r = &g->r[w];
        if (r->status == FEWCL_OK) continue;
        if (!worst ||
            (worst->status == FEWCL_ERR_INTERRUPTED && r->status != FEWCL_ERR_INTERRUPTED))
            worst = r;
    }
    if (!worst) return FEWCL_OK;
    return fcl_fail(worst->status, "device %d:%d (%s, replica %d of %d): %s",
                    worst->info.platform_index, worst->info.device_index, worst->info.name,
                    worst->w + 1, g->n, worst->error);
}

fewcl_status fcl_replicas_run(fcl_replica_group *g, fcl_replica_fn fn, void *arg,
                              fcl_replica_idle_fn idle) {
    atomic_store(&g->failed, 0);
    fcl_replica *inline_r = NULL;
    pthread_mutex_lock(&g->lock);
    g->fn = fn;
    g->arg = arg;
    g->pending = 0;
    for (int w = 0; w < g->n; w++) {
        g->r[w].status = FEWCL_OK;
        if (g->r[w].on_caller)
            inline_r = &g->r[w];
        else
            g->pending++;
    }
    g->generation++;
    pthread_cond_broadcast(&g->go);
    pthread_mutex_unlock(&g->lock);
    if (inline_r) run_one(inline_r, fn, arg);
    pthread_mutex_lock(&g->lock);
    while (g->pending > 0) {
        if (!idle) {
            pthread_cond_wait(&g->done, &g->lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&g->done, &g->lock, &until);
        pthread_mutex_unlock(&g->lock);
        idle(arg);
        pthread_mutex_lock(&g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return collect(g);
}

/* The replica's schedule planned on its context (with the caller's convolution choices, as
 * it will run: no find step left to time) and followed from its first allocation on. */
static fewcl_status follow_plan(fcl_replica *r) {
    fcl_replica_group *g = r->group;
    fcl_arena_stats st = {0};
    fcl_layout *layout;
    fewcl_status s = fcl_episode_layout(r->ctx, g->cfg, g->schedule, fcl_arena_limit(r->ctx->arena),
                                        &st, &layout);
    r->planned_peak = st.peak, r->planned_footprint = st.peak_reserved;
    r->limit = fcl_arena_limit(r->ctx->arena);
    if (s != FEWCL_OK)
        return fcl_wrap(s,
                        "the replica's %s does not fit its device (plan made before "
                        "allocating anything; `fewcl plan --devices` shows each replica's): ",
                        g->schedule ? "share of the training steps" : "evaluation episode");
    s = fcl_arena_follow(r->ctx->arena, layout);
    fcl_layout_free(layout);
    return s;
}

/* Opening, on each replica's own thread: its context, its plan, and the model copy with the
 * source's state. */
static fewcl_status open_replica(fcl_replica *r, void *arg) {
    (void)arg;
    if (r->on_caller) return FEWCL_OK;
    fcl_replica_group *g = r->group;
    char index[32];
    snprintf(index, sizeof index, "%d:%d", r->info.platform_index, r->info.device_index);
    FCL_TRY(fewcl_context_create(index, &r->ctx));
    if (g->conv_choices) FCL_TRY(fcl_conv_algo_import(r->ctx, g->conv_choices));
    FCL_TRY(follow_plan(r));
    /* Initialised from a seed no run uses, then overwritten: a copy that missed the upload
     * shows at once instead of matching a run seeded alike. */
    FCL_TRY(fcl_model_create(r->ctx, g->cfg, 0x5eed0000u + (uint64_t)r->w, &r->model));
    return upload_state(r->ctx, r->model, g->state, g->state_floats);
}

static fewcl_status read_memory(fcl_replica *r, void *arg) {
    (void)arg;
    if (!r->on_caller) r->reserved = fcl_arena_stats_get(r->ctx->arena)->peak_reserved;
    return FEWCL_OK;
}

fewcl_status fcl_replicas_memory(fcl_replica_group *g) {
    return fcl_replicas_run(g, read_memory, NULL, NULL);
}

static fewcl_status set_state(fcl_replica *r, void *arg) {
    (void)arg;
    if (r->on_caller) return FEWCL_OK;
    return upload_state(r->ctx, r->model, r->group->state, r->group->state_floats);
}

fewcl_status fcl_replicas_set_state(fcl_replica_group *g, fewcl_context *caller,
                                    const fcl_model *model) {
    size_t n = state_floats(model);
    float *state = malloc((n ? n : 1) * sizeof *state);
    if (!state) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "the model's state (%zu floats)", n);
    fewcl_status s = download_state(caller, model, state);
    g->state = state, g->state_floats = n;
    if (s == FEWCL_OK) s = fcl_replicas_run(g, set_state, NULL, NULL);
    g->state = NULL;
    free(state);
    return s;
}

void fcl_replicas_close(fcl_replica_group *g) {
    if (!g) return;
    pthread_mutex_lock(&g->lock);
    g->quit = 1;
    pthread_cond_broadcast(&g->go);
    pthread_mutex_unlock(&g->lock);
    for (int w = 0; w < g->n; w++)
        if (g->r[w].started) pthread_join(g->r[w].thread, NULL);
    if (g->pinned) fcl_host_blas_pin(0);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->go);
    pthread_cond_destroy(&g->done);
    free(g->r);
    free(g);
}

/* Replicas that name one device share its memory: the sum of what they reserve must fit the
 * device's budget. The caller's replica reserves what its context holds when it follows a
 * plan (a trainer's), else the evaluation plan it will follow (fcl_evaluate), the copies'. */
static fewcl_status check_shared_devices(const fcl_replica_group *g, fewcl_context *caller) {
    for (int w = 0; w < g->n; w++) {
        const fcl_replica *r = &g->r[w];
        if (r->on_caller) continue;
        size_t sum = 0;
        int count = 0, first = 1;
        for (int v = 0; v < g->n; v++) {
            const fcl_replica *q = &g->r[v];
            if (q->info.platform_index != r->info.platform_index ||
                q->info.device_index != r->info.device_index)
                continue;
            if (v < w && !q->on_caller) first = 0; /* counted at that replica */
            count++;
            sum += !q->on_caller ? q->planned_footprint
                   : fcl_arena_following(caller->arena)
                       ? fcl_arena_stats_get(caller->arena)->reserved
                       : r->planned_footprint;
        }
        if (!first || sum <= r->limit) continue;
        char b[2][32];
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY,
                        "device %d:%d (%s): its %d replicas' planned buffers take %s, over its "
                        "%s budget; list it fewer times in --devices (`fewcl plan --devices` "
                        "shows each replica's)",
                        r->info.platform_index, r->info.device_index, r->info.name, count,
                        fcl_format_bytes((double)sum, b[0], 32),
                        fcl_format_bytes((double)r->limit, b[1], 32));
    }
    return FEWCL_OK;
}

fewcl_status fcl_replicas_open(const char *devices, fewcl_context *caller, fcl_model *model,
                               int schedule, fcl_replica_group **out) {
    *out = NULL;
    fewcl_device_info *list;
    int n;
    FCL_TRY(fcl_device_list_parse(devices, &list, &n));
    fcl_replica_group *g = calloc(1, sizeof *g);
    fcl_replica *r = calloc((size_t)n, sizeof *r);
    if (!g || !r) {
        free(g), free(r), fewcl_free_device_list(list);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "a group of %d replicas", n);
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->go, NULL);
    pthread_cond_init(&g->done, NULL);
    g->n = n;
    g->r = r;
    g->cfg = &model->cfg;
    g->schedule = schedule;
    int caller_taken = 0;
    for (int w = 0; w < n; w++) {
        r[w] = (fcl_replica){.w = w, .info = list[w], .group = g};
        if (!caller_taken && list[w].platform_index == caller->info.platform_index &&
            list[w].device_index == caller->info.device_index) {
            r[w].on_caller = caller_taken = 1;
            r[w].ctx = caller;
            r[w].model = model;
        }
    }
    fewcl_free_device_list(list);
    if (n > 1) {
        fcl_host_blas_pin(1);
        g->pinned = 1;
    }
    /* The source's state, downloaded once for every copy, and the caller's convolution
     * choices. The caller plans the replicas' schedule first: with the find step on, that
     * times on the caller what no plan there met yet (a trainer's did: nothing to time; a
     * test's evaluation shapes: timed here instead of by its first episode), so every replica
     * plans with the choices it will run and times nothing of its own. That plan is for the
     * timing only: a caller it does not fit is not refused here. */
    fewcl_status s = FEWCL_OK;
    float *state = NULL;
    if (n > caller_taken) {
        fcl_arena_stats st;
        fcl_layout *l = NULL;
        if (fcl_episode_layout(caller, &model->cfg, schedule, fcl_arena_limit(caller->arena), &st,
                               &l) == FEWCL_OK)
            fcl_layout_free(l);
        s = fcl_conv_algo_export(caller, &g->conv_choices);
    }
    if (s == FEWCL_OK && n > caller_taken) {
        g->state_floats = state_floats(model);
        state = malloc((g->state_floats ? g->state_floats : 1) * sizeof *state);
        s = state ? download_state(caller, model, state)
                  : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "the model's state (%zu floats)",
                             g->state_floats);
        g->state = state;
    }
    for (int w = 0; s == FEWCL_OK && w < n; w++) {
        if (r[w].on_caller) continue;
        int e = pthread_create(&r[w].thread, NULL, replica_main, &r[w]);
        if (e)
            s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "starting the thread of replica %d: %s", w + 1,
                         strerror(e));
        else
            r[w].started = 1;
    }
    if (s == FEWCL_OK) s = fcl_replicas_run(g, open_replica, NULL, NULL);
    if (s == FEWCL_OK) s = check_shared_devices(g, caller);
    free(state);
    g->state = NULL;
    free(g->conv_choices);
    g->conv_choices = NULL;
    if (s != FEWCL_OK) {
        fcl_replicas_close(g);
        return s;
    }
    *out = g;
    return FEWCL_OK;
}
