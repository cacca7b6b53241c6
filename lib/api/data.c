/* Public API (API 2): datasets, image dimensions and the glyph data of `fewcl demo`, over
 * lib/data. */
#include <stdio.h>
#include <stdlib.h>

#include "../data/demo.h"
#include "../data/image.h"
#include "../data/loader.h"
#include "api.h"

fewcl_status fewcl_dataset_open(const char *path, const char *data_root, fewcl_dataset **out) {
    API_REQUIRE(out, "fewcl_dataset_open", "out");
    *out = NULL;
    API_REQUIRE(path, "fewcl_dataset_open", "path");
    fewcl_dataset *h = calloc(1, sizeof *h);
    if (!h) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "fewcl_dataset_open: out of host memory");
    fewcl_status s = fcl_dataset_open(path, data_root, &h->d);
    if (s != FEWCL_OK) {
        free(h);
        return s;
    }
    *out = h;
    return FEWCL_OK;
}

fewcl_status fewcl_dataset_get_info(const fewcl_dataset *ds, fewcl_dataset_info *info) {
    API_REQUIRE(ds, "fewcl_dataset_get_info", "the dataset");
    API_REQUIRE(info, "fewcl_dataset_get_info", "info");
    FCL_TRY(api_check_size("fewcl_dataset_get_info", "info", info->struct_size));
    fewcl_dataset_info full = {sizeof full, ds->d->n_classes, ds->d->n_images, ""};
    snprintf(full.source, sizeof full.source, "%s", ds->d->source);
    api_copy_out(info, info->struct_size, &full, sizeof full);
    return FEWCL_OK;
}

const char *fewcl_dataset_image_path(const fewcl_dataset *ds, int i) {
    return ds && i >= 0 && i < ds->d->n_images ? ds->d->paths[i] : NULL;
}

fewcl_status fewcl_dataset_episode(const fewcl_dataset *ds, int n_way, int k_shot, int n_query,
                                   uint64_t seed, long episode, int *classes, int *images) {
    const char *fn = "fewcl_dataset_episode";
    API_REQUIRE(ds, fn, "the dataset");
    API_REQUIRE(classes, fn, "classes");
    API_REQUIRE(images, fn, "images");
    if (n_way < 1 || k_shot < 1 || n_query < 0 || episode < 0)
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: episode %ld of %d-way %d-shot %d-query (n_way, k_shot >= 1, "
                        "n_query, episode >= 0)",
                        fn, episode, n_way, k_shot, n_query);
    FCL_TRY(fcl_dataset_check_episode(ds->d, n_way, k_shot, n_query));
    /* The loader's own draw (lib/data/loader.c), which fewcl_test's loader makes per episode. */
    fcl_episode_draw(ds->d, n_way, k_shot + n_query, seed, episode, classes, images);
    return FEWCL_OK;
}

void fewcl_dataset_destroy(fewcl_dataset *ds) {
    if (!ds) return;
    fcl_dataset_free(ds->d);
    free(ds);
}

fewcl_status fewcl_image_dimensions(const char *path, int *width, int *height) {
    API_REQUIRE(path, "fewcl_image_dimensions", "path");
    API_REQUIRE(width, "fewcl_image_dimensions", "width");
    API_REQUIRE(height, "fewcl_image_dimensions", "height");
    fcl_image im = {0};
    FCL_TRY(fcl_image_load(path, &im));
    *width = im.w, *height = im.h;
    fcl_image_free(&im);
    return FEWCL_OK;
}

fewcl_status fewcl_glyph_params_default(fewcl_glyph_params *p, size_t struct_size) {
    API_REQUIRE(p, "fewcl_glyph_params_default", "p");
    FCL_TRY(api_check_size("fewcl_glyph_params_default", "p", struct_size));
    fewcl_glyph_params full = {
        .struct_size = sizeof full, .images_per_class = 20, .size = 84, .min_faces = 12, .seed = 1};
    api_copy_out(p, struct_size, &full, sizeof full);
    return FEWCL_OK;
}

fewcl_status fewcl_glyph_render(const fewcl_glyph_params *params, fewcl_glyph_summary *r) {
    const char *fn = "fewcl_glyph_render";
    API_REQUIRE(params, fn, "the parameters");
    FCL_TRY(api_check_size(fn, "the parameters", params->struct_size));
    if (r) FCL_TRY(api_check_size(fn, "the summary", r->struct_size));
    fewcl_glyph_params p;
    fewcl_glyph_params_default(&p, sizeof p);
    api_copy_in(&p, sizeof p, params, params->struct_size);
    API_REQUIRE(p.out_dir, fn, "out_dir");
    fcl_demo_options o = {.out_dir = p.out_dir,
                          .font_dir = p.font_dir,
                          .images_per_class = p.images_per_class,
                          .size = p.size,
                          .min_faces = p.min_faces,
                          .seed = p.seed};
    fcl_demo_summary sum;
    FCL_TRY(fcl_demo_render(&o, &sum));
    if (r) {
        fewcl_glyph_summary full = {
            sizeof full, sum.faces, {sum.classes[0], sum.classes[1], sum.classes[2]}, sum.images};
        api_copy_out(r, r->struct_size, &full, sizeof full);
    }
    return FEWCL_OK;
}

int fewcl_glyph_data_version(void) { return FCL_DEMO_DATA_VERSION; }
