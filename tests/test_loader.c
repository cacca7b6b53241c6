/* Episode loader: the draw (distinct classes and images, reproducible), identical episodes for
 * any number of workers, blocks (a worker's share of meta-batch steps), the eval tensor equal
 * to the image pipeline, augmentation, the cache, and bad images (named, or skipped with a
 * warning). Data: a small demo dataset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/demo.h"
#include "data/image.h"
#include "data/loader.h"
#include "harness.h"

static char g_dir[64];
static fcl_dataset *g_data;

static int setup(void **state) {
    snprintf(g_dir, sizeof g_dir, "/tmp/fewcl-loader-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    fcl_demo_options o = {
        .out_dir = g_dir, .images_per_class = 6, .size = 28, .min_faces = 8, .seed = 3};
    fcl_demo_summary s;
    char path[128];
    snprintf(path, sizeof path, "%s/val.json", g_dir);
    if (fcl_demo_render(&o, &s) != FEWCL_OK ||
        fcl_dataset_load_json(path, NULL, &g_data) != FEWCL_OK) {
        fprintf(stderr, "%s\n", fewcl_last_error());
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    fcl_dataset_free(g_data);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_draw(void **state) {
    enum { N = 5, PER = 4 };
    int classes[N], images[N * PER], again_c[N], again_i[N * PER];
    fcl_episode_draw(g_data, N, PER, 11, 7, classes, images);
    fcl_episode_draw(g_data, N, PER, 11, 7, again_c, again_i);
    assert_memory_equal(classes, again_c, sizeof classes);
    assert_memory_equal(images, again_i, sizeof images);
    for (int c = 0; c < N; c++) {
        for (int d = 0; d < c; d++)
            assert_int_not_equal(classes[c], classes[d]);
        int lo = g_data->class_start[classes[c]], hi = lo + g_data->class_count[classes[c]];
        for (int i = 0; i < PER; i++) {
            int idx = images[c * PER + i];
            assert_true(idx >= lo && idx < hi); /* the image belongs to its class */
            for (int j = 0; j < i; j++)
                assert_int_not_equal(idx, images[c * PER + j]);
        }
    }
    fcl_episode_draw(g_data, N, PER, 11, 8, again_c, again_i);
    assert_false(memcmp(images, again_i, sizeof images) == 0); /* another episode */
}

static fcl_loader_options options(int workers, int augment) {
    return (fcl_loader_options){.data = g_data,
                                .n_way = 3,
                                .k_shot = 2,
                                .n_query = 2,
                                .image_size = 16,
                                .augment = augment,
                                .seed = 5,
                                .workers = workers,
                                .prefetch = 3,
                                .cache_bytes = 1 << 20};
}

static float *episodes(fcl_loader_options o, int count, int *classes) {
    fcl_loader *l;
    TH_OK(fcl_loader_create(&o, &l));
    size_t n = fcl_loader_episode_floats(l);
    float *x = malloc(n * count * sizeof *x);
    for (int e = 0; e < count; e++)
        TH_OK(fcl_loader_next(l, x + n * e, classes + 3 * e));
    fcl_loader_destroy(l);
    return x;
}

static void test_same_episodes_for_any_worker_count(void **state) {
    size_t n = 3 * 4 * 3 * 16 * 16;
    for (int augment = 0; augment < 2; augment++) {
        int c0[12], c2[12];
        float *a = episodes(options(0, augment), 4, c0), *b = episodes(options(2, augment), 4, c2);
        assert_memory_equal(c0, c2, sizeof c0);
        assert_memory_equal(a, b, n * 4 * sizeof *a);
        for (size_t i = 0; i < n * 4; i++)
            assert_true(isfinite(a[i]));
        free(a), free(b);
    }
}

/* Blocks (a worker's share of meta-batch steps): first 3, blocks of 2 every 5 deliver episodes
 * 3, 4, 8, 9, 13, 14, byte for byte those of a sequential loader, with 0 and 2 workers. */
static void test_blocks_are_the_sequential_episodes(void **state) {
    size_t n = 3 * 4 * 3 * 16 * 16;
    int cs[15 * 3], cb[6 * 3];
    float *seq = episodes(options(0, 1), 15, cs);
    const long want[6] = {3, 4, 8, 9, 13, 14};
    for (int workers = 0; workers <= 2; workers += 2) {
        fcl_loader_options o = options(workers, 1);
        o.first_episode = 3, o.block_len = 2, o.block_period = 5;
        float *b = episodes(o, 6, cb);
        for (int k = 0; k < 6; k++) {
            assert_memory_equal(b + n * k, seq + n * want[k], n * sizeof *b);
            assert_memory_equal(cb + 3 * k, cs + 3 * want[k], 3 * sizeof *cb);
        }
        free(b);
    }
    fcl_loader_options bad = options(0, 0);
    bad.block_len = 3, bad.block_period = 2; /* blocks overlapping the next */
    fcl_loader *l;
    assert_int_equal(fcl_loader_create(&bad, &l), FEWCL_ERR_INTERNAL);
    free(seq);
}

static void test_eval_tensor_is_the_image_pipeline(void **state) {
    int classes[3];
    float *x = episodes(options(1, 0), 1, classes);
    int images[3 * 4], cls[3];
    fcl_episode_draw(g_data, 3, 4, 5, 0, cls, images);
    size_t per = 3 * 16 * 16;
    for (int i = 0; i < 12; i += 5) { /* a few positions, support and query */
        fcl_image img, small;
        TH_OK(fcl_image_load(g_data->paths[images[i]], &img));
        TH_OK(fcl_image_resize_shorter(&img, 16, &small));
        float *want = malloc(per * sizeof *want);
        TH_OK(fcl_image_to_tensor(&small, 16, want));
        assert_memory_equal(x + i * per, want, per * sizeof *want);
        free(want);
        fcl_image_free(&small), fcl_image_free(&img);
    }
    free(x);
}

static void test_augmentation_changes_the_pixels(void **state) {
    int c[6];
    float *plain = episodes(options(1, 0), 2, c), *aug = episodes(options(1, 1), 2, c);
    size_t n = 2 * 3 * 4 * 3 * 16 * 16, same = 0;
    for (size_t i = 0; i < n; i++)
        same += plain[i] == aug[i];
    assert_true(same < n / 2);
    free(plain), free(aug);
}

static void test_cache_avoids_decoding_again(void **state) {
    fcl_loader_options o = options(0, 1);
    o.seed = 9;
    fcl_loader *l;
    TH_OK(fcl_loader_create(&o, &l));
    float *x = malloc(fcl_loader_episode_floats(l) * sizeof *x);
    for (int e = 0; e < 30; e++)
        TH_OK(fcl_loader_next(l, x, NULL));
    fcl_loader_stats st = fcl_loader_stats_get(l), *s = &st;
    /* 30 episodes x 12 images from 52 classes x 6 images: most images repeat. */
    assert_true(s->images_decoded <= g_data->n_images);
    assert_true(s->cache_hits >= 30 * 12 - g_data->n_images);
    fcl_loader_destroy(l);
    free(x);
}

static void test_bad_images(void **state) {
    /* Break every image of the first drawn class's first image, then load episode 0. */
    int classes[3], images[12];
    fcl_episode_draw(g_data, 3, 4, 5, 0, classes, images);
    const char *victim = g_data->paths[images[0]];
    char backup[600];
    snprintf(backup, sizeof backup, "%s.bak", victim);
    assert_int_equal(rename(victim, backup), 0);
    FILE *f = fopen(victim, "w");
    fputs("not a png", f);
    fclose(f);
    int c[3];
    fcl_loader_options o = options(2, 0);
    fcl_loader *l;
    TH_OK(fcl_loader_create(&o, &l));
    float *x = malloc(fcl_loader_episode_floats(l) * sizeof *x);
    assert_int_equal(fcl_loader_next(l, x, c), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), victim)); /* named, from the worker thread */
    fcl_loader_destroy(l);
    o.skip_bad = 1;
    TH_OK(fcl_loader_create(&o, &l));
    TH_OK(fcl_loader_next(l, x, c));
    assert_int_equal(fcl_loader_stats_get(l).skipped, 1);
    fcl_loader_destroy(l);
    free(x);
    assert_int_equal(rename(backup, victim), 0);
}

static void test_impossible_episode(void **state) {
    fcl_loader_options o = options(0, 0);
    o.k_shot = 5; /* 5 + 2 > 6 images per class */
    fcl_loader *l;
    assert_int_equal(fcl_loader_create(&o, &l), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "fewer than k_shot + n_query = 7"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draw),
        cmocka_unit_test(test_same_episodes_for_any_worker_count),
        cmocka_unit_test(test_blocks_are_the_sequential_episodes),
        cmocka_unit_test(test_eval_tensor_is_the_image_pipeline),
        cmocka_unit_test(test_augmentation_changes_the_pixels),
        cmocka_unit_test(test_cache_avoids_decoding_again),
        cmocka_unit_test(test_bad_images),
        cmocka_unit_test(test_impossible_episode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
