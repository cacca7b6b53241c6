/* Test harness (see harness.h). */
#include "harness.h"
#include "data/demo.h"
#include "io/safetensors.h"
#include "ops/gemm_host.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static fewcl_context *g_ctx;

fewcl_context *th_ctx(void) {
    if (!g_ctx) {
        /* Tests are deterministic: the convolution heuristic, never timing (unless a test,
         * or its caller, chose a find mode). */
        setenv("FEWCL_FIND", "off", 0);
        fewcl_status s = fewcl_context_create(NULL, &g_ctx);
        if (s != FEWCL_OK) {
            fprintf(stderr, "cannot open the test device: %s\n", fewcl_last_error());
            fail();
        }
    }
    return g_ctx;
}

int th_teardown(void **state) {
    fewcl_context_destroy(g_ctx);
    g_ctx = NULL;
    return 0;
}

int th_host_path(const char *why_not) {
    int path;
    TH_OK(fcl_gemm_path(th_ctx(), &path));
    if (path != FCL_GEMM_HOST && why_not) print_message("  skipped: %s\n", why_not);
    return path == FCL_GEMM_HOST;
}

int th_small(void) {
    const char *s = getenv("FEWCL_TEST_SMALL");
    return s && *s && *s != '0';
}

int th_sanitized(void) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) /* gcc */
    return 1;
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return 1;
#endif
#endif
    return 0;
}

fewcl_model_config th_small_public_config(int n_way, int k_shot, int n_query) {
    fewcl_model_config c;
    th_ok_(fewcl_model_config_default(&c, sizeof c), "fewcl_model_config_default", __FILE__,
           __LINE__);
    c.image_size = 16;
    c.n_way = n_way, c.k_shot = k_shot, c.n_query = n_query;
    c.reduced_dim = 32, c.heads = 2, c.dim_head = 8, c.mlp_dim = 16;
    return c;
}

int th_glyph_folder(char *dir, size_t cap, const char *tag, uint64_t seed, int bare) {
    snprintf(dir, cap, "/tmp/fewcl-%s-XXXXXX", tag);
    if (!mkdtemp(dir)) return -1;
    char out[1024], cmd[2048];
    snprintf(out, sizeof out, "%s/demo", dir);
    fcl_demo_options o = {
        .out_dir = out, .images_per_class = 6, .size = 16, .min_faces = 8, .seed = seed};
    fcl_demo_summary s;
    if (fcl_demo_render(&o, &s) != FEWCL_OK) return -1;
    if (bare) return 0;
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p support queries && for c in $(ls demo/images/latin_upper | head "
             "-3); do mkdir support/$c && cp demo/images/latin_upper/$c/00.png "
             "demo/images/latin_upper/$c/01.png support/$c/ && for i in 02 03; do cp "
             "demo/images/latin_upper/$c/$i.png queries/$c-$i.png; done; done",
             dir);
    return system(cmd) == 0 ? 0 : -1;
}

int th_glyph_teardown(const char *dir, void **state) {
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? th_teardown(state) : -1;
}

void th_sh(const char *cmd) {
    int rc = system(cmd);
    if (rc != 0) fail_msg("command failed (%d): %s", rc, cmd);
}

char *th_capture(const char *cmd) {
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    n = fread(buf, 1, cap - 1, p);
    buf[n] = 0;
    int rc = pclose(p);
    if (rc != 0) fail_msg("command failed (%d): %s\noutput:\n%s", rc, cmd, buf);
    return buf;
}

char *th_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)size, f) : 0;
    if (buf) buf[n] = 0;
    if (len) *len = n;
    fclose(f);
    return buf;
}

static uint64_t splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void th_random(float *x, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(seed * 0x100000001b3ull + i) >> 11) * 0x1.0p-53;
        x[i] = (float)(lo + (hi - lo) * u);
    }
}

void th_random_away_from_zero(float *x, size_t n, uint64_t seed, float hi, float gap) {
    th_random(x, n, seed, -hi, hi);
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) < gap) x[i] = x[i] < 0 ? -gap - fabsf(x[i]) : gap + x[i];
}

double *th_to_double(const float *x, size_t n) {
    double *d = malloc(n * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

void th_ok_(fewcl_status s, const char *what, const char *file, int line) {
    if (s == FEWCL_OK) return;
    fprintf(stderr, "%s:%d: %s failed: %s: %s\n", file, line, what, fewcl_status_name(s),
            fewcl_last_error());
    fail();
}

void th_upload(fcl_tensor *t, int ndim, const int *shape, const float *host) {
    TH_OK(fcl_tensor_alloc(th_ctx(), t, FCL_MEM_ACTIVATION, ndim, shape));
    TH_OK(fcl_tensor_upload(th_ctx(), t, host));
}

float *th_download(const fcl_tensor *t) {
    float *h = malloc(t->numel * sizeof *h);
    assert_non_null(h);
    TH_OK(fcl_tensor_download(th_ctx(), t, h));
    return h;
}

void th_free(fcl_tensor *t) { fcl_tensor_free(th_ctx(), t); }

void th_assert_close(const char *what, const float *got, const double *want, size_t n, double atol,
                     double rtol) {
    size_t worst = 0;
    double worst_excess = -INFINITY, max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double excess = d - (atol + rtol * fabs(want[i]));
        if (!(d == d)) excess = INFINITY; /* NaN */
        if (excess > worst_excess) worst_excess = excess, worst = i;
        if (d > max_abs) max_abs = d;
    }
    if (worst_excess > 0) {
        fprintf(stderr, "%s: element %zu is %.9g, expected %.9g (atol %g, rtol %g)\n", what, worst,
                (double)got[worst], want[worst], atol, rtol);
        fail();
    }
}

double th_assert_normerr(const char *what, const float *got, const double *want, size_t n,
                         double tol) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
    }
    double e = den > 0 ? num / den : num;
    if (!(e <= tol)) {
        fprintf(stderr, "%s: normalised error %.3e exceeds %.1e\n", what, e, tol);
        fail();
    }
    return e;
}

static double weighted_sum(th_forward_fn f, void *ud, const double *dy, double *y, size_t ny) {
    f(ud, y);
    double s = 0;
    for (size_t i = 0; i < ny; i++)
        s += dy[i] * y[i];
    return s;
}

double th_fd_error(th_forward_fn forward, void *ud, double *x, size_t nx, const double *grad,
                   const double *dy, size_t ny) {
    double *y = malloc(ny * sizeof *y);
    assert_non_null(y);
    double max_diff = 0, max_grad = 0;
    for (size_t i = 0; i < nx; i++) {
        double keep = x[i], h = 1e-6 * fmax(1.0, fabs(keep));
        x[i] = keep + h;
        double up = weighted_sum(forward, ud, dy, y, ny);
        x[i] = keep - h;
        double down = weighted_sum(forward, ud, dy, y, ny);
        x[i] = keep;
        double numeric = (up - down) / (2 * h);
        max_diff = fmax(max_diff, fabs(numeric - grad[i]));
        max_grad = fmax(max_grad, fabs(grad[i]));
    }
    free(y);
    return max_grad > 0 ? max_diff / max_grad : max_diff;
}

double th_gamma(int k) {
    double u = 0x1.0p-24, ku = (k + 1) * u;
    return ku / (1 - ku);
}

void th_assert_bound(const char *what, const float *got, const double *want, const double *bound,
                     size_t n) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= bound[i])) {
            fprintf(stderr, "%s: element %zu is %.9g, expected %.9g, error %.3g above bound %.3g\n",
                    what, i, (double)got[i], want[i], d, bound[i]);
            fail();
        }
    }
}

struct fcl_safetensors *th_fixture(const char *name) {
    /* The environment wins, so that test binaries run from another checkout (a GPU box). */
    const char *dir = getenv("FEWCL_FIXTURE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir && *dir ? dir : FEWCL_FIXTURE_DIR, name);
    fcl_safetensors *st;
    TH_OK(fcl_st_load(path, &st));
    return st;
}

void th_fixture_free(struct fcl_safetensors *st) { fcl_st_free(st); }

const float *th_fixture_data(const struct fcl_safetensors *st, const char *key, size_t *numel) {
    const float *d;
    TH_OK(fcl_st_f32(st, key, 0, NULL, &d, numel));
    return d;
}

void th_fixture_upload(const struct fcl_safetensors *st, const char *key, fcl_tensor *t) {
    const fcl_st_tensor *info = fcl_st_find(st, key);
    assert_non_null(info);
    int shape[FCL_MAX_DIMS], ndim = info->ndim ? info->ndim : 1;
    assert_true(ndim <= FCL_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        shape[i] = info->ndim ? (int)info->shape[i] : 1;
    size_t n;
    th_upload(t, ndim, shape, th_fixture_data(st, key, &n));
}

void th_measure(const char *what, const float *got, const double *want, size_t n) {
    double num = 0, den = 0, worst = 0, worst_rel = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        num += d * d, den += want[i] * want[i];
        worst = fmax(worst, d);
        worst_rel = fmax(worst_rel, d / (TH_EW_ATOL + TH_EW_RTOL * fabs(want[i])));
    }
    fprintf(stderr, "  %-30s max|err| %.3e  (err/tol %.3f)  normerr %.3e\n", what, worst, worst_rel,
            den > 0 ? num / den : num);
}
