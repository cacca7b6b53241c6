/* `fewcl plan --devices L` and `mpirun fewcl plan`: what each replica of a training (or test)
 * over devices holds, and what each device holds when entries (or ranks of one host) share it.
 * Replica 1, the list's first entry, is the trainer's own context (the model, the optimiser,
 * the whole schedule: `fewcl train --devices` opens its model there); every other replica
 * holds a model copy and its share (fewcl_plan_params.replica). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The replicas one process plans (a longer --devices list is refused). */
#define PLAN_ROWS 64

typedef struct plan_row {
    int helper; /* 0: the trainer's context; 1: a replica of its own */
    char device[16], name[112];
    uint64_t peak, footprint, budget;
    int fits; /* its plan alone fits its device */
} plan_row;

/* One rank's plans: fixed size, gathered as bytes (fewcl_dist_allgather). */
typedef struct rank_plan {
    int rank, n_rows;
    char host[64];
    plan_row rows[PLAN_ROWS];
} rank_plan;

#define TRY(call)                                                                                  \
    do {                                                                                           \
        fewcl_status try_s = (call);                                                               \
        if (try_s != FEWCL_OK) return try_s;                                                       \
    } while (0)

typedef struct plan_mode {
    int training, meta_batch, ranks;
} plan_mode;

/* Plans a replica (helper: not the trainer's context) on a context of its device. */
static fewcl_status plan_one(fewcl_context *ctx, const fewcl_model_config *cfg,
                             const fewcl_plan_params *base, int helper, plan_row *row) {
    fewcl_plan_params p = *base;
    fewcl_plan_info info = {.struct_size = sizeof info};
    fewcl_plan_result r = {.struct_size = sizeof r};
    p.info = &info;
    p.replica = helper;
    TRY(fewcl_plan(ctx, cfg, &p, &r));
    row->helper = helper;
    row->peak = r.peak_bytes, row->footprint = r.reserved_bytes, row->budget = info.budget;
    row->fits = r.fits;
    const fewcl_device_info *d = fewcl_context_device(ctx);
    snprintf(row->device, sizeof row->device, "%d:%d", d->platform_index, d->device_index);
    snprintf(row->name, sizeof row->name, "%.111s", d->name);
    return FEWCL_OK;
}

/* This process's plans: a row per entry of `devices`, or one for `device` (NULL: the default
 * device) without a list. A context per entry, but helpers on one device plan alike: once. */
static fewcl_status plan_rank(const char *devices, const char *device,
                              const fewcl_model_config *cfg, const fewcl_plan_params *base,
                              rank_plan *out) {
    memset(out, 0, sizeof *out);
    out->rank = cli_dist.rank;
    snprintf(out->host, sizeof out->host, "%.63s", cli_dist.host);
    fewcl_context *ctx;
    fewcl_status s;
    if (!devices) {
        TRY(fewcl_context_create(device, &ctx));
        s = plan_one(ctx, cfg, base, 0, &out->rows[0]);
        fewcl_context_destroy(ctx);
        out->n_rows = s == FEWCL_OK;
        return s;
    }
    fewcl_device_info *list;
    int n;
    TRY(fewcl_parse_device_list(devices, &list, &n));
    s = n > PLAN_ROWS
            ? cli_error(FEWCL_ERR_ARGUMENT,
                        "--devices lists %d replicas; fewcl plan plans at most %d", n, PLAN_ROWS)
            : FEWCL_OK;
    for (int i = 0; i < n && i < PLAN_ROWS && s == FEWCL_OK; i++) {
        int earlier = 0;
        for (int j = 1; j < i && !earlier; j++)
            if (list[j].platform_index == list[i].platform_index &&
                list[j].device_index == list[i].device_index)
                earlier = j;
        if (i > 0 && earlier) {
            out->rows[i] = out->rows[earlier];
        } else {
            char index[32];
            snprintf(index, sizeof index, "%d:%d", list[i].platform_index, list[i].device_index);
            s = fewcl_context_create(index, &ctx);
            if (s != FEWCL_OK) break;
            s = plan_one(ctx, cfg, base, i > 0, &out->rows[i]);
            fewcl_context_destroy(ctx);
        }
        if (s == FEWCL_OK) out->n_rows = i + 1;
    }
    fewcl_free_device_list(list);
    return s;
}

static int same_device(const rank_plan *a, const plan_row *x, const rank_plan *b,
                       const plan_row *y) {
    return !strcmp(a->host, b->host) && !strcmp(x->device, y->device);
}

/* The rows on the device of row (k, i), when it is the first to name it (ranks of one host
 * share its devices): their count, footprints summed, and whether they fit; 0 otherwise. */
static int device_total(const rank_plan *rp, int n_ranks, int k, int i, uint64_t *sum, int *fits) {
    for (int q = 0; q <= k; q++)
        for (int j = 0; j < (q < k ? rp[q].n_rows : i); j++)
            if (same_device(&rp[q], &rp[q].rows[j], &rp[k], &rp[k].rows[i])) return 0;
    int count = 0;
    *sum = 0, *fits = 1;
    for (int q = k; q < n_ranks; q++)
        for (int j = q == k ? i : 0; j < rp[q].n_rows; j++)
            if (same_device(&rp[q], &rp[q].rows[j], &rp[k], &rp[k].rows[i])) {
                count++;
                *sum += rp[q].rows[j].footprint;
                *fits = *fits && rp[q].rows[j].fits;
            }
    *fits = *fits && *sum <= rp[k].rows[i].budget;
    return count;
}

static const char *role(const plan_mode *m, const plan_row *row) {
    if (!m->training) return row->helper ? "model copy" : "model";
    if (row->helper) return m->meta_batch > 1 ? "copy, its block" : "copy, validation";
    return "trainer";
}

/* Prints the table of n_ranks ranks' plans (rank columns only under several ranks); returns
 * whether everything fits. */
static int print_plans(const rank_plan *rp, int n_ranks, const plan_mode *m, int json) {
    int all_fit = 1, ranks = m->ranks > 1;
    cJSON *o = json ? cJSON_CreateObject() : NULL, *reps = NULL, *devs = NULL;
    if (o) {
        cJSON_AddStringToObject(o, "mode", m->training ? "training" : "evaluation");
        if (m->training) cJSON_AddNumberToObject(o, "meta_batch", m->meta_batch);
        if (ranks) cJSON_AddNumberToObject(o, "ranks", m->ranks);
        reps = cJSON_AddArrayToObject(o, "replicas");
        devs = cJSON_AddArrayToObject(o, "devices");
    } else {
        char what[96];
        if (!m->training)
            snprintf(what, sizeof what, "one evaluation episode");
        else if (m->meta_batch > 1)
            snprintf(what, sizeof what, "training steps of %d episodes", m->meta_batch);
        else
            snprintf(what, sizeof what, "training episodes");
        printf("plan: %s%s; replica 1 %s, every other replica a model copy%s\n", what,
               ranks ? " on every rank" : "",
               m->training ? "is the trainer's (model, optimiser, the whole schedule)"
                           : "holds the model",
               !m->training        ? ""
               : m->meta_batch > 1 ? " with its block of each step and validation"
                                   : " for validation");
        if (ranks) printf("  %-5s %-16.16s", "rank", "host");
        printf("  %-8s %-7s %-34s %12s %12s  %s\n", "replica", "device", "name", "live peak",
               "footprint", "holds");
    }
    for (int k = 0; k < n_ranks; k++)
        for (int i = 0; i < rp[k].n_rows; i++) {
            const plan_row *row = &rp[k].rows[i];
            char a[32], b[32];
            if (o) {
                cJSON *r = cJSON_CreateObject();
                if (ranks) {
                    cJSON_AddNumberToObject(r, "rank", rp[k].rank);
                    cJSON_AddStringToObject(r, "host", rp[k].host);
                }
                cJSON_AddNumberToObject(r, "replica", i + 1);
                cJSON_AddStringToObject(r, "device", row->device);
                cJSON_AddStringToObject(r, "name", row->name);
                cJSON_AddStringToObject(r, "holds", role(m, row));
                cJSON_AddNumberToObject(r, "peak_bytes", (double)row->peak);
                cJSON_AddNumberToObject(r, "footprint_bytes", (double)row->footprint);
                cJSON_AddItemToArray(reps, r);
                continue;
            }
            if (ranks) printf("  %-5d %-16.16s", rp[k].rank, rp[k].host);
            printf("  %-8d %-7s %-34.34s %12s %12s  %s\n", i + 1, row->device, row->name,
                   cli_bytes((double)row->peak, a, sizeof a),
                   cli_bytes((double)row->footprint, b, sizeof b), role(m, row));
        }
    for (int k = 0; k < n_ranks; k++)
        for (int i = 0; i < rp[k].n_rows; i++) {
            uint64_t sum;
            int fits, count = device_total(rp, n_ranks, k, i, &sum, &fits);
            if (!count) continue;
            all_fit = all_fit && fits;
            const plan_row *row = &rp[k].rows[i];
            char a[32], b[32];
            if (o) {
                cJSON *d = cJSON_CreateObject();
                if (ranks) cJSON_AddStringToObject(d, "host", rp[k].host);
                cJSON_AddStringToObject(d, "device", row->device);
                cJSON_AddStringToObject(d, "name", row->name);
                cJSON_AddNumberToObject(d, "replicas", count);
                cJSON_AddNumberToObject(d, "footprint_bytes", (double)sum);
                cJSON_AddNumberToObject(d, "budget_bytes", (double)row->budget);
                cJSON_AddBoolToObject(d, "fits", fits);
                cJSON_AddItemToArray(devs, d);
                continue;
            }
            printf("device %s%s%s (%s): %d replica%s, %s of %s: %s\n", ranks ? rp[k].host : "",
                   ranks ? " " : "", row->device, row->name, count, count == 1 ? "" : "s",
                   cli_bytes((double)sum, a, sizeof a), cli_bytes((double)row->budget, b, sizeof b),
                   fits ? "fits"
                        : "does not fit (fewer replicas or ranks on it, or `fewcl plan --fit`)");
        }
    if (o) {
        cJSON_AddBoolToObject(o, "fits", all_fit);
        char *text = cJSON_Print(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    } else {
        printf("fits: %s\n", all_fit ? "yes" : "no");
    }
    return all_fit;
}

int plan_devices(const char *devices, const fewcl_model_config *cfg, const fewcl_plan_params *base,
                 int json) {
    rank_plan *mine = calloc(1, sizeof *mine);
    if (!mine) return cli_fail("plan", cli_error(FEWCL_ERR_OUT_OF_MEMORY, "a plan table"));
    fewcl_status s = plan_rank(devices, NULL, cfg, base, mine);
    int rc = 0;
    if (s != FEWCL_OK) {
        rc = cli_fail("plan", s);
    } else {
        plan_mode m = {base->training, base->meta_batch, 1};
        rc = print_plans(mine, 1, &m, json) ? 0 : EXIT_RUNTIME;
    }
    free(mine);
    return rc;
}

int plan_ranks(const char *devices, const char *device, const fewcl_model_config *cfg,
               const fewcl_plan_params *base, int json) {
    int R = cli_dist.size;
    rank_plan *mine = calloc(1, sizeof *mine), *all = calloc((size_t)R, sizeof *all);
    fewcl_status s = mine && all ? plan_rank(devices, device, cfg, base, mine)
                                 : cli_error(FEWCL_ERR_OUT_OF_MEMORY, "a plan table");
    /* A rank that cannot plan (its device, a bad list) ends the job with its message. */
    if (s != FEWCL_OK) cli_fail_alone("plan", s);
    s = fewcl_dist_allgather(mine, sizeof *mine, all);
    if (s != FEWCL_OK) cli_fail_alone("plan", s);
    plan_mode m = {base->training, base->meta_batch, R};
    int fits = 1;
    if (cli_dist.rank == 0) {
        fits = print_plans(all, R, &m, json);
    } else { /* the same verdict on every rank, so that every rank exits alike */
        for (int k = 0; k < R; k++)
            for (int i = 0; i < all[k].n_rows; i++) {
                uint64_t sum;
                int f = 1;
                if (device_total(all, R, k, i, &sum, &f)) fits = fits && f;
            }
    }
    free(mine);
    free(all);
    return fits ? 0 : EXIT_RUNTIME;
}
