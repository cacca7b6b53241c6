/* Model configuration: the feature sizes of docs/maths.md §2.6 and §4.1, and validation
 * messages. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "nn/backbone.h"

static int feature_dim(fcl_backbone b, int size) {
    fcl_model_config c = fcl_config_default();
    c.backbone = b;
    c.image_size = size;
    int ch, h, w;
    TH_OK(fcl_config_feature_shape(&c, &ch, &h, &w));
    return ch * h * w;
}

static void test_feature_dims_of_the_reference(void **state) {
    assert_int_equal(feature_dim(FCL_CONV4, 84), 1600); /* 64·5·5 */
    assert_int_equal(feature_dim(FCL_CONV6, 84), 1600);
    assert_int_equal(feature_dim(FCL_CONV4, 64), 1024);      /* CIFAR: 64·4·4 */
    assert_int_equal(feature_dim(FCL_RESNET18, 224), 25088); /* 512·7·7 */
    assert_int_equal(feature_dim(FCL_RESNET34, 224), 25088);
    assert_int_equal(feature_dim(FCL_RESNET18, 112), 8192); /* 512·4·4 */
    assert_int_equal(feature_dim(FCL_RESNET18, 84), 4608);  /* 512·3·3 */
}

static void test_working_dim(void **state) {
    fcl_model_config c = fcl_config_default();
    assert_int_equal(fcl_config_working_dim(&c, 1600), 512); /* projection active on Conv4 */
    assert_int_equal(fcl_config_working_dim(&c, 512), 512);
    assert_int_equal(fcl_config_working_dim(&c, 256), 256); /* D <= 512: no projection */
    c.reduced_dim = 0;
    assert_int_equal(fcl_config_working_dim(&c, 25088), 25088);
    fcl_config_set_method(&c, FCL_METHOD_FSCT);
    c.reduced_dim = 512;
    assert_int_equal(fcl_config_working_dim(&c, 1600), 1600); /* fsct has no projection */
    assert_int_equal(c.heads, 8);
    assert_int_equal(c.depth, 1);
}

static void test_validation(void **state) {
    fcl_model_config c = fcl_config_default();
    TH_OK(fcl_config_validate(&c));
    c.n_way = 0;
    assert_int_equal(fcl_config_validate(&c), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "--n-way 0"));
    c = fcl_config_default();
    c.image_size = 12;
    assert_int_equal(fcl_config_validate(&c), FEWCL_ERR_ARGUMENT);
    c.image_size = 15;
    assert_int_equal(fcl_config_validate(&c), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "too small for conv4"));
    c.image_size = 16;
    TH_OK(fcl_config_validate(&c));
    c.backbone = FCL_RESNET34; /* strided convolutions with padding never empty the map */
    c.image_size = 8;
    TH_OK(fcl_config_validate(&c));
    c.image_size = 7;
    assert_int_equal(fcl_config_validate(&c), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "--image-size 7 is out of range"));
}

/* Architecture differences compare the projection as it acts: at conv4 16 px (D = 64) a
 * reduced_dim of 0, 64 or 512 all mean none; 32 is a real projection. */
static void test_architecture_diff_projection(void **state) {
    (void)state;
    fcl_model_config a = fcl_config_default(), b;
    a.image_size = 16;
    char buf[256];
    int none[] = {0, 64, 512, 4096};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            a.reduced_dim = none[i], b = a, b.reduced_dim = none[j];
            assert_int_equal(fcl_config_architecture_diff(&a, &b, buf, sizeof buf), 0);
        }
    b = a, b.reduced_dim = 32;
    assert_int_equal(fcl_config_architecture_diff(&a, &b, buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "--reduced-dim 4096 vs 32"));
    /* At 84 px (D = 1600) 512 and 1600 differ. */
    a.image_size = 84, a.reduced_dim = 512, b = a, b.reduced_dim = 1600;
    assert_int_equal(fcl_config_architecture_diff(&a, &b, buf, sizeof buf), 1);
}

static void test_names(void **state) {
    assert_int_equal(fcl_backbone_parse("resnet34"), FCL_RESNET34);
    assert_int_equal(fcl_backbone_parse("resnet50"), -1);
    assert_int_equal(fcl_mahalanobis_parse("lowrank"), FCL_MAHA_LOWRANK);
    assert_string_equal(fcl_checkpointing_name(FCL_CKPT_BLOCKS), "blocks");
    assert_int_equal(fcl_method_parse("fsct"), FCL_METHOD_FSCT);
    assert_int_equal(fcl_variant_parse("softmax"), FCL_VARIANT_SOFTMAX);
}

/* Every entry of the backbone table: its name and id map to each other, its smallest image
 * size (found from its feature shape) validates and one less does not; an id outside the table
 * is an error listing the names. */
static void test_backbone_table(void **state) {
    char names[256];
    fcl_backbone_list(names, sizeof names);
    assert_true(fcl_backbone_count() >= FCL_N_BACKBONES);
    for (int id = 0; id < fcl_backbone_count(); id++) {
        const fcl_backbone_ops *e = fcl_backbone_entry(id);
        assert_int_equal(fcl_backbone_parse(e->name), id);
        assert_string_equal(fcl_backbone_name((fcl_backbone)id), e->name);
        assert_non_null(strstr(names, e->name));
        fcl_model_config c = fcl_config_default();
        c.backbone = (fcl_backbone)id;
        const int least = fcl_backbone_min_image_size(e);
        c.image_size = least > 8 ? least : 8; /* --image-size's own minimum */
        TH_OK(fcl_config_validate(&c));
        if (least > 8) {
            c.image_size = least - 1;
            assert_int_equal(fcl_config_validate(&c), FEWCL_ERR_ARGUMENT);
            char want[64];
            snprintf(want, sizeof want, "use at least %d", least);
            assert_non_null(strstr(fewcl_last_error(), want));
        }
    }
    /* Four 2x2 pools: 16 px is the least that leaves one pixel. */
    assert_int_equal(fcl_backbone_min_image_size(fcl_backbone_entry(FCL_CONV6)), 16);
    fcl_model_config c = fcl_config_default();
    c.backbone = (fcl_backbone)fcl_backbone_count();
    assert_int_equal(fcl_config_validate(&c), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), names));
    assert_string_equal(fcl_backbone_name(c.backbone), "unknown");
    assert_int_equal(fcl_backbone_parse(NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feature_dims_of_the_reference),
        cmocka_unit_test(test_working_dim),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_backbone_table),
        cmocka_unit_test(test_architecture_diff_projection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
