/* safetensors files: read with full validation, write atomically.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape,
 * data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data block; offsets are
 * relative to the data block. fewcl computes in F32; other dtypes are parsed and named in
 * errors but not converted. */
#ifndef FEWCL_SAFETENSORS_H
#define FEWCL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/runtime.h"

#define FCL_ST_MAX_DIMS 8

typedef struct fcl_st_tensor {
    char *name;
    char dtype[8]; /* "F32", "F16", "I64", ... */
    int ndim;
    int64_t shape[FCL_ST_MAX_DIMS];
    size_t begin, end; /* byte offsets into the data block */
} fcl_st_tensor;

typedef struct fcl_safetensors {
    char *path;
    fcl_st_tensor *tensors;
    int n;
    char *metadata;      /* the "__metadata__" object as JSON text, or NULL */
    unsigned char *data; /* the data block */
    size_t data_len;
    void *file; /* the whole file as read */
} fcl_safetensors;

/* Reads and validates a file: header size and JSON, dtypes, shapes, offsets inside the data
 * block, sizes consistent with dtype x shape, no overlapping tensors, unique names. */
fewcl_status fcl_st_load(const char *path, fcl_safetensors **out);
/* Parses a file already in memory (takes ownership of `bytes`, which must come from malloc). */
fewcl_status fcl_st_parse(const char *label, unsigned char *bytes, size_t len,
                          fcl_safetensors **out);
void fcl_st_free(fcl_safetensors *st);
const fcl_st_tensor *fcl_st_find(const fcl_safetensors *st, const char *name);
/* The F32 data of tensor `name`; with `shape` non-NULL the shape must equal it. Errors name
 * the file, the tensor and what was expected. */
fewcl_status fcl_st_f32(const fcl_safetensors *st, const char *name, int ndim, const int64_t *shape,
                        const float **data, size_t *numel);
/* Value of a string entry of __metadata__ into buf (empty when absent). */
void fcl_st_metadata_get(const fcl_safetensors *st, const char *key, char *buf, size_t cap);

/* Writer: collects F32 tensors (copied), then writes temp file + fsync + rename. */
typedef struct fcl_st_writer fcl_st_writer;
fcl_st_writer *fcl_st_writer_new(void);
fewcl_status fcl_st_writer_add(fcl_st_writer *w, const char *name, int ndim, const int64_t *shape,
                               const float *data);
/* Any dtype of the format ("I64", "F16", ...): `data` holds numel x the dtype's size bytes,
 * written as given (little-endian on every platform fewcl runs on). */
fewcl_status fcl_st_writer_add_raw(fcl_st_writer *w, const char *name, const char *dtype, int ndim,
                                   const int64_t *shape, const void *data);
fewcl_status fcl_st_writer_meta(fcl_st_writer *w, const char *key, const char *value);
fewcl_status fcl_st_writer_save(fcl_st_writer *w, const char *path);
void fcl_st_writer_free(fcl_st_writer *w);

#endif
