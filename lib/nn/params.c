/* Named parameters (see params.h). */
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/sha256.h"

void fcl_params_init(fcl_params *P) { memset(P, 0, sizeof *P); }

void fcl_params_free(fewcl_context *ctx, fcl_params *P) {
    for (int i = P->n - 1; i >= 0; i--) {
        fcl_param *p = &P->items[i];
        fcl_tensor *all[] = {&p->v, &p->m, &p->grad, &p->value};
        for (int j = 0; j < 4; j++)
            if (all[j]->numel) fcl_tensor_free(ctx, all[j]);
        free(p->pending_m), free(p->pending_v);
    }
    free(P->items);
    fcl_params_init(P);
}

fcl_param *fcl_params_find(fcl_params *P, const char *name) {
    for (int i = 0; i < P->n; i++)
        if (strcmp(P->items[i].name, name) == 0) return &P->items[i];
    return NULL;
}

static fewcl_status add(fewcl_context *ctx, fcl_params *P, const char *name, int ndim,
                        const int *shape, int trainable, int buffer, fcl_tensor **out) {
    if (strlen(name) >= sizeof P->items[0].name)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "parameter name too long: %s", name);
    if (fcl_params_find(P, name))
        return fcl_fail(FEWCL_ERR_INTERNAL, "parameter %s registered twice", name);
    /* One allocation of fixed capacity, so that pointers into the table stay valid. */
    if (!P->items) {
        P->items = calloc(FCL_MAX_PARAMS, sizeof *P->items);
        if (!P->items) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "parameter table");
        P->cap = FCL_MAX_PARAMS;
    }
    if (P->n == P->cap)
        return fcl_fail(FEWCL_ERR_INTERNAL, "more than %d parameters (%s)", FCL_MAX_PARAMS, name);
    fcl_param *p = &P->items[P->n];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->trainable = trainable;
    p->is_buffer = buffer;
    FCL_TRY(
        fcl_tensor_alloc(ctx, &p->value, buffer ? FCL_MEM_ACTIVATION : FCL_MEM_PARAM, ndim, shape));
    if (trainable) {
        fewcl_status s = fcl_tensor_alloc(ctx, &p->grad, FCL_MEM_GRAD, ndim, shape);
        if (s == FEWCL_OK) s = fcl_fill(ctx, &p->grad, 0);
        if (s != FEWCL_OK) {
            fcl_tensor_free(ctx, &p->value);
            return s;
        }
    }
    P->n++;
    *out = &p->value;
    return FEWCL_OK;
}

fewcl_status fcl_params_add(fewcl_context *ctx, fcl_params *P, const char *name, int ndim,
                            const int *shape, int trainable, fcl_tensor **out) {
    return add(ctx, P, name, ndim, shape, trainable, 0, out);
}

fewcl_status fcl_params_add_buffer(fewcl_context *ctx, fcl_params *P, const char *name, int ndim,
                                   const int *shape, fcl_tensor **out) {
    return add(ctx, P, name, ndim, shape, 0, 1, out);
}

/* Appends "; <text>" to a bounded problem list, counting what did not fit. */
static void note(char *buf, size_t cap, int *count, const char *text) {
    size_t used = strlen(buf);
    if (used + strlen(text) + 16 < cap)
        snprintf(buf + used, cap - used, "%s%s", *count ? "; " : "", text);
    (*count)++;
}

fewcl_status fcl_params_load(fewcl_context *ctx, fcl_params *P, const fcl_safetensors *st,
                             const char *prefix, fcl_load_mode mode) {
    return fcl_params_load_except(ctx, P, st, prefix, mode, NULL);
}

fewcl_status fcl_params_load_except(fewcl_context *ctx, fcl_params *P, const fcl_safetensors *st,
                                    const char *prefix, fcl_load_mode mode, const char *skip) {
    char problems[3000] = "", item[512];
    int n_problems = 0;
    size_t plen = strlen(prefix);
    for (int i = 0; i < P->n; i++) {
        fcl_param *p = &P->items[i];
        if (skip && !strcmp(p->name, skip)) continue;
        char key[300];
        snprintf(key, sizeof key, "%s%s", prefix, p->name);
        const fcl_st_tensor *t = fcl_st_find(st, key);
        if (!t) {
            if (mode != FCL_LOAD_PARTIAL) {
                snprintf(item, sizeof item, "missing %s", key);
                note(problems, sizeof problems, &n_problems, item);
            }
            continue;
        }
        int64_t shape[FCL_MAX_DIMS];
        for (int d = 0; d < p->value.ndim; d++)
            shape[d] = p->value.shape[d];
        const float *data;
        size_t numel;
        if (fcl_st_f32(st, key, p->value.ndim, shape, &data, &numel) != FEWCL_OK) {
            note(problems, sizeof problems, &n_problems, fewcl_last_error());
            continue;
        }
        FCL_TRY(fcl_tensor_upload(ctx, &p->value, data));
    }
    if (mode == FCL_LOAD_STRICT)
        for (int i = 0; i < st->n; i++) {
            const char *key = st->tensors[i].name;
            if (strncmp(key, prefix, plen) == 0 && fcl_params_find(P, key + plen)) continue;
            snprintf(item, sizeof item, "unexpected %s", key);
            note(problems, sizeof problems, &n_problems, item);
        }
    if (n_problems)
        return fcl_fail(FEWCL_ERR_FORMAT, "%s does not match the model (%d problem%s): %s%s",
                        st->path, n_problems, n_problems > 1 ? "s" : "", problems,
                        strlen(problems) + 100 > sizeof problems ? " ..." : "");
    return FEWCL_OK;
}

fewcl_status fcl_st_writer_add_tensor(fewcl_context *ctx, fcl_st_writer *w, const char *name,
                                      const fcl_tensor *t) {
    float *host = malloc(t->numel * sizeof *host);
    if (!host) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "saving %s", name);
    int64_t shape[FCL_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        shape[d] = t->shape[d];
    fewcl_status s = fcl_tensor_download(ctx, t, host);
    if (s == FEWCL_OK) s = fcl_st_writer_add(w, name, t->ndim, shape, host);
    free(host);
    return s;
}

fewcl_status fcl_params_store(fewcl_context *ctx, const fcl_params *P, fcl_st_writer *w) {
    for (int i = 0; i < P->n; i++)
        FCL_TRY(fcl_st_writer_add_tensor(ctx, w, P->items[i].name, &P->items[i].value));
    return FEWCL_OK;
}

fewcl_status fcl_params_zero_grad(fewcl_context *ctx, fcl_params *P) {
    for (int i = 0; i < P->n; i++)
        if (P->items[i].trainable) FCL_TRY(fcl_fill(ctx, &P->items[i].grad, 0));
    return FEWCL_OK;
}

/* Zeros, or the moments a checkpoint left waiting on the host (params.h). */
static fewcl_status alloc_moments(fewcl_context *ctx, fcl_param *p) {
    FCL_TRY(fcl_tensor_alloc(ctx, &p->m, FCL_MEM_OPTIM, p->value.ndim, p->value.shape));
    FCL_TRY(fcl_tensor_alloc(ctx, &p->v, FCL_MEM_OPTIM, p->value.ndim, p->value.shape));
    if (!p->pending_m || !p->pending_v) {
        FCL_TRY(fcl_fill(ctx, &p->m, 0));
        return fcl_fill(ctx, &p->v, 0);
    }
    FCL_TRY(fcl_tensor_upload(ctx, &p->m, p->pending_m));
    FCL_TRY(fcl_tensor_upload(ctx, &p->v, p->pending_v));
    free(p->pending_m), free(p->pending_v);
    p->pending_m = p->pending_v = NULL;
    return FEWCL_OK;
}

fewcl_status fcl_params_adamw(fewcl_context *ctx, fcl_params *P, const fcl_adamw_config *cfg) {
    P->step++;
    for (int i = 0; i < P->n; i++) {
        fcl_param *p = &P->items[i];
        if (!p->trainable) continue;
        if (!p->m.numel) FCL_TRY(alloc_moments(ctx, p));
        FCL_TRY(fcl_adamw_step(ctx, cfg, P->step, &p->value, &p->grad, &p->m, &p->v));
    }
    return FEWCL_OK;
}

/* P's device tensors in the order they were first allocated (see fcl_params_stash_out);
 * returns how many (out NULL: only counts). */
static int device_tensors(fcl_params *P, fcl_tensor **out) {
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < P->n; i++) {
            fcl_param *p = &P->items[i];
            fcl_tensor *pair[2] = {pass ? &p->m : &p->value, pass ? &p->v : &p->grad};
            for (int j = 0; j < 2; j++)
                if (pair[j]->numel) {
                    if (out) out[n] = pair[j];
                    n++;
                }
        }
    return n;
}

size_t fcl_params_device_bytes(const fcl_params *P) {
    size_t bytes = 0;
    for (int i = 0; i < P->n; i++) {
        const fcl_param *p = &P->items[i];
        const fcl_tensor *all[] = {&p->value, &p->grad, &p->m, &p->v};
        for (int j = 0; j < 4; j++)
            if (all[j]->numel && all[j]->owner) bytes += all[j]->block.size;
    }
    return bytes;
}

struct fcl_params_stash {
    int n;
    fcl_tensor **where; /* the tensors' places in P, in allocation order */
    fcl_tensor *was;    /* their shapes and categories */
    float **host;
};

static void stash_free(fcl_params_stash *st) {
    for (int i = 0; st && st->host && i < st->n; i++)
        free(st->host[i]);
    if (st) free(st->where), free(st->was), free(st->host), free(st);
}

fewcl_status fcl_params_stash_out(fewcl_context *ctx, fcl_params *P, fcl_params_stash **out) {
    fcl_params_stash *st = calloc(1, sizeof *st);
    int n = device_tensors(P, NULL);
    if (st) st->n = n, st->where = calloc((size_t)n + 1, sizeof *st->where);
    if (st) st->was = calloc((size_t)n + 1, sizeof *st->was);
    if (st) st->host = calloc((size_t)n + 1, sizeof *st->host);
    if (!st || !st->where || !st->was || !st->host) {
        stash_free(st);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "moving the parameters (%d tensors)", n);
    }
    device_tensors(P, st->where);
    fewcl_status s = FEWCL_OK;
    for (int i = 0; i < n && s == FEWCL_OK; i++) { /* every copy first: a failure changes nothing */
        st->host[i] = malloc(st->where[i]->numel * sizeof(float));
        s = st->host[i] ? fcl_tensor_download(ctx, st->where[i], st->host[i])
                        : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "moving the parameters: %zu floats",
                                   st->where[i]->numel);
    }
    if (s != FEWCL_OK) {
        stash_free(st);
        return s;
    }
    for (int i = n - 1; i >= 0; i--) {
        st->was[i] = *st->where[i];
        fcl_tensor_free(ctx, st->where[i]);
    }
    *out = st;
    return FEWCL_OK;
}

fewcl_status fcl_params_unstash(fewcl_context *ctx, fcl_params *P, fcl_params_stash *st) {
    (void)P;
    fewcl_status s = FEWCL_OK;
    for (int i = 0; i < st->n && s == FEWCL_OK; i++) {
        const fcl_tensor *w = &st->was[i];
        s = fcl_tensor_alloc(ctx, st->where[i], w->block.category, w->ndim, w->shape);
        if (s == FEWCL_OK) s = fcl_tensor_upload(ctx, st->where[i], st->host[i]);
    }
    stash_free(st);
    return s;
}

fewcl_status fcl_params_alloc_moments(fewcl_context *ctx, fcl_params *P) {
    for (int i = 0; i < P->n; i++)
        if (P->items[i].trainable && !P->items[i].m.numel)
            FCL_TRY(alloc_moments(ctx, &P->items[i]));
    return FEWCL_OK;
}

size_t fcl_params_count(const fcl_params *P) {
    size_t n = 0;
    for (int i = 0; i < P->n; i++)
        if (P->items[i].trainable) n += P->items[i].value.numel;
    return n;
}

/* The tensor of parameter p in a flat vector of that kind, or NULL when p has none there. */
static const fcl_tensor *flat_part(const fcl_param *p, fcl_flat which) {
    if (which == FCL_FLAT_GRADS) return p->trainable ? &p->grad : NULL;
    if (which == FCL_FLAT_STATE) return p->trainable || p->is_buffer ? &p->value : NULL;
    return &p->value;
}

size_t fcl_params_flat_count(const fcl_params *P, fcl_flat which) {
    size_t n = 0;
    for (int i = 0; i < P->n; i++) {
        const fcl_tensor *t = flat_part(&P->items[i], which);
        if (t) n += t->numel;
    }
    return n;
}

fewcl_status fcl_params_download_flat(fewcl_context *ctx, const fcl_params *P, fcl_flat which,
                                      float *out) {
    for (int i = 0; i < P->n; i++) {
        const fcl_tensor *t = flat_part(&P->items[i], which);
        if (!t) continue;
        FCL_TRY(fcl_tensor_download(ctx, t, out));
        out += t->numel;
    }
    return FEWCL_OK;
}

fewcl_status fcl_params_upload_flat(fewcl_context *ctx, fcl_params *P, fcl_flat which,
                                    const float *in) {
    for (int i = 0; i < P->n; i++) {
        fcl_tensor *t = (fcl_tensor *)flat_part(&P->items[i], which);
        if (!t) continue;
        FCL_TRY(fcl_tensor_upload(ctx, t, in));
        in += t->numel;
    }
    return FEWCL_OK;
}

static fewcl_status hash_tensor(fewcl_context *ctx, fcl_sha256 *h, const fcl_tensor *t,
                                size_t numel) {
    float *host = calloc(numel ? numel : 1, sizeof *host);
    if (!host) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "hashing %zu floats", numel);
    fewcl_status s = t->numel ? fcl_tensor_download(ctx, t, host) : FEWCL_OK;
    if (s == FEWCL_OK) fcl_sha256_update(h, host, numel * sizeof *host);
    free(host);
    return s;
}

fewcl_status fcl_params_state_hash(fewcl_context *ctx, const fcl_params *P, char hex[65]) {
    fcl_sha256 h;
    fcl_sha256_init(&h);
    fcl_sha256_update(&h, &P->step, sizeof P->step);
    for (int i = 0; i < P->n; i++) {
        const fcl_param *p = &P->items[i];
        const fcl_tensor *t = flat_part(p, FCL_FLAT_STATE);
        if (t) FCL_TRY(hash_tensor(ctx, &h, t, t->numel));
        if (p->trainable && !p->m.numel && p->pending_m && p->pending_v) { /* resumed */
            fcl_sha256_update(&h, p->pending_m, p->value.numel * sizeof(float));
            fcl_sha256_update(&h, p->pending_v, p->value.numel * sizeof(float));
        } else if (p->trainable) {
            FCL_TRY(hash_tensor(ctx, &h, &p->m, p->value.numel));
            FCL_TRY(hash_tensor(ctx, &h, &p->v, p->value.numel));
        }
    }
    uint8_t digest[32];
    fcl_sha256_final(&h, digest);
    fcl_sha256_hex(digest, hex);
    return FEWCL_OK;
}

size_t fcl_params_buffer_floats(const fcl_params *P) { return fcl_params_buffer_offset(P, P->n); }

size_t fcl_params_buffer_offset(const fcl_params *P, int index) {
    size_t n = 0;
    for (int i = 0; i < index && i < P->n; i++)
        if (P->items[i].is_buffer) n += P->items[i].value.numel;
    return n;
}

float fcl_pattern_value(uint32_t seed, uint64_t i, float scale) {
    uint64_t z = ((uint64_t)seed << 32) + i + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    double u = (double)(z >> 40) / 16777216.0;
    return (float)(scale * (2.0 * u - 1.0));
}

fewcl_status fcl_pattern_fill(fewcl_context *ctx, fcl_tensor *t, uint32_t seed, float scale) {
    float *host = malloc(t->numel * sizeof *host);
    if (!host) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "pattern fill of %zu values", t->numel);
    for (size_t i = 0; i < t->numel; i++)
        host[i] = fcl_pattern_value(seed, i, scale);
    fewcl_status s = fcl_tensor_upload(ctx, t, host);
    free(host);
    return s;
}
