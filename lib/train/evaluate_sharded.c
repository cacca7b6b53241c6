/* Evaluation split over a replica group (docs/design/scale-out.md, part 4): replica w evaluates
 * the contiguous block fcl_shard_block(w) into its slice of one accuracy array; mean and CI
 * come from the whole array in episode order, so they equal one device's to the last digit.
 *
 * The convolution's find step would time each replica's shapes on its own and could choose
 * differently (other bits): the first replica with episodes (the lead) evaluates its first
 * episode alone, which chooses every shape of the episode, and the others import its choices
 * before they start. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ops/conv_algo.h"
#include "replicas.h"

typedef struct shard shard;

typedef struct share {
    shard *job;
    int w;
    volatile sig_atomic_t stop; /* read by fcl_evaluate on this replica's thread only */
    long done;                  /* progress, under job->lock */
    double accuracy;
    double images_per_s;
} share;

struct shard {
    fcl_replica_group *g;
    const fcl_eval_options *o;
    const char *phase;
    int epoch, epochs;
    double *acc; /* acc[i]: episode o->first + i */
    int lead;    /* the replica whose convolution choices every replica takes */
    int warmup;  /* the phase: the lead's first episode alone */
    char *choices;
    share *shares;
    pthread_mutex_t lock;
    atomic_int stop; /* the caller asked to stop (seen on its thread) */
    long reported;
    double t0;
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* On the caller's thread: the progress of all shares, and the caller's stop request. */
static void report(shard *j) {
    const fcl_eval_options *o = j->o;
    long done = 0;
    double sum = 0;
    pthread_mutex_lock(&j->lock);
    for (int w = 0; w < j->g->n; w++) {
        done += j->shares[w].done;
        sum += j->shares[w].accuracy * (double)j->shares[w].done;
    }
    pthread_mutex_unlock(&j->lock);
    if (o->progress && done != j->reported)
        o->progress(o->user, &(fcl_progress){.phase = j->phase,
                                             .epoch = j->epoch,
                                             .epochs = j->epochs,
                                             .done = done,
                                             .total = o->episodes,
                                             .accuracy = done ? sum / (double)done : 0,
                                             .seconds = now() - j->t0});
    j->reported = done;
    if (o->stop && *o->stop) atomic_store(&j->stop, 1);
}

static void idle(void *arg) { report(arg); }

/* After each episode of a share, on its replica's thread. */
static void share_progress(void *user, const fcl_progress *p) {
    share *me = user;
    shard *j = me->job;
    pthread_mutex_lock(&j->lock);
    me->done = (j->warmup || me->w != j->lead ? 0 : 1) + p->done;
    me->accuracy = p->accuracy;
    pthread_mutex_unlock(&j->lock);
    if (j->g->r[me->w].on_caller) report(j);
    me->stop = atomic_load(&j->stop) || atomic_load(&j->g->failed);
}

static fewcl_status evaluate_share(fcl_replica *r, void *arg) {
    shard *j = arg;
    share *me = &j->shares[r->w];
    long start, count;
    fcl_shard_block(j->o->first, j->o->episodes, j->g->n, r->w, &start, &count);
    if (j->warmup) {
        if (r->w != j->lead) return FEWCL_OK;
        count = 1;
    } else if (r->w == j->lead) {
        start++, count--; /* its first episode ran in the warm-up */
    } else if (j->choices) {
        FCL_TRY(fcl_conv_algo_import(r->ctx, j->choices));
    }
    if (count > 0) {
        fcl_eval_options so = *j->o;
        so.first = start;
        so.episodes = (int)count;
        so.accuracies = j->acc + (start - j->o->first);
        so.progress = share_progress;
        so.user = me;
        so.stop = &me->stop;
        me->stop = atomic_load(&j->stop);
        fcl_eval_result er;
        FCL_TRY(fcl_evaluate(r->ctx, r->model, &so, &er));
        me->images_per_s = er.images_per_s;
    }
    if (j->warmup && j->g->n > 1) FCL_TRY(fcl_conv_algo_export(r->ctx, &j->choices));
    return FEWCL_OK;
}

fewcl_status fcl_evaluate_sharded(fcl_replica_group *g, const fcl_eval_options *o,
                                  fcl_eval_result *r) {
    return fcl_evaluate_sharded_as(g, o, "test", 0, 0, r);
}

fewcl_status fcl_evaluate_sharded_as(fcl_replica_group *g, const fcl_eval_options *o,
                                     const char *phase, int epoch, int epochs, fcl_eval_result *r) {
    *r = (fcl_eval_result){.accuracy = NAN, .ci95 = NAN};
    if (o->episodes < 1)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "--episodes %d: evaluate at least one episode",
                        o->episodes);
    if (o->first < 0)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "evaluation share starts at episode %ld (>= 0)",
                        o->first);
    shard j = {.g = g, .o = o, .phase = phase, .epoch = epoch, .epochs = epochs, .t0 = now()};
    j.acc = o->accuracies ? o->accuracies : malloc((size_t)o->episodes * sizeof *j.acc);
    j.shares = calloc((size_t)g->n, sizeof *j.shares);
    if (!j.acc || !j.shares) {
        if (j.acc != o->accuracies) free(j.acc);
        free(j.shares);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%d accuracies", o->episodes);
    }
    pthread_mutex_init(&j.lock, NULL);
    for (int w = 0; w < g->n; w++)
        j.shares[w] = (share){.job = &j, .w = w};
    long start, count;
    for (j.lead = 0; j.lead < g->n; j.lead++) { /* the first replica with episodes */
        fcl_shard_block(o->first, o->episodes, g->n, j.lead, &start, &count);
        if (count > 0) break;
    }
    j.warmup = 1;
    fewcl_status s = fcl_replicas_run(g, evaluate_share, &j, idle);
    j.warmup = 0;
    if (s == FEWCL_OK) s = fcl_replicas_run(g, evaluate_share, &j, idle);
    if (s == FEWCL_OK) {
        fcl_mean_ci95(j.acc, o->episodes, &r->accuracy, &r->ci95);
        r->episodes = o->episodes;
        r->seconds = now() - j.t0;
        for (int w = 0; w < g->n; w++)
            r->images_per_s += j.shares[w].images_per_s / g->n;
    } else if (s == FEWCL_ERR_INTERRUPTED && atomic_load(&j.stop)) {
        report(&j);
        s = fcl_fail(s, "%s stopped after %ld of %d episodes", phase, j.reported, o->episodes);
    }
    pthread_mutex_destroy(&j.lock);
    free(j.choices);
    free(j.shares);
    if (j.acc != o->accuracies) free(j.acc);
    return s;
}
