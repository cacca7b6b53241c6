/* safetensors reader and writer (see safetensors.h). */
#include "safetensors.h"

#include "atomic_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER (100u << 20) /* the format's own limit is 100 MB */

static int dtype_size(const char *dt) {
    static const struct {
        const char *name;
        int size;
    } t[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2},    {"I64", 8},
             {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},      {"BOOL", 1},
             {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (strcmp(dt, t[i].name) == 0) return t[i].size;
    return 0;
}

void fcl_st_free(fcl_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    free(st->metadata);
    free(st->file);
    free(st->path);
    free(st);
}

static int by_begin(const void *a, const void *b) {
    const fcl_st_tensor *x = *(fcl_st_tensor *const *)a, *y = *(fcl_st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* Validates one header entry into `t`. */
static fewcl_status parse_entry(const char *label, const cJSON *e, size_t data_len,
                                fcl_st_tensor *t) {
    const char *name = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) ||
        !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: tensor '%s' lacks dtype, shape or data_offsets",
                        label, name);
    int esize = dtype_size(dt->valuestring);
    if (!esize)
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%s'", label, name,
                        dt->valuestring);
    snprintf(t->dtype, sizeof t->dtype, "%s", dt->valuestring);
    t->ndim = cJSON_GetArraySize(shape);
    if (t->ndim > FCL_ST_MAX_DIMS)
        return fcl_fail(FEWCL_ERR_FORMAT, "%s: tensor '%s' has %d dimensions (at most %d)", label,
                        name, t->ndim, FCL_ST_MAX_DIMS);
    double numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        /* range before the integer test: casting an out-of-range double is undefined */
        if (!cJSON_IsNumber(d) || !(d->valuedouble >= 0 && d->valuedouble <= 1e15) ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return fcl_fail(FEWCL_ERR_FORMAT, "%s: tensor '%s' has a bad shape entry", label, name);
        t->shape[i] = (int64_t)d->valuedouble;
        numel *= d->valuedouble;
    }
    const cJSON *b = cJSON_GetArrayItem(offs, 0), *en = cJSON_GetArrayItem(offs, 1);
    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(en) || b->valuedouble < 0 ||
        en->valuedouble < b->valuedouble || en->valuedouble > (double)data_len)
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "%s: tensor '%s' data_offsets lie outside the %zu-byte data block (the "
                        "file is truncated or corrupt)",
                        label, name, data_len);
    t->begin = (size_t)b->valuedouble;
    t->end = (size_t)en->valuedouble;
    if ((double)(t->end - t->begin) != numel * esize)
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "%s: tensor '%s' holds %zu bytes but %s x %.0f elements need %.0f", label,
                        name, t->end - t->begin, t->dtype, numel, numel * esize);
    t->name = strdup(name);
    return t->name ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", label);
}

fewcl_status fcl_st_parse(const char *label, unsigned char *bytes, size_t len,
                          fcl_safetensors **out) {
    *out = NULL;
    fcl_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        free(bytes);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", label);
    }
    st->file = bytes;
    st->path = strdup(label);
    fewcl_status s = FEWCL_OK;
    uint64_t hlen = 0;
    if (len < 8) {
        s = fcl_fail(FEWCL_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", label,
                     len);
        goto done;
    }
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | bytes[i];
    if (hlen > MAX_HEADER || hlen > len - 8) {
        s = fcl_fail(FEWCL_ERR_FORMAT,
                     "%s: header length %llu does not fit the %zu-byte file (not a safetensors "
                     "file, or truncated)",
                     label, (unsigned long long)hlen, len);
        goto done;
    }
    cJSON *h = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)hlen);
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        s = fcl_fail(FEWCL_ERR_FORMAT, "%s: the header is not a JSON object", label);
        goto done;
    }
    st->data_len = len - 8 - (size_t)hlen;
    /* The data block follows the header wherever the writer ended it; move it down to an
     * 8-byte boundary (the header bytes are no longer needed) so F32 reads are aligned. */
    st->data = bytes + 8 + (hlen & ~(uint64_t)7);
    if (hlen & 7) memmove(st->data, bytes + 8 + hlen, st->data_len);
    int count = cJSON_GetArraySize(h);
    st->tensors = calloc((size_t)count + 1, sizeof *st->tensors);
    if (!st->tensors) s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", label);
    for (const cJSON *e = h->child; e && s == FEWCL_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (st->metadata)
                s = fcl_fail(FEWCL_ERR_FORMAT, "%s: __metadata__ appears twice", label);
            else if (!cJSON_IsObject(e))
                s = fcl_fail(FEWCL_ERR_FORMAT, "%s: __metadata__ is not an object", label);
            else
                st->metadata = cJSON_PrintUnformatted(e);
            continue;
        }
        if (fcl_st_find(st, e->string))
            s = fcl_fail(FEWCL_ERR_FORMAT, "%s: tensor '%s' appears twice", label, e->string);
        else if ((s = parse_entry(label, e, st->data_len, &st->tensors[st->n])) == FEWCL_OK)
            st->n++;
    }
    cJSON_Delete(h);
    if (s == FEWCL_OK && st->n > 1) { /* no two tensors may share bytes */
        fcl_st_tensor **order = malloc((size_t)st->n * sizeof *order);
        if (!order) s = fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s", label);
        for (int i = 0; order && i < st->n; i++)
            order[i] = &st->tensors[i];
        if (order) qsort(order, (size_t)st->n, sizeof *order, by_begin);
        for (int i = 1; order && i < st->n && s == FEWCL_OK; i++)
            if (order[i]->begin < order[i - 1]->end && order[i]->begin != order[i]->end)
                s = fcl_fail(FEWCL_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", label,
                             order[i - 1]->name, order[i]->name);
        free(order);
    }
done:
    if (s != FEWCL_OK) {
        fcl_st_free(st);
        return s;
    }
    *out = st;
    return FEWCL_OK;
}

fewcl_status fcl_st_load(const char *path, fcl_safetensors **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return fcl_fail(FEWCL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char *bytes = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0) bytes = malloc((size_t)len + 1);
    if (!bytes || fread(bytes, 1, (size_t)len, f) != (size_t)len) {
        free(bytes);
        fclose(f);
        return fcl_fail(FEWCL_ERR_IO, "cannot read %s", path);
    }
    fclose(f);
    return fcl_st_parse(path, bytes, (size_t)len, out);
}

const fcl_st_tensor *fcl_st_find(const fcl_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

static void shape_text(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

fewcl_status fcl_st_f32(const fcl_safetensors *st, const char *name, int ndim, const int64_t *shape,
                        const float **data, size_t *numel) {
    const fcl_st_tensor *t = fcl_st_find(st, name);
    if (!t) return fcl_fail(FEWCL_ERR_FORMAT, "%s: no tensor '%s'", st->path, name);
    if (strcmp(t->dtype, "F32") != 0)
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "%s: tensor '%s' is %s, fewcl needs F32 (convert with "
                        "tensor.float() before saving)",
                        st->path, name, t->dtype);
    if (shape) {
        int same = t->ndim == ndim;
        for (int i = 0; same && i < ndim; i++)
            same = t->shape[i] == shape[i];
        if (!same) {
            char want[128], got[128];
            shape_text(ndim, shape, want, sizeof want);
            shape_text(t->ndim, t->shape, got, sizeof got);
            return fcl_fail(FEWCL_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", st->path,
                            name, got, want);
        }
    }
    if ((t->begin % sizeof(float)) != 0)
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "%s: tensor '%s' starts at byte %zu, not a multiple "
                        "of 4",
                        st->path, name, t->begin);
    *data = (const float *)(st->data + t->begin); /* st->data is 8-byte aligned: see parse */
    *numel = (t->end - t->begin) / sizeof(float);
    return FEWCL_OK;
}

void fcl_st_metadata_get(const fcl_safetensors *st, const char *key, char *buf, size_t cap) {
    buf[0] = 0;
    if (!st->metadata) return;
    cJSON *m = cJSON_Parse(st->metadata);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    if (cJSON_IsString(v)) snprintf(buf, cap, "%s", v->valuestring);
    cJSON_Delete(m);
}

/* ---- writer --------------------------------------------------------------------------- */

struct fcl_st_writer {
    cJSON *header, *meta;
    unsigned char *data;
    size_t len, cap;
};

fcl_st_writer *fcl_st_writer_new(void) {
    fcl_st_writer *w = calloc(1, sizeof *w);
    if (w) w->header = cJSON_CreateObject();
    return w;
}

void fcl_st_writer_free(fcl_st_writer *w) {
    if (!w) return;
    cJSON_Delete(w->header);
    cJSON_Delete(w->meta);
    free(w->data);
    free(w);
}

fewcl_status fcl_st_writer_add(fcl_st_writer *w, const char *name, int ndim, const int64_t *shape,
                               const float *data) {
    return fcl_st_writer_add_raw(w, name, "F32", ndim, shape, data);
}

fewcl_status fcl_st_writer_add_raw(fcl_st_writer *w, const char *name, const char *dtype, int ndim,
                                   const int64_t *shape, const void *data) {
    int esize = dtype_size(dtype);
    if (!esize)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "safetensors writer: tensor '%s' has unknown dtype '%s'", name, dtype);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= (size_t)shape[i];
    size_t bytes = numel * (size_t)esize;
    if (cJSON_GetObjectItemCaseSensitive(w->header, name))
        return fcl_fail(FEWCL_ERR_ARGUMENT, "safetensors writer: tensor '%s' added twice", name);
    if (w->len + bytes > w->cap) {
        size_t cap = (w->cap ? w->cap * 2 : 1 << 16);
        while (cap < w->len + bytes)
            cap *= 2;
        unsigned char *grown = realloc(w->data, cap);
        if (!grown) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "safetensors writer: %s", name);
        w->data = grown;
        w->cap = cap;
    }
    if (bytes) memcpy(w->data + w->len, data, bytes);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "dtype", dtype);
    cJSON *sh = cJSON_AddArrayToObject(e, "shape");
    for (int i = 0; i < ndim; i++)
        cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[i]));
    cJSON *off = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)w->len));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(w->len + bytes)));
    cJSON_AddItemToObject(w->header, name, e);
    w->len += bytes;
    return FEWCL_OK;
}

fewcl_status fcl_st_writer_meta(fcl_st_writer *w, const char *key, const char *value) {
    if (!w->meta) w->meta = cJSON_CreateObject();
    cJSON_AddStringToObject(w->meta, key, value);
    return FEWCL_OK;
}

fewcl_status fcl_st_writer_save(fcl_st_writer *w, const char *path) {
    if (w->meta) {
        cJSON_AddItemToObject(w->header, "__metadata__", w->meta);
        w->meta = NULL;
    }
    char *json = cJSON_PrintUnformatted(w->header);
    if (!json) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "writing %s", path);
    /* Pad the header with spaces so the data block starts 8-byte aligned (as the format's
     * reference writer does), which keeps F32 data aligned for direct use. */
    size_t hlen = strlen(json), padded = (hlen + 8 + 7) / 8 * 8 - 8;
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    char *header = realloc(json, padded ? padded : 1);
    if (!header) {
        free(json);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "writing %s", path);
    }
    memset(header + hlen, ' ', padded - hlen);
    const void *pieces[3] = {le, header, w->data};
    size_t lens[3] = {8, padded, w->len};
    fewcl_status s = fcl_atomic_write(path, pieces, lens, 3);
    free(header);
    return s;
}
