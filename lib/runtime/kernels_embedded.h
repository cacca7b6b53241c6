/* The kernel sources cl/<family>.cl, embedded at build time by cmake/embed_kernels.cmake. */
#ifndef FEWCL_KERNELS_EMBEDDED_H
#define FEWCL_KERNELS_EMBEDDED_H
#include <stddef.h>

typedef struct fcl_embedded_kernel {
    const char *family; /* file name without .cl */
    const char *source; /* NUL-terminated */
    size_t length;
} fcl_embedded_kernel;

extern const fcl_embedded_kernel fcl_embedded_kernels[];
extern const int fcl_n_embedded_kernels;

#endif
