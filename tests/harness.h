/* Test harness: a shared device context, host<->device helpers, comparisons against the
 * plain-C references (tests/ref/) and central finite differences in double. */
#ifndef FEWCL_TEST_HARNESS_H
#define FEWCL_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ops/ops.h"

/* The context every test of a binary shares (device from FEWCL_DEVICE, else the default). */
fewcl_context *th_ctx(void);
/* cmocka group teardown: destroys the shared context. */
int th_teardown(void **state);
/* 1 when the shared context's GEMMs and convolutions take the host path (lib/ops/gemm_host.h);
 * otherwise 0, after printing "  skipped: <why_not>" when why_not is not NULL. */
int th_host_path(const char *why_not);
/* 1 under oclgrind (FEWCL_TEST_SMALL=1): tests shrink their shapes. */
int th_small(void);
/* 1 in a sanitizer build (FEWCL_SANITIZE or FEWCL_TSAN): a test whose numbers and byte counts
 * the plain run proves may leave out there its largest whole-model cases, those whose host code
 * its smaller cases already reach (the sanitizers' instrumented loops made them CI's longest). */
int th_sanitized(void);

/* Makes a temporary folder (/tmp/fewcl-<tag>-XXXXXX, its path in dir) holding demo/, the demo
 * glyphs rendered at 16 px (6 images per class, `seed`), and, unless `bare`, support/<class>/
 * with 2 images of 3 classes and queries/ with 2 more images of each (<class>-02.png, -03).
 * Returns 0, or -1 (a cmocka setup failure). */
int th_glyph_folder(char *dir, size_t cap, const char *tag, uint64_t seed, int bare);
/* The small public model config the API and tool tests share: conv4 at 16 px (the glyphs'
 * size), an n-way k-shot q-query episode, and a narrow enhanced head (reduced_dim 32, 2 heads of
 * 8, MLP 16) with the projection still active (32 < conv4's 64 features at 16 px). */
fewcl_model_config th_small_public_config(int n_way, int k_shot, int n_query);
/* cmocka group teardown for th_glyph_folder: removes the folder, then th_teardown. */
int th_glyph_teardown(const char *dir, void **state);
/* The whole file, NUL-terminated (malloc'd), its length in *len when len is not NULL; NULL
 * when it cannot be opened. */
char *th_read_file(const char *path, size_t *len);
/* Runs a shell command; fails the test on a non-zero exit status. */
void th_sh(const char *cmd);
/* The command's whole output (malloc'd, the first MiB); fails the test on a non-zero exit
 * status, showing the output. */
char *th_capture(const char *cmd);

/* Uniform floats in [lo, hi) from a counter-based generator (splitmix64 of seed+i). */
void th_random(float *x, size_t n, uint64_t seed, float lo, float hi);
/* Like th_random but with |x| >= gap, to keep inputs away from kinks such as ReLU's. */
void th_random_away_from_zero(float *x, size_t n, uint64_t seed, float hi, float gap);
double *th_to_double(const float *x, size_t n);

/* A device tensor holding `host` (asserts on failure). */
void th_upload(fcl_tensor *t, int ndim, const int *shape, const float *host);
/* A malloc'd host copy of a device tensor. */
float *th_download(const fcl_tensor *t);
void th_free(fcl_tensor *t);
/* PyTorch fixtures (tests/fixtures/<name>.safetensors, written by tools/reference/ops.py). */
struct fcl_safetensors;
struct fcl_safetensors *th_fixture(const char *name);
void th_fixture_free(struct fcl_safetensors *st);
/* The F32 data of one fixture tensor (asserts it exists); its element count in *numel. */
const float *th_fixture_data(const struct fcl_safetensors *st, const char *key, size_t *numel);
/* A device tensor with the fixture tensor's shape and data. */
void th_fixture_upload(const struct fcl_safetensors *st, const char *key, fcl_tensor *t);

/* Asserts that a call succeeded, printing fewcl_last_error() when not. */
#define TH_OK(expr) th_ok_((expr), #expr, __FILE__, __LINE__)
void th_ok_(fewcl_status s, const char *what, const char *file, int line);

/* Prints (for the record, not a check) max|err|, max err/(elementwise tolerance) and the
 * normalised error of got against want. */
void th_measure(const char *what, const float *got, const double *want, size_t n);
/* |got − want| <= atol + rtol·|want| everywhere; prints the worst element on failure. */
void th_assert_close(const char *what, const float *got, const double *want, size_t n, double atol,
                     double rtol);
/* Normalised error Σ(got−want)²/Σwant² <= tol; returns it. */
double th_assert_normerr(const char *what, const float *got, const double *want, size_t n,
                         double tol);

/* Finite-difference check of a C reference. `forward` computes y (ny values) from inputs it
 * reads through `ud`; `x` (nx values) is one of those inputs and is perturbed in place.
 * Compares d(Σ dy·y)/dx by central differences (step 1e-6·max(1,|x|)) against `grad` and
 * returns max|numeric − grad| / max|grad|. */
typedef void (*th_forward_fn)(void *ud, double *y);
double th_fd_error(th_forward_fn forward, void *ud, double *x, size_t nx, const double *grad,
                   const double *dy, size_t ny);

#endif

#ifndef FEWCL_TEST_HARNESS_BOUND
#define FEWCL_TEST_HARNESS_BOUND
/* Tolerances of docs/spec.md §10. Elementwise: 1e-5 abs + 1e-5 rel. GEMM-like: normalised error
 * 1e-6, and per element the worst-case float32 summation bound (Higham, Accuracy and
 * Stability §3.1): |error| <= γ_K·Σ|a·b| with γ_K = K·u/(1−K·u), u = 2^-24; the bound
 * is derived per element from the reference run on absolute values (see th_gamma). */
#define TH_EW_ATOL 1e-5
#define TH_EW_RTOL 1e-5
#define TH_NORMERR 1e-6
/* γ_K for a K-term float32 sum, plus one more rounding for the final store. */
double th_gamma(int k);
/* |got − want| <= bound[i] everywhere. */
void th_assert_bound(const char *what, const float *got, const double *want, const double *bound,
                     size_t n);
#endif
