/* The mpi.* tests' inputs (tests/mpi/run.sh): glyph data in DIR (16×16, novel.json among its
 * filelists) and two small models through the public API: DIR/a.safetensors trained for a few
 * episodes (a fresh model answers one class everywhere: every episode's accuracy would be the
 * same, and a test of their order could not fail), DIR/b.safetensors fresh (seed 2, for the
 * mismatch case). usage: mpi_fixture DIR */
#include <stdio.h>

#include "fewcl/fewcl.h"

static int fail(const char *what) {
    fprintf(stderr, "mpi_fixture: %s: %s\n", what, fewcl_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: mpi_fixture DIR\n"), 2;
    fewcl_glyph_params g;
    fewcl_glyph_params_default(&g, sizeof g);
    g.out_dir = argv[1], g.images_per_class = 6, g.size = 16, g.min_faces = 8, g.seed = 5;
    if (fewcl_glyph_render(&g, NULL) != FEWCL_OK) return fail("glyph data");
    fewcl_model_config c;
    fewcl_model_config_default(&c, sizeof c);
    c.image_size = 16, c.n_way = 3, c.k_shot = 2, c.n_query = 2;
    c.reduced_dim = 32, c.heads = 2, c.dim_head = 8, c.mlp_dim = 16;
    fewcl_context *ctx;
    if (fewcl_context_create(NULL, &ctx) != FEWCL_OK) return fail("device");
    char train[4200], run[4200], path[4400];
    snprintf(train, sizeof train, "%s/base.json", argv[1]);
    snprintf(run, sizeof run, "%s/run", argv[1]);
    fewcl_train_params tp;
    fewcl_train_params_default(&tp, sizeof tp);
    tp.model = &c, tp.train_data = train, tp.run_dir = run;
    tp.epochs = 1, tp.episodes = 10, tp.workers = 1;
    if (fewcl_train(ctx, &tp, NULL) != FEWCL_OK) return fail("training");
    fewcl_model *m;
    snprintf(path, sizeof path, "%s/last.safetensors", run);
    if (fewcl_model_load(ctx, path, NULL, &m) != FEWCL_OK) return fail(path);
    snprintf(path, sizeof path, "%s/a.safetensors", argv[1]);
    if (fewcl_model_save(m, path) != FEWCL_OK) return fail(path);
    fewcl_model_destroy(m);
    if (fewcl_model_create(ctx, &c, 2, &m) != FEWCL_OK) return fail("model");
    snprintf(path, sizeof path, "%s/b.safetensors", argv[1]);
    if (fewcl_model_save(m, path) != FEWCL_OK) return fail(path);
    fewcl_model_destroy(m);
    fewcl_context_destroy(ctx);
    return 0;
}
