/* Winograd F(2x2,3x3), F(3x3,3x3) and F(4x4,3x3) in double (see ref_winograd.h). */
#include "ref_winograd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One tile size's matrices: Bᵀ [α][α], G [α][3], Aᵀ [m][α] (α = m + 2), row-major. */
typedef struct tile {
    int m, a;
    const double *bt, *g, *at;
} tile;

static const double BT2[16] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const double G2[12] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};
static const double AT2[8] = {1, 1, 1, 0, 0, 1, -1, -1};

/* F(3x3,3x3), Toom-Cook points 0, 1, −1, 2, ∞. */
static const double BT3[5][5] = {
    {2, -1, -2, 1, 0}, {0, -2, -1, 1, 0}, {0, 2, -3, 1, 0}, {0, -1, 0, 1, 0}, {0, 2, -1, -2, 1}};
static const double G3[5][3] = {{0.5, 0, 0},
                                {-0.5, -0.5, -0.5},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 6, 1.0 / 3, 2.0 / 3},
                                {0, 0, 1}};
static const double AT3[3][5] = {{1, 1, 1, 1, 0}, {0, 1, -1, 2, 0}, {0, 1, 1, 4, 1}};

static const double BT4[36] = {4, 0,  -5, 0, 1, 0, 0, -4, -4, 1,  1, 0, 0, 4, -4, -1, 1, 0,
                               0, -2, -1, 2, 1, 0, 0, 2,  -1, -2, 1, 0, 0, 4, 0,  -5, 0, 1};
static const double G4[18] = {1.0 / 4,  0,         0,        -1.0 / 6, -1.0 / 6, -1.0 / 6,
                              -1.0 / 6, 1.0 / 6,   -1.0 / 6, 1.0 / 24, 1.0 / 12, 1.0 / 6,
                              1.0 / 24, -1.0 / 12, 1.0 / 6,  0,        0,        1};
static const double AT4[24] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0,
                               0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1};

static tile tile_of(int m) {
    return m == 4   ? (tile){4, 6, BT4, G4, AT4}
           : m == 3 ? (tile){3, 5, BT3[0], G3[0], AT3[0]}
                    : (tile){2, 4, BT2, G2, AT2};
}

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

/* out = Mᵀ for M [r][c]. */
static void transpose(const double *M, int r, int c, double *out) {
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++)
            out[j * r + i] = M[i * c + j];
}

static int tiles_h(const ref_conv_shape *s, int m) { return (s->oh + m - 1) / m; }
static int tiles_w(const ref_conv_shape *s, int m) { return (s->ow + m - 1) / m; }

/* The α x α input patch of tile (ty, tx) of plane x (zeros outside). */
static void patch(const ref_conv_shape *s, tile t, const double *x, int ty, int tx, double *d) {
    for (int r = 0; r < t.a; r++)
        for (int q = 0; q < t.a; q++) {
            int ih = t.m * ty - s->pad + r, iw = t.m * tx - s->pad + q;
            d[r * t.a + q] = ih >= 0 && ih < s->h && iw >= 0 && iw < s->w ? x[ih * s->w + iw] : 0;
        }
}

/* The m x m block of dy of tile (ty, tx) (zeros past the output). */
static void block(const ref_conv_shape *s, tile t, const double *dy, int ty, int tx, double *d) {
    for (int r = 0; r < t.m; r++)
        for (int q = 0; q < t.m; q++) {
            int oh = t.m * ty + r, ow = t.m * tx + q;
            d[r * t.m + q] = oh < s->oh && ow < s->ow ? dy[oh * s->ow + ow] : 0;
        }
}

/* U[o][c] = G w Gᵀ, V[n][c][t] = Bᵀ d B, DM[n][o][t] = A dY Aᵀ: α² doubles each. */
static double *all_u(const ref_conv_shape *s, tile t, const double *w, int abs) {
    size_t a2 = (size_t)t.a * t.a;
    double *u = malloc((size_t)s->cout * s->cin * a2 * sizeof *u);
    for (int i = 0; i < s->cout * s->cin; i++)
        sandwich(t.g, t.a, 3, w + (size_t)i * 9, 3, t.g, t.a, u + (size_t)i * a2, abs);
    return u;
}

static double *all_v(const ref_conv_shape *s, tile t, const double *x, int abs) {
    int nt = tiles_h(s, t.m) * tiles_w(s, t.m);
    size_t a2 = (size_t)t.a * t.a;
    double *v = malloc((size_t)s->n * s->cin * nt * a2 * sizeof *v), d[36];
    for (int i = 0; i < s->n * s->cin; i++)
        for (int k = 0; k < nt; k++) {
            patch(s, t, x + (size_t)i * s->h * s->w, k / tiles_w(s, t.m), k % tiles_w(s, t.m), d);
            sandwich(t.bt, t.a, t.a, d, t.a, t.bt, t.a, v + ((size_t)i * nt + k) * a2, abs);
        }
    return v;
}

static double *all_dm(const ref_conv_shape *s, tile t, const double *dy, int abs) {
    double A[24], e[16];
    transpose(t.at, t.m, t.a, A);
    int nt = tiles_h(s, t.m) * tiles_w(s, t.m);
    size_t a2 = (size_t)t.a * t.a;
    double *m = malloc((size_t)s->n * s->cout * nt * a2 * sizeof *m);
    for (int i = 0; i < s->n * s->cout; i++)
        for (int k = 0; k < nt; k++) {
            block(s, t, dy + (size_t)i * s->oh * s->ow, k / tiles_w(s, t.m), k % tiles_w(s, t.m),
                  e);
            sandwich(A, t.a, t.m, e, t.m, A, t.a, m + ((size_t)i * nt + k) * a2, abs);
        }
    return m;
}

void ref_winograd_forward(const ref_conv_shape *s, int m, const double *x, const double *w,
                          const double *b, double *y, int abs) {
    tile t = tile_of(m);
    int nt = tiles_h(s, m) * tiles_w(s, m), tw = tiles_w(s, m), a2 = t.a * t.a;
    double *u = all_u(s, t, w, abs), *v = all_v(s, t, x, abs);
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->cout; o++)
            for (int k = 0; k < nt; k++) {
                int ty = k / tw, tx = k % tw;
                double mm[36] = {0}, out[16];
                for (int c = 0; c < s->cin; c++) {
                    const double *uk = u + ((size_t)o * s->cin + c) * a2;
                    const double *vk = v + (((size_t)n * s->cin + c) * nt + k) * a2;
                    for (int j = 0; j < a2; j++)
                        mm[j] += uk[j] * vk[j];
                }
                sandwich(t.at, m, t.a, mm, t.a, t.at, m, out, abs);
                double bias = b ? (abs ? fabs(b[o]) : b[o]) : 0;
                double *yp = y + ((size_t)n * s->cout + o) * s->oh * s->ow;
                for (int r = 0; r < m && m * ty + r < s->oh; r++)
                    for (int q = 0; q < m && m * tx + q < s->ow; q++)
                        yp[(m * ty + r) * s->ow + m * tx + q] = out[r * m + q] + bias;
            }
    free(u), free(v);
}

void ref_winograd_data(const ref_conv_shape *s, int m, const double *w, const double *dy,
                       double *dx, int abs) {
    tile t = tile_of(m);
    double B[36];
    transpose(t.bt, t.a, t.a, B);
    int nt = tiles_h(s, m) * tiles_w(s, m), tw = tiles_w(s, m), a2 = t.a * t.a;
    double *u = all_u(s, t, w, abs), *dm = all_dm(s, t, dy, abs);
    memset(dx, 0, (size_t)s->n * s->cin * s->h * s->w * sizeof *dx);
    for (int n = 0; n < s->n; n++)
        for (int c = 0; c < s->cin; c++)
            for (int k = 0; k < nt; k++) {
                int ty = k / tw, tx = k % tw;
                double dv[36] = {0}, dd[36];
                for (int o = 0; o < s->cout; o++) {
                    const double *uk = u + ((size_t)o * s->cin + c) * a2;
                    const double *mk = dm + (((size_t)n * s->cout + o) * nt + k) * a2;
                    for (int j = 0; j < a2; j++)
                        dv[j] += uk[j] * mk[j];
                }
                sandwich(B, t.a, t.a, dv, t.a, B, t.a, dd, abs);
                double *xp = dx + ((size_t)n * s->cin + c) * s->h * s->w;
                for (int r = 0; r < t.a; r++)
                    for (int q = 0; q < t.a; q++) {
                        int ih = m * ty - s->pad + r, iw = m * tx - s->pad + q;
                        if (ih >= 0 && ih < s->h && iw >= 0 && iw < s->w)
                            xp[ih * s->w + iw] += dd[r * t.a + q];
                    }
            }
    free(u), free(dm);
}

void ref_winograd_weights(const ref_conv_shape *s, int m, const double *x, const double *dy,
                          double *dw, int abs) {
    tile t = tile_of(m);
    double GT[18];
    transpose(t.g, t.a, 3, GT);
    int nt = tiles_h(s, m) * tiles_w(s, m), a2 = t.a * t.a;
    double *v = all_v(s, t, x, abs), *dm = all_dm(s, t, dy, abs);
    for (int o = 0; o < s->cout; o++)
        for (int c = 0; c < s->cin; c++) {
            double du[36] = {0};
            for (int n = 0; n < s->n; n++)
                for (int k = 0; k < nt; k++) {
                    const double *mk = dm + (((size_t)n * s->cout + o) * nt + k) * a2;
                    const double *vk = v + (((size_t)n * s->cin + c) * nt + k) * a2;
                    for (int j = 0; j < a2; j++)
                        du[j] += mk[j] * vk[j];
                }
            sandwich(GT, 3, t.a, du, t.a, GT, 3, dw + ((size_t)o * s->cin + c) * 9, abs);
        }
    free(v), free(dm);
}
