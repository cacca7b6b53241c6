/* The distributed layer over MPI (dist.h; docs/distributed.md §5). Built when FEWCL_MPI
 * is on; dist_none.c otherwise. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/runtime.h"
#include "dist.h"
#include "dist_internal.h"

static int started, owned; /* MPI started by us (owned) or by the program */
static int local_rank, local_size = 1;
static size_t chunk_bytes = INT_MAX; /* one MPI call's count; smaller in tests (dist_internal.h) */

int fcl_dist_built(void) { return 1; }

void fcl_dist_set_chunk(size_t bytes) { chunk_bytes = bytes ? bytes : INT_MAX; }

/* An MPI return code as a status; the communicator returns errors (MPI_ERRORS_RETURN). */
static fewcl_status check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return FEWCL_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return fcl_fail(FEWCL_ERR_IO, "MPI %s failed: %.*s", what, len, text);
}

int fcl_dist_active(void) {
    int fin = 0;
    if (!started) return 0;
    MPI_Finalized(&fin);
    return !fin;
}

fewcl_status fcl_dist_start(int *argc, char ***argv) {
    if (started || !fcl_dist_launched()) return FEWCL_OK;
    int already = 0, provided = 0;
    MPI_Initialized(&already);
    if (!already) {
        FCL_TRY(check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "init"));
        owned = 1;
    }
    started = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(local, &local_rank);
        MPI_Comm_size(local, &local_size);
        MPI_Comm_free(&local);
    }
    return FEWCL_OK;
}

void fcl_dist_stop(void) {
    if (owned && fcl_dist_active()) MPI_Finalize();
    owned = 0;
}

void fcl_dist_world(fcl_dist *d) {
    *d = (fcl_dist){.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
    if (fcl_dist_active()) {
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
        d->local_rank = local_rank, d->local_size = local_size;
        char name[MPI_MAX_PROCESSOR_NAME];
        int len = 0;
        if (MPI_Get_processor_name(name, &len) == MPI_SUCCESS) {
            snprintf(d->host, sizeof d->host, "%.*s", len, name);
            return;
        }
    }
    if (gethostname(d->host, sizeof d->host - 1) != 0) snprintf(d->host, sizeof d->host, "?");
}

/* The largest count of `unit`-byte elements one call moves. */
static int chunk_of(size_t left, size_t unit) {
    size_t most = chunk_bytes / unit ? chunk_bytes / unit : 1;
    return (int)(left < most ? left : most);
}

fewcl_status fcl_dist_bcast(const fcl_dist *d, void *buf, size_t bytes, int root) {
    if (d->size <= 1) return FEWCL_OK;
    for (size_t at = 0; at < bytes;) {
        int n = chunk_of(bytes - at, 1);
        FCL_TRY(check(MPI_Bcast((char *)buf + at, n, MPI_BYTE, root, MPI_COMM_WORLD), "bcast"));
        at += (size_t)n;
    }
    return FEWCL_OK;
}

fewcl_status fcl_dist_send_floats(const fcl_dist *d, int to, int tag, const float *v, size_t n) {
    for (size_t at = 0; at < n;) {
        int k = chunk_of(n - at, sizeof *v);
        FCL_TRY(check(MPI_Send(v + at, k, MPI_FLOAT, to, tag, MPI_COMM_WORLD), "send"));
        at += (size_t)k;
    }
    return FEWCL_OK;
}

fewcl_status fcl_dist_recv_floats(const fcl_dist *d, int from, int tag, float *v, size_t n) {
    for (size_t at = 0; at < n;) {
        int k = chunk_of(n - at, sizeof *v);
        FCL_TRY(check(MPI_Recv(v + at, k, MPI_FLOAT, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                      "recv"));
        at += (size_t)k;
    }
    return FEWCL_OK;
}

fewcl_status fcl_dist_allreduce_floats(const fcl_dist *d, float *v, size_t n) {
    if (d->size <= 1) return FEWCL_OK;
    for (size_t at = 0; at < n;) {
        int k = chunk_of(n - at, sizeof *v);
        FCL_TRY(check(MPI_Allreduce(MPI_IN_PLACE, v + at, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                      "allreduce"));
        at += (size_t)k;
    }
    return FEWCL_OK;
}

fewcl_status fcl_dist_gatherv_doubles(const fcl_dist *d, const double *mine, int n, double *all,
                                      const int *counts, const int *displs, int root) {
    if (d->size <= 1) {
        if (n && all + displs[0] != mine) memmove(all + displs[0], mine, (size_t)n * sizeof *mine);
        return FEWCL_OK;
    }
    /* Root's own share may already sit in place (MPI forbids aliasing: MPI_IN_PLACE then). */
    const void *send = d->rank == root && all + displs[root] == mine ? MPI_IN_PLACE : mine;
    return check(
        MPI_Gatherv(send, n, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, root, MPI_COMM_WORLD),
        "gatherv");
}

fewcl_status fcl_dist_allgather(const fcl_dist *d, const void *mine, size_t bytes, void *all) {
    if (d->size <= 1) {
        if (all != mine) memmove(all, mine, bytes);
        return FEWCL_OK;
    }
    if (bytes > (size_t)INT_MAX)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "allgather of %zu bytes per rank (at most %d)", bytes,
                        INT_MAX);
    return check(
        MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD),
        "allgather");
}

fewcl_status fcl_dist_agree(const fcl_dist *d, fewcl_status mine) {
    if (d->size <= 1) return mine;
    int me = mine == FEWCL_OK ? INT_MAX : d->rank, first = INT_MAX;
    FCL_TRY(check(MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "agree"));
    if (first == INT_MAX) return FEWCL_OK;
    struct {
        int status;
        char host[256];
        char message[4096];
    } why = {0};
    if (d->rank == first) {
        why.status = (int)mine;
        snprintf(why.host, sizeof why.host, "%s", d->host);
        snprintf(why.message, sizeof why.message, "%s", fewcl_last_error());
    }
    FCL_TRY(check(MPI_Bcast(&why, sizeof why, MPI_BYTE, first, MPI_COMM_WORLD), "agree"));
    return fcl_fail((fewcl_status)why.status, "rank %d of %d (host %s): %s", first, d->size,
                    why.host, why.message);
}

_Noreturn void fcl_dist_abort(int code, const char *msg) {
    fcl_dist d;
    fcl_dist_world(&d);
    fprintf(stderr, "fewcl: rank %d of %d (host %s): %s\n", d.rank, d.size, d.host,
            msg ? msg : "aborted");
    fflush(stderr);
    if (fcl_dist_active()) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
