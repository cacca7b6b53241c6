/* Training parity with PyTorch, teacher-forced (issues 5 and 15). The model is episode_conv4's
 * (conv4 at 32 px, enhanced head, projection 256→64, VIC, dense Mahalanobis); the truth is the
 * float64 torch.optim.AdamW trajectory of tools/reference/train.py (lr 1e-3, wd 1e-5) on the
 * episodes x_e = pattern(100 + e). From each stored state S_e (e = 0, 5, 12: the start, the
 * step-6 region, a larger t), loaded rounded to float32 — parameters, BatchNorm buffers, AdamW
 * moments and step count, through the trainer's checkpoint loader — the test runs
 * fcl_train_step, the trainer's own step, twice:
 *
 *   A. on x_e: its four loss parts against the float64 ones at S_e;
 *   C. the parameters and moments after that step against AdamW in double (tests/ref) applied
 *      to the same float32 state with PyTorch's float64 gradient, element by element;
 *   B. on x_{e+1}: its loss parts — computed before its own update, from fewcl's updated
 *      parameters — against the float64 ones at S_{e+1}: the update weighted by the gradient.
 *
 * Why one step from an exact state: Adam moves every parameter by about lr whatever |g|, so
 * where g is at rounding level (the conv biases before training-mode BatchNorm, whose true
 * gradient is 0; at t = 1 also 28 of the 64 rows of the last FFN) the sign of the step is
 * noise, and a free-running float32 trajectory leaves the float64 one at a rate that doubles
 * every few steps — how far by step 6 depended on the CPU, the BLAS kernel and the OpenCL
 * implementation.
 *
 * Tolerances, from the float64 truth and float32's unit roundoff u = 2^-24 (not from any
 * machine's spread):
 *
 * A, B: |fewcl − float64| <= 6·scale (+ noise.next for B), per part. The generator derives
 * `scale` from a first-order probabilistic rounding-error model (Higham & Mary, SIAM J. Sci.
 * Comput. 2019): it records every operation of the float64 forward and bounds its float32 error
 * per output element — sqrt(K)·u·Σ|terms| for a K-term dot product or sum, the OpenCL ulp
 * limits for elementwise operations, the mean and variance of BatchNorm and LayerNorm as errors
 * shared by a channel or row, u·|θ| for rounding the state. Each bound times |∂L/∂value| bounds
 * that error's effect on the loss; for independent zero-mean errors Hoeffding's inequality puts
 * the sum beyond λ·sqrt(Σ bound²) = λ·scale with probability <= 2·exp(−λ²/2), 3e-8 for λ = 6.
 * scale is 1.1e-5 of the loss at S_0, 6.9e-6 at S_5, 3.4e-6 at S_12 — conservative (a
 * random-sign sum's error is about sqrt(K) below sqrt(K)·u·Σ|terms|): fewcl stays within 1.5%
 * of A's and B's tolerance on every device profile, GEMM path, BLAS kernel and OpenCL
 * implementation tried, PyTorch float32 within 1%.
 * For B the generator adds the update. Gradient model: a float32 gradient element is within
 * ETA·max|g| of its tensor (ETA = 1e-3, in the fixture; some 40 operations deep at
 * <= sqrt(30720)·u ≈ 1e-5 each, plus ReLU and max-pool decisions flipped by rounding). Over
 * that interval AdamW's direction r = m̂/(sqrt(v̂) + eps) moves by at most w (below). Where
 * |g| <= ETA·max|g| the step may change sign; those elements' effect lr·Σ|∂L/∂θ|·w enters in
 * full (noise.next: 1.8e-5 and 4.4e-6 of the loss at S_5, S_12, but 5% at S_0, where t = 1
 * makes every step lr·sign(g) and B weak — C is the check there); the others join the scale
 * as independent terms lr·|∂L/∂θ|·w.
 *
 * C: |θ_fewcl − θ_ref| <= lr·(w + k) + 2u·(|θ| + |θ_ref|), with w = max |r(g') − r(g)| over
 * |g' − g| <= ETA·max|g| (sampled, and at r's stationary point), k the float32 error of r in
 * cl/adamw.cl from the OpenCL ulp limits, and 2u·(...) the decay factor 1 − lr·wd = 1 − 1e-8
 * (1.0f in float32, as in PyTorch float32) and the final rounding; the moments within the
 * gradient model and 3u of their terms. Where the gradient determines the step, this is a
 * rounding-level check: the worst element is half an ulp of θ plus the decay, 0.28 of its
 * tolerance wherever it runs. Elements with |g| <= ETA·max|g| are checked against the same
 * bound but their ratio is fewcl's rounding noise (reported apart). Tensors whose float64
 * gradient is identically zero (largest element below 1e-9 of the largest anywhere: the conv
 * biases before BatchNorm) are skipped: their step is noise in any float32 implementation, and
 * no loss moves with them.
 *
 * Planted mutations (none committed): eps inside the square root, a bias correction dropped,
 * the step count off by one, weight decay 1e-2, beta2 0.99, a moment not stored each fail C at
 * every state (beta2 from S_5 on: at t = 1 it cancels); 1 − beta2 rounded from a float beta2
 * (what cl/adamw.cl did, 6e-6 of the step) fails C at S_0. B alone catches the dropped bias
 * corrections, the step off by one and beta2. Dropping the decay itself is invisible at
 * lr·wd = 1e-8 in float32 (test_adamw covers it at a larger decay). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/ref_adamw.h"
#include "train/checkpoint.h"
#include "train/step.h"

#define LAMBDA 6.0
#define UNIT 0x1p-24
#define ZERO_GRADIENT 1e-9

static int STATES[] = {0, 5, 12};

/* torch.optim.AdamW as tools/reference/train.py runs it (the step itself takes the trainer's
 * defaults, fcl_adamw_defaults, so a changed default fails here too). */
static const fcl_adamw_config REFERENCE = {
    .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-5};

static fcl_model_config model_config(void) {
    fcl_model_config c = fcl_config_default();
    c.image_size = 32, c.n_way = 3, c.k_shot = 2, c.n_query = 3;
    c.reduced_dim = 64, c.heads = 2, c.dim_head = 16, c.mlp_dim = 32;
    c.mahalanobis = FCL_MAHA_DENSE;
    return c;
}

/* The model at S_e: the pattern weights, then (e > 0) the state's checkpoint. */
static fcl_model *load_state(fewcl_context *ctx, int e, const fcl_safetensors *state) {
    fcl_model_config c = model_config();
    fcl_model *m;
    TH_OK(fcl_model_create(ctx, &c, 1, &m));
    struct fcl_safetensors *w = th_fixture("episode_conv4_weights");
    TH_OK(fcl_params_load(ctx, &m->params, w, "", FCL_LOAD_COMPLETE));
    th_fixture_free(w);
    if (e) TH_OK(fcl_checkpoint_load(ctx, m, state, 1));
    assert_int_equal(m->params.step, e);
    return m;
}

/* One fcl_train_step on x_e with the trainer's AdamW defaults. */
static void train_on(fewcl_context *ctx, fcl_model *m, int e, fcl_step_result *r) {
    const fcl_model_config *c = &m->cfg;
    int shape[4] = {c->n_way * (c->k_shot + c->n_query), 3, c->image_size, c->image_size};
    size_t numel = (size_t)shape[0] * 3 * shape[2] * shape[3];
    float *host = malloc(numel * sizeof *host);
    for (size_t i = 0; i < numel; i++)
        host[i] = fcl_pattern_value(100 + (uint32_t)e, i, 1.0f);
    fcl_tensor x = {0};
    th_upload(&x, 4, shape, host);
    fcl_adamw_config adam = fcl_adamw_defaults();
    TH_OK(fcl_train_step(ctx, m, &x, &adam, r));
    th_free(&x);
    free(host);
}

/* Checks A and B: each loss part within LAMBDA·scale (+ noise.next for B); returns the worst
 * error/tolerance. */
static double compare_losses(const char *check, int e, const fcl_step_result *r,
                             const fcl_safetensors *st, const char *suffix, int with_noise) {
    static const char *part[4] = {"loss", "loss_ce", "loss_var", "loss_cov"};
    double got[4] = {r->loss, r->loss_ce, r->loss_var, r->loss_cov};
    char key[32];
    size_t n;
    snprintf(key, sizeof key, "loss.%s", suffix);
    const float *want = th_fixture_data(st, key, &n);
    snprintf(key, sizeof key, "scale.%s", suffix);
    const float *scale = th_fixture_data(st, key, &n);
    const float *noise = with_noise ? th_fixture_data(st, "noise.next", &n) : NULL;
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        double tol = LAMBDA * scale[i] + (noise ? noise[i] : 0);
        double err = fabs(got[i] - want[i]), ratio = err / tol;
        worst = fmax(worst, ratio);
        if (ratio > 1)
            fail_msg("S_%d check %s: %s %.8g, float64 %.8g (error %.2e > tolerance %.2e)", e, check,
                     part[i], got[i], want[i], err, tol);
    }
    return worst;
}

/* AdamW's direction r (θ' = θ(1 − lr·wd) − lr·r) at step t for gradient g. */
static double direction(const fcl_adamw_config *a, long t, double g, double m, double v) {
    double m2 = a->beta1 * m + (1 - a->beta1) * g, v2 = a->beta2 * v + (1 - a->beta2) * g * g;
    double bc1 = 1 - pow(a->beta1, (double)t), bc2 = 1 - pow(a->beta2, (double)t);
    return m2 / bc1 / (sqrt(v2 / bc2) + a->eps);
}

/* max |r(g') − r(g)| over |g' − g| <= tol: 17 samples and r's stationary point
 * g* = (1−β1)β2·v / (β1·m·(1−β2)) (eps neglected), as the generator does. */
static double direction_width(const fcl_adamw_config *a, long t, double g, double tol, double m,
                              double v) {
    double r = direction(a, t, g, m, v), width = 0;
    for (int k = -8; k <= 8; k++)
        width = fmax(width, fabs(direction(a, t, g + tol * k / 8.0, m, v) - r));
    if (m != 0) {
        double s = (1 - a->beta1) * a->beta2 * v / (a->beta1 * m * (1 - a->beta2));
        s = fmin(fmax(s, g - tol), g + tol);
        width = fmax(width, fabs(direction(a, t, s, m, v) - r));
    }
    return width;
}

/* A bound on the float32 error of r in cl/adamw.cl, from the OpenCL limits (sqrt 3 ulp,
 * division 2.5 ulp, the rest correctly rounded; u = half an ulp): the new first moment
 * b1·m + (1−b1)·g within 3u of its terms' magnitude (two roundings, b1 and 1 − b1 rounded),
 * then about 21u on the quotient (the second moment 3u, halved by the root, root 6u, two
 * divisions 10u, eps and the scalars 2.5u). */
static double kernel_rounding(const fcl_adamw_config *a, long t, double g, double m, double v) {
    double r = direction(a, t, g, m, v);
    double m_terms = a->beta1 * fabs(m) + (1 - a->beta1) * fabs(g);
    double v2 = a->beta2 * v + (1 - a->beta2) * g * g;
    double denom = sqrt(v2 / (1 - pow(a->beta2, (double)t))) + a->eps;
    return 21 * UNIT * fabs(r) + 3 * UNIT * m_terms / (1 - pow(a->beta1, (double)t)) / denom;
}

typedef struct saved {
    float *value, *m, *v; /* host copies before the step (zero moments before step 1) */
} saved;

/* A moment before the step: on the device, or still on the host where a loaded checkpoint
 * leaves it until the first step allocates it (params.h), or zero before step 1. */
static float *moment_before(const fcl_tensor *dev, const float *pending, size_t n) {
    if (dev->numel) return th_download(dev);
    float *h = calloc(n, sizeof *h);
    if (h && pending) memcpy(h, pending, n * sizeof *h);
    return h;
}

static saved *save_params(const fcl_params *P) {
    saved *s = calloc((size_t)P->n, sizeof *s);
    for (int i = 0; i < P->n; i++) {
        const fcl_param *p = &P->items[i];
        if (!p->trainable) continue;
        s[i].value = th_download(&p->value);
        s[i].m = moment_before(&p->m, p->pending_m, p->value.numel);
        s[i].v = moment_before(&p->v, p->pending_v, p->value.numel);
    }
    return s;
}

static void free_saved(saved *s, int n) {
    for (int i = 0; i < n; i++)
        free(s[i].value), free(s[i].m), free(s[i].v);
    free(s);
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

static const float *gradient(const fcl_safetensors *st, const fcl_param *p) {
    char key[160];
    size_t n;
    snprintf(key, sizeof key, "grad.%s", p->name);
    const float *g = th_fixture_data(st, key, &n);
    assert_int_equal(n, p->value.numel);
    return g;
}

/* Check C's record. Noise elements (|g| <= ETA·max|g|) may take any step the gradient model
 * allows, so their ratio measures fewcl's rounding noise, not its accuracy: kept apart. */
typedef struct update_stats {
    double worst, worst_noise;
    size_t checked, noise, skipped;
} update_stats;

/* |got − want| / tol, failing past 1 with what and where. */
static double within(const char *what, const fcl_param *p, size_t i, long t, double got,
                     double want, double tol, double before, double g) {
    double ratio = fabs(got - want) / tol;
    if (ratio > 1)
        fail_msg("check C, %s of %s[%zu] at step %ld: fewcl %.9g, float64 %.9g (error %.2e > "
                 "%.2e; before %.9g, gradient %.3e)",
                 what, p->name, i, t, got, want, fabs(got - want), tol, before, g);
    return ratio;
}

/* Check C on one parameter: every element's value, first and second moment within the
 * gradient model and the kernel's rounding of the double AdamW step. */
static void check_param(const fcl_param *p, const saved *before, const float *g, double eta, long t,
                        update_stats *u) {
    const fcl_adamw_config a = REFERENCE;
    double tol_g = eta * max_abs(g, p->value.numel);
    float *value = th_download(&p->value), *m1 = th_download(&p->m), *v1 = th_download(&p->v);
    for (size_t i = 0; i < p->value.numel; i++) {
        double theta0 = before->value[i], m0 = before->m[i], v0 = before->v[i], gi = g[i];
        double theta = theta0, m = m0, v = v0;
        ref_adamw_step(a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, t, &theta, &gi, &m, &v, 1);
        double w = direction_width(&a, t, gi, tol_g, m0, v0);
        double k = kernel_rounding(&a, t, gi, m0, v0);
        double tol = a.lr * (w + k) + 2 * UNIT * (fabs(theta0) + fabs(theta));
        double tol_m =
            (1 - a.beta1) * tol_g + 3 * UNIT * (a.beta1 * fabs(m0) + (1 - a.beta1) * fabs(gi));
        double tol_v = (1 - a.beta2) * (2 * fabs(gi) + tol_g) * tol_g + 3 * UNIT * v;
        double ratio = within("value", p, i, t, value[i], theta, tol, theta0, gi);
        ratio = fmax(ratio, within("first moment", p, i, t, m1[i], m, tol_m, m0, gi));
        ratio = fmax(ratio, within("second moment", p, i, t, v1[i], v, tol_v, v0, gi));
        if (fabs(gi) <= tol_g) {
            u->noise++;
            u->worst_noise = fmax(u->worst_noise, ratio);
        } else {
            u->worst = fmax(u->worst, ratio);
        }
    }
    u->checked += p->value.numel;
    free(value), free(m1), free(v1);
}

static update_stats check_update(const fcl_params *P, const saved *before,
                                 const fcl_safetensors *st, long t) {
    size_t n;
    double eta = th_fixture_data(st, "eta", &n)[0], largest = 0;
    for (int i = 0; i < P->n; i++)
        if (P->items[i].trainable)
            largest = fmax(largest, max_abs(gradient(st, &P->items[i]), P->items[i].value.numel));
    update_stats u = {0};
    for (int i = 0; i < P->n; i++) {
        const fcl_param *p = &P->items[i];
        if (!p->trainable) continue;
        const float *g = gradient(st, p);
        if (max_abs(g, p->value.numel) <= ZERO_GRADIENT * largest) {
            u.skipped += p->value.numel;
            continue;
        }
        check_param(p, &before[i], g, eta, t, &u);
    }
    return u;
}

static void test_step_from_state(void **state) {
    int e = *(const int *)*state;
    fewcl_context *ctx = th_ctx();
    char name[64];
    snprintf(name, sizeof name, "train_conv4_state%02d", e);
    struct fcl_safetensors *st = th_fixture(name);
    fcl_model *m = load_state(ctx, e, st);
    saved *before = save_params(&m->params);
    fcl_step_result r;
    train_on(ctx, m, e, &r);
    double a = compare_losses("A", e, &r, st, "step", 0);
    update_stats c = check_update(&m->params, before, st, e + 1);
    train_on(ctx, m, e + 1, &r);
    double b = compare_losses("B", e, &r, st, "next", 1);
    printf("  S_%-2d worst error/tolerance: A %.3f  B %.3f  C %.3f over %zu elements (%zu more "
           "with a rounding-level gradient: %.3f; %zu with none skipped)\n",
           e, a, b, c.worst, c.checked - c.noise, c.noise, c.worst_noise, c.skipped);
    free_saved(before, m->params.n);
    fcl_model_destroy(ctx, m);
    th_fixture_free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_step_from_state, &STATES[0]),
        cmocka_unit_test_prestate(test_step_from_state, &STATES[1]),
        cmocka_unit_test_prestate(test_step_from_state, &STATES[2]),
    };
    return cmocka_run_group_tests(tests, NULL, th_teardown);
}
