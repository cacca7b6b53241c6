// 2-D max pooling (PyTorch F.max_pool2d, NCHW, floor mode, no dilation). Padding acts as −inf:
// only in-image pixels are scanned. The argmax is stored as a float holding ih·W + iw within
// the plane (exact while H·W <= 2^24, which the host checks).

// Output (oh, ow) of a plane starting at x[base]: scan order rows then columns; a later pixel
// replaces the best only when strictly greater (or NaN, which propagates), so the first
// maximum wins, as in PyTorch's kernels.
static void window_max(global const float *x, uint base, uint h, uint w, uint oh, uint ow, uint k,
                       uint stride, uint pad, float *best_out, uint *arg_out) {
    int h0 = (int)(oh * stride) - (int)pad, w0 = (int)(ow * stride) - (int)pad;
    uint h1 = (uint)min(h0 + (int)k, (int)h), w1 = (uint)min(w0 + (int)k, (int)w);
    uint hs = (uint)max(h0, 0), ws = (uint)max(w0, 0);
    float best = -INFINITY;
    uint arg = hs * w + ws;
    for (uint ih = hs; ih < h1; ih++)
        for (uint iw = ws; iw < w1; iw++) {
            float v = x[base + ih * w + iw];
            if (v > best || isnan(v)) {
                best = v;
                arg = ih * w + iw;
            }
        }
    *best_out = best, *arg_out = arg;
}

// Gather form of the backward for input pixel (ih, iw) of a plane whose outputs start at
// o_base: Σ dy[oh, ow] over the outputs whose window holds the pixel and whose argmax it is,
// in (oh, ow) ascending order; no atomics. The windows that hold ih are those with
// oh·stride − pad <= ih <= oh·stride − pad + k − 1.
static float window_grad(global const float *idx, uint io, global const float *dy, uint yo,
                         uint o_base, uint ih, uint iw, uint w, uint oh_n, uint ow_n, uint k,
                         uint stride, uint pad) {
    int lo_h = (int)(ih + pad) - (int)k + 1, lo_w = (int)(iw + pad) - (int)k + 1;
    uint oh0 = lo_h <= 0 ? 0 : ((uint)lo_h + stride - 1) / stride;
    uint ow0 = lo_w <= 0 ? 0 : ((uint)lo_w + stride - 1) / stride;
    uint oh1 = min((ih + pad) / stride + 1, oh_n), ow1 = min((iw + pad) / stride + 1, ow_n);
    float me = (float)(ih * w + iw), s = 0.0f;
    for (uint oh = oh0; oh < oh1; oh++)
        for (uint ow = ow0; ow < ow1; ow++) {
            uint o = o_base + oh * ow_n + ow;
            if (idx[io + o] == me) s += dy[yo + o];
        }
    return s;
}

// One work-item per output.
kernel void maxpool_forward(global const float *x, uint xo, global float *y, uint yo,
                            global float *idx, uint io, uint planes, uint h, uint w, uint oh_n,
                            uint ow_n, uint k, uint stride, uint pad) {
    uint g = get_global_id(0);
    if (g >= planes * oh_n * ow_n) return;
    uint ow = g % ow_n, oh = (g / ow_n) % oh_n, pl = g / (ow_n * oh_n), arg;
    float best;
    window_max(x, xo + pl * h * w, h, w, oh, ow, k, stride, pad, &best, &arg);
    y[yo + g] = best;
    idx[io + g] = (float)arg;
}

// One work-item per input pixel.
kernel void maxpool_backward(global const float *idx, uint io, global const float *dy, uint yo,
                             global float *dx, uint xo, uint planes, uint h, uint w, uint oh_n,
                             uint ow_n, uint k, uint stride, uint pad) {
    uint g = get_global_id(0);
    if (g >= planes * h * w) return;
    uint iw = g % w, ih = (g / w) % h, pl = g / (w * h);
    dx[xo + g] = window_grad(idx, io, dy, yo, pl * oh_n * ow_n, ih, iw, w, oh_n, ow_n, k, stride,
                             pad);
}

// The ResNet stem's 3x3 window with stride 2 and padding 1, four outputs ow .. ow + 3 of row
// oh whose windows lie inside the row (columns 2·ow − 1 .. 2·ow + 7): their three columns are
// the even, odd and shifted even lanes of nine values of each input row. Rows in order, then
// columns, the first value taken as it is and each later one replacing the best when strictly
// greater or NaN: window_max's comparisons in window_max's order, lane by lane.
static void window3s2_max4(global const float *x, uint base, uint h, uint w, uint oh, uint ow,
                           global float *y, global float *idx) {
    int h0 = 2 * (int)oh - 1;
    uint hs = (uint)max(h0, 0), h1 = (uint)min(h0 + 3, (int)h), c = 2 * ow - 1;
    float4 best, arg, lanes = (float4)(0.0f, 2.0f, 4.0f, 6.0f);
    for (uint ih = hs; ih < h1; ih++) {
        global const float *row = x + base + ih * w + c;
        float8 v = vload8(0, row);
        float4 cols[3] = {v.even, v.odd, (float4)(v.s246, row[8])};
        float4 at = lanes + (float)(ih * w + c);
        for (int j = 0; j < 3; j++, at += 1.0f) {
            if (ih == hs && j == 0) {
                best = cols[0], arg = at;
                continue;
            }
            int4 take = isgreater(cols[j], best) | isnan(cols[j]);
            best = select(best, cols[j], take), arg = select(arg, at, take);
        }
    }
    vstore4(best, 0, y);
    vstore4(arg, 0, idx);
}

// Row variants (CPU devices): one work-item per output row (oh, plane) / input row (ih, plane).
kernel void maxpool_forward_rows(global const float *x, uint xo, global float *y, uint yo,
                                 global float *idx, uint io, uint planes, uint h, uint w,
                                 uint oh_n, uint ow_n, uint k, uint stride, uint pad) {
    uint oh = get_global_id(0), pl = get_global_id(1);
    if (oh >= oh_n || pl >= planes) return;
    uint o = (pl * oh_n + oh) * ow_n, arg;
    float best;
    uint ow = 0;
    if (k == 3 && stride == 2 && pad == 1) { // window 0 by window_max, then 4 at a time
        uint inside = w >= 2 ? (w - 2) / 2 : 0; // the last window inside the row
        window_max(x, xo + pl * h * w, h, w, oh, 0, k, stride, pad, &best, &arg);
        y[yo + o] = best;
        idx[io + o] = (float)arg;
        for (ow = 1; ow + 3 <= inside && ow + 3 < ow_n; ow += 4)
            window3s2_max4(x, xo + pl * h * w, h, w, oh, ow, y + yo + o + ow, idx + io + o + ow);
    }
    for (; ow < ow_n; ow++) {
        window_max(x, xo + pl * h * w, h, w, oh, ow, k, stride, pad, &best, &arg);
        y[yo + o + ow] = best;
        idx[io + o + ow] = (float)arg;
    }
}

// CPU devices: a work-item per plane. The plane is zeroed, then each output, in (oh, ow)
// order, adds its dy at its argmax: every pixel receives window_grad's terms in window_grad's
// order (an argmax always lies in its window), so the sums are the same bits, without a
// search per pixel (a row kernel that scanned the windows over each input row took 30 ms at
// the ResNet-18 stem at 84 px on PoCL, its branches unpredictable; this 6 ms, measured).
kernel void maxpool_backward_planes(global const float *idx, uint io, global const float *dy,
                                    uint yo, global float *dx, uint xo, uint planes, uint h,
                                    uint w, uint oh_n, uint ow_n) {
    uint pl = get_global_id(0);
    if (pl >= planes) return;
    global float *plane = dx + xo + pl * h * w;
    for (uint i = 0; i < h * w; i++)
        plane[i] = 0.0f;
    uint o = pl * oh_n * ow_n, outputs = oh_n * ow_n;
    for (uint i = 0; i < outputs; i++) {
        uint at = (uint)idx[io + o + i];
        if (at < h * w) plane[at] += dy[yo + o + i]; // always, for the forward's indices
    }
}

// The 2x2 window with stride 2 and no padding (every ConvNet block), as a 3-D range over
// (ow, oh, plane): no index division and no loop, which is what makes PoCL's vectorised
// work-groups fast. Same comparisons in the same order as maxpool_forward.
kernel void maxpool2_forward(global const float *x, uint xo, global float *y, uint yo,
                             global float *idx, uint io, uint planes, uint h, uint w, uint oh_n,
                             uint ow_n) {
    uint ow = get_global_id(0), oh = get_global_id(1), pl = get_global_id(2);
    if (ow >= ow_n || oh >= oh_n || pl >= planes) return;
    uint r0 = 2 * oh * w + 2 * ow, base = xo + pl * h * w + r0;
    float best = x[base], v;
    uint arg = r0;
    v = x[base + 1];
    if (v > best || isnan(v)) best = v, arg = r0 + 1;
    v = x[base + w];
    if (v > best || isnan(v)) best = v, arg = r0 + w;
    v = x[base + w + 1];
    if (v > best || isnan(v)) best = v, arg = r0 + w + 1;
    uint o = (pl * oh_n + oh) * ow_n + ow;
    y[yo + o] = best;
    idx[io + o] = (float)arg;
}

// Its backward over (iw, ih, plane): each input pixel lies in at most one window (ih/2, iw/2);
// the last row/column of an odd-sized plane lies in none and gets 0.
kernel void maxpool2_backward(global const float *idx, uint io, global const float *dy, uint yo,
                              global float *dx, uint xo, uint planes, uint h, uint w, uint oh_n,
                              uint ow_n) {
    uint iw = get_global_id(0), ih = get_global_id(1), pl = get_global_id(2);
    if (iw >= w || ih >= h || pl >= planes) return;
    uint oh = ih >> 1, ow = iw >> 1;
    float g = 0.0f;
    if (oh < oh_n && ow < ow_n) {
        uint o = (pl * oh_n + oh) * ow_n + ow;
        if (idx[io + o] == (float)(ih * w + iw)) g = dy[yo + o];
    }
    dx[xo + (pl * h + ih) * w + iw] = g;
}

// The same two kernels for CPU devices, one work-item per output row (plane, oh): PoCL runs
// each work-item's loop as plain compiled code, where a work-item per pixel costs ~10 ns of
// bookkeeping (measured: 10x slower than the bandwidth at conv4 84 px).
kernel void maxpool2_forward_rows(global const float *x, uint xo, global float *y, uint yo,
                                  global float *idx, uint io, uint planes, uint h, uint w,
                                  uint oh_n, uint ow_n) {
    uint oh = get_global_id(0), pl = get_global_id(1);
    if (oh >= oh_n || pl >= planes) return;
    uint r0 = 2 * oh * w, ow = 0;
    global const float *top = x + xo + pl * h * w + r0, *bottom = top + w;
    uint o = (pl * oh_n + oh) * ow_n;
    // four windows at a time: the even/odd lanes of eight values of each row
    for (; ow + 4 <= ow_n; ow += 4) {
        uint c = 2 * ow;
        float8 t = vload8(0, top + c), b = vload8(0, bottom + c);
        float4 first = (float4)((float)c, (float)(c + 2), (float)(c + 4), (float)(c + 6));
        float4 best = t.even, arg = first + (float)r0, v = t.odd;
        int4 take = isgreater(v, best) | isnan(v);
        best = select(best, v, take), arg = select(arg, first + (float)(r0 + 1), take);
        v = b.even, take = isgreater(v, best) | isnan(v);
        best = select(best, v, take), arg = select(arg, first + (float)(r0 + w), take);
        v = b.odd, take = isgreater(v, best) | isnan(v);
        best = select(best, v, take), arg = select(arg, first + (float)(r0 + w + 1), take);
        vstore4(best, 0, y + yo + o + ow);
        vstore4(arg, 0, idx + io + o + ow);
    }
    for (; ow < ow_n; ow++) {
        uint c = 2 * ow;
        float best = top[c], v;
        uint arg = r0 + c;
        v = top[c + 1];
        if (v > best || isnan(v)) best = v, arg = r0 + c + 1;
        v = bottom[c];
        if (v > best || isnan(v)) best = v, arg = r0 + w + c;
        v = bottom[c + 1];
        if (v > best || isnan(v)) best = v, arg = r0 + w + c + 1;
        y[yo + o + ow] = best;
        idx[io + o + ow] = (float)arg;
    }
}

kernel void maxpool2_backward_rows(global const float *idx, uint io, global const float *dy,
                                   uint yo, global float *dx, uint xo, uint planes, uint h,
                                   uint w, uint oh_n, uint ow_n) {
    uint ih = get_global_id(0), pl = get_global_id(1);
    if (ih >= h || pl >= planes) return;
    global float *row = dx + xo + (pl * h + ih) * w;
    uint oh = ih >> 1, iw = 0;
    if (oh < oh_n) { // each window (ow) owns input columns 2·ow and 2·ow + 1 of this row
        uint o = (pl * oh_n + oh) * ow_n, left = ih * w;
        for (uint ow = 0; ow < ow_n; ow++, iw += 2) {
            float at = idx[io + o + ow], g = dy[yo + o + ow];
            row[iw] = at == (float)(left + iw) ? g : 0.0f;
            row[iw + 1] = at == (float)(left + iw + 1) ? g : 0.0f;
        }
    }
    for (; iw < w; iw++) // the last row/column of an odd-sized plane
        row[iw] = 0.0f;
}
