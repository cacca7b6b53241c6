/* Image decoding and the eval transforms (see image.h). */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <stb_image.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fcl_image_free(fcl_image *img) {
    if (img) stbi_image_free(img->rgb), memset(img, 0, sizeof *img);
}

fewcl_status fcl_image_decode(const char *label, const unsigned char *bytes, size_t len,
                              fcl_image *out) {
    memset(out, 0, sizeof *out);
    int w, h, comp;
    if (len > (size_t)1 << 31)
        return fcl_fail(FEWCL_ERR_FORMAT, "image %s: %zu bytes is too large", label, len);
    if (!stbi_info_from_memory(bytes, (int)len, &w, &h, &comp))
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "image %s cannot be decoded (%s): not a JPEG/PNG/BMP, or "
                        "corrupt; use --skip-bad-images to skip such files",
                        label, stbi_failure_reason());
    if (w <= 0 || h <= 0 || w > FCL_IMAGE_MAX_SIDE || h > FCL_IMAGE_MAX_SIDE)
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "image %s claims %dx%d pixels (1 to %d per side allowed); use "
                        "--skip-bad-images to skip such files",
                        label, w, h, FCL_IMAGE_MAX_SIDE);
    out->rgb = stbi_load_from_memory(bytes, (int)len, &out->w, &out->h, &comp, 3);
    if (!out->rgb)
        return fcl_fail(FEWCL_ERR_FORMAT,
                        "image %s is corrupt or truncated (%s); use --skip-bad-images to skip "
                        "such files",
                        label, stbi_failure_reason());
    return FEWCL_OK;
}

fewcl_status fcl_image_load(const char *path, fcl_image *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return fcl_fail(FEWCL_ERR_IO, "cannot open image %s: %s", path, strerror(errno));
    unsigned char *bytes = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0) bytes = malloc((size_t)len + 1);
    int ok = bytes && fread(bytes, 1, (size_t)len, f) == (size_t)len;
    fclose(f);
    if (!ok) {
        free(bytes);
        return fcl_fail(FEWCL_ERR_IO, "cannot read image %s", path);
    }
    fewcl_status s = fcl_image_decode(path, bytes, (size_t)len, out);
    free(bytes);
    return s;
}

/* PIL's resampling in 8 bits: per output position a window of input positions with
 * triangle-filter weights, normalised to sum 1, stored as fixed point with 22 fractional
 * bits; accumulation starts at one half (rounding) and the result is clamped to 0..255. */
#define PREC 22

typedef struct taps {
    int *first, *count; /* per output position: first input index and number of taps */
    int *k;             /* count·max weights, fixed point */
    int max;
} taps;

static int make_taps(int in, int out, taps *t) {
    double scale = (double)in / out, fscale = scale > 1 ? scale : 1;
    double support = 1.0 * fscale; /* bilinear: support 1, widened when shrinking */
    t->max = (int)ceil(support) * 2 + 1;
    t->first = malloc((size_t)out * sizeof *t->first);
    t->count = malloc((size_t)out * sizeof *t->count);
    t->k = malloc((size_t)out * (size_t)t->max * sizeof *t->k);
    double *w = malloc((size_t)t->max * sizeof *w);
    if (!t->first || !t->count || !t->k || !w) {
        free(w);
        return -1;
    }
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale, sum = 0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        if (n > t->max) n = t->max;
        for (int i = 0; i < n; i++) {
            double x = (i + lo - center + 0.5) / fscale;
            w[i] = fabs(x) < 1 ? 1 - fabs(x) : 0;
            sum += w[i];
        }
        for (int i = 0; i < n; i++) {
            double v = sum != 0 ? w[i] / sum : 0;
            t->k[o * t->max + i] = (int)(v < 0 ? v * (1 << PREC) - 0.5 : v * (1 << PREC) + 0.5);
        }
        t->first[o] = lo;
        t->count[o] = n;
    }
    free(w);
    return 0;
}

static void free_taps(taps *t) { free(t->first), free(t->count), free(t->k); }

static unsigned char clamp8(long long v) {
    v >>= PREC;
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One pass along x (horizontal) or y: src is sw x sh, dst is dw x dh, one of them unchanged. */
static void pass(const unsigned char *src, int sw, int sh, unsigned char *dst, int dw, int dh,
                 const taps *t, int horizontal) {
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            int o = horizontal ? x : y;
            for (int c = 0; c < 3; c++) {
                long long acc = 1LL << (PREC - 1);
                for (int i = 0; i < t->count[o]; i++) {
                    int j = t->first[o] + i;
                    int sx = horizontal ? j : x, sy = horizontal ? y : j;
                    acc += (long long)src[((size_t)sy * sw + sx) * 3 + c] * t->k[o * t->max + i];
                }
                dst[((size_t)y * dw + x) * 3 + c] = clamp8(acc);
            }
        }
    (void)sh;
}

fewcl_status fcl_image_resize(const fcl_image *in, int w, int h, fcl_image *out) {
    memset(out, 0, sizeof *out);
    if (w < 1 || h < 1 || w > FCL_IMAGE_MAX_SIDE || h > FCL_IMAGE_MAX_SIDE)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "resize to %dx%d", w, h);
    taps tx = {0}, ty = {0};
    unsigned char *mid = malloc((size_t)w * in->h * 3);
    out->rgb = malloc((size_t)w * h * 3);
    if (!mid || !out->rgb || make_taps(in->w, w, &tx) || make_taps(in->h, h, &ty)) {
        free(mid), free_taps(&tx), free_taps(&ty), free(out->rgb);
        out->rgb = NULL;
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "resizing %dx%d to %dx%d", in->w, in->h, w, h);
    }
    /* PIL skips a pass whose size does not change; with identity taps the result is the same. */
    if (w != in->w)
        pass(in->rgb, in->w, in->h, mid, w, in->h, &tx, 1);
    else
        memcpy(mid, in->rgb, (size_t)w * in->h * 3);
    if (h != in->h)
        pass(mid, w, in->h, out->rgb, w, h, &ty, 0);
    else
        memcpy(out->rgb, mid, (size_t)w * h * 3);
    out->w = w;
    out->h = h;
    free(mid), free_taps(&tx), free_taps(&ty);
    return FEWCL_OK;
}

fewcl_status fcl_image_resize_shorter(const fcl_image *in, int size, fcl_image *out) {
    int shorter = in->w <= in->h ? in->w : in->h, longer = in->w <= in->h ? in->h : in->w;
    int new_long = (int)((long long)size * longer / shorter);
    if (in->w <= in->h) return fcl_image_resize(in, size, new_long, out);
    return fcl_image_resize(in, new_long, size, out);
}

fewcl_status fcl_image_crop(const fcl_image *in, int x, int y, int w, int h, fcl_image *out) {
    memset(out, 0, sizeof *out);
    if (x < 0 || y < 0 || w < 1 || h < 1 || x + w > in->w || y + h > in->h)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "crop %dx%d at (%d,%d) of a %dx%d image", w, h, x, y,
                        in->w, in->h);
    /* malloc'd like stb_image's buffers, so fcl_image_free releases either */
    out->rgb = malloc((size_t)w * h * 3);
    if (!out->rgb) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "crop %dx%d", w, h);
    for (int r = 0; r < h; r++)
        memcpy(out->rgb + (size_t)r * w * 3, in->rgb + ((size_t)(y + r) * in->w + x) * 3,
               (size_t)w * 3);
    out->w = w;
    out->h = h;
    return FEWCL_OK;
}

void fcl_image_flip(fcl_image *img) {
    for (int y = 0; y < img->h; y++) {
        unsigned char *row = img->rgb + (size_t)y * img->w * 3;
        for (int a = 0, b = img->w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                unsigned char t = row[a * 3 + c];
                row[a * 3 + c] = row[b * 3 + c];
                row[b * 3 + c] = t;
            }
    }
}

/* Python's round(d / 2) for an integer d >= 0: halves go to the even neighbour. */
static int half_round_even(int d) {
    int q = d / 2;
    return (d % 2 == 1 && q % 2 == 1) ? q + 1 : q;
}

fewcl_status fcl_image_to_tensor(const fcl_image *in, int size, float *chw) {
    if (in->w < size || in->h < size)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "centre crop of %d from a %dx%d image", size, in->w,
                        in->h);
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    int top = half_round_even(in->h - size), left = half_round_even(in->w - size);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                float v = in->rgb[((size_t)(top + y) * in->w + left + x) * 3 + c] / 255.0f;
                chw[((size_t)c * size + y) * size + x] = (v - mean[c]) / std[c];
            }
    return FEWCL_OK;
}
