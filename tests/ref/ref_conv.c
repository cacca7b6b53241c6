#include "ref_conv.h"

#include <math.h>
#include <string.h>

static int out_size(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

void ref_conv_shape_init(ref_conv_shape *s) {
    s->oh = out_size(s->h, s->kh, s->stride, s->pad);
    s->ow = out_size(s->w, s->kw, s->stride, s->pad);
}

/* The input pixel that tap (kh, kw) sees at output (i, j), or −1 in the padding. */
static long tap(const ref_conv_shape *s, int n, int c, int i, int j, int kh, int kw) {
    int ih = i * s->stride - s->pad + kh, iw = j * s->stride - s->pad + kw;
    if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) return -1;
    return (((long)n * s->cin + c) * s->h + ih) * s->w + iw;
}

static long w_index(const ref_conv_shape *s, int o, int c, int kh, int kw) {
    return (((long)o * s->cin + c) * s->kh + kh) * s->kw + kw;
}

static long y_index(const ref_conv_shape *s, int n, int o, int i, int j) {
    return (((long)n * s->cout + o) * s->oh + i) * s->ow + j;
}

void ref_conv2d_forward(const ref_conv_shape *s, const double *x, const double *w, const double *b,
                        double *y) {
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->cout; o++)
            for (int i = 0; i < s->oh; i++)
                for (int j = 0; j < s->ow; j++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < s->cin; c++)
                        for (int kh = 0; kh < s->kh; kh++)
                            for (int kw = 0; kw < s->kw; kw++) {
                                long xi = tap(s, n, c, i, j, kh, kw);
                                if (xi >= 0) acc += w[w_index(s, o, c, kh, kw)] * x[xi];
                            }
                    y[y_index(s, n, o, i, j)] = acc;
                }
}

void ref_conv2d_backward(const ref_conv_shape *s, const double *x, const double *w,
                         const double *dy, double *dx, double *dw, double *db) {
    if (dx) memset(dx, 0, sizeof *dx * (size_t)s->n * s->cin * s->h * s->w);
    if (dw) memset(dw, 0, sizeof *dw * (size_t)s->cout * s->cin * s->kh * s->kw);
    if (db) memset(db, 0, sizeof *db * (size_t)s->cout);
    /* y depends on x, w, b through the forward sum only: scatter each dy back along it. */
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->cout; o++)
            for (int i = 0; i < s->oh; i++)
                for (int j = 0; j < s->ow; j++) {
                    double g = dy[y_index(s, n, o, i, j)];
                    if (db) db[o] += g;
                    for (int c = 0; c < s->cin; c++)
                        for (int kh = 0; kh < s->kh; kh++)
                            for (int kw = 0; kw < s->kw; kw++) {
                                long xi = tap(s, n, c, i, j, kh, kw), wi = w_index(s, o, c, kh, kw);
                                if (xi < 0) continue;
                                if (dx) dx[xi] += g * w[wi];
                                if (dw) dw[wi] += g * x[xi];
                            }
                }
}

void ref_pool_shape_init(ref_pool_shape *s) {
    s->oh = out_size(s->h, s->k, s->stride, s->pad);
    s->ow = out_size(s->w, s->k, s->stride, s->pad);
}

void ref_maxpool_forward(const ref_pool_shape *s, const double *x, double *y, int *idx) {
    for (long pl = 0; pl < (long)s->n * s->c; pl++)
        for (int i = 0; i < s->oh; i++)
            for (int j = 0; j < s->ow; j++) {
                double best = -INFINITY;
                int arg = -1;
                for (int kh = 0; kh < s->k; kh++)
                    for (int kw = 0; kw < s->k; kw++) {
                        int ih = i * s->stride - s->pad + kh, iw = j * s->stride - s->pad + kw;
                        if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                        double v = x[(pl * s->h + ih) * s->w + iw];
                        if (arg < 0 || v > best) best = v, arg = ih * s->w + iw; /* first wins */
                    }
                long o = (pl * s->oh + i) * s->ow + j;
                y[o] = best;
                idx[o] = arg;
            }
}

void ref_maxpool_backward(const ref_pool_shape *s, const int *idx, const double *dy, double *dx) {
    memset(dx, 0, sizeof *dx * (size_t)s->n * s->c * s->h * s->w);
    for (long pl = 0; pl < (long)s->n * s->c; pl++)
        for (long o = 0; o < (long)s->oh * s->ow; o++)
            dx[pl * s->h * s->w + idx[pl * s->oh * s->ow + o]] += dy[pl * s->oh * s->ow + o];
}
