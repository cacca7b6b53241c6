/* A group of model replicas, one per entry of a device list (`--devices`), in one process
 * (docs/design/scale-out.md, part 2): each replica has its own context, its own copy of the model
 * and a persistent thread; a command runs on every replica at once, then the caller continues.
 *
 * - The caller's context serves the first entry naming its device, on the caller's thread,
 *   with the caller's model; every other entry opens its own context and model copy on its
 *   own thread, and only that thread ever uses them (fewcl.h: a context belongs to one thread).
 * - The copies start with the source model's values and buffers, bit for bit, and the
 *   caller's convolution choices; the first replica with episodes shares its choices again
 *   before the others start (fcl_conv_algo_export/import), so that every replica computes the
 *   same bits on the same episode: sharded results equal the one-device run's.
 * - Each replica of its own plans its schedule (`schedule`: fcl_replica_schedule) on its
 *   context before it allocates anything and follows that plan's layout (episode_plan.h):
 *   it reserves exactly the planned footprint, which `fewcl plan --devices` shows per replica;
 *   a replica whose plan does not fit its device fails to open, naming it, and so do replicas
 *   of one device whose footprints together do not fit it.
 * - With more than one replica, host BLAS runs one thread per call (fcl_host_blas_pin).
 * - A failure is reported as "device P:D (name, replica w): <message>"; the failing replica
 *   with the lowest index wins (replicas own contiguous, ordered episode blocks, so that is the
 *   lowest failing episode), and a replica stopped only because another failed is not one.
 *
 * Commands are functions run on each replica (fcl_replica_fn): evaluation shares today
 * (fcl_evaluate_sharded); a training step (TRAIN_STEP: gradients of the replica's episodes)
 * and a state broadcast slot in the same way. */
#ifndef FEWCL_TRAIN_REPLICAS_H
#define FEWCL_TRAIN_REPLICAS_H

#include <pthread.h>
#include <stdatomic.h>

#include "trainer.h"

typedef struct fcl_replica_group fcl_replica_group;

typedef struct fcl_replica {
    int w;                  /* index in the group: the list's order */
    fewcl_device_info info; /* its device ("P:D" = info.platform_index:info.device_index) */
    fewcl_context *ctx;     /* the caller's, or its own (opened and closed on its thread) */
    fcl_model *model;       /* the caller's, or its own copy */
    int on_caller;          /* runs on the caller's thread with the caller's context */
    fcl_replica_group *group;
    /* the command's outcome */
    fewcl_status status;
    char error[2048];
    /* its memory (not on_caller): its plan, and the device buffers its context held at most
     * (fcl_replicas_memory) */
    size_t planned_peak, planned_footprint, reserved;
    size_t limit; /* its context's budget (the device's memory or FEWCL_MEM_LIMIT) */
    /* the thread (not on_caller) */
    pthread_t thread;
    int started;
    long seen; /* the last command generation it ran */
} fcl_replica;

/* A command: runs on r's thread with r's context; its failure message is taken from
 * fewcl_last_error() of that thread. */
typedef fewcl_status (*fcl_replica_fn)(fcl_replica *r, void *arg);
/* Called on the caller's thread every ~50 ms while it waits for the other replicas (progress,
 * stop requests); may be NULL. */
typedef void (*fcl_replica_idle_fn)(void *arg);

struct fcl_replica_group {
    int n;
    fcl_replica *r;
    pthread_mutex_t lock;
    pthread_cond_t go, done;
    fcl_replica_fn fn;
    void *arg;
    long generation; /* commands issued */
    int pending;     /* threads still running the current command */
    int quit;
    int pinned;        /* holds fcl_host_blas_pin */
    atomic_int failed; /* a replica failed in the current command: the others may stop early */
    /* the source model's state and conv choices while opening */
    const float *state;
    size_t state_floats;
    char *conv_choices;
    const fcl_model_config *cfg;
    int schedule; /* what each replica of its own plans (episode_plan.h) */
};

/* Opens a replica per entry of `devices` (fcl_device_list_parse) for `model` (on `caller`):
 * every other replica plans `schedule` (fcl_replica_schedule: 0 to evaluate, -M for its share
 * of meta-batch steps of M episodes) on its own context and follows it, then gets a copy of
 * the model's values and buffers. */
fewcl_status fcl_replicas_open(const char *devices, fewcl_context *caller, fcl_model *model,
                               int schedule, fcl_replica_group **out);
/* Sets r->reserved of every replica of its own: the device buffers its context held at most
 * so far. */
fewcl_status fcl_replicas_memory(fcl_replica_group *g);
/* Runs fn on every replica (the caller's inline, the others on their threads), waits for all,
 * and returns the first failure (see the top of this file) or FEWCL_OK. */
fewcl_status fcl_replicas_run(fcl_replica_group *g, fcl_replica_fn fn, void *arg,
                              fcl_replica_idle_fn idle);
/* Copies the values and buffers of `model` (on `caller`, the group's source) to every other
 * replica: after training changed them (validation). */
fewcl_status fcl_replicas_set_state(fcl_replica_group *g, fewcl_context *caller,
                                    const fcl_model *model);
/* Ends the threads (each destroys its model and context) and frees the group. NULL: nothing. */
void fcl_replicas_close(fcl_replica_group *g);

/* Replica w's contiguous share [*start, *start + *count) of the episodes first .. first+n-1
 * split over `replicas` (balanced: sizes differ by at most one, larger ones last). A pure
 * function of (first, n, replicas, w), so a rank's block splits the same way everywhere. */
void fcl_shard_block(long first, long n, int replicas, int w, long *start, long *count);

/* Evaluation (fcl_evaluate's options, o->first and o->episodes the part to evaluate) split
 * into one block per replica; the accuracies of all blocks, in episode order, give mean and
 * CI (fcl_mean_ci95): equal to one replica evaluating the whole part. o->accuracies, when set,
 * receives them. Progress and the stop request are seen on the caller's thread only. */
fewcl_status fcl_evaluate_sharded(fcl_replica_group *g, const fcl_eval_options *o,
                                  fcl_eval_result *r);
/* The same, reported to o->progress as `phase` ("val") of epoch `epoch` of `epochs`. */
fewcl_status fcl_evaluate_sharded_as(fcl_replica_group *g, const fcl_eval_options *o,
                                     const char *phase, int epoch, int epochs, fcl_eval_result *r);

#endif
