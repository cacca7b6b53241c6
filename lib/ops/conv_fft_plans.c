/* clFFT's set-up, plans and probe for the FFT convolution (see conv_fft.h). */
#include "conv_fft.h"
#include "../runtime/driver_allocs.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fcl_conv_fft_length(int n, int even) {
    for (int m = n < 2 ? 2 : n;; m++) {
        if (even && m % 2) continue;
        int r = m;
        for (int p = 2; p <= 7; p++)
            while (r % p == 0)
                r /= p;
        if (r == 1) return m;
    }
}

#ifdef FEWCL_CLFFT
#include <clFFT.h>

typedef struct fft_plan {
    int fh, fw, batch, inverse;
    clfftPlanHandle handle;
    size_t tmp;
} fft_plan;

/* A context's clFFT state (ctx->fft_state). */
typedef struct fft_state {
    int probed, usable, set_up; /* set_up: holds one of the process's clFFT set-ups */
    char why[200];
    fft_plan *plans;
    int n_plans, cap_plans;
} fft_state;

/* Every clFFT call of the process, and the count of contexts that set it up. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int users;
static int injected_fault; /* fcl_conv_fft_reprobe's, for the next probe only */

/* Call with the lock held. */
static clfftStatus setup_locked(void) {
    if (users > 0) return (users++, CLFFT_SUCCESS);
    /* What clfftInitSetupData does, written out: the header's C99 `__inline` definition emits no
     * symbol, so a compiler that does not inline it (clang in the fuzz build) fails to link. */
    clfftSetupData data;
    memset(&data, 0, sizeof data);
    data.major = clfftVersionMajor;
    data.minor = clfftVersionMinor;
    data.patch = clfftVersionPatch;
    clfftStatus s = clfftSetup(&data);
    if (s == CLFFT_SUCCESS) users = 1;
    return s;
}

static void state_free(void *p) {
    fft_state *st = p;
    if (!st) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < st->n_plans; i++)
        clfftDestroyPlan(&st->plans[i].handle);
    if (st->set_up && --users == 0) clfftTeardown();
    pthread_mutex_unlock(&lock);
    free(st->plans);
    free(st);
}

static fft_state *state_of(fewcl_context *ctx) {
    if (!ctx->fft_state) {
        ctx->fft_state = calloc(1, sizeof(fft_state));
        ctx->fft_state_free = state_free;
    }
    return ctx->fft_state;
}

/* Creates and bakes the plan; call with the lock held. */
static clfftStatus make_plan_locked(fewcl_context *ctx, fft_plan *p) {
    size_t lengths[2] = {(size_t)p->fw, (size_t)p->fh}, fc = (size_t)p->fw / 2 + 1;
    size_t real_strides[2] = {1, 2 * fc}, complex_strides[2] = {1, fc};
    size_t real_dist = (size_t)p->fh * 2 * fc, complex_dist = (size_t)p->fh * fc;
    clfftStatus s = clfftCreateDefaultPlan(&p->handle, ctx->context, CLFFT_2D, lengths);
    if (s != CLFFT_SUCCESS) return s;
    if (s == CLFFT_SUCCESS) s = clfftSetPlanPrecision(p->handle, CLFFT_SINGLE);
    if (s == CLFFT_SUCCESS) s = clfftSetResultLocation(p->handle, CLFFT_INPLACE);
    if (p->inverse) {
        if (s == CLFFT_SUCCESS)
            s = clfftSetLayout(p->handle, CLFFT_HERMITIAN_INTERLEAVED, CLFFT_REAL);
        if (s == CLFFT_SUCCESS) s = clfftSetPlanInStride(p->handle, CLFFT_2D, complex_strides);
        if (s == CLFFT_SUCCESS) s = clfftSetPlanOutStride(p->handle, CLFFT_2D, real_strides);
        if (s == CLFFT_SUCCESS) s = clfftSetPlanDistance(p->handle, complex_dist, real_dist);
        if (s == CLFFT_SUCCESS) s = clfftSetPlanScale(p->handle, CLFFT_BACKWARD, 1.0f);
    } else {
        if (s == CLFFT_SUCCESS)
            s = clfftSetLayout(p->handle, CLFFT_REAL, CLFFT_HERMITIAN_INTERLEAVED);
        if (s == CLFFT_SUCCESS) s = clfftSetPlanInStride(p->handle, CLFFT_2D, real_strides);
        if (s == CLFFT_SUCCESS) s = clfftSetPlanOutStride(p->handle, CLFFT_2D, complex_strides);
        if (s == CLFFT_SUCCESS) s = clfftSetPlanDistance(p->handle, real_dist, complex_dist);
    }
    if (s == CLFFT_SUCCESS) s = clfftSetPlanBatchSize(p->handle, (size_t)p->batch);
    if (s == CLFFT_SUCCESS)
        s = FCL_DRIVER_KEEPS(clfftBakePlan(p->handle, 1, &ctx->queue, NULL, NULL));
    if (s == CLFFT_SUCCESS) s = clfftGetTmpBufSize(p->handle, &p->tmp);
    if (s != CLFFT_SUCCESS) clfftDestroyPlan(&p->handle);
    return s;
}

/* The cached plan for the shape (made on first use); call with the lock held. */
static fewcl_status plan_locked(fewcl_context *ctx, int fh, int fw, int batch, int inverse,
                                fft_plan **out) {
    fft_state *st = state_of(ctx);
    if (!st) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "clFFT state");
    for (int i = 0; i < st->n_plans; i++) {
        fft_plan *p = &st->plans[i];
        if (p->fh == fh && p->fw == fw && p->batch == batch && p->inverse == inverse) {
            *out = p;
            return FEWCL_OK;
        }
    }
    if (!st->set_up) {
        clfftStatus s = setup_locked();
        if (s != CLFFT_SUCCESS) return fcl_fail_cl(s, "clFFT set-up");
        st->set_up = 1;
    }
    if (st->n_plans == st->cap_plans) {
        int cap = st->cap_plans ? 2 * st->cap_plans : 8;
        fft_plan *grown = realloc(st->plans, (size_t)cap * sizeof *grown);
        if (!grown) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "clFFT plans");
        st->plans = grown, st->cap_plans = cap;
    }
    fft_plan p = {fh, fw, batch, inverse, 0, 0};
    clfftStatus s = make_plan_locked(ctx, &p);
    if (s != CLFFT_SUCCESS)
        return fcl_fail_cl(s, "clFFT plan for %d planes of %dx%d (%s)", batch, fh, fw,
                           inverse ? "inverse" : "forward");
    st->plans[st->n_plans] = p;
    *out = &st->plans[st->n_plans++];
    return FEWCL_OK;
}

fewcl_status fcl_conv_fft_tmp_bytes(fewcl_context *ctx, int fh, int fw, int batch, int inverse,
                                    size_t *bytes) {
    pthread_mutex_lock(&lock);
    fft_plan *p;
    fewcl_status s = plan_locked(ctx, fh, fw, batch, inverse, &p);
    *bytes = s == FEWCL_OK ? p->tmp : 0;
    pthread_mutex_unlock(&lock);
    return s;
}

fewcl_status fcl_conv_fft_transform(fewcl_context *ctx, int fh, int fw, int batch, int inverse,
                                    cl_mem buf, cl_mem tmp) {
    pthread_mutex_lock(&lock);
    fft_plan *p;
    fewcl_status s = plan_locked(ctx, fh, fw, batch, inverse, &p);
    if (s == FEWCL_OK) {
        clfftStatus e = clfftEnqueueTransform(p->handle, inverse ? CLFFT_BACKWARD : CLFFT_FORWARD,
                                              1, &ctx->queue, 0, NULL, NULL, &buf, NULL, tmp);
        if (e != CLFFT_SUCCESS)
            s = fcl_fail_cl(e, "clFFT transform of %d planes of %dx%d", batch, fh, fw);
    }
    pthread_mutex_unlock(&lock);
    return s;
}

/* ---- the probe: two 9x10 planes (radices 2, 3, 5) forward and back, against a double DFT
 * (the spectrum) and the input (the round trip). An FFT of length n errs by O(log n · u)
 * relative to the L2 norm; 1e-4·‖x‖₂ is far above that for n = 90 and far
 * below what a broken transform gives. ---- */

enum { PROBE_H = 9, PROBE_W = 10, PROBE_FC = PROBE_W / 2 + 1, PROBE_PLANES = 2 };
#define PROBE_FLOATS (PROBE_PLANES * PROBE_H * 2 * PROBE_FC)

static float probe_input(int p, int r, int s) {
    return (float)((p * 37 + r * 11 + s * 7) % 17) / 8.0f - 1.0f;
}

/* 0 when the spectrum (forward) or the round trip (back) is right to the bound. */
static int probe_check(const float *got, int spectrum) {
    double worst = 0, norm = 0;
    for (int p = 0; p < PROBE_PLANES; p++)
        for (int r = 0; r < PROBE_H; r++)
            for (int s = 0; s < PROBE_W; s++)
                norm += (double)probe_input(p, r, s) * probe_input(p, r, s);
    for (int p = 0; p < PROBE_PLANES; p++)
        for (int u = 0; u < PROBE_H; u++)
            for (int v = 0; v < (spectrum ? PROBE_FC : PROBE_W); v++) {
                double re = 0, im = 0;
                for (int r = 0; r < PROBE_H && spectrum; r++)
                    for (int s = 0; s < PROBE_W; s++) {
                        double t = -2 * M_PI * ((double)u * r / PROBE_H + (double)v * s / PROBE_W);
                        re += probe_input(p, r, s) * cos(t);
                        im += probe_input(p, r, s) * sin(t);
                    }
                const float *at = got + (p * PROBE_H + u) * 2 * PROBE_FC;
                double e = spectrum ? hypot(at[2 * v] - re, at[2 * v + 1] - im)
                                    : fabs(at[v] / (PROBE_H * PROBE_W) - probe_input(p, u, v));
                if (e > worst) worst = e;
            }
    return !(worst <= 1e-4 * sqrt(norm) * (spectrum ? sqrt(PROBE_H * PROBE_W) : 1));
}

/* Runs the probe; the reason it failed into st->why. Call without the lock. */
static void probe(fewcl_context *ctx, fft_state *st, int fault) {
    float data[PROBE_FLOATS] = {0};
    for (int p = 0; p < PROBE_PLANES; p++)
        for (int r = 0; r < PROBE_H; r++)
            for (int s = 0; s < PROBE_W; s++)
                data[(p * PROBE_H + r) * 2 * PROBE_FC + s] = probe_input(p, r, s);
    cl_int err;
    cl_mem buf = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof data,
                                data, &err);
    if (err != CL_SUCCESS) {
        snprintf(st->why, sizeof st->why, "the probe's buffer failed (OpenCL error %d)", err);
        return;
    }
    const char *step = "set-up";
    fewcl_status s = FEWCL_OK;
    if (fault == 1) s = fcl_fail(FEWCL_ERR_OPENCL, "clFFT set-up (injected fault)");
    for (int inverse = 0; inverse < 2 && s == FEWCL_OK; inverse++) {
        step = inverse ? "inverse transform" : "forward transform";
        s = fcl_conv_fft_transform(ctx, PROBE_H, PROBE_W, PROBE_PLANES, inverse, buf, NULL);
        float got[PROBE_FLOATS];
        if (s == FEWCL_OK) {
            err = clEnqueueReadBuffer(ctx->queue, buf, CL_TRUE, 0, sizeof got, got, 0, NULL, NULL);
            if (err != CL_SUCCESS) s = fcl_fail_cl(err, "reading the probe");
        }
        if (s == FEWCL_OK && fault == 2) got[3] += 0.5f;
        if (s == FEWCL_OK && probe_check(got, !inverse)) {
            snprintf(st->why, sizeof st->why, "clFFT's %s of two %dx%d planes is wrong", step,
                     PROBE_H, PROBE_W);
            s = FEWCL_ERR_OPENCL;
        }
    }
    clReleaseMemObject(buf);
    if (s == FEWCL_OK)
        st->usable = 1;
    else if (!st->why[0])
        snprintf(st->why, sizeof st->why, "clFFT's %s failed: %s", step, fewcl_last_error());
}

int fcl_conv_fft_usable(fewcl_context *ctx) {
    fft_state *st = state_of(ctx);
    if (!st) return 0;
    if (!st->probed) {
        st->probed = 1;
        pthread_mutex_lock(&lock);
        int fault = injected_fault;
        injected_fault = 0;
        pthread_mutex_unlock(&lock);
        probe(ctx, st, fault);
    }
    return st->usable;
}

const char *fcl_conv_fft_why(const fewcl_context *ctx) {
    const fft_state *st = ctx->fft_state;
    return st && st->probed && !st->usable ? st->why : "";
}

void fcl_conv_fft_reprobe(fewcl_context *ctx, int fault) {
    fft_state *st = state_of(ctx);
    if (!st) return;
    st->probed = st->usable = 0;
    st->why[0] = 0;
    pthread_mutex_lock(&lock);
    injected_fault = fault;
    pthread_mutex_unlock(&lock);
    fcl_conv_fft_usable(ctx);
}

#else /* built without clFFT */

int fcl_conv_fft_usable(fewcl_context *ctx) { return (void)ctx, 0; }
const char *fcl_conv_fft_why(const fewcl_context *ctx) {
    return (void)ctx, "fewcl was built without clFFT (Debian: libclfft-dev)";
}
fewcl_status fcl_conv_fft_tmp_bytes(fewcl_context *ctx, int fh, int fw, int batch, int inverse,
                                    size_t *bytes) {
    *bytes = 0;
    return fcl_fail(FEWCL_ERR_INTERNAL, "%s", fcl_conv_fft_why(ctx));
}
fewcl_status fcl_conv_fft_transform(fewcl_context *ctx, int fh, int fw, int batch, int inverse,
                                    cl_mem buf, cl_mem tmp) {
    return fcl_fail(FEWCL_ERR_INTERNAL, "%s", fcl_conv_fft_why(ctx));
}
void fcl_conv_fft_reprobe(fewcl_context *ctx, int fault) { (void)ctx, (void)fault; }

#endif
