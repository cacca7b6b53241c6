/* A backbone added through the backbone table (lib/nn/backbone.h) and nothing else: "toy1", one
 * 12x12 convolution of stride 4 with 8 channels and a bias, defined and registered here. The
 * configuration, the model, backward and a training step then use it as they use conv4, which
 * is what docs/architecture.md §4.2 promises a new backbone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nn/model.h"
#include "ops/conv.h"
#include "train/step.h"

#define TOY_K 12
#define TOY_STRIDE 4
#define TOY_C 8

typedef struct toy_net {
    fcl_backbone_net base;
    fcl_params *P;
    int w, b;        /* indices into P->items */
    fcl_tensor x;    /* the image's descriptor (not owned), kept for backward */
    fcl_tensor y, f; /* conv output [B, C, s, s] and its view [B, C·s·s] */
    int forwards, backwards;
    float *dfeatures; /* the last backward's dfeatures, copied to the host */
} toy_net;

static void toy_shape(const fcl_backbone_ops *self, int s, int *channels, int *side) {
    (void)self;
    *channels = TOY_C;
    *side = s < TOY_K ? 0 : (s - TOY_K) / TOY_STRIDE + 1;
}

static fewcl_status toy_create(const fcl_backbone_ops *self, fewcl_context *ctx,
                               const fcl_model_config *cfg, fcl_params *P, const char *prefix,
                               uint64_t seed, fcl_backbone_net **out) {
    toy_net *net = calloc(1, sizeof *net);
    if (!net) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "toy backbone");
    net->P = P;
    const int trainable = !cfg->freeze_backbone;
    float h[TOY_C * 3 * TOY_K * TOY_K];
    th_random(h, sizeof h / sizeof *h, seed, -0.05f, 0.05f);
    char name[64];
    fcl_tensor *t;
    snprintf(name, sizeof name, "%sconv.weight", prefix);
    fewcl_status s =
        fcl_params_add(ctx, P, name, 4, (int[]){TOY_C, 3, TOY_K, TOY_K}, trainable, &t);
    net->w = P->n - 1;
    if (s == FEWCL_OK) s = fcl_tensor_upload(ctx, t, h);
    snprintf(name, sizeof name, "%sconv.bias", prefix);
    if (s == FEWCL_OK) s = fcl_params_add(ctx, P, name, 1, (int[]){TOY_C}, trainable, &t);
    net->b = P->n - 1;
    if (s == FEWCL_OK) s = fcl_fill(ctx, t, 0.1f);
    if (s != FEWCL_OK) {
        free(net);
        return s;
    }
    *out = &net->base;
    return FEWCL_OK;
}

static void toy_release(fewcl_context *ctx, fcl_backbone_net *base) {
    toy_net *net = (toy_net *)base;
    memset(&net->f, 0, sizeof net->f);
    fcl_tensor_free(ctx, &net->y);
}

static fewcl_status toy_forward(fewcl_context *ctx, fcl_backbone_net *base, const fcl_tensor *x,
                                int training, const fcl_tensor **features) {
    toy_net *net = (toy_net *)base;
    toy_release(ctx, base);
    net->forwards++;
    const int n = x->shape[0];
    const int side = fcl_conv2d_out_size(x->shape[2], TOY_K, TOY_STRIDE, 0);
    fcl_conv2d_params cp = {TOY_STRIDE, 0, 0};
    net->x = *x;
    net->x.owner = 0;
    FCL_TRY(fcl_tensor_alloc(ctx, &net->y, FCL_MEM_ACTIVATION, 4, (int[]){n, TOY_C, side, side}));
    FCL_TRY(fcl_conv2d_forward(ctx, x, &net->P->items[net->w].value, &net->P->items[net->b].value,
                               &cp, &net->y));
    FCL_TRY(fcl_tensor_view(&net->y, 2, (int[]){n, TOY_C * side * side}, &net->f));
    *features = &net->f;
    return FEWCL_OK;
}

static fewcl_status toy_backward(fewcl_context *ctx, fcl_backbone_net *base,
                                 const fcl_tensor *dfeatures) {
    toy_net *net = (toy_net *)base;
    net->backwards++;
    free(net->dfeatures);
    net->dfeatures = th_download(dfeatures);
    fcl_tensor dy;
    fcl_conv2d_params cp = {TOY_STRIDE, 0, 0};
    fcl_param *w = &net->P->items[net->w], *b = &net->P->items[net->b];
    fewcl_status s = fcl_tensor_view(dfeatures, 4, net->y.shape, &dy);
    if (s == FEWCL_OK && w->trainable)
        s = fcl_conv2d_backward(ctx, &net->x, &w->value, &dy, &cp, NULL, &w->grad, &b->grad);
    toy_release(ctx, base);
    return s;
}

static void toy_destroy(fewcl_context *ctx, fcl_backbone_net *base) {
    toy_net *net = (toy_net *)base;
    toy_release(ctx, base);
    free(net->dfeatures);
    free(net);
}

static const fcl_backbone_ops toy = {.name = "toy1",
                                     .feature_shape = toy_shape,
                                     .create = toy_create,
                                     .forward = toy_forward,
                                     .backward = toy_backward,
                                     .release = toy_release,
                                     .destroy = toy_destroy,
                                     .torch_numel = TOY_C * 3 * TOY_K * TOY_K + TOY_C,
                                     .torch_tensors = 2};

static int toy_id = -1;

static int register_toy(void **state) {
    (void)state;
    toy_id = fcl_backbone_register(&toy);
    return toy_id >= 0 ? 0 : -1;
}

/* Names, sizes and messages come from the entry. */
static void test_configuration(void **state) {
    (void)state;
    assert_int_equal(toy_id, FCL_N_BACKBONES);
    assert_int_equal(fcl_backbone_register(&toy), -1); /* the name is taken */
    assert_non_null(strstr(fewcl_last_error(), "'toy1' is registered already"));
    assert_int_equal(fcl_backbone_parse("toy1"), toy_id);
    assert_string_equal(fcl_backbone_name((fcl_backbone)toy_id), "toy1");
    char names[256];
    fcl_backbone_list(names, sizeof names);
    assert_non_null(strstr(names, "resnet34, toy1"));

    fcl_model_config c = fcl_config_default();
    c.backbone = (fcl_backbone)toy_id;
    c.image_size = 20; /* (20 − 12) / 4 + 1 = 3 */
    int ch, h, w;
    TH_OK(fcl_config_feature_shape(&c, &ch, &h, &w));
    assert_true(ch == TOY_C && h == 3 && w == 3);
    c.image_size = 11;
    assert_int_equal(fcl_config_validate(&c), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "too small for toy1"));
    assert_non_null(strstr(fewcl_last_error(), "use at least 12"));

    /* A checkpoint's configuration names it, and reading it back finds it. */
    c.image_size = 16;
    char *json = fcl_config_to_json(&c);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"toy1\""));
    fcl_model_config back;
    TH_OK(fcl_config_from_json("toy.json", json, &back));
    assert_int_equal(back.backbone, toy_id);
    free(json);
}

/* The model's backward hands the toy the head's dfeatures, and the toy's weight gradient is
 * dW[o,c,i,j] = Σ_{b,y,x} dF[b,o,y,x]·X[b,c,4y+i,4x+j], a sum of B·s² products: compared with
 * the double-precision sum within the float32 bound γ_K·Σ|terms| (docs/spec.md §10). Then one
 * training step moves the toy's weights. */
static void test_model_trains_through_the_table(void **state) {
    (void)state;
    fewcl_context *ctx = th_ctx();
    fcl_model_config c = fcl_config_default();
    c.backbone = (fcl_backbone)toy_id;
    c.image_size = 20;
    c.n_way = 2, c.k_shot = 2, c.n_query = 2;
    c.reduced_dim = 16, c.heads = 2, c.dim_head = 8, c.mlp_dim = 16;
    fcl_model *m;
    TH_OK(fcl_model_create(ctx, &c, 7, &m));
    assert_int_equal(m->feature_dim, TOY_C * 3 * 3);
    assert_non_null(fcl_params_find(&m->params, "feature.conv.weight"));

    const int B = c.n_way * (c.k_shot + c.n_query), S = c.image_size, side = 3;
    float *xh = malloc((size_t)B * 3 * S * S * sizeof *xh);
    th_random(xh, (size_t)B * 3 * S * S, 11, -1.0f, 1.0f);
    fcl_tensor x;
    th_upload(&x, 4, (int[]){B, 3, S, S}, xh);

    fcl_head_out out;
    TH_OK(fcl_params_zero_grad(ctx, &m->params));
    TH_OK(fcl_model_forward(ctx, m, &x, 1, &out));
    TH_OK(fcl_model_backward(ctx, m));
    toy_net *net = (toy_net *)m->backbone;
    assert_int_equal(net->forwards, 1);
    assert_int_equal(net->backwards, 1);

    fcl_param *w = fcl_params_find(&m->params, "feature.conv.weight");
    float *dw = th_download(&w->grad);
    const float *dF = net->dfeatures;
    const size_t nw = w->value.numel;
    double *want = calloc(nw, sizeof *want), *bound = calloc(nw, sizeof *bound);
    double dw_norm = 0;
    for (int o = 0; o < TOY_C; o++)
        for (int ci = 0; ci < 3; ci++)
            for (int i = 0; i < TOY_K; i++)
                for (int j = 0; j < TOY_K; j++) {
                    const size_t at = (((size_t)o * 3 + ci) * TOY_K + i) * TOY_K + j;
                    double sum = 0, abs_sum = 0;
                    for (int b = 0; b < B; b++)
                        for (int y = 0; y < side; y++)
                            for (int xx = 0; xx < side; xx++) {
                                double d = dF[((size_t)b * TOY_C + o) * side * side +
                                              (size_t)y * side + xx];
                                double v = xh[(((size_t)b * 3 + ci) * S + TOY_STRIDE * y + i) * S +
                                              TOY_STRIDE * xx + j];
                                sum += d * v;
                                abs_sum += fabs(d * v);
                            }
                    want[at] = sum;
                    bound[at] = th_gamma(B * side * side) * abs_sum;
                    dw_norm += sum * sum;
                }
    assert_true(dw_norm > 0); /* the head passed a gradient that reaches the weights */
    th_assert_bound("toy conv weight gradient", dw, want, bound, nw);

    float *w0 = th_download(&w->value);
    fcl_adamw_config opt = fcl_adamw_defaults();
    fcl_step_result r;
    TH_OK(fcl_train_step(ctx, m, &x, &opt, &r));
    assert_true(isfinite(r.loss));
    float *w1 = th_download(&w->value);
    size_t moved = 0;
    for (size_t i = 0; i < nw; i++)
        moved += w0[i] != w1[i];
    print_message("    loss %.4f; %zu of %zu toy weights moved\n", r.loss, moved, nw);
    assert_true(moved > nw / 2);
    assert_int_equal(net->forwards, 2);
    assert_int_equal(net->backwards, 2);

    free(w1);
    free(w0);
    free(bound);
    free(want);
    free(dw);
    free(xh);
    th_free(&x);
    fcl_model_destroy(ctx, m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configuration),
        cmocka_unit_test(test_model_trains_through_the_table),
    };
    return cmocka_run_group_tests(tests, register_toy, th_teardown);
}
