// 2-D convolution helpers around the CLBlast GEMMs (NCHW, float32, zero padding).
//
// A convolution with weights W[Cout, Cin, KH, KW] is the GEMM y[n] = W[Cout, K] · cols[n][K, P]
// with K = Cin·KH·KW and P = OH·OW, where cols[n][k, p] is the input pixel that kernel tap k
// sees at output pixel p (0 in the padding). The host processes a bounded chunk of that
// matrix at a time: images n0 .. n0+nb-1 and output pixels p0 .. p0+pc-1, stored
// cols[k][i·pc + q] with q = p - p0: row k holds the chunk's images side by side (row length
// nb·pc), so that one GEMM W[Cout, K] · cols[K, nb·pc] covers the whole chunk. Its output
// t[Cout, nb·pc] goes back to NCHW with chunk_to_nchw (and dy comes in with nchw_to_chunk).

// Decodes tap k = (c·KH + kh)·KW + kw and output pixel p = oh·OW + ow into the input pixel
// (ih, iw) = (oh·stride − pad + kh, ow·stride − pad + kw); signed, since the padding is < 0.
kernel void im2col(global const float *x, uint xo, global float *cols, uint co, uint n0, uint nb,
                   uint cin, uint h, uint w, uint kh_n, uint kw_n, uint stride, uint pad, uint ow_n,
                   uint p0, uint pc) {
    uint g = get_global_id(0);
    uint taps = cin * kh_n * kw_n;
    if (g >= nb * taps * pc) return;
    uint q = g % pc, r = g / pc;
    uint i = r % nb, k = r / nb;
    uint p = p0 + q, oh = p / ow_n, ow = p % ow_n;
    uint kw = k % kw_n, t = k / kw_n, kh = t % kh_n, c = t / kh_n;
    int ih = (int)(oh * stride + kh) - (int)pad, iw = (int)(ow * stride + kw) - (int)pad;
    float v = 0.0f;
    if (ih >= 0 && ih < (int)h && iw >= 0 && iw < (int)w)
        v = x[xo + ((n0 + i) * cin + c) * h * w + (uint)ih * w + (uint)iw];
    cols[co + g] = v;
}

// y[n0+i, c, p0+q] = t[c, i·pc + q] (+ b[c] when has_bias): the chunk's GEMM output back
// into NCHW, with the bias.
kernel void chunk_to_nchw(global const float *t, uint to, global float *y, uint yo,
                          global const float *b, uint bo, int has_bias, uint n0, uint nb,
                          uint cout, uint plane, uint p0, uint pc) {
    uint g = get_global_id(0);
    if (g >= cout * nb * pc) return;
    uint q = g % pc, r = g / pc, i = r % nb, c = r / nb;
    float v = t[to + g];
    if (has_bias) v += b[bo + c];
    y[yo + ((n0 + i) * cout + c) * plane + p0 + q] = v;
}

// t[c, i·pc + q] = dy[n0+i, c, p0+q]: the chunk of the output gradient in the GEMMs' layout.
kernel void nchw_to_chunk(global const float *dy, uint yo, global float *t, uint to, uint n0,
                          uint nb, uint cout, uint plane, uint p0, uint pc) {
    uint g = get_global_id(0);
    if (g >= cout * nb * pc) return;
    uint q = g % pc, r = g / pc, i = r % nb, c = r / nb;
    t[to + g] = dy[yo + ((n0 + i) * cout + c) * plane + p0 + q];
}

// col2im as a gather: dx[n, c, ih, iw] = Σ over the taps (kh, kw) and output pixels (oh, ow)
// with oh·stride − pad + kh = ih and ow·stride − pad + kw = iw of dcols[k, p]. Each input pixel
// sums its own terms in a fixed order (kh, kw ascending), so no atomics and the result is
// deterministic. Only output pixels in the chunk [p0, p0+pc) count; `accumulate` adds to dx
// for the second and later column chunks of an image.
kernel void col2im(global const float *dcols, uint co, global float *dx, uint xo, uint n0,
                   uint nb, uint cin, uint h, uint w, uint kh_n, uint kw_n, uint stride, uint pad,
                   uint oh_n, uint ow_n, uint p0, uint pc, int accumulate) {
    uint g = get_global_id(0);
    if (g >= nb * cin * h * w) return;
    uint iw = g % w, ih = (g / w) % h, c = (g / (w * h)) % cin, i = g / (w * h * cin);
    float s = 0.0f;
    for (uint kh = 0; kh < kh_n; kh++) {
        int th = (int)(ih + pad) - (int)kh;
        if (th < 0 || (uint)th % stride != 0 || (uint)th / stride >= oh_n) continue;
        uint oh = (uint)th / stride;
        for (uint kw = 0; kw < kw_n; kw++) {
            int tw = (int)(iw + pad) - (int)kw;
            if (tw < 0 || (uint)tw % stride != 0 || (uint)tw / stride >= ow_n) continue;
            uint p = oh * ow_n + (uint)tw / stride;
            if (p < p0 || p >= p0 + pc) continue;
            s += dcols[co + (((c * kh_n + kh) * kw_n + kw) * nb + i) * pc + (p - p0)];
        }
    }
    uint o = xo + n0 * cin * h * w + g;
    dx[o] = accumulate ? dx[o] + s : s;
}

// db[c] += Σ_n Σ_p dy[n, c, p]: one work-group per channel; each work-item sums a strided
// slice in a fixed order, then a tree in local memory (size a power of two). Deterministic.
kernel void channel_sum(global const float *dy, uint yo, global float *db, uint bo, uint n,
                        uint cout, uint plane, local float *part) {
    uint c = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    float s = 0.0f;
    for (uint img = 0; img < n; img++)
        for (uint q = lid; q < plane; q += ls) s += dy[yo + (img * cout + c) * plane + q];
    part[lid] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = ls / 2; step > 0; step /= 2) {
        if (lid < step) part[lid] += part[lid + step];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) db[bo + c] += part[0];
}
