// Wide implicit-GEMM convolution (table entry `implicit_wide`, lib/ops/conv_implicit.c): the
// same GEMM as cl/conv_implicit.cl, y[n][o, p] = Σ_k W[o, k] · cols[k, (n, p)], with tiles
// sized for GPUs: a 128 (output channels) x 128 (columns = image, output pixel) tile per
// 16x16 work-group, each item 8x8 outputs in registers (64 accumulators), k in steps of 16
// taps through local memory. Per step an item reads 8 + 8 staged values for 64 products (the
// 64x64 kernel: 4 + 4 for 16), so local-memory traffic per FLOP halves and global loads per
// FLOP halve again with the doubled tile. The small kernel stays in the table: the find step
// keeps whichever is faster per device and shape (small layers leave 128x128 tiles idle).
//
// Arguments and the data-gradient form (flip, a_row, a_chan) are conv_implicit.cl's.
// An item's outputs are rows ty + 16·r and columns tx + 16·c (r, c < 8): neighbouring items
// read neighbouring staged values (no bank conflicts) and store neighbouring pixels
// (coalesced stores).

#define TM 128 // output channels per tile
#define TN 128 // columns per tile
#define TK 16  // taps per k-step
#define RM 8   // rows per item
#define RN 8   // columns per item
#define OUTSIDE (-(1 << 24)) // an ih/iw start that no tap brings back into the image

kernel __attribute__((reqd_work_group_size(16, 16, 1))) void
conv_implicit_wide_forward(global const float *x, uint xo, global const float *w, uint wo,
                           global const float *b, uint bo, int has_bias, global float *y,
                           uint yo, uint cin, uint h, uint wd, uint cout, uint kh_n, uint kw_n,
                           uint stride, uint pad, uint ow_n, uint plane, uint columns, int flip,
                           uint a_row, uint a_chan) {
    // as: W's tile, tap-major ([q][row]) so the compute loop reads a row vector; +1 so the
    // transposing store (consecutive items: consecutive q, one row) hits distinct banks.
    local float as[TK][TM + 1], bs[TK][TN];
    // A column's offsets, decoded once per work-group (no division per staged element): its
    // first input element (at, may lie in the padding), its window's top-left (ih, iw; OUTSIDE
    // past the last column so every tap fails the bounds test) and its output offset.
    local int col_at[TN], col_ih[TN], col_iw[TN], col_out[TN];
    local int tap_at[TK], tap_h[TK], tap_w[TK], tap_a[TK]; // per tap of the k-step
    uint tx = get_local_id(0), ty = get_local_id(1), flat = ty * 16 + tx;
    uint j0 = get_group_id(0) * TN, i0 = get_group_id(1) * TM;
    uint taps = cin * kh_n * kw_n;
    if (flat < TN) {
        uint j = j0 + flat;
        int ih0 = OUTSIDE, iw0 = OUTSIDE, at = 0, out = 0;
        if (j < columns) {
            uint n = j / plane, p = j % plane, oh = p / ow_n, ow = p % ow_n;
            ih0 = (int)(oh * stride) + (flip ? (int)pad : -(int)pad);
            iw0 = (int)(ow * stride) + (flip ? (int)pad : -(int)pad);
            at = (int)(n * cin * h * wd) + ih0 * (int)wd + iw0;
            out = (int)(n * cout * plane + p);
        }
        col_at[flat] = at, col_ih[flat] = ih0, col_iw[flat] = iw0, col_out[flat] = out;
    }
    float acc[RM][RN];
    for (uint r = 0; r < RM; r++)
        for (uint c = 0; c < RN; c++)
            acc[r][c] = 0.0f;
    for (uint k0 = 0; k0 < taps; k0 += TK) {
        if (flat < TK) { // the step's taps: (c, kh, kw) decoded once, for all 256 items
            uint k = k0 + flat;
            int at = 0, th = OUTSIDE, tw = OUTSIDE, ta = 0;
            if (k < taps) {
                uint kw = k % kw_n, t = k / kw_n, kh = t % kh_n, c = t / kh_n;
                th = flip ? -(int)kh : (int)kh, tw = flip ? -(int)kw : (int)kw;
                at = (int)(c * h * wd) + th * (int)wd + tw;
                ta = (int)(c * a_chan + kh * kw_n + kw);
            }
            tap_at[flat] = at, tap_h[flat] = th, tap_w[flat] = tw, tap_a[flat] = ta;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        // W: 128 rows x 16 taps, 8 per item; consecutive items read consecutive taps of a row
        // (contiguous in W for the forward direction: 16-float runs).
        for (uint l = flat; l < TM * TK; l += 256) {
            uint row = l / TK, q = l % TK, k = k0 + q;
            as[q][row] =
                i0 + row < cout && k < taps ? w[wo + (i0 + row) * a_row + tap_a[q]] : 0.0f;
        }
        // x: 16 taps x 128 columns, 8 per item; consecutive items read consecutive columns
        // (consecutive pixels of a row of x at stride 1). Padding: the bounds test, no load.
        for (uint l = flat; l < TN * TK; l += 256) {
            uint col = l % TN, q = l / TN;
            int ih = col_ih[col] + tap_h[q], iw = col_iw[col] + tap_w[q];
            bs[q][col] = ih >= 0 && ih < (int)h && iw >= 0 && iw < (int)wd
                             ? x[xo + (uint)(col_at[col] + tap_at[q])]
                             : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint q = 0; q < TK; q++) { // taps in order: each output a sum in tap order
            float av[RM], bv[RN];
            for (uint r = 0; r < RM; r++)
                av[r] = as[q][ty + 16 * r];
            for (uint c = 0; c < RN; c++)
                bv[c] = bs[q][tx + 16 * c];
            for (uint r = 0; r < RM; r++)
                for (uint c = 0; c < RN; c++)
                    acc[r][c] = fma(av[r], bv[c], acc[r][c]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint r = 0; r < RM; r++) {
        uint o = i0 + ty + 16 * r;
        if (o >= cout) break;
        float bias = has_bias ? b[bo + o] : 0.0f;
        for (uint c = 0; c < RN; c++) {
            uint jj = tx + 16 * c;
            if (j0 + jj < columns) y[yo + (uint)col_out[jj] + o * plane] = acc[r][c] + bias;
        }
    }
}
