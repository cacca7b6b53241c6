/* The Mahalanobis classifier in double, written for clarity (tests/ref/ref_mahalanobis.h). */
#include "ref_mahalanobis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-4

int ref_cholesky(const double *a, int d, double *l) {
    memset(l, 0, (size_t)d * d * sizeof *l);
    for (int j = 0; j < d; j++) {
        double s = a[j * d + j];
        for (int t = 0; t < j; t++)
            s -= l[j * d + t] * l[j * d + t];
        if (!(s > 0)) return j + 1;
        l[j * d + j] = sqrt(s);
        for (int i = j + 1; i < d; i++) {
            double v = a[i * d + j];
            for (int t = 0; t < j; t++)
                v -= l[i * d + t] * l[j * d + t];
            l[i * d + j] = v / l[j * d + j];
        }
    }
    return 0;
}

int ref_inverse(const double *a, int d, double *inv) {
    double *w = malloc((size_t)d * 2 * d * sizeof *w);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < 2 * d; j++)
            w[i * 2 * d + j] = j < d ? a[i * d + j] : (j - d == i);
    int bad = 0;
    for (int c = 0; c < d && !bad; c++) {
        int piv = c;
        for (int i = c + 1; i < d; i++)
            if (fabs(w[i * 2 * d + c]) > fabs(w[piv * 2 * d + c])) piv = i;
        if (w[piv * 2 * d + c] == 0) {
            bad = 1;
            break;
        }
        for (int j = 0; j < 2 * d; j++) {
            double t = w[c * 2 * d + j];
            w[c * 2 * d + j] = w[piv * 2 * d + j];
            w[piv * 2 * d + j] = t;
        }
        double pv = w[c * 2 * d + c];
        for (int j = 0; j < 2 * d; j++)
            w[c * 2 * d + j] /= pv;
        for (int i = 0; i < d; i++) {
            if (i == c) continue;
            double f = w[i * 2 * d + c];
            for (int j = 0; j < 2 * d; j++)
                w[i * 2 * d + j] -= f * w[c * 2 * d + j];
        }
    }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            inv[i * d + j] = w[i * 2 * d + d + j];
    free(w);
    return bad;
}

static void shrink(int k, int d, double *alpha, double *beta) {
    *alpha = (double)d / (k + d);
    *beta = (1 - *alpha) / (k - 1 + EPS);
}

/* x [k,d] = e_c − its row mean. */
static void centred(const double *e, int k, int d, double *x) {
    for (int j = 0; j < d; j++) {
        double m = 0;
        for (int i = 0; i < k; i++)
            m += e[i * d + j];
        m /= k;
        for (int i = 0; i < k; i++)
            x[i * d + j] = e[i * d + j] - m;
    }
}

void ref_mahalanobis_covariance(const double *e, int n, int k, int d, double *sigma) {
    double alpha, beta, *x = malloc((size_t)k * d * sizeof *x);
    shrink(k, d, &alpha, &beta);
    for (int c = 0; c < n; c++) {
        centred(e + (size_t)c * k * d, k, d, x);
        double *s = sigma + (size_t)c * d * d;
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) {
                double v = 0;
                for (int i = 0; i < k; i++)
                    v += x[i * d + a] * x[i * d + b];
                s[a * d + b] = beta * v + (a == b ? alpha : 0);
            }
    }
    free(x);
}

/* logits from explicit inverses minv [n,d,d]. */
static void quad(const double *minv, const double *p, const double *h, int n, int d, int q,
                 double *logits) {
    for (int r = 0; r < q; r++)
        for (int c = 0; c < n; c++) {
            const double *m = minv + (size_t)c * d * d;
            double s = 0;
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++)
                    s += (h[r * d + a] - p[c * d + a]) * m[a * d + b] *
                         (h[r * d + b] - p[c * d + b]);
            logits[r * n + c] = -s;
        }
}

static double *inverses(const double *e, int n, int k, int d) {
    size_t dd = (size_t)d * d;
    double *sigma = malloc(n * dd * sizeof *sigma), *minv = malloc(n * dd * sizeof *minv);
    ref_mahalanobis_covariance(e, n, k, d, sigma);
    for (int c = 0; c < n; c++)
        ref_inverse(sigma + c * dd, d, minv + c * dd);
    free(sigma);
    return minv;
}

void ref_mahalanobis_forward(const double *e, const double *p, const double *h, int n, int k, int d,
                             int q, double *logits) {
    double *minv = inverses(e, n, k, d);
    quad(minv, p, h, n, d, q, logits);
    free(minv);
}

void ref_mahalanobis_lowrank_forward(const double *e, const double *p, const double *h, int n,
                                     int k, int d, int q, double *logits) {
    double alpha, beta;
    shrink(k, d, &alpha, &beta);
    double *x = malloc((size_t)k * d * sizeof *x), *kk = malloc((size_t)k * k * sizeof *kk);
    double *ki = malloc((size_t)k * k * sizeof *ki), *xv = malloc(k * sizeof *xv);
    double *t = malloc(k * sizeof *t);
    for (int c = 0; c < n; c++) {
        centred(e + (size_t)c * k * d, k, d, x);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                double s = 0;
                for (int a = 0; a < d; a++)
                    s += x[i * d + a] * x[j * d + a];
                kk[i * k + j] = s + (i == j ? alpha / beta : 0);
            }
        ref_inverse(kk, k, ki);
        for (int r = 0; r < q; r++) {
            /* vᵀΣ⁻¹v = (1/α)[vᵀv − (Xv)ᵀK⁻¹(Xv)] */
            double vv = 0;
            for (int a = 0; a < d; a++) {
                double v = h[r * d + a] - p[c * d + a];
                vv += v * v;
            }
            for (int i = 0; i < k; i++) {
                double s = 0;
                for (int a = 0; a < d; a++)
                    s += x[i * d + a] * (h[r * d + a] - p[c * d + a]);
                xv[i] = s;
            }
            double w = 0;
            for (int i = 0; i < k; i++) {
                t[i] = 0;
                for (int j = 0; j < k; j++)
                    t[i] += ki[i * k + j] * xv[j];
                w += xv[i] * t[i];
            }
            logits[r * n + c] = -(vv - w) / alpha;
        }
    }
    free(x), free(kk), free(ki), free(xv), free(t);
}

void ref_mahalanobis_backward(const double *e, const double *p, const double *h, int n, int k,
                              int d, int q, const double *dlogits, double *de, double *dp,
                              double *dh) {
    double alpha, beta;
    shrink(k, d, &alpha, &beta);
    size_t dd = (size_t)d * d;
    double *minv = inverses(e, n, k, d);
    double *gm = malloc(dd * sizeof *gm), *t1 = malloc(dd * sizeof *t1);
    double *dsig = malloc(dd * sizeof *dsig), *x = malloc((size_t)k * d * sizeof *x);
    double *dx = malloc((size_t)k * d * sizeof *dx), *v = malloc(d * sizeof *v);
    memset(dh, 0, (size_t)q * d * sizeof *dh);
    memset(dp, 0, (size_t)n * d * sizeof *dp);
    for (int c = 0; c < n; c++) {
        const double *m = minv + c * dd;
        memset(gm, 0, dd * sizeof *gm);
        for (int r = 0; r < q; r++) {
            double g = -dlogits[r * n + c]; /* d loss / d dist */
            for (int a = 0; a < d; a++)
                v[a] = h[r * d + a] - p[c * d + a];
            for (int a = 0; a < d; a++) {
                double mv = 0;
                for (int b = 0; b < d; b++)
                    mv += m[a * d + b] * v[b];
                dh[r * d + a] += 2 * g * mv; /* d(vᵀMv)/dv = 2Mv (M symmetric) */
                dp[c * d + a] -= 2 * g * mv;
                for (int b = 0; b < d; b++)
                    gm[a * d + b] += g * v[a] * v[b]; /* d dist/dM = v vᵀ */
            }
        }
        /* dΣ = −M·G·M (the gradient of M = Σ⁻¹) */
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) {
                double s = 0;
                for (int t = 0; t < d; t++)
                    s += m[a * d + t] * gm[t * d + b];
                t1[a * d + b] = s;
            }
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) {
                double s = 0;
                for (int t = 0; t < d; t++)
                    s += t1[a * d + t] * m[t * d + b];
                dsig[a * d + b] = -s;
            }
        /* Σ = αI + β·XᵀX: dX = β·X·(dΣ + dΣᵀ); X = E − mean: dE = dX − mean(dX). */
        centred(e + (size_t)c * k * d, k, d, x);
        for (int i = 0; i < k; i++)
            for (int b = 0; b < d; b++) {
                double s = 0;
                for (int a = 0; a < d; a++)
                    s += x[i * d + a] * (dsig[a * d + b] + dsig[b * d + a]);
                dx[i * d + b] = beta * s;
            }
        centred(dx, k, d, de + (size_t)c * k * d);
    }
    free(minv), free(gm), free(t1), free(dsig), free(x), free(dx), free(v);
}
