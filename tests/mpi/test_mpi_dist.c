/* mpi.dist: the distributed layer's primitives (lib/dist/dist.h) at 2 ranks, launched by
 * mpiexec -np 2 (tests/CMakeLists.txt). With a folder of tests/mpi/mpi_fixture's (mpi.api, via
 * run.sh), also fewcl_test with `distributed` through the public API: a cancel on one rank,
 * and every rank's result equal to a one-process call's. Each rank counts its failed checks;
 * the ranks agree on the total, and each exits non-zero when any rank failed. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dist/dist.h"
#include "dist/dist_internal.h"
#include "fewcl/fewcl.h"
#include "runtime/runtime.h"

static int failures;
static fcl_dist d;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s (last error: %s)\n", d.rank,         \
                    __FILE__, __LINE__, #cond, fewcl_last_error());                                \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void world(int argc, char **argv) {
    fewcl_dist_info info = {.struct_size = sizeof info};
    CHECK(fewcl_dist_init(&argc, &argv, &info) == FEWCL_OK);
    fcl_dist_world(&d);
    CHECK(info.mpi_built && info.mpi_active && info.size == 2 && d.size == 2);
    CHECK(info.rank == d.rank && (d.rank == 0 || d.rank == 1));
    CHECK(d.local_size == 2 && d.local_rank == d.rank); /* both ranks on this host */
    CHECK(d.host[0] && !strcmp(info.host, d.host));
}

/* 100 bytes from rank 1, 7 bytes per MPI call; 1000 floats rank 1 → rank 0 in 12-byte calls. */
static void bcast_and_messages(void) {
    fcl_dist_set_chunk(7);
    unsigned char b[100];
    for (int i = 0; i < 100; i++)
        b[i] = d.rank == 1 ? (unsigned char)(3 * i + 1) : 0;
    CHECK(fcl_dist_bcast(&d, b, sizeof b, 1) == FEWCL_OK);
    int same = 1;
    for (int i = 0; i < 100; i++)
        same &= b[i] == (unsigned char)(3 * i + 1);
    CHECK(same);
    fcl_dist_set_chunk(12);
    float v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = d.rank == 1 ? 0.5f * (float)i - 7 : NAN;
    if (d.rank == 1) CHECK(fcl_dist_send_floats(&d, 0, 5, v, 1000) == FEWCL_OK);
    if (d.rank == 0) {
        CHECK(fcl_dist_recv_floats(&d, 1, 5, v, 1000) == FEWCL_OK);
        same = 1;
        for (int i = 0; i < 1000; i++)
            same &= v[i] == 0.5f * (float)i - 7;
        CHECK(same);
    }
    fcl_dist_set_chunk(0);
    float s[3] = {1.0f + (float)d.rank, 2, -1};
    CHECK(fcl_dist_allreduce_floats(&d, s, 3) == FEWCL_OK);
    CHECK(s[0] == 3 && s[1] == 4 && s[2] == -2);
}

/* 7 doubles in uneven blocks (4 + 3), rank 0's already in place: episode order on rank 0. */
static void gather(void) {
    long first, end;
    fcl_dist_block(7, d.rank, 2, &first, &end);
    CHECK(first == (d.rank ? 4 : 0) && end == (d.rank ? 7 : 4));
    double all[7] = {0}, mine[4];
    for (long i = first; i < end; i++)
        (d.rank ? mine : all)[i - first] = 10.0 * (double)i + 0.25;
    int counts[2] = {4, 3}, displs[2] = {0, 4};
    CHECK(fcl_dist_gatherv_doubles(&d, d.rank ? mine : all, (int)(end - first), all, counts, displs,
                                   0) == FEWCL_OK);
    if (d.rank == 0)
        for (int i = 0; i < 7; i++)
            CHECK(all[i] == 10.0 * i + 0.25);
}

/* Blocks cover 0..n-1 once, in order, lengths differing by at most one. */
static void blocks(void) {
    for (long n = 0; n <= 20; n++)
        for (int parts = 1; parts <= 5; parts++) {
            long at = 0, lo = n, hi = 0;
            for (int p = 0; p < parts; p++) {
                long a, b;
                fcl_dist_block(n, p, parts, &a, &b);
                CHECK(a == at && b >= a);
                at = b, lo = b - a < lo ? b - a : lo, hi = b - a > hi ? b - a : hi;
            }
            CHECK(at == n && hi - lo <= 1);
        }
}

static void agree(void) {
    CHECK(fcl_dist_agree(&d, FEWCL_OK) == FEWCL_OK);
    /* Rank 1 fails: both ranks get its status and its message, naming it. */
    fewcl_status mine =
        d.rank == 1 ? fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "planted failure on rank one") : FEWCL_OK;
    CHECK(fcl_dist_agree(&d, mine) == FEWCL_ERR_OUT_OF_MEMORY);
    char want[512];
    snprintf(want, sizeof want, "rank 1 of 2 (host %s): planted failure on rank one", d.host);
    CHECK(!strcmp(fewcl_last_error(), want));
    /* Both fail: the lowest rank's failure wins, everywhere. */
    mine = d.rank == 0 ? fcl_fail(FEWCL_ERR_IO, "zero's failure")
                       : fcl_fail(FEWCL_ERR_FORMAT, "one's failure");
    CHECK(fcl_dist_agree(&d, mine) == FEWCL_ERR_IO);
    CHECK(strstr(fewcl_last_error(), "rank 0 of 2") && strstr(fewcl_last_error(), "zero's"));
}

/* The public API over 2 ranks on the fixture in dir. */
static void distributed_test(const char *dir) {
    char weights[4200], data[4200];
    snprintf(weights, sizeof weights, "%s/a.safetensors", dir);
    snprintf(data, sizeof data, "%s/novel.json", dir);
    fewcl_context *ctx = NULL;
    fewcl_model *m = NULL;
    fewcl_cancel *cancel = NULL;
    CHECK(fewcl_context_create(NULL, &ctx) == FEWCL_OK);
    CHECK(fewcl_model_load(ctx, weights, NULL, &m) == FEWCL_OK);
    CHECK(fewcl_cancel_create(&cancel) == FEWCL_OK);
    if (!m || !cancel) return;
    fewcl_test_params p;
    fewcl_test_params_default(&p, sizeof p);
    p.data = data, p.episodes = 5, p.seed = 3, p.workers = 1, p.distributed = 1;
    /* Rank 1 cancelled before it starts: both ranks stop, with rank 1's message. */
    if (d.rank == 1) fewcl_cancel_request(cancel);
    p.cancel = cancel;
    fewcl_test_result r = {.struct_size = sizeof r}, alone = {.struct_size = sizeof alone};
    CHECK(fewcl_test(m, &p, &r) == FEWCL_ERR_INTERRUPTED);
    CHECK(strstr(fewcl_last_error(), "rank 1 of 2 (host ") &&
          strstr(fewcl_last_error(), "stopped after 0 of 2 episodes"));
    /* Every rank gets the whole run's result, bit for bit a one-process call's. */
    p.cancel = NULL;
    CHECK(fewcl_test(m, &p, &r) == FEWCL_OK);
    p.distributed = 0;
    CHECK(fewcl_test(m, &p, &alone) == FEWCL_OK);
    CHECK(r.episodes == 5 && alone.episodes == 5);
    CHECK(!memcmp(&r.accuracy, &alone.accuracy, sizeof r.accuracy));
    CHECK(!memcmp(&r.ci95, &alone.ci95, sizeof r.ci95));
    CHECK(r.ci95 > 0); /* accuracies that vary: their order matters */
    fewcl_cancel_destroy(cancel);
    fewcl_model_destroy(m);
    fewcl_context_destroy(ctx);
}

int main(int argc, char **argv) {
    world(argc, argv);
    if (d.size != 2) {
        fprintf(stderr, "test_mpi_dist: run it with mpiexec -np 2 (world size %d)\n", d.size);
        return 1;
    }
    bcast_and_messages();
    gather();
    blocks();
    agree();
    if (argc > 1) distributed_test(argv[1]);
    float total = (float)failures;
    CHECK(fcl_dist_allreduce_floats(&d, &total, 1) == FEWCL_OK);
    if (d.rank == 0)
        printf("test_mpi_dist: %s (%g failed checks over 2 ranks)\n", total ? "FAILED" : "passed",
               total);
    fewcl_dist_finalize();
    return total || failures ? 1 : 0;
}
