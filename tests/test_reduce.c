/* The meta-batch's gradient tree (lib/train/reduce.h): the sum of M per-episode vectors is the
 * same bits for every split of the M episodes into contiguous blocks (each block pushed by a
 * "worker" tree, whose nodes a coordinator tree then takes in order), for M = 1…17 and every
 * split into at most 4 blocks; M = 1 gives g_0 itself; the mean is within its rounding bound;
 * the coordinator's stack stays within ⌊log₂M⌋ + 2 nodes (a block of k: 2⌊log₂k⌋ + 2);
 * malformed pushes are refused. The vectors have exponents over 2^±24, so that float
 * addition is far from associative on them: a left fold differs from the tree (checked), which
 * is what makes the equalities above worth testing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "train/reduce.h"

#define N 96 /* floats per vector */
#define MAX_M 17

static float g_leaf[MAX_M][N];

static void make_leaves(void) {
    uint64_t s = 0x1234567;
    for (int m = 0; m < MAX_M; m++)
        for (int i = 0; i < N; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            double mant = 1.0 + (double)((s >> 11) & 0xfffff) / 1048576.0;
            int e = (int)((s >> 40) % 49) - 24;
            g_leaf[m][i] = (float)ldexp((s >> 63) ? -mant : mant, e);
        }
}

static float *copy_of(const float *v) {
    float *c = malloc(N * sizeof *c);
    assert_non_null(c);
    memcpy(c, v, N * sizeof *c);
    return c;
}

static int floor_log2(long m) {
    int k = 0;
    while (m >>= 1)
        k++;
    return k;
}

/* The tree of M episodes split at cuts[0] < cuts[1] < … (blocks [0,c0), [c0,c1), …, [.., M)). */
static void reduce_split(int M, const int *cuts, int n_cuts, float *out) {
    fcl_tree coord;
    TH_OK(fcl_tree_init(&coord, N));
    int a = 0;
    for (int b = 0; b <= n_cuts; b++) {
        int end = b < n_cuts ? cuts[b] : M;
        fcl_tree w;
        TH_OK(fcl_tree_init(&w, N));
        for (int m = a; m < end; m++) {
            float *v = fcl_tree_buffer(&w);
            assert_non_null(v);
            memcpy(v, g_leaf[m], sizeof g_leaf[m]);
            TH_OK(fcl_tree_push(&w, m, 1, v));
        }
        assert_true(w.max_top <= 2 * floor_log2(end - a) + 2); /* a block's cover: up, then down */
        const fcl_tree_node *nodes;
        int n = fcl_tree_nodes(&w, &nodes);
        for (int k = 0; k < n; k++) /* "sent" to the coordinator */
            TH_OK(fcl_tree_push(&coord, nodes[k].lo, nodes[k].len, copy_of(nodes[k].v)));
        fcl_tree_free(&w);
        a = end;
    }
    assert_true(coord.max_top <= floor_log2(M) + 2);
    TH_OK(fcl_tree_finish(&coord, M, out));
    fcl_tree_free(&coord);
}

static void test_every_split_gives_the_same_bits(void **state) {
    (void)state;
    make_leaves();
    int order_mattered = 0;
    long splits = 0;
    for (int M = 1; M <= MAX_M; M++) {
        float whole[N], got[N], left[N];
        reduce_split(M, NULL, 0, whole);
        /* Every composition of M into 2, 3 or 4 blocks. */
        for (int c0 = 1; c0 < M; c0++) {
            reduce_split(M, (int[]){c0}, 1, got);
            assert_memory_equal(got, whole, sizeof whole);
            splits++;
            for (int c1 = c0 + 1; c1 < M; c1++) {
                reduce_split(M, (int[]){c0, c1}, 2, got);
                assert_memory_equal(got, whole, sizeof whole);
                splits++;
                for (int c2 = c1 + 1; c2 < M; c2++) {
                    reduce_split(M, (int[]){c0, c1, c2}, 3, got);
                    assert_memory_equal(got, whole, sizeof whole);
                    splits++;
                }
            }
        }
        if (M == 1) assert_memory_equal(whole, g_leaf[0], sizeof whole); /* no division */
        /* The mean is close to the exact one: every partial sum is rounded once per level. */
        for (int i = 0; i < N; i++) {
            double exact = 0, mag = 0;
            for (int m = 0; m < M; m++)
                exact += g_leaf[m][i], mag += fabs(g_leaf[m][i]);
            double bound = (floor_log2(M) + 3) * ldexp(1, -24) * mag / M;
            if (fabs(whole[i] - exact / M) > bound)
                fail_msg("M=%d element %d: %.9g, exact %.9g", M, i, whole[i], exact / M);
            float acc = 0;
            for (int m = 0; m < M; m++)
                acc += g_leaf[m][i];
            left[i] = M > 1 ? acc / (float)M : acc;
        }
        order_mattered += memcmp(left, whole, sizeof whole) != 0;
    }
    assert_int_equal(splits, 3196); /* Σ over M of C(M−1,1) + C(M−1,2) + C(M−1,3) */
    assert_true(order_mattered > 5);
}

static void test_malformed_pushes_are_refused(void **state) {
    (void)state;
    fcl_tree t;
    TH_OK(fcl_tree_init(&t, N));
    assert_int_equal(fcl_tree_push(&t, 1, 2, copy_of(g_leaf[0])), FEWCL_ERR_INTERNAL); /* lo%len */
    assert_int_equal(fcl_tree_push(&t, 0, 3, copy_of(g_leaf[0])), FEWCL_ERR_INTERNAL); /* not 2^k */
    TH_OK(fcl_tree_push(&t, 0, 1, copy_of(g_leaf[0])));
    assert_int_equal(fcl_tree_push(&t, 2, 1, copy_of(g_leaf[0])), FEWCL_ERR_INTERNAL); /* a gap */
    float out[N];
    assert_int_equal(fcl_tree_finish(&t, 2, out), FEWCL_ERR_INTERNAL); /* one pushed, 2 said */
    fcl_tree_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split_gives_the_same_bits),
        cmocka_unit_test(test_malformed_pushes_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
