/* BatchNorm2d in double, written straight from the definitions. */
#include <math.h>
#include <stddef.h>

#include "ref_batchnorm.h"

#define AT(i, ch, p) (((size_t)(i)*c + (ch)) * hw + (p))

static void stats(const double *x, int n, int c, int hw, int ch, double *mean, double *var) {
    double s = 0, q = 0, m = (double)n * hw;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            s += x[AT(i, ch, p)];
    *mean = s / m;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            q += (x[AT(i, ch, p)] - *mean) * (x[AT(i, ch, p)] - *mean);
    *var = q / m;
}

void ref_bn_forward_train(const double *x, const double *gamma, const double *beta, double *rmean,
                          double *rvar, double momentum, double eps, double *y, double *smean,
                          double *sinv, int n, int c, int hw) {
    double m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double mean, var;
        stats(x, n, c, hw, ch, &mean, &var);
        double inv = 1.0 / sqrt(var + eps);
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++)
                y[AT(i, ch, p)] = (x[AT(i, ch, p)] - mean) * inv * gamma[ch] + beta[ch];
        if (rmean) rmean[ch] = (1 - momentum) * rmean[ch] + momentum * mean;
        if (rvar) rvar[ch] = (1 - momentum) * rvar[ch] + momentum * var * m / (m - 1);
        if (smean) smean[ch] = mean;
        if (sinv) sinv[ch] = inv;
    }
}

void ref_bn_forward_eval(const double *x, const double *gamma, const double *beta,
                         const double *rmean, const double *rvar, double eps, double *y, int n,
                         int c, int hw) {
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++)
                y[AT(i, ch, p)] =
                    (x[AT(i, ch, p)] - rmean[ch]) / sqrt(rvar[ch] + eps) * gamma[ch] + beta[ch];
}

/* dx = gamma·inv·(dy − mean(dy) − x̂·mean(dy·x̂)): the derivative of the normalisation
 * through the batch mean and variance. */
void ref_bn_backward_train(const double *x, const double *gamma, const double *dy, double eps,
                           double *dx, double *dgamma, double *dbeta, int n, int c, int hw) {
    double m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double mean, var;
        stats(x, n, c, hw, ch, &mean, &var);
        double inv = 1.0 / sqrt(var + eps), sdy = 0, sdyx = 0;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                size_t k = AT(i, ch, p);
                sdy += dy[k];
                sdyx += dy[k] * (x[k] - mean) * inv;
            }
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                size_t k = AT(i, ch, p);
                double xh = (x[k] - mean) * inv;
                dx[k] = gamma[ch] * inv * (dy[k] - sdy / m - xh * sdyx / m);
            }
        dgamma[ch] = sdyx;
        dbeta[ch] = sdy;
    }
}

void ref_bn_backward_eval(const double *x, const double *gamma, const double *rmean,
                          const double *rvar, const double *dy, double eps, double *dx,
                          double *dgamma, double *dbeta, int n, int c, int hw) {
    for (int ch = 0; ch < c; ch++) {
        double inv = 1.0 / sqrt(rvar[ch] + eps), sdy = 0, sdyx = 0;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                size_t k = AT(i, ch, p);
                dx[k] = dy[k] * gamma[ch] * inv;
                sdy += dy[k];
                sdyx += dy[k] * (x[k] - rmean[ch]) * inv;
            }
        dgamma[ch] = sdyx;
        dbeta[ch] = sdy;
    }
}
