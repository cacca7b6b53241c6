/* Public API: images, embeddings, enrolment and classification (evaluation mode). Each call
 * uploads its images, runs the backbone and the head's evaluation pieces (fcl_head_embed,
 * fcl_head_enroll, fcl_head_classify) and frees everything but what it returns. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "../data/image.h"
#include "api.h"
#include "fewcl/model.h"

fewcl_status fewcl_image_load(const char *path, int size, float *chw) {
    API_REQUIRE(path, "fewcl_image_load", "path");
    API_REQUIRE(chw, "fewcl_image_load", "the output");
    if (size < 1 || size > FCL_IMAGE_MAX_SIDE)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "fewcl_image_load: image size %d out of 1..%d", size,
                        FCL_IMAGE_MAX_SIDE);
    fcl_image raw, resized;
    FCL_TRY(fcl_image_load(path, &raw));
    fewcl_status s = fcl_image_resize_shorter(&raw, size, &resized);
    fcl_image_free(&raw);
    if (s == FEWCL_OK) s = fcl_image_to_tensor(&resized, size, chw), fcl_image_free(&resized);
    return s;
}

fewcl_status fewcl_image_prepare_rgb8(const uint8_t *rgb, int width, int height, size_t stride,
                                      int size, float *chw) {
    const char *fn = "fewcl_image_prepare_rgb8";
    API_REQUIRE(rgb, fn, "the pixels");
    API_REQUIRE(chw, fn, "the output");
    if (width < 1 || height < 1 || width > FCL_IMAGE_MAX_SIDE || height > FCL_IMAGE_MAX_SIDE ||
        size < 1 || size > FCL_IMAGE_MAX_SIDE)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: a %dx%d image to size %d: sides must be 1..%d", fn,
                        width, height, size, FCL_IMAGE_MAX_SIDE);
    size_t row = (size_t)width * 3;
    if (!stride) stride = row;
    if (stride < row)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: stride %zu is less than 3 x width %d", fn, stride,
                        width);
    fcl_image img = {width, height, malloc(row * (size_t)height)}, resized;
    if (!img.rgb) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    for (int y = 0; y < height; y++)
        memcpy(img.rgb + row * (size_t)y, rgb + stride * (size_t)y, row);
    fewcl_status s = fcl_image_resize_shorter(&img, size, &resized);
    fcl_image_free(&img);
    if (s == FEWCL_OK) s = fcl_image_to_tensor(&resized, size, chw), fcl_image_free(&resized);
    return s;
}

/* Checks a batch against the model and uploads it as x [count, 3, S, S]. */
static fewcl_status upload(const char *fn, const char *what, fewcl_model *m, const fewcl_images *im,
                           fcl_tensor *x) {
    API_REQUIRE(im, fn, what);
    API_REQUIRE(im->data, fn, what);
    int S = m->m->cfg.image_size;
    if (im->count < 1 || im->count > INT_MAX / (3 * S * S))
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: %s: %d images (need 1..%d)", fn, what, im->count,
                        INT_MAX / (3 * S * S));
    if (im->channels != 3 || im->height != S || im->width != S)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: %s are %dx%dx%d (channels x height x width) but the model takes "
                        "3x%dx%d images: prepare them with fewcl_image_load(path, %d, ...)",
                        fn, what, im->channels, im->height, im->width, S, S, S);
    FCL_TRY(fcl_tensor_alloc(m->ctx, x, FCL_MEM_ACTIVATION, 4, (int[]){im->count, 3, S, S}));
    fewcl_status s = fcl_tensor_upload(m->ctx, x, im->data);
    if (s != FEWCL_OK) fcl_tensor_free(m->ctx, x);
    return s;
}

fewcl_status fewcl_embed(fewcl_model *m, const fewcl_images *images, float *embeddings) {
    const char *fn = "fewcl_embed";
    API_REQUIRE(m, fn, "the model");
    API_REQUIRE(embeddings, fn, "the output");
    fewcl_context *ctx = m->ctx;
    fcl_tensor x, e = {0};
    FCL_TRY(upload(fn, "the images", m, images, &x));
    const fcl_tensor *features;
    fcl_backbone_no_backward(m->m->backbone);
    fewcl_status s = fcl_backbone_forward(ctx, m->m->backbone, &x, 0, &features);
    if (s == FEWCL_OK && m->m->cfg.method == FCL_METHOD_FSCT) {
        s = fcl_tensor_download(ctx, features, embeddings); /* no projection */
    } else if (s == FEWCL_OK) {
        s = fcl_tensor_alloc2(ctx, &e, FCL_MEM_ACTIVATION, images->count, m->m->working_dim);
        if (s == FEWCL_OK) s = fcl_head_embed(ctx, m->m->head, features, &e);
        if (s == FEWCL_OK) s = fcl_tensor_download(ctx, &e, embeddings);
        fcl_tensor_free(ctx, &e);
    }
    fcl_backbone_release(ctx, m->m->backbone);
    fcl_tensor_free(ctx, &x);
    return s;
}

/* Every class present and of one size; *k receives it. */
static fewcl_status check_counts(const char *fn, const int *counts, int n, int total, int *k) {
    API_REQUIRE(counts, fn, "counts");
    if (n < 1) return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: %d classes (need at least 1)", fn, n);
    long sum = 0;
    for (int c = 0; c < n; c++) {
        if (counts[c] < 1)
            return fcl_fail(FEWCL_ERR_ARGUMENT,
                            "%s: class %d has %d images: every class needs at least one", fn, c,
                            counts[c]);
        if (counts[c] != counts[0])
            return fcl_fail(FEWCL_ERR_ARGUMENT,
                            "%s: class 0 has %d images and class %d has %d: every class needs "
                            "the same number (the k of k-shot)",
                            fn, counts[0], c, counts[c]);
        sum += counts[c];
    }
    if (sum != total)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: the counts add up to %ld but %d images were given",
                        fn, sum, total);
    *k = counts[0];
    return FEWCL_OK;
}

fewcl_status fewcl_enroll(fewcl_model *m, const fewcl_images *supports, const int *counts,
                          int n_classes, fewcl_enrollment **out) {
    const char *fn = "fewcl_enroll";
    API_REQUIRE(out, fn, "out");
    *out = NULL;
    API_REQUIRE(m, fn, "the model");
    API_REQUIRE(supports, fn, "the support images");
    int k = 0;
    FCL_TRY(check_counts(fn, counts, n_classes, supports->count, &k));
    fewcl_enrollment *e = calloc(1, sizeof *e);
    if (!e) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    e->model = m;
    fewcl_context *ctx = m->ctx;
    fcl_tensor x;
    fewcl_status s = upload(fn, "the support images", m, supports, &x);
    if (s != FEWCL_OK) {
        free(e);
        return s;
    }
    const fcl_tensor *features;
    fcl_backbone_no_backward(m->m->backbone);
    s = fcl_backbone_forward(ctx, m->m->backbone, &x, 0, &features);
    if (s == FEWCL_OK) s = fcl_head_enroll(ctx, m->m->head, features, n_classes, k, &e->support);
    fcl_backbone_release(ctx, m->m->backbone);
    fcl_tensor_free(ctx, &x);
    if (s != FEWCL_OK) {
        free(e);
        return s;
    }
    *out = e;
    return FEWCL_OK;
}

fewcl_status fewcl_enrollment_get_info(const fewcl_enrollment *e, fewcl_enrollment_info *info) {
    const char *fn = "fewcl_enrollment_get_info";
    API_REQUIRE(e, fn, "the enrolment");
    API_REQUIRE(info, fn, "info");
    FCL_TRY(api_check_size(fn, "info", info->struct_size));
    fewcl_enrollment_info full = {sizeof full, e->support->n, e->support->k,
                                  fcl_head_support_uniform(e->support)};
    api_copy_out(info, info->struct_size, &full, sizeof full);
    return FEWCL_OK;
}

/* Softmax over each row of logits (in double) and the first most probable class. */
static void finish_rows(const float *logits, int rows, int n, float *probs, int *labels) {
    for (int r = 0; r < rows; r++) {
        const float *l = logits + (size_t)r * n;
        int best = 0;
        for (int c = 1; c < n; c++)
            if (l[c] > l[best]) best = c;
        if (labels) labels[r] = best;
        if (!probs) continue;
        double sum = 0;
        for (int c = 0; c < n; c++)
            sum += exp((double)l[c] - l[best]);
        for (int c = 0; c < n; c++)
            probs[(size_t)r * n + c] = (float)(exp((double)l[c] - l[best]) / sum);
    }
}

fewcl_status fewcl_classify(fewcl_enrollment *e, const fewcl_images *queries, float *logits,
                            float *probabilities, int *labels) {
    const char *fn = "fewcl_classify";
    API_REQUIRE(e, fn, "the enrolment");
    fewcl_model *m = e->model;
    fewcl_context *ctx = m->ctx;
    fcl_tensor x, out = {0};
    FCL_TRY(upload(fn, "the query images", m, queries, &x));
    int Q = queries->count, n = e->support->n;
    float *host = logits ? logits : malloc((size_t)Q * n * sizeof *host);
    if (!host) {
        fcl_tensor_free(ctx, &x);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    }
    const fcl_tensor *features;
    fcl_backbone_no_backward(m->m->backbone);
    fewcl_status s = fcl_backbone_forward(ctx, m->m->backbone, &x, 0, &features);
    if (s == FEWCL_OK) s = fcl_tensor_alloc2(ctx, &out, FCL_MEM_ACTIVATION, Q, n);
    if (s == FEWCL_OK) s = fcl_head_classify(ctx, m->m->head, e->support, features, &out);
    if (s == FEWCL_OK) s = fcl_tensor_download(ctx, &out, host);
    fcl_tensor_free(ctx, &out);
    fcl_backbone_release(ctx, m->m->backbone);
    fcl_tensor_free(ctx, &x);
    if (s == FEWCL_OK) finish_rows(host, Q, n, probabilities, labels);
    if (host != logits) free(host);
    return s;
}

void fewcl_enrollment_destroy(fewcl_enrollment *e) {
    if (!e) return;
    fcl_head_support_free(e->model->ctx, e->model->m->head, e->support);
    free(e);
}

fewcl_status fewcl_classify_episode(fewcl_model *m, const fewcl_images *supports, int n_way,
                                    int k_shot, const fewcl_images *queries, float *logits,
                                    float *probabilities, int *labels, int *uniform_weights) {
    const char *fn = "fewcl_classify_episode";
    if (n_way < 1 || k_shot < 1 || n_way > 100000 || k_shot > 100000)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "%s: %d-way %d-shot (both must be at least 1)", fn,
                        n_way, k_shot);
    int *counts = malloc((size_t)n_way * sizeof *counts);
    if (!counts) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    for (int c = 0; c < n_way; c++)
        counts[c] = k_shot;
    fewcl_enrollment *e;
    fewcl_status s = fewcl_enroll(m, supports, counts, n_way, &e);
    free(counts);
    FCL_TRY(s);
    if (uniform_weights) *uniform_weights = fcl_head_support_uniform(e->support);
    s = fewcl_classify(e, queries, logits, probabilities, labels);
    fewcl_enrollment_destroy(e);
    return s;
}
