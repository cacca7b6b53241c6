/* Plain-C references in double for convolution and max pooling (NCHW, row-major), written
 * as the defining sums of PyTorch's F.conv2d and F.max_pool2d. */
#ifndef FEWCL_TEST_REF_CONV_H
#define FEWCL_TEST_REF_CONV_H

typedef struct ref_conv_shape {
    int n, cin, h, w, cout, kh, kw, stride, pad;
    int oh, ow; /* filled by ref_conv_shape_init */
} ref_conv_shape;

/* Sets oh, ow = floor((h + 2·pad − k) / stride) + 1. */
void ref_conv_shape_init(ref_conv_shape *s);

/* y[n,o,i,j] = b[o] + Σ_{c,kh,kw} w[o,c,kh,kw]·x[n,c,i·s−p+kh,j·s−p+kw] (x = 0 outside);
 * b may be NULL. */
void ref_conv2d_forward(const ref_conv_shape *s, const double *x, const double *w, const double *b,
                        double *y);
/* The exact gradients of Σ dy·y: dx, dw, db overwritten (each may be NULL). */
void ref_conv2d_backward(const ref_conv_shape *s, const double *x, const double *w,
                         const double *dy, double *dx, double *dw, double *db);

typedef struct ref_pool_shape {
    int n, c, h, w, k, stride, pad;
    int oh, ow; /* filled by ref_pool_shape_init */
} ref_pool_shape;

void ref_pool_shape_init(ref_pool_shape *s);
/* y = max over the window (padding acts as −inf); idx = ih·W + iw of the first maximum in
 * scan order (rows, then columns), as PyTorch returns it. */
void ref_maxpool_forward(const ref_pool_shape *s, const double *x, double *y, int *idx);
/* dx[ih,iw] = Σ of dy over the outputs whose argmax it is (overwritten). */
void ref_maxpool_backward(const ref_pool_shape *s, const int *idx, const double *dy, double *dx);

#endif
