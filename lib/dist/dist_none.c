/* The distributed layer without MPI (dist.h): a world of one rank; every collective is a copy
 * or nothing. Built when FEWCL_MPI is off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/runtime.h"
#include "dist.h"
#include "dist_internal.h"

int fcl_dist_built(void) { return 0; }
void fcl_dist_set_chunk(size_t bytes) { (void)bytes; }
fewcl_status fcl_dist_start(int *argc, char ***argv) { return FEWCL_OK; }
int fcl_dist_active(void) { return 0; }
void fcl_dist_stop(void) {}

void fcl_dist_world(fcl_dist *d) {
    *d = (fcl_dist){.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
    if (gethostname(d->host, sizeof d->host - 1) != 0) snprintf(d->host, sizeof d->host, "?");
}

fewcl_status fcl_dist_bcast(const fcl_dist *d, void *buf, size_t bytes, int root) {
    return FEWCL_OK;
}

static fewcl_status no_peer(const char *what, int rank) {
    return fcl_fail(FEWCL_ERR_ARGUMENT, "%s rank %d: this fewcl has one rank (built without MPI)",
                    what, rank);
}

fewcl_status fcl_dist_send_floats(const fcl_dist *d, int to, int tag, const float *v, size_t n) {
    return no_peer("send to", to);
}

fewcl_status fcl_dist_recv_floats(const fcl_dist *d, int from, int tag, float *v, size_t n) {
    return no_peer("receive from", from);
}

fewcl_status fcl_dist_allreduce_floats(const fcl_dist *d, float *v, size_t n) { return FEWCL_OK; }

fewcl_status fcl_dist_gatherv_doubles(const fcl_dist *d, const double *mine, int n, double *all,
                                      const int *counts, const int *displs, int root) {
    if (n && all + displs[0] != mine) memmove(all + displs[0], mine, (size_t)n * sizeof *mine);
    return FEWCL_OK;
}

fewcl_status fcl_dist_allgather(const fcl_dist *d, const void *mine, size_t bytes, void *all) {
    if (all != mine) memmove(all, mine, bytes);
    return FEWCL_OK;
}

fewcl_status fcl_dist_agree(const fcl_dist *d, fewcl_status mine) { return mine; }

_Noreturn void fcl_dist_abort(int code, const char *msg) {
    fprintf(stderr, "fewcl: %s\n", msg ? msg : "aborted");
    fflush(stderr);
    exit(code);
}
