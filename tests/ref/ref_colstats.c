/* Column statistics in double, written for clarity (tests/ref/ref_colstats.h). */
#include "ref_colstats.h"

#include <math.h>
#include <stdlib.h>

void ref_colstats_forward(const double *e, int n, int d, double eps, double *mean, double *var,
                          double *std, double *z) {
    for (int j = 0; j < d; j++) {
        double s = 0, q = 0;
        for (int i = 0; i < n; i++)
            s += e[i * d + j];
        double m = s / n;
        for (int i = 0; i < n; i++)
            q += (e[i * d + j] - m) * (e[i * d + j] - m);
        double v = q / (n - 1), st = sqrt(v);
        if (mean) mean[j] = m;
        if (var) var[j] = v;
        if (std) std[j] = st;
        if (z)
            for (int i = 0; i < n; i++)
                z[i * d + j] = (e[i * d + j] - m) / (st + eps);
    }
}

/* Chain rule written out per column: the forward as mean → x = e − mean → var → std → z. */
void ref_colstats_backward(const double *e, int n, int d, double eps, const double *dmean,
                           const double *dvar, const double *dstd, const double *dz, double *de) {
    double *mean = malloc(d * sizeof *mean), *std = malloc(d * sizeof *std);
    ref_colstats_forward(e, n, d, eps, mean, NULL, std, NULL);
    for (int j = 0; j < d; j++) {
        double den = std[j] + eps;
        /* z = x/den: dx = dz/den, dden = −Σ dz·x/den² */
        double gstd = dstd ? dstd[j] : 0, gvar = dvar ? dvar[j] : 0;
        for (int i = 0; i < n; i++) {
            double x = e[i * d + j] - mean[j];
            if (dz) gstd -= dz[i * d + j] * x / (den * den);
        }
        gvar += (dz || dstd) ? gstd / (2 * std[j]) : 0; /* std = √var */
        double gx_sum = 0;
        double *gx = malloc(n * sizeof *gx);
        for (int i = 0; i < n; i++) {
            double x = e[i * d + j] - mean[j];
            /* var = Σx²/(n−1) */
            gx[i] = (dz ? dz[i * d + j] / den : 0) + gvar * 2 * x / (n - 1);
            gx_sum += gx[i];
        }
        /* x = e − mean(e): de = gx − Σgx/n, plus the mean's own gradient /n */
        for (int i = 0; i < n; i++)
            de[i * d + j] = gx[i] - gx_sum / n + (dmean ? dmean[j] / n : 0);
        free(gx);
    }
    free(mean), free(std);
}

void ref_colcov_forward(const double *z, int n, int d, double eps, double *c) {
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += z[i * d + a] * z[i * d + b];
            c[a * d + b] = s / (n - 1 + eps);
        }
}

void ref_colcov_backward(const double *z, int n, int d, double eps, const double *dc, double *dz) {
    for (int i = 0; i < n; i++)
        for (int a = 0; a < d; a++) {
            double s = 0;
            for (int b = 0; b < d; b++)
                s += z[i * d + b] * (dc[b * d + a] + dc[a * d + b]);
            dz[i * d + a] = s / (n - 1 + eps);
        }
}

double ref_vic_variance_loss(const double *var, int d, double eps) {
    double s = 0;
    for (int j = 0; j < d; j++)
        s += fmax(0, 1 - sqrt(var[j] + eps) - eps);
    return s / d;
}

void ref_vic_variance_loss_backward(const double *var, int d, double eps, double dl, double *dvar) {
    for (int j = 0; j < d; j++) {
        double sd = sqrt(var[j] + eps);
        dvar[j] = 1 - sd - eps > 0 ? -dl / d / (2 * sd) : 0;
    }
}

double ref_vic_covariance_loss(const double *c, int d, double eps) {
    double s = 0;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            if (i != j) s += c[i * d + j] * c[i * d + j];
    return s / (d * (d - 1.0) + eps);
}

void ref_vic_covariance_loss_backward(const double *c, int d, double eps, double dl, double *dc) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            dc[i * d + j] = i == j ? 0 : dl * 2 * c[i * d + j] / (d * (d - 1.0) + eps);
}
