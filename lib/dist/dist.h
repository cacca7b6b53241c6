/* The distributed layer (docs/distributed.md §5): the MPI world, or a world of one rank
 * when fewcl is built without MPI (dist_none.c) or not launched by mpirun/srun.
 *
 * MPI starts only when a launcher started the process (fcl_dist_launched: Open MPI's, PMIx's
 * or PMI's environment variables), so a plain `fewcl` never starts an MPI singleton. Calls are
 * serialised: one thread of a process at a time (MPI_THREAD_SERIALIZED).
 *
 * Collectives (bcast, gatherv, agree) must be entered by every rank of the world, in the same
 * order; a rank that fails between two of them reports it at the next fcl_dist_agree, which
 * every rank reaches, so that the whole job ends with the first failing rank's message instead
 * of hanging. */
#ifndef FEWCL_DIST_DIST_H
#define FEWCL_DIST_DIST_H

#include <stddef.h>

#include "fewcl/fewcl.h"

typedef struct fcl_dist {
    int rank, size;             /* 0, 1 without MPI */
    int local_rank, local_size; /* among the ranks of this host */
    char host[256];
} fcl_dist;

/* 1 when this build has MPI (dist_mpi.c). */
int fcl_dist_built(void);
/* The world size a launcher announced in the environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
 * SLURM_NTASKS with PMIX_RANK), 0 when no launcher started this process. */
int fcl_dist_launched(void);
/* Starts MPI when launched, built with MPI and not already started (by the program itself,
 * which then keeps it: fcl_dist_stop leaves it running). Idempotent. */
fewcl_status fcl_dist_start(int *argc, char ***argv);
/* 1 while MPI is started and not finalised. */
int fcl_dist_active(void);
/* Ends MPI if fcl_dist_start started it. */
void fcl_dist_stop(void);
/* The world: rank 0 of 1 when MPI is not active. */
void fcl_dist_world(fcl_dist *d);

/* Collectives and messages; with d->size == 1 they copy or do nothing. Sizes over INT_MAX
 * elements go in chunks. */
fewcl_status fcl_dist_bcast(const fcl_dist *d, void *buf, size_t bytes, int root);
fewcl_status fcl_dist_send_floats(const fcl_dist *d, int to, int tag, const float *v, size_t n);
fewcl_status fcl_dist_recv_floats(const fcl_dist *d, int from, int tag, float *v, size_t n);
/* Element-wise sum over the ranks, every rank gets it (MPI_Allreduce: its association depends
 * on the implementation and the world size; measurements only, docs/distributed.md §8). */
fewcl_status fcl_dist_allreduce_floats(const fcl_dist *d, float *v, size_t n);
/* Rank r's n doubles to all[displs[r] .. + counts[r]) on root, in rank order (all, counts and
 * displs are read on root only). */
fewcl_status fcl_dist_gatherv_doubles(const fcl_dist *d, const double *mine, int n, double *all,
                                      const int *counts, const int *displs, int root);
/* Every rank's `bytes` bytes to every rank, in rank order: all[r·bytes ..). */
fewcl_status fcl_dist_allgather(const fcl_dist *d, const void *mine, size_t bytes, void *all);
/* Every rank passes its status (with its message in fewcl_last_error when not FEWCL_OK) and
 * gets the same answer: FEWCL_OK when every rank succeeded, else the status of the lowest
 * failing rank f, with the message "rank f of R (host H): <f's message>" on every rank. */
fewcl_status fcl_dist_agree(const fcl_dist *d, fewcl_status mine);
/* Prints "fewcl: rank R of S (host H): msg" on stderr and ends the whole job (MPI_Abort when
 * MPI is active, else exit). */
_Noreturn void fcl_dist_abort(int code, const char *msg);

/* Part p of `parts` contiguous balanced blocks of n items: [*first, *end), the first n % parts
 * blocks one item longer (docs/distributed.md §2). */
void fcl_dist_block(long n, int p, int parts, long *first, long *end);

#endif
