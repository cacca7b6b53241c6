/* The convolution's find step and its on-disk database (see conv_find.h).
 *
 * File: "FEWCL-CONV-FIND <format> <sha256 of the body>\n" then the body, one choice a line:
 * "<key>\t<algorithm>\t<median ms>\n". */
#include "conv_find.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/atomic_file.h"
#include "../runtime/sha256.h"
#include "gemm_host.h"
#include "ops.h"

#define FIND_FORMAT 1
#define MAX_FILE_BYTES ((size_t)4 << 20)

typedef struct entry {
    char key[128], algo[32];
    double ms;
    int searched; /* timed in this process (FEWCL_FIND=search times each key once) */
} entry;

/* A shape a plan met that the find step has not timed (see fcl_conv_find_unfound). */
typedef struct unfound {
    fcl_conv_geom g;
    fcl_conv_dir dir;
    char key[128];
    size_t room; /* the workspace a trial may take beside the plan's live bytes there */
} unfound;

struct fcl_conv_find_db {
    char path[700]; /* "" : memory only */
    int damaged, warned;
    entry *e;
    int n, cap;
    unfound *u;
    int n_unfound, cap_unfound;
};

fewcl_status fcl_conv_find_mode_parse(const char *text, fcl_conv_find_mode *mode) {
    if (!text || !*text || strcmp(text, "on") == 0)
        *mode = FCL_FIND_ON;
    else if (strcmp(text, "off") == 0)
        *mode = FCL_FIND_OFF;
    else if (strcmp(text, "search") == 0)
        *mode = FCL_FIND_SEARCH;
    else
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "FEWCL_FIND='%s' (expected on: time each convolution shape once and "
                        "keep the fastest algorithm; off: the fixed heuristic; search: time "
                        "again)",
                        text);
    return FEWCL_OK;
}

void fcl_conv_find_key(const fcl_conv_geom *g, fcl_conv_dir dir, char *key, size_t size) {
    snprintf(key, size, "%s %s n%d c%d %dx%d o%d k%dx%d s%d p%d i%d q%d", g->host ? "host" : "cl",
             fcl_conv_dir_name(dir), g->n, g->cin, g->h, g->w, g->cout, g->kh, g->kw, g->stride,
             g->pad, g->images, g->columns);
}

static entry *lookup(const fcl_conv_find_db *db, const char *key) {
    for (int i = 0; i < db->n; i++)
        if (strcmp(db->e[i].key, key) == 0) return &db->e[i];
    return NULL;
}

static int add(fcl_conv_find_db *db, const char *key, const char *algo, double ms) {
    entry *e = lookup(db, key);
    if (!e) {
        if (db->n == db->cap) {
            int cap = db->cap ? 2 * db->cap : 32;
            entry *grown = realloc(db->e, (size_t)cap * sizeof *grown);
            if (!grown) return -1;
            db->e = grown, db->cap = cap;
        }
        e = &db->e[db->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->key, sizeof e->key, "%s", key);
    }
    snprintf(e->algo, sizeof e->algo, "%s", algo);
    e->ms = ms;
    return 0;
}

static int known_algo(const char *name) {
    const fcl_conv_algo *const *t = fcl_conv_algos();
    for (int i = 0; t[i]; i++)
        if (strcmp(t[i]->name, name) == 0) return 1;
    return 0;
}

/* Parses the body's lines into db; -1 on any malformed line. */
static int parse_body(fcl_conv_find_db *db, char *body) {
    for (char *line = body; *line;) {
        char *end = strchr(line, '\n');
        if (!end) return -1;
        *end = 0;
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (!tab1 || !tab2 || tab1 == line || (size_t)(tab1 - line) >= sizeof db->e[0].key)
            return -1;
        *tab1 = 0, *tab2 = 0;
        char *rest;
        double ms = strtod(tab2 + 1, &rest);
        if (*rest || rest == tab2 + 1 || !known_algo(tab1 + 1) || add(db, line, tab1 + 1, ms))
            return -1;
        line = end + 1;
    }
    return 0;
}

/* Reads db->path into db; a missing file is an empty database, a damaged one too (marked). */
static void load(fcl_conv_find_db *db) {
    FILE *f = fopen(db->path, "rb");
    if (!f) return;
    char *text = malloc(MAX_FILE_BYTES + 1);
    size_t n = text ? fread(text, 1, MAX_FILE_BYTES + 1, f) : 0;
    fclose(f);
    int format = 0, used = 0;
    char sum[65] = "", actual[65];
    int ok = text && n <= MAX_FILE_BYTES;
    if (ok) {
        text[n] = 0;
        ok = sscanf(text, "FEWCL-CONV-FIND %d %64s%n", &format, sum, &used) == 2 &&
             format == FIND_FORMAT && text[used] == '\n';
    }
    if (ok) {
        char *body = text + used + 1;
        fcl_sha256_hex_of(body, strlen(body), actual);
        ok = strlen(body) == n - (size_t)(used + 1) && strcmp(actual, sum) == 0 &&
             parse_body(db, body) == 0;
    }
    if (!ok) {
        db->n = 0;
        db->damaged = 1;
    }
    free(text);
}

/* The body: one "<key>\t<algorithm>\t<median ms>\n" line per choice (NULL: out of memory). */
static char *body_text(const fcl_conv_find_db *db, size_t *len) {
    size_t cap = (size_t)db->n * 200 + 1;
    char *body = malloc(cap);
    *len = 0;
    if (!body) return NULL;
    body[0] = 0;
    for (int i = 0; i < db->n; i++)
        *len += (size_t)snprintf(body + *len, cap - *len, "%s\t%s\t%.4g\n", db->e[i].key,
                                 db->e[i].algo, db->e[i].ms);
    return body;
}

/* Writes the whole database atomically (fcl_atomic_write); -1 on failure (the message in
 * fewcl_last_error). */
static int save(const fcl_conv_find_db *db) {
    size_t len;
    char *body = body_text(db, &len);
    if (!body) return -1;
    char dir[700], head[128], sum[65];
    snprintf(dir, sizeof dir, "%s", db->path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    fcl_sha256_hex_of(body, len, sum);
    snprintf(head, sizeof head, "FEWCL-CONV-FIND %d %s\n", FIND_FORMAT, sum);
    const void *pieces[2] = {head, body};
    size_t lens[2] = {strlen(head), len};
    int ok = fcl_mkdirs(dir) == 0;
    if (!ok) fcl_fail(FEWCL_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    ok = ok && fcl_atomic_write(db->path, pieces, lens, 2) == FEWCL_OK;
    free(body);
    return ok ? 0 : -1;
}

/* Part of the database file's name: raised when an algorithm's speed changes enough that
 * choices timed before would mislead (the file is a cache; a new one is timed again).
 * r2: the host path's batched GEMMs and Winograd passes on all host threads (session 9).
 * r3: the host path's per-tap GEMMs (`taps`), a new candidate (session 10).
 * r4: the host Winograd layouts channel-major (F(4x4): transforms 20-30% faster).
 * r5: host Winograd F(3x3,3x3) (`winograd3`), a new candidate (session 12). */
#define FIND_REVISION "conv-find r5"

fewcl_status fcl_conv_find_db_open(fewcl_context *ctx, fcl_conv_find_db **out) {
    fcl_conv_find_db *db = calloc(1, sizeof *db);
    if (!db) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "convolution find database");
    if (ctx->cache_enabled) {
        /* The program cache's key over the revision: device, driver and platform. */
        char key[65];
        fcl_program_cache_key(ctx, FIND_REVISION, strlen(FIND_REVISION), "", key);
        snprintf(db->path, sizeof db->path, "%s/conv-find-%.16s.txt", ctx->cache_dir, key);
        load(db);
    }
    *out = db;
    return FEWCL_OK;
}

void fcl_conv_find_db_free(fcl_conv_find_db *db) {
    if (!db) return;
    free(db->e);
    free(db->u);
    free(db);
}

const char *fcl_conv_find_db_path(const fcl_conv_find_db *db) { return db->path; }
int fcl_conv_find_db_was_damaged(const fcl_conv_find_db *db) { return db->damaged; }
int fcl_conv_find_db_count(const fcl_conv_find_db *db) { return db->n; }

const char *fcl_conv_find_db_get(const fcl_conv_find_db *db, const char *key) {
    const entry *e = lookup(db, key);
    return e ? e->algo : NULL;
}

fewcl_status fcl_conv_find_db_put(fcl_conv_find_db *db, const char *key, const char *algo,
                                  double ms) {
    if (add(db, key, algo, ms) != 0)
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "convolution find database");
    if (db->path[0] && save(db) != 0 && !db->warned) {
        db->warned = 1; /* the choices still hold for this process */
        fprintf(stderr,
                "fewcl: cannot write the convolution find database (%s); shapes will be timed "
                "again in the next run. Set FEWCL_CACHE_DIR to a writable folder.\n",
                fewcl_last_error());
    }
    return FEWCL_OK;
}

fewcl_status fcl_conv_find_db_export(const fcl_conv_find_db *db, char **text) {
    size_t len;
    *text = body_text(db, &len);
    return *text ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "convolution choices");
}

fewcl_status fcl_conv_find_db_import(fcl_conv_find_db *db, const char *text) {
    fcl_conv_find_db given = {0};
    char *copy = strdup(text ? text : "");
    fewcl_status s = copy ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "convolution choices");
    if (s == FEWCL_OK && parse_body(&given, copy) != 0)
        s = fcl_fail(FEWCL_ERR_ARGUMENT, "convolution choices to import: a malformed line (each "
                                         "is <key>\\t<algorithm>\\t<ms>)");
    for (int i = 0; s == FEWCL_OK && i < given.n; i++) {
        if (add(db, given.e[i].key, given.e[i].algo, given.e[i].ms) != 0)
            s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "convolution choices");
        else
            lookup(db, given.e[i].key)->searched = 1; /* FEWCL_FIND=search keeps it too */
    }
    free(given.e);
    free(copy);
    return s;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The call's tensors for one direction (dW into `scratch`; no bias gradient). */
static fcl_conv_args direction_args(const fcl_conv_args *a, fcl_conv_dir dir,
                                    fcl_tensor *scratch) {
    fcl_conv_args d = {.x = a->x, .w = a->w};
    if (dir == FCL_CONV_FORWARD)
        d.b = a->b, d.y = a->y;
    else
        d.dy = a->dy, (dir == FCL_CONV_DATA ? (void)(d.dx = a->dx) : (void)(d.dw = scratch));
    return d;
}

/* Runs (and, unless planning, times) each eligible algorithm whose workspace is at most
 * `room` bytes FCL_CONV_FIND_RUNS times. */
static fewcl_status time_algos(fewcl_context *ctx, const fcl_conv_geom *g, fcl_conv_dir dir,
                               const fcl_conv_args *a, size_t room, double *ms) {
    const fcl_conv_algo *const *t = fcl_conv_algos();
    fcl_tensor scratch = {0};
    if (dir == FCL_CONV_WEIGHTS)
        FCL_TRY(fcl_tensor_alloc(ctx, &scratch, FCL_MEM_WORKSPACE, 4, a->w->shape));
    fcl_conv_args d = direction_args(a, dir, &scratch);
    for (int i = 0; t[i]; i++) {
        ms[i] = -1;
        if (!fcl_conv_algo_eligible(t[i], g, dir) || t[i]->workspace(g, dir) > room) continue;
        double runs[FCL_CONV_FIND_RUNS];
        fewcl_status s = FEWCL_OK;
        for (int r = 0; r < FCL_CONV_FIND_RUNS && s == FEWCL_OK; r++) {
            if (!ctx->dry_run) s = fewcl_finish(ctx);
            double t0 = fcl_host_seconds();
            if (s == FEWCL_OK) s = t[i]->run(ctx, g, &d);
            if (s == FEWCL_OK && !ctx->dry_run) s = fewcl_finish(ctx);
            runs[r] = (fcl_host_seconds() - t0) * 1e3;
        }
        if (s != FEWCL_OK) continue; /* e.g. its workspace did not fit: not a candidate */
        qsort(runs, FCL_CONV_FIND_RUNS, sizeof *runs, compare_doubles);
        ms[i] = runs[FCL_CONV_FIND_RUNS / 2];
    }
    if (dir == FCL_CONV_WEIGHTS) fcl_tensor_free(ctx, &scratch);
    return FEWCL_OK;
}

fewcl_status fcl_conv_time_algos(fewcl_context *ctx, const fcl_conv_geom *g, fcl_conv_dir dir,
                                 const fcl_conv_args *a, double *ms) {
    return time_algos(ctx, g, dir, a, (size_t)-1, ms);
}

/* The fastest of the timings (-1: none ran); kept in the database when there was a choice. */
static fewcl_status keep_fastest(fcl_conv_find_db *db, const char *key, const double *ms, int n,
                                 int *best) {
    const fcl_conv_algo *const *t = fcl_conv_algos();
    *best = -1;
    for (int i = 0; t[i]; i++)
        if (ms[i] >= 0 && (*best < 0 || ms[i] < ms[*best])) *best = i;
    if (*best < 0 || n < 2) return FEWCL_OK; /* none ran, or timed for the hook only */
    FCL_TRY(fcl_conv_find_db_put(db, key, t[*best]->name, ms[*best]));
    lookup(db, key)->searched = 1;
    return FEWCL_OK;
}

/* A plan met a shape not in the database: noted with the room its trials have there (the
 * least over the plan's calls of that shape). */
static fewcl_status note_unfound(fewcl_context *ctx, fcl_conv_find_db *db, const fcl_conv_geom *g,
                                 fcl_conv_dir dir, const char *key) {
    size_t limit = fcl_arena_limit(ctx->arena), live = fcl_arena_stats_get(ctx->arena)->in_use;
    if (dir == FCL_CONV_WEIGHTS) /* the trials' scratch dW */
        live += (size_t)g->cout * g->taps * sizeof(float);
    size_t room = limit > live ? limit - live : 0;
    for (int i = 0; i < db->n_unfound; i++)
        if (strcmp(db->u[i].key, key) == 0) {
            if (room < db->u[i].room) db->u[i].room = room;
            return FEWCL_OK;
        }
    if (db->n_unfound == db->cap_unfound) {
        int cap = db->cap_unfound ? 2 * db->cap_unfound : 16;
        unfound *grown = realloc(db->u, (size_t)cap * sizeof *grown);
        if (!grown) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "convolution find: shapes to time");
        db->u = grown, db->cap_unfound = cap;
    }
    unfound *u = &db->u[db->n_unfound++];
    *u = (unfound){.g = *g, .dir = dir, .room = room};
    snprintf(u->key, sizeof u->key, "%s", key);
    return FEWCL_OK;
}

int fcl_conv_find_db_unfound(const fcl_conv_find_db *db) { return db->n_unfound; }

void fcl_conv_find_db_forget_unfound(fcl_conv_find_db *db) { db->n_unfound = 0; }

static fewcl_status alloc_filled(fewcl_context *ctx, fcl_tensor *t, fcl_mem_category cat,
                                 int ndim, const int *shape) {
    FCL_TRY(fcl_tensor_alloc(ctx, t, cat, ndim, shape));
    return fcl_fill(ctx, t, 0.5f);
}

/* The find step for one noted shape on tensors of its own (the timing does not depend on the
 * values); *timed counts the shapes it kept a choice for. */
static fewcl_status find_alone(fewcl_context *ctx, fcl_conv_find_db *db, const unfound *u,
                               int *timed) {
    const fcl_conv_geom *g = &u->g;
    int xs[4] = {g->n, g->cin, g->h, g->w}, ws[4] = {g->cout, g->cin, g->kh, g->kw};
    int ys[4] = {g->n, g->cout, g->oh, g->ow}, bs[1] = {g->cout};
    fcl_tensor x = {0}, w = {0}, b = {0}, y = {0}, dx = {0}; /* y: the output, or dy */
    fewcl_status s = alloc_filled(ctx, &x, FCL_MEM_ACTIVATION, 4, xs);
    if (s == FEWCL_OK) s = alloc_filled(ctx, &w, FCL_MEM_PARAM, 4, ws);
    if (s == FEWCL_OK) s = alloc_filled(ctx, &y, FCL_MEM_ACTIVATION, 4, ys);
    if (s == FEWCL_OK && u->dir == FCL_CONV_FORWARD)
        s = alloc_filled(ctx, &b, FCL_MEM_PARAM, 1, bs);
    if (s == FEWCL_OK && u->dir == FCL_CONV_DATA) s = alloc_filled(ctx, &dx, FCL_MEM_GRAD, 4, xs);
    fcl_conv_args a = {.x = &x, .w = &w};
    if (u->dir == FCL_CONV_FORWARD)
        a.b = &b, a.y = &y;
    else
        a.dy = &y, a.dx = u->dir == FCL_CONV_DATA ? &dx : NULL;
    const fcl_conv_algo *const *t = fcl_conv_algos();
    int n = 0, best;
    for (int i = 0; t[i]; i++)
        n += fcl_conv_algo_eligible(t[i], g, u->dir);
    double ms[32];
    if (s == FEWCL_OK) s = time_algos(ctx, g, u->dir, &a, u->room, ms);
    if (s == FEWCL_OK) s = keep_fastest(db, u->key, ms, n, &best);
    if (s == FEWCL_OK && best >= 0) (*timed)++;
    fcl_tensor *all[] = {&dx, &b, &y, &w, &x};
    for (int i = 0; i < 5; i++)
        if (all[i]->numel) fcl_tensor_free(ctx, all[i]);
    return s;
}

fewcl_status fcl_conv_find_unfound(fewcl_context *ctx, fcl_conv_find_db *db, int *timed) {
    *timed = 0;
    fewcl_status s = FEWCL_OK;
    for (int i = 0; i < db->n_unfound && s == FEWCL_OK; i++)
        s = find_alone(ctx, db, &db->u[i], timed);
    db->n_unfound = 0;
    return s;
}

fewcl_status fcl_conv_find(fewcl_context *ctx, fcl_conv_find_db *db, fcl_conv_find_mode mode,
                           const fcl_conv_find_hook *hook, const fcl_conv_geom *g,
                           fcl_conv_dir dir, const fcl_conv_args *a, const fcl_conv_algo **out) {
    char key[128];
    fcl_conv_find_key(g, dir, key, sizeof key);
    const entry *kept = lookup(db, key);
    if (kept && (mode != FCL_FIND_SEARCH || kept->searched)) {
        const fcl_conv_algo *algo = fcl_conv_algo_find(kept->algo, g->host);
        if (algo && fcl_conv_algo_eligible(algo, g, dir)) {
            *out = algo;
            return FEWCL_OK;
        }
    }
    const fcl_conv_algo *const *t = fcl_conv_algos();
    int n = 0, best = -1;
    for (int i = 0; t[i]; i++)
        n += fcl_conv_algo_eligible(t[i], g, dir);
    *out = fcl_conv_algo_heuristic(g, dir);
    if (n < 2 && !hook) return FEWCL_OK; /* nothing to choose */
    double ms[32];
    FCL_TRY(fcl_conv_time_algos(ctx, g, dir, a, ms));
    if (ctx->dry_run) { /* a plan: the find's allocations, then the largest workspace of any
                         * choice (an upper bound); the shape is noted for a real find */
        for (int i = 0; t[i]; i++)
            if (ms[i] >= 0 && t[i]->workspace(g, dir) > (*out)->workspace(g, dir)) *out = t[i];
        return n < 2 ? FEWCL_OK : note_unfound(ctx, db, g, dir, key);
    }
    FCL_TRY(keep_fastest(db, key, ms, n, &best));
    if (best < 0) return FEWCL_OK; /* none ran: the heuristic's error will say why */
    *out = t[best];
    if (hook) hook->report(hook->ud, g, dir, ms, t[best]);
    return FEWCL_OK;
}
