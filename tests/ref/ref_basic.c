/* References for GEMM, ReLU and linear. */
#include "ref.h"

void ref_gemm(int ta, int tb, int m, int n, int k, double alpha, const double *a, int lda,
              const double *b, int ldb, double beta, double *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += av * bv;
            }
            c[i * ldc + j] = alpha * s + (beta != 0 ? beta * c[i * ldc + j] : 0);
        }
}

void ref_relu_forward(const double *x, double *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0 ? x[i] : 0;
}

void ref_relu_backward(const double *x, const double *dy, double *dx, size_t n) {
    for (size_t i = 0; i < n; i++)
        dx[i] = x[i] > 0 ? dy[i] : 0;
}

void ref_linear_forward(const double *x, const double *w, const double *b, double *y, int n, int in,
                        int out) {
    ref_gemm(0, 1, n, out, in, 1.0, x, in, w, in, 0.0, y, out);
    if (b)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < out; j++)
                y[i * out + j] += b[j];
}

void ref_linear_backward(const double *x, const double *w, const double *dy, double *dx, double *dw,
                         double *db, int n, int in, int out) {
    if (dx) ref_gemm(0, 0, n, in, out, 1.0, dy, out, w, in, 0.0, dx, in);
    if (dw) ref_gemm(1, 0, out, in, n, 1.0, dy, out, x, in, 0.0, dw, in);
    if (db)
        for (int j = 0; j < out; j++) {
            db[j] = 0;
            for (int i = 0; i < n; i++)
                db[j] += dy[i * out + j];
        }
}
