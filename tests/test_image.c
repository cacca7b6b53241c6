/* Images: decoding against PIL, PIL-exact bilinear resampling, the eval transform against
 * torchvision, and corrupt files (named, never a crash). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "harness.h"

static fcl_image load_fixture(const char *name) {
    char path[1024];
    const char *dir = getenv("FEWCL_FIXTURE_DIR");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : FEWCL_TEST_FIXTURES, name);
    fcl_image img;
    TH_OK(fcl_image_load(path, &img));
    return img;
}

/* Pixels of an image against a fixture of shape [h, w, 3]; returns the largest difference. */
static int max_pixel_diff(const fcl_image *img, struct fcl_safetensors *fx, const char *key) {
    size_t n;
    const float *want = th_fixture_data(fx, key, &n);
    assert_int_equal(n, (size_t)img->w * img->h * 3);
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)img->rgb[i] - (int)want[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

static void test_png_decodes_like_pil(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_image");
    fcl_image rgb = load_fixture("image_rgb.png"), grey = load_fixture("image_grey.png");
    assert_int_equal(rgb.w, 45);
    assert_int_equal(rgb.h, 29);
    assert_int_equal(max_pixel_diff(&rgb, fx, "rgb_pixels"), 0);
    assert_int_equal(max_pixel_diff(&grey, fx, "grey_pixels"), 0); /* grey → RGB */
    fcl_image_free(&grey), fcl_image_free(&rgb);
    th_fixture_free(fx);
}

static void test_jpeg_decodes_close_to_pil(void **state) {
    /* JPEG decoders may differ in IDCT and chroma upsampling: stb_image against libjpeg. */
    struct fcl_safetensors *fx = th_fixture("ops_image");
    fcl_image jpg = load_fixture("image_rgb.jpg");
    size_t n;
    const float *want = th_fixture_data(fx, "jpg_pixels", &n);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += fabs(jpg.rgb[i] - want[i]);
    double mean = sum / n;
    print_message("stb_image vs PIL on a JPEG: mean difference %.3f grey levels\n", mean);
    assert_true(mean < 1.0); /* measured 0.078; a real decoding bug costs tens of levels */
    fcl_image_free(&jpg);
    th_fixture_free(fx);
}

static void test_resize_matches_pil_exactly(void **state) {
    struct fcl_safetensors *fx = th_fixture("ops_image");
    fcl_image rgb = load_fixture("image_rgb.png");
    struct {
        int w, h;
        const char *key;
    } cases[] = {
        {13, 21, "rgb_resize_13x21"}, {90, 40, "rgb_resize_90x40"}, {45, 10, "rgb_resize_45x10"}};
    for (int i = 0; i < 3; i++) {
        fcl_image out;
        TH_OK(fcl_image_resize(&rgb, cases[i].w, cases[i].h, &out));
        int d = max_pixel_diff(&out, fx, cases[i].key);
        if (d != 0) {
            fprintf(stderr, "%s: max difference %d grey levels\n", cases[i].key, d);
            fail();
        }
        fcl_image_free(&out);
    }
    fcl_image_free(&rgb);
    th_fixture_free(fx);
}

static void check_eval(const char *file, int size, const char *key) {
    struct fcl_safetensors *fx = th_fixture("ops_image");
    fcl_image img = load_fixture(file), resized;
    TH_OK(fcl_image_resize_shorter(&img, size, &resized));
    float *chw = malloc(3 * size * size * sizeof *chw);
    TH_OK(fcl_image_to_tensor(&resized, size, chw));
    size_t n;
    const float *ref = th_fixture_data(fx, key, &n);
    assert_int_equal(n, (size_t)3 * size * size);
    double *want = th_to_double(ref, n);
    /* Same 8-bit pixels, then (v/255 − mean)/std in float32 on both sides. */
    th_assert_close(key, chw, want, n, TH_EW_ATOL, TH_EW_RTOL);
    free(want), free(chw);
    fcl_image_free(&resized), fcl_image_free(&img);
    th_fixture_free(fx);
}

static void test_eval_transform_matches_torchvision(void **state) {
    check_eval("image_rgb.png", 16, "rgb_eval16");   /* landscape: crop offsets in x */
    check_eval("image_grey.png", 21, "grey_eval21"); /* portrait, odd margin: round half even */
}

static void test_corrupt_images_are_named(void **state) {
    fcl_image img;
    assert_int_equal(fcl_image_load("/nonexistent/cat.jpg", &img), FEWCL_ERR_IO);
    assert_non_null(strstr(fewcl_last_error(), "/nonexistent/cat.jpg"));
    const unsigned char junk[] = "this is not an image at all";
    assert_int_equal(fcl_image_decode("junk.jpg", junk, sizeof junk, &img), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "junk.jpg"));
    /* A PNG header claiming 100000 x 100000 pixels is refused before decoding. */
    unsigned char png[] = {0x89, 'P',  'N', 'G', '\r', '\n', 0x1a, '\n', 0,    0, 0,
                           13,   'I',  'H', 'D', 'R',  0,    1,    0x86, 0xa0, 0, 1,
                           0x86, 0xa0, 8,   2,   0,    0,    0,    0,    0,    0, 0};
    assert_int_equal(fcl_image_decode("huge.png", png, sizeof png, &img), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "huge.png"));
}

static void test_random_corruption_never_crashes(void **state) {
    char path[1024];
    const char *dir = getenv("FEWCL_FIXTURE_DIR");
    const char *files[] = {"image_rgb.png", "image_rgb.jpg"};
    uint64_t rng = 4242;
    int trials = th_small() ? 50 : 600;
    for (int f = 0; f < 2; f++) {
        snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : FEWCL_TEST_FIXTURES, files[f]);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        unsigned char buf[8192];
        size_t len = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        for (int t = 0; t < trials; t++) {
            unsigned char *b = malloc(len);
            memcpy(b, buf, len);
            for (int k = 0; k < 1 + t % 8; k++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                b[(rng >> 33) % len] = (unsigned char)(rng >> 52);
            }
            size_t cut = t % 4 == 0 ? (size_t)((rng >> 17) % len) : len;
            fcl_image img;
            if (fcl_image_decode("fuzz", b, cut, &img) == FEWCL_OK) {
                assert_true(img.w > 0 && img.h > 0);
                fcl_image_free(&img);
            }
            free(b);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_decodes_like_pil),
        cmocka_unit_test(test_jpeg_decodes_close_to_pil),
        cmocka_unit_test(test_resize_matches_pil_exactly),
        cmocka_unit_test(test_eval_transform_matches_torchvision),
        cmocka_unit_test(test_corrupt_images_are_named),
        cmocka_unit_test(test_random_corruption_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
