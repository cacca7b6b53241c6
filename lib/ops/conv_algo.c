/* The convolution algorithms' table and the choice among them (see conv_algo.h). The
 * environment is read once per context, when its first convolution is met. */
#include "conv_algo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_find.h"

/* ---- the table ---- */

static int always(const fcl_conv_geom *g, fcl_conv_dir dir) { return (void)g, (void)dir, 1; }

static size_t cl_im2col_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_cl_im2col_workspace(g);
}
static size_t host_im2col_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_im2col_workspace(g);
}
static int shifted_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_shifted_eligible(g);
}
static int winograd_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_winograd_eligible(g);
}
static int winograd3_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_winograd3_eligible(g);
}
static size_t winograd3_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_winograd3_workspace(g);
}
static int winograd4_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_winograd4_eligible(g);
}
static size_t winograd4_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_winograd4_workspace(g);
}
static int batched_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_batched_eligible(g);
}
static size_t batched_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_batched_workspace(g);
}
static int taps_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_taps_eligible(g);
}
static size_t taps_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_taps_workspace(g);
}
static size_t winograd_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_host_winograd_workspace(g);
}

static const fcl_conv_algo cl_im2col = {"im2col", 0, always, cl_im2col_ws, fcl_conv_cl_im2col};
static const fcl_conv_algo host_im2col = {"im2col", 1, always, host_im2col_ws,
                                          fcl_conv_host_im2col};
/* The shifted views take im2col's workspace (their scratch fits in it by eligibility). */
static const fcl_conv_algo host_shifted = {"shifted", 1, shifted_ok, host_im2col_ws,
                                           fcl_conv_host_shifted};
static const fcl_conv_algo host_winograd = {"winograd2", 1, winograd_ok, winograd_ws,
                                            fcl_conv_host_winograd};

static const fcl_conv_algo host_batched = {"batched", 1, batched_ok, batched_ws,
                                           fcl_conv_host_batched};

static const fcl_conv_algo host_taps = {"taps", 1, taps_ok, taps_ws, fcl_conv_host_taps};

static const fcl_conv_algo host_winograd3 = {"winograd3", 1, winograd3_ok, winograd3_ws,
                                             fcl_conv_host_winograd3};
static const fcl_conv_algo host_winograd4 = {"winograd4", 1, winograd4_ok, winograd4_ws,
                                             fcl_conv_host_winograd4};

static int cl_fft_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_cl_fft_eligible(g);
}
static size_t cl_fft_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_cl_fft_workspace(g);
}
static int cl_implicit_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return fcl_conv_cl_implicit_eligible(g, dir);
}
static size_t no_ws(const fcl_conv_geom *g, fcl_conv_dir dir) { return (void)g, (void)dir, 0; }
static size_t cl_implicit_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return fcl_conv_cl_implicit_workspace(g, dir);
}
/* Implicit GEMM, all three directions (OpenCL path; conv_implicit.c): workspace for the
 * weight gradient's partial sums only. */
static const fcl_conv_algo cl_implicit = {"implicit", 0, cl_implicit_ok, cl_implicit_ws,
                                          fcl_conv_cl_implicit};
static int cl_winograd_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_cl_winograd_eligible(g);
}
static size_t cl_winograd_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_cl_winograd_workspace(g);
}
static int cl_winograd4_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_cl_winograd4_eligible(g);
}
static size_t cl_winograd4_ws(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return (void)dir, fcl_conv_cl_winograd4_workspace(g);
}
/* Winograd F(2x2,3x3) and F(4x4,3x3), all directions (OpenCL path; conv_winograd_cl.c). */
static const fcl_conv_algo cl_winograd = {"winograd2", 0, cl_winograd_ok, cl_winograd_ws,
                                          fcl_conv_cl_winograd};
static const fcl_conv_algo cl_winograd4 = {"winograd4", 0, cl_winograd4_ok, cl_winograd4_ws,
                                           fcl_conv_cl_winograd4};
static int cl_implicit_wide_ok(const fcl_conv_geom *g, fcl_conv_dir dir) {
    return fcl_conv_cl_implicit_wide_eligible(g, dir);
}
/* The same with 128x128 tiles, 8x8 outputs per item (conv_implicit.c): no workspace. */
static const fcl_conv_algo cl_implicit_wide = {"implicit_wide", 0, cl_implicit_wide_ok, no_ws,
                                               fcl_conv_cl_implicit_wide};
/* FFT through clFFT (OpenCL path; conv_fft.c). */
static const fcl_conv_algo cl_fft = {"fft", 0, cl_fft_ok, cl_fft_ws, fcl_conv_cl_fft};

static const fcl_conv_algo *const table[] = {
    &cl_im2col,      &host_im2col,  &host_shifted, &host_winograd, &host_winograd3,
    &host_winograd4, &host_batched, &host_taps,    &cl_fft,
    &cl_implicit,    &cl_implicit_wide, &cl_winograd, &cl_winograd4, NULL};

const fcl_conv_algo *const *fcl_conv_algos(void) { return table; }

const fcl_conv_algo *fcl_conv_algo_find(const char *name, int host) {
    for (int i = 0; table[i]; i++)
        if (table[i]->host == host && strcmp(table[i]->name, name) == 0) return table[i];
    return NULL;
}

static int known_name(const char *name, size_t len) {
    for (int i = 0; table[i]; i++)
        if (strlen(table[i]->name) == len && strncmp(table[i]->name, name, len) == 0) return 1;
    return 0;
}

/* "im2col, shifted, winograd2, winograd3, ...": every name once, in table order. */
static void all_names(char *out, size_t size) {
    out[0] = 0;
    for (int i = 0; table[i]; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= strcmp(table[j]->name, table[i]->name) == 0;
        if (seen) continue;
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s", used ? ", " : "", table[i]->name);
    }
}

int fcl_conv_algo_eligible(const fcl_conv_algo *a, const fcl_conv_geom *g, fcl_conv_dir dir) {
    return a->host == g->host && a->eligible(g, dir);
}

const char *fcl_conv_dir_name(fcl_conv_dir dir) {
    static const char *names[] = {"forward", "data", "weights"};
    return dir >= 0 && dir < FCL_CONV_DIRS ? names[dir] : "?";
}

/* ---- the heuristic ----
 * Host: Winograd where it applies and its workspace is no larger than im2col's (2.25x fewer
 * multiplications on whole tiles; the workspace rule keeps out the layers with few input
 * channels, 3 → 64 say, where the transforms outweigh the products and the transformed
 * outputs outgrow the columns, so the heuristic never raises a memory peak), else the shifted
 * views, else im2col. OpenCL: im2col (fft only where the find step or FEWCL_CONV_ALGO picks
 * it: its spectra take more memory than the columns). */
const fcl_conv_algo *fcl_conv_algo_heuristic(const fcl_conv_geom *g, fcl_conv_dir dir) {
    if (!g->host) return &cl_im2col;
    if (fcl_conv_algo_eligible(&host_winograd, g, dir) &&
        fcl_conv_host_winograd_workspace(g) <= fcl_conv_host_im2col_workspace(g))
        return &host_winograd;
    if (fcl_conv_algo_eligible(&host_shifted, g, dir)) return &host_shifted;
    return &host_im2col;
}

/* ---- the context's state ---- */

#define MAX_FORCED 8

typedef struct conv_state {
    char forced_text[256];          /* FEWCL_CONV_ALGO as given */
    char forced[MAX_FORCED][32];    /* its names, in order of preference */
    int n_forced;
    fcl_conv_find_mode find;
    const fcl_conv_algo *last[FCL_CONV_DIRS];
    fcl_conv_find_db *db;           /* loaded on first use (find on or search) */
    fcl_conv_find_hook hook;        /* hook.report NULL: none */
    char *used;                     /* fcl_conv_algo_used's lines, in order of first use */
    size_t used_len, used_cap;
} conv_state;

static void state_free(void *p) {
    conv_state *st = p;
    if (!st) return;
    fcl_conv_find_db_free(st->db);
    free(st->used);
    free(st);
}

/* Parses "a,b,c" into st->forced; an unknown name is a usage error listing the known ones. */
static fewcl_status parse_forced(conv_state *st, const char *from, const char *text) {
    snprintf(st->forced_text, sizeof st->forced_text, "%s", text);
    st->n_forced = 0;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof st->forced[0] || !known_name(p, len) ||
            st->n_forced == MAX_FORCED) {
            char names[128];
            all_names(names, sizeof names);
            st->n_forced = 0;
            return fcl_fail(FEWCL_ERR_ARGUMENT,
                            "%s='%s': '%.*s' is not a convolution algorithm (choose from %s; "
                            "several, comma-separated, in order of preference)",
                            from, text, (int)len, p, names);
        }
        memcpy(st->forced[st->n_forced], p, len);
        st->forced[st->n_forced++][len] = 0;
        p += len + (p[len] == ',');
    }
    return FEWCL_OK;
}

static fewcl_status state_of(fewcl_context *ctx, conv_state **out) {
    if (ctx->conv_state) {
        *out = ctx->conv_state;
        return FEWCL_OK;
    }
    conv_state *st = calloc(1, sizeof *st);
    if (!st) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "convolution algorithm state");
    fewcl_status s = fcl_conv_find_mode_parse(getenv("FEWCL_FIND"), &st->find);
    const char *forced = getenv("FEWCL_CONV_ALGO");
    const char *old = getenv("FEWCL_CONV_HOST"); /* the earlier switch: im2col only */
    if (s == FEWCL_OK && forced && *forced)
        s = parse_forced(st, "FEWCL_CONV_ALGO", forced);
    else if (s == FEWCL_OK && old && strcmp(old, "im2col") == 0)
        s = parse_forced(st, "FEWCL_CONV_HOST", old);
    if (s != FEWCL_OK) {
        free(st);
        return s;
    }
    ctx->conv_state = st;
    ctx->conv_state_free = state_free;
    *out = st;
    return FEWCL_OK;
}

fewcl_status fcl_conv_algo_force(fewcl_context *ctx, const char *names) {
    conv_state *st = NULL;
    FCL_TRY(state_of(ctx, &st));
    if (!names || !*names) {
        st->n_forced = 0;
        st->forced_text[0] = 0;
        return FEWCL_OK;
    }
    return parse_forced(st, "forced convolution algorithm", names);
}

fewcl_status fcl_conv_algo_set_find(fewcl_context *ctx, fcl_conv_find_mode mode) {
    conv_state *st = NULL;
    FCL_TRY(state_of(ctx, &st));
    st->find = mode;
    return FEWCL_OK;
}

fewcl_status fcl_conv_algo_set_hook(fewcl_context *ctx, const fcl_conv_find_hook *hook) {
    conv_state *st = NULL;
    FCL_TRY(state_of(ctx, &st));
    st->hook = hook ? *hook : (fcl_conv_find_hook){0};
    return FEWCL_OK;
}

int fcl_conv_algo_unfound(const fewcl_context *ctx) {
    const conv_state *st = ctx->conv_state;
    return st && st->db ? fcl_conv_find_db_unfound(st->db) : 0;
}

void fcl_conv_algo_forget_unfound(fewcl_context *ctx) {
    conv_state *st = ctx->conv_state;
    if (st && st->db) fcl_conv_find_db_forget_unfound(st->db);
}

fewcl_status fcl_conv_algo_find_unfound(fewcl_context *ctx, int *timed) {
    conv_state *st = ctx->conv_state;
    *timed = 0;
    if (ctx->dry_run) return fcl_fail(FEWCL_ERR_INTERNAL, "the find step cannot time in a plan");
    return st && st->db ? fcl_conv_find_unfound(ctx, st->db, timed) : FEWCL_OK;
}

/* The find database of the context, opened on first use. */
static fewcl_status state_db(fewcl_context *ctx, fcl_conv_find_db **db) {
    conv_state *st = NULL;
    FCL_TRY(state_of(ctx, &st));
    if (!st->db) FCL_TRY(fcl_conv_find_db_open(ctx, &st->db));
    *db = st->db;
    return FEWCL_OK;
}

fewcl_status fcl_conv_algo_export(fewcl_context *ctx, char **text) {
    fcl_conv_find_db *db;
    *text = NULL;
    FCL_TRY(state_db(ctx, &db));
    return fcl_conv_find_db_export(db, text);
}

fewcl_status fcl_conv_algo_import(fewcl_context *ctx, const char *text) {
    fcl_conv_find_db *db;
    FCL_TRY(state_db(ctx, &db));
    return fcl_conv_find_db_import(db, text);
}

const fcl_conv_algo *fcl_conv_algo_last(const fewcl_context *ctx, fcl_conv_dir dir) {
    const conv_state *st = ctx->conv_state;
    return st && dir >= 0 && dir < FCL_CONV_DIRS ? st->last[dir] : NULL;
}

/* "forward convolution x [2,64,21,21], W [64,64,3,3], stride 1, padding 1 on the host path" */
static void describe(const fcl_conv_geom *g, fcl_conv_dir dir, char *out, size_t size) {
    snprintf(out, size,
             "%s convolution x [%d,%d,%d,%d], W [%d,%d,%d,%d], stride %d, padding %d on the %s "
             "path",
             fcl_conv_dir_name(dir), g->n, g->cin, g->h, g->w, g->cout, g->cin, g->kh, g->kw,
             g->stride, g->pad, g->host ? "host" : "OpenCL");
}

static fewcl_status choose_forced(const conv_state *st, const fcl_conv_geom *g, fcl_conv_dir dir,
                                  const fcl_conv_algo **out) {
    for (int i = 0; i < st->n_forced; i++) {
        const fcl_conv_algo *a = fcl_conv_algo_find(st->forced[i], g->host);
        if (a && fcl_conv_algo_eligible(a, g, dir)) {
            *out = a;
            return FEWCL_OK;
        }
    }
    char what[256], eligible[128] = "";
    describe(g, dir, what, sizeof what);
    for (int i = 0; table[i]; i++) {
        if (!fcl_conv_algo_eligible(table[i], g, dir)) continue;
        size_t used = strlen(eligible);
        snprintf(eligible + used, sizeof eligible - used, "%s%s", used ? ", " : "",
                 table[i]->name);
    }
    return fcl_fail(FEWCL_ERR_ARGUMENT,
                    "FEWCL_CONV_ALGO='%s' cannot run the %s (eligible there: %s; list a "
                    "fallback after it, e.g. '%s,im2col')",
                    st->forced_text, what, eligible, st->forced_text);
}

/* Notes the call's key and algorithm the first time the key runs (plans choose too, but a
 * plan's choice for an untimed shape is a bound, not what runs: not noted). */
static fewcl_status note_used(fewcl_context *ctx, conv_state *st, const fcl_conv_geom *g,
                              fcl_conv_dir dir, const fcl_conv_algo *algo, const char *how) {
    if (ctx->dry_run) return FEWCL_OK;
    char key[256], line[512];
    fcl_conv_find_key(g, dir, key, sizeof key);
    int len = snprintf(line, sizeof line, "%s\t%s\t%s\n", key, algo->name, how);
    size_t key_len = strlen(key);
    for (const char *p = st->used; p && p < st->used + st->used_len; p = strchr(p, '\n') + 1)
        if (strncmp(p, key, key_len) == 0 && p[key_len] == '\t') return FEWCL_OK;
    if (st->used_len + (size_t)len + 1 > st->used_cap) {
        size_t cap = st->used_cap ? 2 * st->used_cap : 4096;
        while (cap < st->used_len + (size_t)len + 1)
            cap *= 2;
        char *grown = realloc(st->used, cap);
        if (!grown) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "convolution choices");
        st->used = grown, st->used_cap = cap;
    }
    memcpy(st->used + st->used_len, line, (size_t)len + 1);
    st->used_len += (size_t)len;
    return FEWCL_OK;
}

fewcl_status fcl_conv_algo_used(fewcl_context *ctx, char **text) {
    conv_state *st = NULL;
    *text = NULL;
    FCL_TRY(state_of(ctx, &st));
    *text = strdup(st->used ? st->used : "");
    return *text ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "convolution choices");
}

fewcl_status fcl_conv_algo_choose(fewcl_context *ctx, const fcl_conv_geom *g, fcl_conv_dir dir,
                                  const fcl_conv_args *a, const fcl_conv_algo **out) {
    conv_state *st = NULL;
    FCL_TRY(state_of(ctx, &st));
    const fcl_conv_algo *algo = NULL;
    const char *how;
    if (st->n_forced) {
        FCL_TRY(choose_forced(st, g, dir, &algo));
        how = "forced (FEWCL_CONV_ALGO)";
    } else if (st->find == FCL_FIND_OFF) {
        algo = fcl_conv_algo_heuristic(g, dir);
        how = "heuristic (FEWCL_FIND=off)";
    } else {
        if (!st->db) FCL_TRY(fcl_conv_find_db_open(ctx, &st->db));
        FCL_TRY(fcl_conv_find(ctx, st->db, st->find, st->hook.report ? &st->hook : NULL, g, dir,
                              a, &algo));
        how = "find step";
    }
    FCL_TRY(note_used(ctx, st, g, dir, algo, how));
    st->last[dir] = algo;
    *out = algo;
    return FEWCL_OK;
}
