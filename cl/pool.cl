// 2-D max pooling (PyTorch F.max_pool2d, NCHW, floor mode, no dilation). Padding acts as −inf:
// only in-image pixels are scanned. The argmax is stored as a float holding ih·W + iw within
// the plane (exact while H·W <= 2^24, which the host checks).

// One work-item per output. Scan order rows then columns; a later pixel replaces the best
// only when strictly greater (or NaN, which propagates), so the first maximum wins, as in
// PyTorch's kernels.
kernel void maxpool_forward(global const float *x, uint xo, global float *y, uint yo,
                            global float *idx, uint io, uint planes, uint h, uint w, uint oh_n,
                            uint ow_n, uint k, uint stride, uint pad) {
    uint g = get_global_id(0);
    if (g >= planes * oh_n * ow_n) return;
    uint ow = g % ow_n, oh = (g / ow_n) % oh_n, pl = g / (ow_n * oh_n);
    int h0 = (int)(oh * stride) - (int)pad, w0 = (int)(ow * stride) - (int)pad;
    uint h1 = (uint)min(h0 + (int)k, (int)h), w1 = (uint)min(w0 + (int)k, (int)w);
    uint hs = (uint)max(h0, 0), ws = (uint)max(w0, 0);
    float best = -INFINITY;
    uint arg = hs * w + ws;
    for (uint ih = hs; ih < h1; ih++)
        for (uint iw = ws; iw < w1; iw++) {
            float v = x[xo + pl * h * w + ih * w + iw];
            if (v > best || isnan(v)) {
                best = v;
                arg = ih * w + iw;
            }
        }
    y[yo + g] = best;
    idx[io + g] = (float)arg;
}

// Gather form of the backward: dx[ih, iw] = Σ dy[oh, ow] over the outputs whose window holds
// (ih, iw) and whose argmax it is, in (oh, ow) ascending order; no atomics. The windows that
// hold ih are those with oh·stride − pad <= ih <= oh·stride − pad + k − 1.
kernel void maxpool_backward(global const float *idx, uint io, global const float *dy, uint yo,
                             global float *dx, uint xo, uint planes, uint h, uint w, uint oh_n,
                             uint ow_n, uint k, uint stride, uint pad) {
    uint g = get_global_id(0);
    if (g >= planes * h * w) return;
    uint iw = g % w, ih = (g / w) % h, pl = g / (w * h);
    int lo_h = (int)(ih + pad) - (int)k + 1, lo_w = (int)(iw + pad) - (int)k + 1;
    uint oh0 = lo_h <= 0 ? 0 : ((uint)lo_h + stride - 1) / stride;
    uint ow0 = lo_w <= 0 ? 0 : ((uint)lo_w + stride - 1) / stride;
    uint oh1 = min((ih + pad) / stride + 1, oh_n), ow1 = min((iw + pad) / stride + 1, ow_n);
    float me = (float)(ih * w + iw), s = 0.0f;
    for (uint oh = oh0; oh < oh1; oh++)
        for (uint ow = ow0; ow < ow1; ow++) {
            uint o = pl * oh_n * ow_n + oh * ow_n + ow;
            if (idx[io + o] == me) s += dy[yo + o];
        }
    dx[xo + g] = s;
}
