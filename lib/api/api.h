/* Internals of the public API (the files of lib/api): the handles' contents and the helpers every
 * entry point uses to check arguments and to copy versioned structs. */
#ifndef FEWCL_API_INTERNAL_H
#define FEWCL_API_INTERNAL_H

#include <string.h>

#include "../data/dataset.h"
#include "../nn/model.h"
#include "fewcl/fewcl.h"

struct fewcl_model {
    fewcl_context *ctx; /* borrowed */
    fcl_model *m;
};

struct fewcl_dataset {
    fcl_dataset *d;
};

struct fewcl_enrollment {
    fewcl_model *model; /* borrowed */
    fcl_head_support *support;
};

/* FEWCL_ERR_ARGUMENT "<fn>: <what> is NULL" when p is NULL. */
#define API_REQUIRE(p, fn, what)                                                                   \
    do {                                                                                           \
        if (!(p)) return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: %s is NULL", fn, what);                 \
    } while (0)

/* A caller's versioned struct: struct_size must cover at least the struct_size field. */
fewcl_status api_check_size(const char *fn, const char *what, size_t struct_size);
/* Copies a caller's struct (size struct_size) over the library's defaults (size full): the
 * fields the caller knows replace the defaults, later fields keep them. */
void api_copy_in(void *dst, size_t full, const void *src, size_t struct_size);
/* Copies the library's struct out into the caller's first struct_size bytes, keeping
 * struct_size as the caller's. */
void api_copy_out(void *dst, size_t struct_size, const void *src, size_t full);

/* After api_copy_out of a struct whose last member is itself a versioned struct (at offset
 * `at`, nested_full bytes in this library): that member's struct_size says how much of it the
 * caller's struct holds. */
void api_fix_nested_size(void *dst, size_t struct_size, size_t at, size_t nested_full);

/* Config conversions (the enums match one to one) and the public default. */
fcl_model_config api_config_in(const fewcl_model_config *c);
fewcl_model_config api_config_out(const fcl_model_config *c);
/* A caller's config read into the library's full struct (its defaults behind it); checks the
 * struct size. */
fewcl_status api_read_config(const char *fn, const fewcl_model_config *c, fcl_model_config *out);

#endif
