/* --meta-batch M (docs/maths.md §7.1, docs/spec.md §4): M episodes' gradients averaged by the
 * fixed tree per AdamW step, BatchNorm running statistics by the replay of the episodes'
 * records.
 * - The replay of recorded batch statistics equals the in-kernel updates of sequential
 *   training forwards, bit for bit, on this device: for a whole model, a meta step's running
 *   statistics equal those of M plain training forwards (test_batchnorm.c checks the op).
 * - M = 4 split into blocks {4}, {1,3}, {2,2}, {1,1,1,1} (workers' trees whose nodes a
 *   coordinator tree takes, all on one context through the internal API) gives the same
 *   parameters, buffers and AdamW moments (state hash) after two steps.
 * - The trainer: --episodes not a multiple of M is refused; a run stopped mid-epoch at M = 2
 *   and resumed ends as the uninterrupted one; resuming with another M is refused; a run at
 *   M = 4 reserves exactly its plan's footprint; M = 1 is the plain fcl_train_step loop.
 * - Over two replicas of this device, each replica's context reserves exactly what
 *   `fewcl plan --devices --meta-batch M` plans for it (fewcl_plan, fewcl_plan_params.replica).
 * Model and data: tests/test_train.c's (conv4 16×16, 3-way 2-shot 2-query glyphs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/demo.h"
#include "data/loader.h"
#include "harness.h"
#include "train/checkpoint.h"
#include "train/reduce.h"
#include "train/trainer.h"

static char g_dir[64];
static fcl_dataset *g_base;

static fcl_model_config small_config(void) {
    fcl_model_config c = fcl_config_default();
    c.image_size = 16;
    c.n_way = 3, c.k_shot = 2, c.n_query = 2;
    c.reduced_dim = 32, c.heads = 2, c.dim_head = 8, c.mlp_dim = 16;
    return c;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/fewcl-meta-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    fcl_demo_options o = {
        .out_dir = g_dir, .images_per_class = 6, .size = 16, .min_faces = 8, .seed = 5};
    fcl_demo_summary s;
    char path[128];
    if (fcl_demo_render(&o, &s) != FEWCL_OK) return -1;
    snprintf(path, sizeof path, "%s/base.json", g_dir);
    return fcl_dataset_load_json(path, NULL, &g_base) == FEWCL_OK ? 0 : -1;
}

static int teardown(void **state) {
    fcl_dataset_free(g_base);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? th_teardown(state) : -1;
}

/* Four random episode inputs of the small model's shape. */
static void episode_inputs(const fcl_model_config *c, fcl_tensor x[4]) {
    int shape[4] = {c->n_way * (c->k_shot + c->n_query), 3, c->image_size, c->image_size};
    size_t n = (size_t)shape[0] * 3 * c->image_size * c->image_size;
    float *host = malloc(n * sizeof *host);
    for (int e = 0; e < 4; e++) {
        th_random(host, n, 40 + e, -2, 2);
        memset(&x[e], 0, sizeof x[e]);
        th_upload(&x[e], 4, shape, host);
    }
    free(host);
}

static float *buffers_of(fewcl_context *ctx, fcl_model *m) {
    size_t R = fcl_params_buffer_floats(&m->params);
    float *all = malloc(R * sizeof *all), *at = all;
    for (int i = 0; i < m->params.n; i++) {
        fcl_param *p = &m->params.items[i];
        if (!p->is_buffer) continue;
        TH_OK(fcl_tensor_download(ctx, &p->value, at));
        at += p->value.numel;
    }
    return all;
}

/* A meta step's running statistics equal those of plain training forwards of its episodes
 * (the parameters are the same: a meta step changes them only at its update). With
 * checkpointing, a ResNet's recomputed blocks run BatchNorm forward again: they must record
 * nothing (fcl_grad_step counts the recorded floats). */
static void check_model_replay(fcl_backbone backbone, int R_want) {
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = small_config();
    c.backbone = backbone;
    c.checkpoint = FCL_CKPT_ALL;
    fcl_model *meta, *plain;
    TH_OK(fcl_model_create(ctx, &c, 3, &meta));
    TH_OK(fcl_model_create(ctx, &c, 3, &plain));
    fcl_tensor x[4];
    episode_inputs(&c, x);
    size_t P = fcl_params_flat_count(&meta->params, FCL_FLAT_GRADS);
    size_t R = fcl_params_buffer_floats(&meta->params);
    assert_int_equal(R, R_want);
    float *g = malloc(P * sizeof *g), *bn = malloc(4 * R * sizeof *bn);
    fcl_step_result r;
    for (int e = 0; e < 3; e++) {
        TH_OK(fcl_grad_step(ctx, meta, &x[e], g, bn + e * R, &r));
        fcl_head_out out;
        TH_OK(fcl_model_forward(ctx, plain, &x[e], 1, &out));
        TH_OK(fcl_model_backward(ctx, plain)); /* with its recomputes */
    }
    memset(g, 0, P * sizeof *g);
    fcl_adamw_config adam = fcl_adamw_defaults();
    TH_OK(fcl_apply_step(ctx, meta, g, bn, 3, &adam));
    float *a = buffers_of(ctx, meta), *b = buffers_of(ctx, plain);
    assert_memory_equal(a, b, R * sizeof *a);
    free(a), free(b), free(g), free(bn);
    for (int e = 3; e >= 0; e--)
        th_free(&x[e]);
    fcl_model_destroy(ctx, plain);
    fcl_model_destroy(ctx, meta);
}

static void test_model_replay_equals_training_forwards(void **state) {
    (void)state;
    check_model_replay(FCL_CONV4, 2 * 4 * 64); /* four BatchNorms of 64 channels: mean, var */
    /* ResNet-18: 20 BatchNorms (stem, 16 in blocks, 3 downsamples), 4,800 channels */
    check_model_replay(FCL_RESNET18, 2 * 4800);
}

/* ---- blocks: the same state for every split ---------------------------------------------- */

/* Two meta steps of the 4 episodes, split into blocks of the given sizes. */
static void run_split(const int *blocks, int n_blocks, char hash[65]) {
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = small_config();
    fcl_model *m;
    TH_OK(fcl_model_create(ctx, &c, 5, &m));
    TH_OK(fcl_params_alloc_moments(ctx, &m->params));
    fcl_tensor x[4];
    episode_inputs(&c, x);
    size_t P = fcl_params_flat_count(&m->params, FCL_FLAT_GRADS);
    size_t R = fcl_params_buffer_floats(&m->params);
    float *mean = malloc(P * sizeof *mean), *bn = malloc(4 * R * sizeof *bn);
    fcl_adamw_config adam = fcl_adamw_defaults();
    for (int step = 0; step < 2; step++) {
        fcl_tree coord;
        TH_OK(fcl_tree_init(&coord, P));
        for (int b = 0, lo = 0; b < n_blocks; lo += blocks[b++]) {
            fcl_tree w; /* a worker: its block's episodes */
            TH_OK(fcl_tree_init(&w, P));
            for (int e = lo; e < lo + blocks[b]; e++) {
                fcl_step_result r;
                float *g = fcl_tree_buffer(&w);
                TH_OK(fcl_grad_step(ctx, m, &x[e], g, bn + e * R, &r));
                TH_OK(fcl_tree_push(&w, e, 1, g));
            }
            const fcl_tree_node *nodes;
            int n = fcl_tree_nodes(&w, &nodes);
            for (int k = 0; k < n; k++) { /* sent to the coordinator */
                float *v = malloc(P * sizeof *v);
                memcpy(v, nodes[k].v, P * sizeof *v);
                TH_OK(fcl_tree_push(&coord, nodes[k].lo, nodes[k].len, v));
            }
            fcl_tree_free(&w);
        }
        TH_OK(fcl_tree_finish(&coord, 4, mean));
        fcl_tree_free(&coord);
        TH_OK(fcl_apply_step(ctx, m, mean, bn, 4, &adam));
    }
    TH_OK(fcl_params_state_hash(ctx, &m->params, hash));
    free(mean), free(bn);
    for (int e = 3; e >= 0; e--)
        th_free(&x[e]);
    fcl_model_destroy(ctx, m);
}

static void test_every_split_gives_the_same_state(void **state) {
    (void)state;
    char want[65], got[65];
    run_split((int[]){4}, 1, want);
    run_split((int[]){1, 3}, 2, got);
    assert_string_equal(got, want);
    run_split((int[]){2, 2}, 2, got);
    assert_string_equal(got, want);
    run_split((int[]){1, 1, 1, 1}, 4, got);
    assert_string_equal(got, want);
}

/* ---- the trainer ------------------------------------------------------------------------ */

static fcl_train_options options(const char *run, int meta_batch) {
    static char dir[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(dir[k], sizeof dir[k], "%s/%s", g_dir, run);
    return (fcl_train_options){.cfg = small_config(),
                               .train = g_base,
                               .run_dir = dir[k],
                               .epochs = 2,
                               .episodes = 4,
                               .adam = fcl_adamw_defaults(),
                               .seed = 7,
                               .augment = 1,
                               .data = {.workers = 1, .cache_bytes = 1 << 20},
                               .meta_batch = meta_batch};
}

static void assert_same_tensors(const char *a_path, const char *b_path) {
    fcl_safetensors *a, *b;
    TH_OK(fcl_st_load(a_path, &a));
    TH_OK(fcl_st_load(b_path, &b));
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const fcl_st_tensor *ta = &a->tensors[i], *tb = fcl_st_find(b, ta->name);
        assert_non_null(tb);
        assert_int_equal(ta->end - ta->begin, tb->end - tb->begin);
        if (memcmp(a->data + ta->begin, b->data + tb->begin, ta->end - ta->begin) != 0)
            fail_msg("%s differs between %s and %s", ta->name, a_path, b_path);
    }
    fcl_st_free(a);
    fcl_st_free(b);
}

static struct {
    long done;
    volatile sig_atomic_t flag;
} g_stop_at;

static void stop_when(void *user, const fcl_progress *p) {
    (void)user;
    if (p->epoch == 1 && p->done == g_stop_at.done) g_stop_at.flag = 1;
}

static void test_trainer_stop_resume_and_refusals(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_train_result whole, part;
    char a_last[300], b_last[300];
    fcl_train_options bad = options("bad", 3); /* 4 episodes: not whole steps of 3 */
    assert_int_equal(fcl_train(ctx, &bad, &whole), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "--episodes 4 is not a multiple of --meta-batch 3"));

    fcl_train_options a = options("whole", 2);
    TH_OK(fcl_train(ctx, &a, &whole));
    assert_int_equal(whole.epochs_done, 2);
    assert_true(isfinite(whole.last.loss) && whole.last.train_acc >= 0);

    fcl_train_options b = options("stopped", 2); /* stops after step 1 of epoch 1 */
    g_stop_at.done = 2, g_stop_at.flag = 0;
    b.progress = stop_when, b.stop = &g_stop_at.flag;
    assert_int_equal(fcl_train(ctx, &b, &part), FEWCL_ERR_INTERRUPTED);
    assert_non_null(strstr(fewcl_last_error(), "stopped after step 1 (episode 2) of epoch 1"));
    g_stop_at.flag = 0, g_stop_at.done = -1;
    b.resume = 1;
    TH_OK(fcl_train(ctx, &b, &part));
    snprintf(a_last, sizeof a_last, "%s/last.safetensors", a.run_dir);
    snprintf(b_last, sizeof b_last, "%s/last.safetensors", b.run_dir);
    assert_same_tensors(a_last, b_last);
    assert_true(part.last.loss == whole.last.loss && part.last.train_acc == whole.last.train_acc);

    b.epochs = 3, b.meta_batch = 4; /* another M */
    assert_int_equal(fcl_train(ctx, &b, &part), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "used --meta-batch 2; give the same value"));
    b.meta_batch = 1;
    assert_int_equal(fcl_train(ctx, &b, &part), FEWCL_ERR_ARGUMENT);
}

/* The run follows its plan: the meta schedule (episode_plan.c) covers M = 4 with two planned
 * episodes per step, and the run reserves exactly the planned footprint. */
static void test_trainer_reserves_the_planned_footprint(void **state) {
    (void)state;
    const char *exact_buffers = getenv("FEWCL_ARENA_CHUNK"); /* oclgrind: no layouts */
    if (exact_buffers && *exact_buffers) skip();
    fewcl_context *ctx;
    TH_OK(fewcl_context_create(NULL, &ctx));
    fcl_train_options o = options("m4", 4);
    o.epochs = 1, o.episodes = 8, o.val = g_base, o.val_episodes = 1;
    fcl_train_result r;
    TH_OK(fcl_train(ctx, &o, &r));
    const fcl_arena_stats *st = fcl_arena_stats_get(ctx->arena);
    assert_int_equal(st->peak_reserved, r.planned_footprint);
    assert_int_equal(st->followed, st->allocations); /* every tensor where planned */
    assert_int_equal((size_t)r.last.device_peak, r.planned_peak);
    fewcl_context_destroy(ctx);
}

/* M = 1 through the trainer is the plain loop of fcl_train_step over the loader's episodes. */
static void test_m1_is_the_train_step_loop(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_train_options o = options("m1", 1);
    o.epochs = 1, o.episodes = 3;
    fcl_train_result r;
    TH_OK(fcl_train(ctx, &o, &r));
    fcl_model_config c = small_config();
    fcl_model *loop, *saved;
    TH_OK(fcl_model_create(ctx, &c, o.seed, &loop));
    TH_OK(fcl_model_create(ctx, &c, o.seed, &saved));
    fcl_loader_options lo = {.data = g_base,
                             .n_way = c.n_way,
                             .k_shot = c.k_shot,
                             .n_query = c.n_query,
                             .image_size = c.image_size,
                             .augment = 1,
                             .seed = o.seed,
                             .workers = 1,
                             .prefetch = 2};
    fcl_loader *l;
    TH_OK(fcl_loader_create(&lo, &l));
    int shape[4] = {c.n_way * (c.k_shot + c.n_query), 3, c.image_size, c.image_size};
    fcl_tensor x = {0};
    TH_OK(fcl_tensor_alloc(ctx, &x, FCL_MEM_ACTIVATION, 4, shape));
    float *host = malloc(x.numel * sizeof *host);
    for (int e = 0; e < o.episodes; e++) {
        fcl_step_result sr;
        TH_OK(fcl_loader_next(l, host, NULL));
        TH_OK(fcl_tensor_upload(ctx, &x, host));
        TH_OK(fcl_train_step(ctx, loop, &x, &o.adam, &sr));
    }
    char path[300], want[65], got[65];
    snprintf(path, sizeof path, "%s/last.safetensors", o.run_dir);
    fcl_safetensors *st;
    TH_OK(fcl_st_load(path, &st));
    TH_OK(fcl_checkpoint_load(ctx, saved, st, 1));
    fcl_st_free(st);
    TH_OK(fcl_params_state_hash(ctx, &loop->params, want));
    TH_OK(fcl_params_state_hash(ctx, &saved->params, got));
    assert_string_equal(got, want);
    free(host);
    th_free(&x);
    fcl_loader_destroy(l);
    fcl_model_destroy(ctx, saved);
    fcl_model_destroy(ctx, loop);
}

/* --devices (docs/design/scale-out.md, part 2): M = 3 over two replicas of this device (blocks
 * {1, 2}: the workers' covers (0,1) and (1,1),(2,1) meet in the coordinator's tree) gives the
 * weights, buffers, moments and metrics of the one-device run, validation split too. */
static void test_two_devices_train_as_one(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    const fewcl_device_info *d = fewcl_context_device(ctx);
    char here[64], two[160];
    snprintf(here, sizeof here, "%d:%d", d->platform_index, d->device_index);
    snprintf(two, sizeof two, "%s,%s", here, here);
    fcl_train_result one, many;
    fcl_train_options a = options("one-device", 3), b = options("two-devices", 3);
    a.episodes = b.episodes = 6;
    a.val = b.val = g_base, a.val_episodes = b.val_episodes = 3;
    b.devices = two;
    TH_OK(fcl_train(ctx, &a, &one));
    TH_OK(fcl_train(ctx, &b, &many));
    const char *files[] = {"last.safetensors", "best.safetensors"};
    for (int i = 0; i < 2; i++) {
        char pa[300], pb[300];
        snprintf(pa, sizeof pa, "%s/%s", a.run_dir, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b.run_dir, files[i]);
        assert_same_tensors(pa, pb);
    }
    assert_true(one.last.loss == many.last.loss && one.last.train_acc == many.last.train_acc);
    assert_true(one.last.val_acc == many.last.val_acc && one.last.val_ci95 == many.last.val_ci95);
}

/* What `fewcl plan --devices L,L --meta-batch M` says each replica holds (fewcl_plan: the
 * trainer's schedule for replica 1, a replica's share for replica 2) is what each replica's
 * context reserves in the run, to the byte, over two epochs with validation (the second
 * epoch's steps and validation rewind to the planned ones). */
static void test_each_replica_reserves_its_plan(void **state) {
    (void)state;
    const char *exact_buffers = getenv("FEWCL_ARENA_CHUNK"); /* oclgrind: no layouts */
    if (exact_buffers && *exact_buffers) skip();
    fewcl_context *ctx;
    TH_OK(fewcl_context_create(NULL, &ctx));
    const fewcl_device_info *d = fewcl_context_device(ctx);
    char two[160];
    snprintf(two, sizeof two, "%d:%d,%d:%d", d->platform_index, d->device_index, d->platform_index,
             d->device_index);
    fcl_train_options o = options("replicas-plan", 3);
    o.episodes = 6, o.val = g_base, o.val_episodes = 3, o.devices = two;
    fcl_train_result r;
    TH_OK(fcl_train(ctx, &o, &r));
    /* the public plan of the same configuration, as `fewcl plan` makes it */
    fcl_model_config c = small_config();
    fewcl_model_config pc;
    fewcl_model_config_default(&pc, sizeof pc);
    pc.image_size = c.image_size, pc.n_way = c.n_way, pc.k_shot = c.k_shot;
    pc.n_query = c.n_query, pc.reduced_dim = c.reduced_dim, pc.heads = c.heads;
    pc.dim_head = c.dim_head, pc.mlp_dim = c.mlp_dim;
    uint64_t planned[2];
    for (int helper = 0; helper < 2; helper++) {
        fewcl_plan_params p;
        fewcl_plan_params_default(&p, sizeof p);
        p.meta_batch = 3, p.replica = helper;
        fewcl_plan_result pr = {.struct_size = sizeof pr};
        TH_OK(fewcl_plan(ctx, &pc, &p, &pr));
        assert_true(pr.fits);
        planned[helper] = pr.reserved_bytes;
    }
    print_message("  replica 1: planned %llu, reserved %zu; replica 2: planned %llu, reserved "
                  "%zu\n",
                  (unsigned long long)planned[0], r.replica_reserved[0],
                  (unsigned long long)planned[1], r.replica_reserved[1]);
    assert_int_equal(r.replicas, 2);
    assert_int_equal(r.replica_footprint[0], planned[0]);
    assert_int_equal(r.replica_reserved[0], planned[0]);
    assert_int_equal(r.replica_footprint[1], planned[1]);
    assert_int_equal(r.replica_reserved[1], planned[1]);
    assert_true(planned[1] < planned[0]); /* no optimiser state, no update */
    fewcl_context_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_replay_equals_training_forwards),
        cmocka_unit_test(test_every_split_gives_the_same_state),
        cmocka_unit_test(test_trainer_stop_resume_and_refusals),
        cmocka_unit_test(test_trainer_reserves_the_planned_footprint),
        cmocka_unit_test(test_m1_is_the_train_step_loop),
        cmocka_unit_test(test_two_devices_train_as_one),
        cmocka_unit_test(test_each_replica_reserves_its_plan),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
