/* Few-shot classification with libfewcl: enroll classes from folders of example images, then
 * classify images. Built against an installed fewcl with pkg-config only:
 *
 *     cc classify.c $(pkg-config --cflags --libs fewcl) -o classify
 *     ./classify best.safetensors examples/ photo1.jpg photo2.jpg
 *
 * examples/ holds one folder per class with the same number of images in each; the program
 * prints one line per image: path, class, probability. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fewcl/fewcl.h>

#define MAX_CLASSES 64
#define MAX_SHOTS 64

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted non-hidden entries of a folder (at most cap), as malloc'd names. */
static int list(const char *dir, char **names, int cap) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; n < cap && (e = readdir(d));)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    return n;
}

static int fail(const char *what) {
    fprintf(stderr, "classify: %s: %s\n", what, fewcl_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: classify WEIGHTS SUPPORT_DIR IMAGE...\n");
        return 2;
    }
    fewcl_context *ctx;
    fewcl_model *model;
    if (fewcl_context_create(NULL, &ctx) != FEWCL_OK) return fail("device");
    if (fewcl_model_load(ctx, argv[1], NULL, &model) != FEWCL_OK) return fail(argv[1]);
    fewcl_model_config cfg;
    fewcl_model_config_default(&cfg, sizeof cfg);
    fewcl_model_get_config(model, &cfg);
    const int S = cfg.image_size;
    const size_t image = (size_t)3 * S * S;

    /* Support images, class by class: the same number (the smallest folder's) from each. */
    char *classes[MAX_CLASSES], *shots[MAX_CLASSES][MAX_SHOTS], path[4096];
    int n = list(argv[2], classes, MAX_CLASSES), k = MAX_SHOTS, counts[MAX_CLASSES];
    if (n < 1) return fprintf(stderr, "classify: no class folders in %s\n", argv[2]), 1;
    for (int c = 0; c < n; c++) {
        snprintf(path, sizeof path, "%s/%s", argv[2], classes[c]);
        int got = list(path, shots[c], MAX_SHOTS);
        if (got < k) k = got;
    }
    if (k < 1) return fprintf(stderr, "classify: a class folder has no images\n"), 1;
    float *supports = malloc((size_t)n * k * image * sizeof(float));
    for (int c = 0; c < n; c++) {
        counts[c] = k;
        for (int i = 0; i < k; i++) {
            snprintf(path, sizeof path, "%s/%s/%s", argv[2], classes[c], shots[c][i]);
            if (fewcl_image_load(path, S, supports + ((size_t)c * k + i) * image) != FEWCL_OK)
                return fail(path);
        }
    }
    fewcl_enrollment *enrolled;
    fewcl_images sup = {supports, n * k, 3, S, S};
    if (fewcl_enroll(model, &sup, counts, n, &enrolled) != FEWCL_OK) return fail("enroll");

    /* The queries in one batch; a single image is a batch of one. */
    int count = argc - 3, *labels = malloc((size_t)count * sizeof(int));
    float *queries = malloc((size_t)count * image * sizeof(float));
    float *probs = malloc((size_t)count * n * sizeof(float));
    for (int q = 0; q < count; q++)
        if (fewcl_image_load(argv[3 + q], S, queries + (size_t)q * image) != FEWCL_OK)
            return fail(argv[3 + q]);
    fewcl_images batch = {queries, count, 3, S, S};
    if (fewcl_classify(enrolled, &batch, NULL, probs, labels) != FEWCL_OK) return fail("classify");
    for (int q = 0; q < count; q++)
        printf("%s\t%s\t%.4f\n", argv[3 + q], classes[labels[q]],
               probs[(size_t)q * n + labels[q]]);
    free(probs), free(queries), free(labels);
    free(supports);
    fewcl_enrollment_destroy(enrolled);
    fewcl_model_destroy(model);
    fewcl_context_destroy(ctx);
    return 0;
}
