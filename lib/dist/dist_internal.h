/* Test hooks of the distributed layer (tests/test_mpi_dist.c). */
#ifndef FEWCL_DIST_INTERNAL_H
#define FEWCL_DIST_INTERNAL_H

#include <stddef.h>

/* The most bytes one MPI call moves (0: INT_MAX elements, the default), so that a test can
 * check the chunking of bcast/send/recv with small buffers. */
void fcl_dist_set_chunk(size_t bytes);

#endif
