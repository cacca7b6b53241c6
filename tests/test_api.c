/* The public C API (include/fewcl/, lib/api): enrolment + classification against the episode
 * forward (bit for bit at the trained support shape, uniform shot weights reported at another
 * one), embeddings, versioned structs, bad input (a status and a message naming the problem),
 * two contexts on two threads, training with progress, cancellation and resume, testing and
 * planning. Model: conv4 at 16x16 (features 64, projection to 32), 3-way 2-shot 2-query, on a
 * small rendered glyph dataset, so that every call takes milliseconds. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "data/loader.h"
#include "fewcl/fewcl.h"
#include "harness.h"
#include "train/trainer.h"

enum { N = 3, K = 2, Q = 2, S = 16, IMG = 3 * S * S };

static char g_dir[64];
static char g_weights[128]; /* a saved model with learned (non-zero) prototype weights */

static fewcl_model_config small_config(void) { return th_small_public_config(N, K, Q); }

/* A model whose prototype weights are not uniform, so that using them is visible. */
static fewcl_model *small_model(fewcl_context *ctx) {
    fewcl_model_config c = small_config();
    fewcl_model *m;
    TH_OK(fewcl_model_create(ctx, &c, 3, &m));
    fcl_param *p = fcl_params_find(&m->m->params, "proto_weight");
    assert_non_null(p);
    TH_OK(fcl_pattern_fill(ctx, &p->value, 11, 2.0f));
    return m;
}

static int setup(void **state) {
    (void)state;
    if (th_glyph_folder(g_dir, sizeof g_dir, "api", 5, 1)) return -1;
    fewcl_model *m = small_model(th_ctx());
    snprintf(g_weights, sizeof g_weights, "%s/weights.safetensors", g_dir);
    fewcl_status st = fewcl_model_save(m, g_weights);
    fewcl_model_destroy(m);
    return st == FEWCL_OK ? 0 : -1;
}

static int teardown(void **state) { return th_glyph_teardown(g_dir, state); }

/* An episode x [N·(K+Q), 3, S, S] (class-major, supports then queries) and its supports and
 * queries as separate arrays in the API's order. */
typedef struct episode {
    float x[N * (K + Q) * IMG], sup[N * K * IMG], qry[N * Q * IMG];
} episode;

static void make_episode(episode *e, uint64_t seed) {
    th_random(e->x, sizeof e->x / sizeof *e->x, seed, -2.0f, 2.0f);
    for (int c = 0; c < N; c++) {
        memcpy(e->sup + (size_t)c * K * IMG, e->x + (size_t)c * (K + Q) * IMG,
               (size_t)K * IMG * sizeof(float));
        memcpy(e->qry + (size_t)c * Q * IMG, e->x + ((size_t)c * (K + Q) + K) * IMG,
               (size_t)Q * IMG * sizeof(float));
    }
}

static fewcl_images images(const float *data, int count) {
    return (fewcl_images){data, count, 3, S, S};
}

/* The episode forward of `fewcl test` (fcl_eval_step's fcl_model_forward): logits [N·Q, N]. */
static void episode_logits(fewcl_model *m, const episode *e, float *logits, float *features) {
    fewcl_context *ctx = m->ctx;
    fcl_tensor x;
    th_upload(&x, 4, (int[]){N * (K + Q), 3, S, S}, e->x);
    fcl_head_out out;
    TH_OK(fcl_model_forward(ctx, m->m, &x, 0, &out));
    TH_OK(fcl_tensor_download(ctx, out.logits, logits));
    if (features) TH_OK(fcl_tensor_download(ctx, out.features, features));
    fcl_model_release(ctx, m->m);
    th_free(&x);
}

static void test_versions(void **state) {
    (void)state;
    assert_string_equal(fewcl_version(), FEWCL_VERSION);
    assert_true(fewcl_api_version() >= 1);
    assert_int_equal(fewcl_api_version(), FEWCL_API_VERSION);
}

/* Enroll + classify of an episode's queries = the episode forward, bit for bit: the same
 * kernels on the same values (lib/nn/enhanced_enroll.c); with the learned (non-uniform)
 * prototype weights, reported as not uniform. */
static void test_enroll_equals_episode(void **state) {
    (void)state;
    fewcl_model *m = small_model(th_ctx());
    static episode e;
    make_episode(&e, 42);
    float want[N * Q * N], got[N * Q * N], probs[N * Q * N];
    int labels[N * Q];
    episode_logits(m, &e, want, NULL);
    fewcl_enrollment *en;
    fewcl_images sup = images(e.sup, N * K), qry = images(e.qry, N * Q);
    TH_OK(fewcl_enroll(m, &sup, (int[]){K, K, K}, N, &en));
    fewcl_enrollment_info info = {.struct_size = sizeof info};
    TH_OK(fewcl_enrollment_get_info(en, &info));
    assert_int_equal(info.n_classes, N);
    assert_int_equal(info.k_shot, K);
    assert_int_equal(info.uniform_weights, 0);
    TH_OK(fewcl_classify(en, &qry, got, probs, labels));
    assert_memory_equal(got, want, sizeof want);
    for (int r = 0; r < N * Q; r++) {
        double sum = 0;
        int best = 0;
        for (int c = 0; c < N; c++) {
            sum += probs[r * N + c];
            if (want[r * N + c] > want[r * N + best]) best = c;
        }
        assert_int_equal(labels[r], best);
        assert_true(fabs(sum - 1.0) < 1e-6); /* N float roundings of values <= 1 */
    }
    /* One query at a time: the same labels; logits within float rounding of the batch. The
     * per-row results differ only in how GEMMs block their rows: each product is within
     * γ_K·Σ|a·b| of exact (K ≤ 64 here, γ_K < 4e-6), compounded over the network's ~12
     * products and normalisations; 1e-4 relative to the row's largest logit bounds that. */
    for (int r = 0; r < N * Q; r++) {
        float one[N];
        int label;
        fewcl_images q1 = images(e.qry + (size_t)r * IMG, 1);
        TH_OK(fewcl_classify(en, &q1, one, NULL, &label));
        assert_int_equal(label, labels[r]);
        double scale = 0;
        for (int c = 0; c < N; c++)
            scale = fmax(scale, fabs(want[r * N + c]));
        for (int c = 0; c < N; c++)
            assert_true(fabs(one[c] - want[r * N + c]) <= 1e-4 * scale);
    }
    fewcl_enrollment_destroy(en);
    /* the one-call episode gives the same */
    int uniform = -1;
    TH_OK(fewcl_classify_episode(m, &sup, N, K, &qry, got, NULL, NULL, &uniform));
    assert_memory_equal(got, want, sizeof want);
    assert_int_equal(uniform, 0);
    fewcl_model_destroy(m);
}

/* The original FS-CT head: enroll + classify = its episode forward, bit for bit, too. */
static void test_fsct_enroll_equals_episode(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fewcl_model_config c = small_config();
    TH_OK(fewcl_model_config_set_method(&c, FEWCL_METHOD_FSCT));
    c.heads = 2, c.dim_head = 8, c.depth = 2;
    fewcl_model *m;
    TH_OK(fewcl_model_create(ctx, &c, 5, &m));
    TH_OK(fcl_pattern_fill(ctx, &fcl_params_find(&m->m->params, "proto_weight")->value, 12, 2.0f));
    static episode e;
    make_episode(&e, 49);
    float want[N * Q * N], got[N * Q * N];
    episode_logits(m, &e, want, NULL);
    fewcl_images sup = images(e.sup, N * K), qry = images(e.qry, N * Q);
    int uniform = -1;
    TH_OK(fewcl_classify_episode(m, &sup, N, K, &qry, got, NULL, NULL, &uniform));
    assert_int_equal(uniform, 0);
    assert_memory_equal(got, want, sizeof want);
    TH_OK(fewcl_classify_episode(m, &sup, N * K, 1, &qry, NULL, NULL, NULL, &uniform));
    assert_int_equal(uniform, 1); /* 6-way 1-shot: uniform */
    float emb[N * K * 64];
    TH_OK(fewcl_embed(m, &sup, emb)); /* no projection: the backbone's 64 features */
    assert_int_equal(fewcl_model_embedding_dim(m), 64);
    fewcl_model_destroy(m);
}

/* Another support shape (1-shot on a 2-shot model): the shots are averaged uniformly, which
 * is the episode forward of the model reshaped to 1-shot (proto_weight zeros), bit for bit. */
static void test_other_shape_uniform(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fewcl_model *m = small_model(ctx);
    fcl_model_config one = m->m->cfg;
    one.k_shot = 1;
    fewcl_model reshaped = {ctx, NULL};
    int uniform = 0;
    TH_OK(fcl_model_reshape(ctx, m->m, &one, &reshaped.m, &uniform));
    assert_int_equal(uniform, 1);
    /* a 1-shot episode */
    static float x[N * (1 + Q) * IMG], sup[N * IMG], qry[N * Q * IMG];
    th_random(x, sizeof x / sizeof *x, 9, -2.0f, 2.0f);
    for (int c = 0; c < N; c++) {
        memcpy(sup + (size_t)c * IMG, x + (size_t)c * (1 + Q) * IMG, IMG * sizeof(float));
        memcpy(qry + (size_t)c * Q * IMG, x + ((size_t)c * (1 + Q) + 1) * IMG,
               (size_t)Q * IMG * sizeof(float));
    }
    fcl_tensor xt;
    th_upload(&xt, 4, (int[]){N * (1 + Q), 3, S, S}, x);
    fcl_head_out out;
    float want[N * Q * N], got[N * Q * N];
    TH_OK(fcl_model_forward(ctx, reshaped.m, &xt, 0, &out));
    TH_OK(fcl_tensor_download(ctx, out.logits, want));
    fcl_model_release(ctx, reshaped.m);
    th_free(&xt);
    fcl_model_destroy(ctx, reshaped.m);
    fewcl_images s1 = images(sup, N), qq = images(qry, N * Q);
    uniform = 0;
    TH_OK(fewcl_classify_episode(m, &s1, N, 1, &qq, got, NULL, NULL, &uniform));
    assert_int_equal(uniform, 1);
    assert_memory_equal(got, want, sizeof want);
    /* and 2 classes of the 3-way model: uniform too */
    fewcl_enrollment *en;
    static float sup2[2 * K * IMG];
    th_random(sup2, sizeof sup2 / sizeof *sup2, 10, -2.0f, 2.0f);
    fewcl_images s2 = images(sup2, 2 * K);
    TH_OK(fewcl_enroll(m, &s2, (int[]){K, K}, 2, &en));
    fewcl_enrollment_info info = {.struct_size = sizeof info};
    TH_OK(fewcl_enrollment_get_info(en, &info));
    assert_int_equal(info.uniform_weights, 1);
    assert_int_equal(info.n_classes, 2);
    fewcl_enrollment_destroy(en);
    fewcl_model_destroy(m);
}

/* Embeddings are the episode forward's features after the projection: bit for bit when
 * grouped as the forward groups them (the supports, then the queries). */
static void test_embed(void **state) {
    (void)state;
    fewcl_model *m = small_model(th_ctx());
    enum { DP = 32 };
    assert_int_equal(fewcl_model_embedding_dim(m), DP);
    static episode e;
    make_episode(&e, 43);
    float logits[N * Q * N];
    static float want[N * (K + Q) * DP], sup[N * K * DP], qry[N * Q * DP];
    episode_logits(m, &e, logits, want);
    fewcl_images s = images(e.sup, N * K), q = images(e.qry, N * Q);
    TH_OK(fewcl_embed(m, &s, sup));
    TH_OK(fewcl_embed(m, &q, qry));
    for (int c = 0; c < N; c++)
        for (int j = 0; j < K + Q; j++) {
            const float *got =
                j < K ? sup + (size_t)(c * K + j) * DP : qry + (size_t)(c * Q + j - K) * DP;
            assert_memory_equal(got, want + (size_t)(c * (K + Q) + j) * DP, DP * sizeof(float));
        }
    fewcl_model_destroy(m);
}

/* Loading a saved model: the config from the file's metadata, the same logits. */
static void test_save_load(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fewcl_model *a = small_model(ctx), *b;
    TH_OK(fewcl_model_load(ctx, g_weights, NULL, &b));
    fewcl_model_config c;
    TH_OK(fewcl_model_config_default(&c, sizeof c));
    TH_OK(fewcl_model_get_config(b, &c));
    assert_int_equal(c.image_size, S);
    assert_int_equal(c.k_shot, K);
    assert_int_equal(c.reduced_dim, 32);
    /* an older caller's smaller struct: only its bytes are written */
    struct {
        fewcl_model_config c;
        char guard[8];
    } small;
    memset(&small, 0x5a, sizeof small);
    small.c.struct_size = offsetof(fewcl_model_config, method);
    TH_OK(fewcl_model_get_config(b, &small.c));
    assert_int_equal(small.c.image_size, S);
    assert_int_equal(small.c.struct_size, offsetof(fewcl_model_config, method));
    assert_int_equal(((unsigned char *)&small.c)[offsetof(fewcl_model_config, method)], 0x5a);
    static episode e;
    make_episode(&e, 44);
    float la[N * Q * N], lb[N * Q * N];
    fewcl_images sup = images(e.sup, N * K), qry = images(e.qry, N * Q);
    TH_OK(fewcl_classify_episode(a, &sup, N, K, &qry, la, NULL, NULL, NULL));
    TH_OK(fewcl_classify_episode(b, &sup, N, K, &qry, lb, NULL, NULL, NULL));
    assert_memory_equal(la, lb, sizeof la);
    fewcl_model_destroy(b);
    fewcl_model_destroy(a);
}

/* A failing call returns its status and a message containing `needle`. */
static void expect_fail(fewcl_status got, fewcl_status want, const char *needle) {
    if (got != want || !strstr(fewcl_last_error(), needle))
        fail_msg("expected %s with '%s', got %s: %s", fewcl_status_name(want), needle,
                 fewcl_status_name(got), fewcl_last_error());
}

static void test_bad_input(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx(), *other = NULL;
    fewcl_model *m = small_model(ctx), *none = (fewcl_model *)1;
    fewcl_enrollment *en = NULL;
    expect_fail(fewcl_context_create("no-such-device", &other), FEWCL_ERR_NO_DEVICE,
                "no-such-device");
    /* null pointers */
    expect_fail(fewcl_model_load(ctx, NULL, NULL, &none), FEWCL_ERR_ARGUMENT, "path is NULL");
    assert_null(none);
    expect_fail(fewcl_model_load(NULL, g_weights, NULL, &none), FEWCL_ERR_ARGUMENT, "ctx");
    expect_fail(fewcl_enroll(m, NULL, (int[]){K, K, K}, N, &en), FEWCL_ERR_ARGUMENT,
                "support images");
    expect_fail(fewcl_classify(NULL, NULL, NULL, NULL, NULL), FEWCL_ERR_ARGUMENT, "enrolment");
    expect_fail(fewcl_embed(m, NULL, (float[1]){0}), FEWCL_ERR_ARGUMENT, "images");
    expect_fail(fewcl_model_create(ctx, NULL, 1, &none), FEWCL_ERR_ARGUMENT, "config");
    /* a struct not filled by its default function */
    fewcl_model_config zero = {0};
    expect_fail(fewcl_model_create(ctx, &zero, 1, &none), FEWCL_ERR_ARGUMENT, "struct_size");
    fewcl_model_config bad = small_config();
    bad.backbone = (fewcl_backbone)7;
    expect_fail(fewcl_model_create(ctx, &bad, 1, &none), FEWCL_ERR_ARGUMENT, "backbone 7");
    bad = small_config();
    bad.image_size = 4;
    expect_fail(fewcl_model_create(ctx, &bad, 1, &none), FEWCL_ERR_ARGUMENT, "image-size 4");
    /* wrong sizes, an empty class, unequal classes */
    static episode e;
    make_episode(&e, 45);
    fewcl_images sup = images(e.sup, N * K);
    expect_fail(fewcl_enroll(m, &sup, (int[]){K, 0, K}, N, &en), FEWCL_ERR_ARGUMENT,
                "class 1 has 0 images");
    expect_fail(fewcl_enroll(m, &sup, (int[]){3, 2, 1}, N, &en), FEWCL_ERR_ARGUMENT, "same number");
    expect_fail(fewcl_enroll(m, &sup, (int[]){K, K}, 2, &en), FEWCL_ERR_ARGUMENT, "add up to 4");
    fewcl_images wrong = {e.sup, N * K, 3, 20, 20};
    expect_fail(fewcl_enroll(m, &wrong, (int[]){K, K, K}, N, &en), FEWCL_ERR_ARGUMENT, "3x16x16");
    assert_null(en);
    TH_OK(fewcl_enroll(m, &sup, (int[]){K, K, K}, N, &en));
    fewcl_images none_q = images(e.qry, 0), grey = {e.qry, 1, 1, S, S};
    expect_fail(fewcl_classify(en, &none_q, NULL, NULL, NULL), FEWCL_ERR_ARGUMENT, "0 images");
    expect_fail(fewcl_classify(en, &grey, NULL, NULL, NULL), FEWCL_ERR_ARGUMENT, "1x16x16");
    fewcl_enrollment_destroy(en);
    /* files: missing, corrupt, weights without a config */
    char path[160];
    snprintf(path, sizeof path, "%s/missing.safetensors", g_dir);
    expect_fail(fewcl_model_load(ctx, path, NULL, &none), FEWCL_ERR_IO, "missing.safetensors");
    snprintf(path, sizeof path, "%s/corrupt.safetensors", g_dir);
    FILE *f = fopen(path, "wb");
    fputs("\x10\0\0\0\0\0\0\0{not json}xxxxxx", f);
    fclose(f);
    expect_fail(fewcl_model_load(ctx, path, NULL, &none), FEWCL_ERR_FORMAT, "corrupt.safetensors");
    expect_fail(fewcl_image_load(path, S, (float[IMG]){0}), FEWCL_ERR_FORMAT,
                "corrupt.safetensors");
    snprintf(path, sizeof path, "%s/plain.safetensors", g_dir);
    fcl_st_writer *w = fcl_st_writer_new();
    TH_OK(fcl_st_writer_add(w, "x", 1, (int64_t[]){1}, (float[]){1}));
    TH_OK(fcl_st_writer_save(w, path));
    fcl_st_writer_free(w);
    expect_fail(fewcl_model_load(ctx, path, NULL, &none), FEWCL_ERR_ARGUMENT, "no fewcl config");
    fewcl_model_config c = small_config();
    expect_fail(fewcl_model_load(ctx, path, &c, &none), FEWCL_ERR_FORMAT, "missing");
    /* images */
    expect_fail(fewcl_image_prepare_rgb8((uint8_t[3]){0}, 0, 1, 0, S, (float[IMG]){0}),
                FEWCL_ERR_ARGUMENT, "0x1");
    expect_fail(fewcl_image_prepare_rgb8((uint8_t[12]){0}, 2, 2, 4, S, (float[IMG]){0}),
                FEWCL_ERR_ARGUMENT, "stride 4");
    fewcl_model_destroy(m);
}

/* Device memory back at its baseline after every enroll + classify + destroy; host memory
 * flat. FEWCL_API_SOAK=N (opt-in, e.g. 10000) runs N rounds instead of 5 and prints the
 * resident set size at the start and the end. */
static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    if (f) fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_memory_baseline(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fewcl_model *m = small_model(ctx);
    static episode e;
    make_episode(&e, 48);
    const char *soak = getenv("FEWCL_API_SOAK");
    long rounds = soak ? atol(soak) : 5, rss0 = 0;
    size_t baseline = fcl_arena_stats_get(ctx->arena)->in_use;
    fewcl_images sup = images(e.sup, N * K), one = images(e.qry, 1);
    for (long i = 0; i < rounds; i++) {
        fewcl_enrollment *en;
        float probs[N];
        TH_OK(fewcl_enroll(m, &sup, (int[]){K, K, K}, N, &en));
        TH_OK(fewcl_classify(en, &one, NULL, probs, NULL));
        fewcl_enrollment_destroy(en);
        assert_int_equal(fcl_arena_stats_get(ctx->arena)->in_use, baseline);
        if (i == 0) rss0 = rss_kib();
    }
    if (soak)
        print_message("%ld enroll + classify rounds: RSS %ld KiB after the first, %ld KiB at "
                      "the end\n",
                      rounds, rss0, rss_kib());
    fewcl_model_destroy(m);
}

/* ---- two contexts on two threads ------------------------------------------------------ */

typedef struct thread_job {
    const episode *e;
    float logits[N * Q * N];
    fewcl_status status;
    char message[512];
} thread_job;

/* Everything on a context of its own: open, load, enroll, classify, close. */
static void *run_job(void *arg) {
    thread_job *j = arg;
    fewcl_context *ctx = NULL;
    fewcl_model *m = NULL;
    fewcl_images sup = images(j->e->sup, N * K), qry = images(j->e->qry, N * Q);
    j->status = fewcl_context_create(NULL, &ctx);
    if (j->status == FEWCL_OK) j->status = fewcl_model_load(ctx, g_weights, NULL, &m);
    for (int rep = 0; rep < 2 && j->status == FEWCL_OK; rep++)
        j->status = fewcl_classify_episode(m, &sup, N, K, &qry, j->logits, NULL, NULL, NULL);
    snprintf(j->message, sizeof j->message, "%s", fewcl_last_error());
    fewcl_model_destroy(m);
    fewcl_context_destroy(ctx);
    return NULL;
}

static void test_two_threads(void **state) {
    (void)state;
    static episode e1, e2;
    make_episode(&e1, 46);
    make_episode(&e2, 47);
    static thread_job seq[2], par[2];
    seq[0].e = par[0].e = &e1;
    seq[1].e = par[1].e = &e2;
    for (int i = 0; i < 2; i++)
        run_job(&seq[i]);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, run_job, &par[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        if (seq[i].status != FEWCL_OK) fail_msg("sequential %d: %s", i, seq[i].message);
        if (par[i].status != FEWCL_OK) fail_msg("thread %d: %s", i, par[i].message);
        assert_memory_equal(par[i].logits, seq[i].logits, sizeof seq[i].logits);
    }
}

/* ---- jobs -------------------------------------------------------------------------------- */

typedef struct counts {
    int episodes, epochs, stop_after;
    fewcl_cancel *cancel_from_callback;
} counts;

static int on_progress(void *user, const fewcl_progress *p) {
    counts *c = user;
    if (strcmp(p->phase, "train") != 0) return 0;
    c->episodes++;
    return c->stop_after && c->episodes >= c->stop_after;
}

static void on_epoch(void *user, const fewcl_epoch_metrics *m) {
    counts *c = user;
    c->epochs++;
    assert_int_equal(m->epoch, c->epochs);
}

static fewcl_train_params train_params(const char *run, counts *c, fewcl_model_config *cfg) {
    static char dir[160], base[160], val[160];
    snprintf(dir, sizeof dir, "%s/%s", g_dir, run);
    snprintf(base, sizeof base, "%s/demo/base.json", g_dir);
    snprintf(val, sizeof val, "%s/demo/val.json", g_dir);
    fewcl_train_params p;
    TH_OK(fewcl_train_params_default(&p, sizeof p));
    p.model = cfg;
    p.train_data = base, p.val_data = val, p.run_dir = dir;
    p.epochs = 2, p.episodes = 3, p.val_episodes = 2, p.seed = 7, p.workers = 1;
    p.cache_bytes = 1 << 20;
    p.progress = on_progress, p.epoch_done = on_epoch, p.user = c;
    return p;
}

static void *cancel_later(void *arg) {
    fewcl_cancel_request(arg);
    return NULL;
}

/* Stopped by the callback mid-run, then resumed: the same result as a run not stopped. A
 * token cancelled by another thread stops a job too. */
static void test_train_cancel_resume(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fewcl_model_config cfg = small_config();
    counts whole = {0}, part = {0};
    fewcl_train_result r1 = {.struct_size = sizeof r1}, r2 = {.struct_size = sizeof r2};
    fewcl_train_params p = train_params("whole", &whole, &cfg);
    fewcl_memory_info mem = {.struct_size = sizeof mem};
    p.memory = &mem;
    TH_OK(fewcl_train(ctx, &p, &r1));
    assert_int_equal(whole.episodes, 6);
    assert_int_equal(whole.epochs, 2);
    assert_int_equal(r1.epochs_done, 2);
    /* API 3: the plan's live peak (the epoch's device peak) and footprint, which the run
     * reserved (not under FEWCL_ARENA_CHUNK, oclgrind's one buffer per tensor). */
    print_message("  memory: planned peak %llu, footprint %llu, reserved %llu\n",
                  (unsigned long long)mem.planned_peak_bytes,
                  (unsigned long long)mem.planned_footprint_bytes,
                  (unsigned long long)mem.reserved_bytes);
    assert_int_equal(mem.planned_peak_bytes, r1.planned_peak_bytes);
    assert_int_equal(mem.planned_peak_bytes, (uint64_t)r1.last.device_peak_bytes);
    assert_true(mem.planned_footprint_bytes >= mem.planned_peak_bytes);
    const char *exact_buffers = getenv("FEWCL_ARENA_CHUNK");
    if (!exact_buffers || !*exact_buffers)
        assert_int_equal(mem.reserved_bytes, mem.planned_footprint_bytes);
    part.stop_after = 4;
    p = train_params("part", &part, &cfg);
    expect_fail(fewcl_train(ctx, &p, &r2), FEWCL_ERR_INTERRUPTED, "resume");
    part.stop_after = 0;
    p.resume = 1;
    TH_OK(fewcl_train(ctx, &p, &r2));
    assert_int_equal(r2.epochs_done, 2);
    assert_true(r2.last.loss == r1.last.loss); /* exact resume: the same bits */
    assert_true(r2.best_val_accuracy == r1.best_val_accuracy);
    /* a token cancelled from another thread */
    fewcl_cancel *cancel;
    TH_OK(fewcl_cancel_create(&cancel));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_later, cancel), 0);
    pthread_join(t, NULL);
    counts third = {0};
    p = train_params("cancelled", &third, &cfg);
    p.cancel = cancel;
    expect_fail(fewcl_train(ctx, &p, NULL), FEWCL_ERR_INTERRUPTED, "stopped");
    assert_int_equal(third.episodes, 1);
    fewcl_cancel_destroy(cancel);
    /* missing data */
    p = train_params("nodata", &third, &cfg);
    p.train_data = "/nonexistent/base.json";
    expect_fail(fewcl_train(ctx, &p, NULL), FEWCL_ERR_IO, "/nonexistent/base.json");
}

/* fewcl_test at the trained shape equals the trainer's evaluation (what `fewcl test` runs) and
 * enroll + classify over the same episodes; at another shot count it reports uniform weights. */
static void test_test_job(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fewcl_model *m;
    TH_OK(fewcl_model_load(ctx, g_weights, NULL, &m));
    char novel[160];
    snprintf(novel, sizeof novel, "%s/demo/novel.json", g_dir);
    fewcl_test_params p;
    TH_OK(fewcl_test_params_default(&p, sizeof p));
    p.data = novel, p.episodes = 3, p.workers = 1;
    fewcl_test_result r = {.struct_size = sizeof r};
    TH_OK(fewcl_test(m, &p, &r));
    assert_int_equal(r.episodes, 3);
    assert_int_equal(r.uniform_weights, 0);
    fcl_dataset *d;
    TH_OK(fcl_dataset_load_json(novel, NULL, &d));
    fcl_eval_options o = {.data = d, .episodes = 3, .seed = 1, .io = {.workers = 1}};
    fcl_eval_result want;
    TH_OK(fcl_evaluate(ctx, m->m, &o, &want));
    assert_true(r.accuracy == want.accuracy);
    assert_true(r.ci95 == want.ci95);
    /* The same episodes through enroll + classify: the same accuracy to the last bit. */
    fcl_loader_options lo = {.data = d,
                             .n_way = N,
                             .k_shot = K,
                             .n_query = Q,
                             .image_size = S,
                             .seed = 1,
                             .workers = 1,
                             .prefetch = 1};
    fcl_loader *l;
    TH_OK(fcl_loader_create(&lo, &l));
    double acc[3];
    for (int ep = 0; ep < 3; ep++) {
        static episode e;
        TH_OK(fcl_loader_next(l, e.x, NULL));
        for (int c = 0; c < N; c++) { /* make_episode's split, on the loader's episode */
            memcpy(e.sup + (size_t)c * K * IMG, e.x + (size_t)c * (K + Q) * IMG,
                   (size_t)K * IMG * sizeof(float));
            memcpy(e.qry + (size_t)c * Q * IMG, e.x + ((size_t)c * (K + Q) + K) * IMG,
                   (size_t)Q * IMG * sizeof(float));
        }
        fewcl_images sup = images(e.sup, N * K), qry = images(e.qry, N * Q);
        int labels[N * Q], correct = 0;
        TH_OK(fewcl_classify_episode(m, &sup, N, K, &qry, NULL, NULL, labels, NULL));
        for (int i = 0; i < N * Q; i++)
            correct += labels[i] == i / Q;
        acc[ep] = 100.0 * correct / (N * Q);
    }
    fcl_loader_destroy(l);
    double mean, ci;
    fcl_mean_ci95(acc, 3, &mean, &ci);
    assert_true(mean == r.accuracy);
    assert_true(ci == r.ci95);
    fcl_dataset_free(d);
    p.k_shot = 1;
    TH_OK(fewcl_test(m, &p, &r));
    assert_int_equal(r.uniform_weights, 1);
    p.data = "/nonexistent";
    expect_fail(fewcl_test(m, &p, &r), FEWCL_ERR_IO, "/nonexistent");
    fewcl_model_destroy(m);
}

static void test_plan(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fewcl_model_config cfg = small_config();
    fewcl_plan_params p;
    TH_OK(fewcl_plan_params_default(&p, sizeof p));
    fewcl_plan_result r = {.struct_size = sizeof r};
    TH_OK(fewcl_plan(ctx, &cfg, &p, &r));
    assert_int_equal(r.fits, 1);
    assert_true(r.peak_bytes > 0);
    uint64_t sum = 0;
    for (int k = 0; k < FEWCL_MEM_CATEGORIES; k++)
        sum += r.at_peak[k];
    assert_true(sum == r.peak_bytes);
    assert_string_equal(fewcl_mem_category_name(0), "parameters");
    assert_null(fewcl_mem_category_name(FEWCL_MEM_CATEGORIES));
    uint64_t peak = r.peak_bytes;
    p.budget = peak / 2;
    TH_OK(fewcl_plan(ctx, &cfg, &p, &r));
    assert_int_equal(r.fits, 0);
    assert_true(r.reason[0] != 0);
    /* a fit for a budget the configuration as given exceeds: a cheaper configuration */
    p.fit = 1;
    p.budget = peak - 1;
    TH_OK(fewcl_plan(ctx, &cfg, &p, &r));
    if (r.fits) assert_true(r.changes[0] != 0 && r.peak_bytes < peak);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_enroll_equals_episode),
        cmocka_unit_test(test_other_shape_uniform),
        cmocka_unit_test(test_fsct_enroll_equals_episode),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_memory_baseline),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_train_cancel_resume),
        cmocka_unit_test(test_test_job),
        cmocka_unit_test(test_plan),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
