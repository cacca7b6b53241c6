// FFT convolution helpers around clFFT's batched 2-D real transforms (lib/ops/conv_fft.c).
//
// A plane is FH x FW reals stored in place for clFFT: FH rows of 2·FC floats (FC = FW/2 + 1
// complex numbers after the transform). 3-D launches (column, row, plane) so that no item
// divides to find its place.

// planes[p][r][s] = src[p][r - off][s - off] inside the source's h x w, else 0, for the
// `count` planes of one launch; the columns FW .. 2·FC−1 are clFFT's room and stay 0.
kernel void fft_pad(global const float *src, uint so, global float *planes, uint po, uint count,
                    uint h, uint w, uint off, uint fh, uint row) {
    uint s = get_global_id(0), r = get_global_id(1), p = get_global_id(2);
    if (s >= row || r >= fh || p >= count) return;
    int ih = (int)r - (int)off, iw = (int)s - (int)off;
    float v = 0.0f;
    if (ih >= 0 && ih < (int)h && iw >= 0 && iw < (int)w)
        v = src[so + (p * h + (uint)ih) * w + (uint)iw];
    planes[po + (p * fh + r) * row + s] = v;
}

// out[i, j][f] (+)= Σ_k op(a[i·sai + k·sak][f]) · b[j·sbj + k·sbk][f], f over the `nf` complex
// numbers of a spectrum, op = complex conjugate when conj_a: one product of spectra per
// frequency, summed over k in order (deterministic). The output is spectrum i·soi + j·soj.
kernel void fft_cmul(global const float2 *a, uint ao, global const float2 *b, uint bo,
                     global float2 *out, uint oo, uint nf, uint ni, uint nj, uint nk, uint sai,
                     uint sak, uint sbj, uint sbk, uint soi, uint soj, int conj_a, int accumulate) {
    uint f = get_global_id(0), i = get_global_id(1), j = get_global_id(2);
    if (f >= nf || i >= ni || j >= nj) return;
    // Offsets of float tensors, in float2 units: the workspace parts start at even floats.
    global const float2 *pa = a + ao / 2 + (size_t)i * sai * nf + f;
    global const float2 *pb = b + bo / 2 + (size_t)j * sbj * nf + f;
    float sgn = conj_a ? -1.0f : 1.0f;
    float2 acc = (float2)(0.0f, 0.0f);
    for (uint k = 0; k < nk; k++) {
        float2 x = pa[(size_t)k * sak * nf], y = pb[(size_t)k * sbk * nf];
        x.y *= sgn;
        acc.x += x.x * y.x - x.y * y.y;
        acc.y += x.x * y.y + x.y * y.x;
    }
    global float2 *po = out + oo / 2 + ((size_t)i * soi + (size_t)j * soj) * nf + f;
    *po = accumulate ? *po + acc : acc;
}

// dst[p][i][j] (+)= scale · planes[p][i + off][j + off] (+ b[p mod nb_bias] when has_bias),
// for the oh x ow window of each of the `count` planes: the inverse transforms' results back
// into NCHW (forward: y with the bias; data: dx; weights: dW added to).
kernel void fft_crop(global const float *planes, uint po, global float *dst, uint dso, uint count,
                     uint oh, uint ow, uint off, uint fh, uint row, float scale,
                     global const float *b, uint bo, int has_bias, uint nb_bias, int accumulate) {
    uint j = get_global_id(0), i = get_global_id(1), p = get_global_id(2);
    if (j >= ow || i >= oh || p >= count) return;
    float v = scale * planes[po + (p * fh + i + off) * row + j + off];
    if (has_bias) v += b[bo + p % nb_bias];
    global float *d = dst + dso + (p * oh + i) * ow + j;
    *d = accumulate ? *d + v : v;
}
