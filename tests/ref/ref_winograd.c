/* Winograd F(2x2,3x3) in double (see ref_winograd.h). */
#include "ref_winograd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

/* out[a][b] = Σ_{i,j} L[a][i]·X[i][j]·R[b][j], L [lr][lc], X [lc][xc], R [rr][xc]; with abs,
 * |L|, |X|, |R|. */
static void sandwich(const double *L, int lr, int lc, const double *X, int xc, const double *R,
                     int rr, double *out, int abs) {
    for (int a = 0; a < lr; a++)
        for (int b = 0; b < rr; b++) {
            double s = 0;
            for (int i = 0; i < lc; i++)
                for (int j = 0; j < xc; j++) {
                    double l = L[a * lc + i], x = X[i * xc + j], r = R[b * xc + j];
                    s += abs ? fabs(l) * fabs(x) * fabs(r) : l * x * r;
                }
            out[a * rr + b] = s;
        }
}

/* The transposes: B = BTᵀ, A = ATᵀ, GT = Gᵀ. */
static void transposes(double B[16], double A[8], double GT[12]) {
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++)
            B[i * 4 + j] = BT[j][i];
        for (int j = 0; j < 2; j++)
            A[i * 2 + j] = AT[j][i];
        for (int j = 0; j < 3; j++)
            GT[j * 4 + i] = G[i][j];
    }
}

static int tiles_h(const ref_conv_shape *s) { return (s->oh + 1) / 2; }
static int tiles_w(const ref_conv_shape *s) { return (s->ow + 1) / 2; }

/* The 4x4 input patch of tile (ty, tx) of plane x (zeros outside). */
static void patch(const ref_conv_shape *s, const double *x, int ty, int tx, double d[16]) {
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++) {
            int ih = 2 * ty - s->pad + r, iw = 2 * tx - s->pad + q;
            d[r * 4 + q] = ih >= 0 && ih < s->h && iw >= 0 && iw < s->w ? x[ih * s->w + iw] : 0;
        }
}

/* The 2x2 block of dy of tile (ty, tx) (zeros past the output). */
static void block(const ref_conv_shape *s, const double *dy, int ty, int tx, double d[4]) {
    for (int r = 0; r < 2; r++)
        for (int q = 0; q < 2; q++) {
            int oh = 2 * ty + r, ow = 2 * tx + q;
            d[r * 2 + q] = oh < s->oh && ow < s->ow ? dy[oh * s->ow + ow] : 0;
        }
}

/* U[o][c] = G w Gᵀ, V[n][c][t] = Bᵀ d B, DM[n][o][t] = A dY Aᵀ: 16 doubles each. */
static double *all_u(const ref_conv_shape *s, const double *w, int abs) {
    double *u = malloc((size_t)s->cout * s->cin * 16 * sizeof *u);
    for (int i = 0; i < s->cout * s->cin; i++)
        sandwich(&G[0][0], 4, 3, w + (size_t)i * 9, 3, &G[0][0], 4, u + (size_t)i * 16, abs);
    return u;
}

static double *all_v(const ref_conv_shape *s, const double *x, int abs) {
    int t = tiles_h(s) * tiles_w(s);
    double *v = malloc((size_t)s->n * s->cin * t * 16 * sizeof *v), d[16];
    for (int i = 0; i < s->n * s->cin; i++)
        for (int k = 0; k < t; k++) {
            patch(s, x + (size_t)i * s->h * s->w, k / tiles_w(s), k % tiles_w(s), d);
            sandwich(&BT[0][0], 4, 4, d, 4, &BT[0][0], 4, v + ((size_t)i * t + k) * 16, abs);
        }
    return v;
}

static double *all_dm(const ref_conv_shape *s, const double *dy, int abs) {
    double B[16], A[8], GT[12], e[4];
    transposes(B, A, GT);
    int t = tiles_h(s) * tiles_w(s);
    double *m = malloc((size_t)s->n * s->cout * t * 16 * sizeof *m);
    for (int i = 0; i < s->n * s->cout; i++)
        for (int k = 0; k < t; k++) {
            block(s, dy + (size_t)i * s->oh * s->ow, k / tiles_w(s), k % tiles_w(s), e);
            sandwich(A, 4, 2, e, 2, A, 4, m + ((size_t)i * t + k) * 16, abs);
        }
    return m;
}

void ref_winograd_forward(const ref_conv_shape *s, const double *x, const double *w,
                          const double *b, double *y, int abs) {
    int t = tiles_h(s) * tiles_w(s);
    double *u = all_u(s, w, abs), *v = all_v(s, x, abs);
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->cout; o++)
            for (int k = 0; k < t; k++) {
                int ty = k / tiles_w(s), tx = k % tiles_w(s);
                double m[16] = {0}, out[4];
                for (int c = 0; c < s->cin; c++) {
                    const double *uk = u + ((size_t)o * s->cin + c) * 16;
                    const double *vk = v + (((size_t)n * s->cin + c) * t + k) * 16;
                    for (int j = 0; j < 16; j++)
                        m[j] += uk[j] * vk[j];
                }
                sandwich(&AT[0][0], 2, 4, m, 4, &AT[0][0], 2, out, abs);
                double bias = b ? (abs ? fabs(b[o]) : b[o]) : 0;
                double *yp = y + ((size_t)n * s->cout + o) * s->oh * s->ow;
                for (int r = 0; r < 2 && 2 * ty + r < s->oh; r++)
                    for (int q = 0; q < 2 && 2 * tx + q < s->ow; q++)
                        yp[(2 * ty + r) * s->ow + 2 * tx + q] = out[r * 2 + q] + bias;
            }
    free(u), free(v);
}

void ref_winograd_data(const ref_conv_shape *s, const double *w, const double *dy, double *dx,
                       int abs) {
    double B[16], A[8], GT[12];
    transposes(B, A, GT);
    int t = tiles_h(s) * tiles_w(s);
    double *u = all_u(s, w, abs), *dm = all_dm(s, dy, abs);
    memset(dx, 0, (size_t)s->n * s->cin * s->h * s->w * sizeof *dx);
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->cin; c++)
            for (int k = 0; k < t; k++) {
                int ty = k / tiles_w(s), tx = k % tiles_w(s);
                double dv[16] = {0}, dd[16];
                for (int o = 0; o < s->cout; o++) {
                    const double *uk = u + ((size_t)o * s->cin + c) * 16;
                    const double *mk = dm + (((size_t)n * s->cout + o) * t + k) * 16;
                    for (int j = 0; j < 16; j++)
                        dv[j] += uk[j] * mk[j];
                }
                sandwich(B, 4, 4, dv, 4, B, 4, dd, abs);
                double *xp = dx + ((size_t)n * s->cin + c) * s->h * s->w;
                for (int r = 0; r < 4; r++)
                    for (int q = 0; q < 4; q++) {
                        int ih = 2 * ty - s->pad + r, iw = 2 * tx - s->pad + q;
                        if (ih >= 0 && ih < s->h && iw >= 0 && iw < s->w)
                            xp[ih * s->w + iw] += dd[r * 4 + q];
                    }
            }
    free(u), free(dm);
}

void ref_winograd_weights(const ref_conv_shape *s, const double *x, const double *dy, double *dw,
                          int abs) {
    double B[16], A[8], GT[12];
    transposes(B, A, GT);
    int t = tiles_h(s) * tiles_w(s);
    double *v = all_v(s, x, abs), *dm = all_dm(s, dy, abs);
    for (int o = 0; o < s->cout; o++)
        for (int c = 0; c < s->cin; c++) {
            double du[16] = {0};
            for (int n = 0; n < s->n; n++)
                for (int k = 0; k < t; k++) {
                    const double *mk = dm + (((size_t)n * s->cout + o) * t + k) * 16;
                    const double *vk = v + (((size_t)n * s->cin + c) * t + k) * 16;
                    for (int j = 0; j < 16; j++)
                        du[j] += mk[j] * vk[j];
                }
            sandwich(GT, 3, 4, du, 4, GT, 3, dw + ((size_t)o * s->cin + c) * 9, abs);
        }
    free(v), free(dm);
}
