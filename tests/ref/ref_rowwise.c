/* Row-wise ops in double, straight from the definitions. */
#include <math.h>
#include <stdlib.h>

#include "ref_rowwise.h"

static void moments(const double *r, int cols, double *mean, double *var) {
    double s = 0, q = 0;
    for (int j = 0; j < cols; j++)
        s += r[j];
    *mean = s / cols;
    for (int j = 0; j < cols; j++)
        q += (r[j] - *mean) * (r[j] - *mean);
    *var = q / cols;
}

void ref_layernorm_forward(const double *x, const double *gamma, const double *beta, double eps,
                           double *y, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (size_t)r * cols;
        double mean, var;
        moments(xr, cols, &mean, &var);
        for (int j = 0; j < cols; j++)
            y[(size_t)r * cols + j] = (xr[j] - mean) / sqrt(var + eps) * gamma[j] + beta[j];
    }
}

void ref_layernorm_backward(const double *x, const double *gamma, const double *dy, double eps,
                            double *dx, double *dgamma, double *dbeta, int rows, int cols) {
    for (int j = 0; j < cols; j++)
        dgamma[j] = dbeta[j] = 0;
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (size_t)r * cols, *dr = dy + (size_t)r * cols;
        double mean, var;
        moments(xr, cols, &mean, &var);
        double rstd = 1 / sqrt(var + eps), mg = 0, mgx = 0;
        for (int j = 0; j < cols; j++) {
            double xh = (xr[j] - mean) * rstd;
            mg += dr[j] * gamma[j] / cols;
            mgx += dr[j] * gamma[j] * xh / cols;
            dgamma[j] += dr[j] * xh;
            dbeta[j] += dr[j];
        }
        for (int j = 0; j < cols; j++) {
            double xh = (xr[j] - mean) * rstd;
            dx[(size_t)r * cols + j] = rstd * (dr[j] * gamma[j] - mg - xh * mgx);
        }
    }
}

void ref_gelu_forward(const double *x, double *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));
}

void ref_gelu_backward(const double *x, const double *dy, double *dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double cdf = 0.5 * (1 + erf(x[i] / sqrt(2.0)));
        double pdf = exp(-0.5 * x[i] * x[i]) / sqrt(2 * M_PI);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
}

static double norm(const double *r, int cols) {
    double s = 0;
    for (int j = 0; j < cols; j++)
        s += r[j] * r[j];
    return sqrt(s);
}

void ref_l2norm_forward(const double *x, double eps, double *y, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (size_t)r * cols;
        double d = fmax(norm(xr, cols), eps);
        for (int j = 0; j < cols; j++)
            y[(size_t)r * cols + j] = xr[j] / d;
    }
}

/* n ≥ eps: ∂(x_j/n)/∂x_i = δ_ij/n − x_i·x_j/n³; below eps the denominator is constant. */
void ref_l2norm_backward(const double *x, const double *dy, double eps, double *dx, int rows,
                         int cols) {
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (size_t)r * cols, *dr = dy + (size_t)r * cols;
        double n = norm(xr, cols), xdy = 0;
        for (int j = 0; j < cols; j++)
            xdy += xr[j] * dr[j];
        for (int j = 0; j < cols; j++)
            dx[(size_t)r * cols + j] =
                n >= eps ? dr[j] / n - xr[j] * xdy / (n * n * n) : dr[j] / eps;
    }
}

void ref_softmax_forward(const double *x, double scale, double *y, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (size_t)r * cols;
        double *yr = y + (size_t)r * cols, m = -INFINITY, s = 0;
        for (int j = 0; j < cols; j++)
            m = fmax(m, scale * xr[j]);
        for (int j = 0; j < cols; j++)
            s += exp(scale * xr[j] - m);
        for (int j = 0; j < cols; j++)
            yr[j] = exp(scale * xr[j] - m) / s;
    }
}

/* ∂y_j/∂x_i = scale·y_j·(δ_ij − y_i) */
void ref_softmax_backward(const double *x, const double *dy, double scale, double *dx, int rows,
                          int cols) {
    double *y = malloc((size_t)rows * cols * sizeof *y);
    ref_softmax_forward(x, scale, y, rows, cols);
    for (int r = 0; r < rows; r++) {
        const double *yr = y + (size_t)r * cols, *dr = dy + (size_t)r * cols;
        double p = 0;
        for (int j = 0; j < cols; j++)
            p += yr[j] * dr[j];
        for (int j = 0; j < cols; j++)
            dx[(size_t)r * cols + j] = scale * yr[j] * (dr[j] - p);
    }
    free(y);
}
