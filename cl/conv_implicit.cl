// Implicit-GEMM convolution (lib/ops/conv_implicit.c): the GEMM
// y[n][o, p] = Σ_k W[o, k] · cols[k, (n, p)] of cl/conv.cl without its im2col buffer: each
// work-group stages the column tile straight from x. The tiling is cl/gemm.cl's: 16x16 items,
// a 64 (output channels) x 64 (columns = image, output pixel) tile, each item a 4x4 block,
// k = (c, kh, kw) in steps of 16 through local memory. No division per element: a column's
// image and pixel are decoded once per work-group, a tap's (c, kh, kw) once per k-step, and
// each staged element adds the two.
//
// The same kernel runs the data gradient of a stride-1 convolution as a convolution of dy:
// dx[n, c, i, j] = Σ_{o,kh,kw} W[o, c, kh, kw] · dy[n, o, i + pad − kh, j + pad − kw], with
// x := dy (Cout channels), rows := Cin, the tap's offsets negated (flip) and W read as
// [c][(o, kh, kw)] (a_row = KH·KW, a_chan = Cin·KH·KW); forward: a_row = K, a_chan = KH·KW.

#define TS 64
#define TK 16
#define OUTSIDE (-(1 << 24)) // an ih/iw start that no tap brings back into the image

kernel __attribute__((reqd_work_group_size(16, 16, 1))) void
conv_implicit_forward(global const float *x, uint xo, global const float *w, uint wo,
                      global const float *b, uint bo, int has_bias, global float *y, uint yo,
                      uint cin, uint h, uint wd, uint cout, uint kh_n, uint kw_n, uint stride,
                      uint pad, uint ow_n, uint plane, uint columns, int flip, uint a_row,
                      uint a_chan) {
    local float as[TK][TS + 1], bs[TK][TS + 1];
    local int col_at[TS], col_ih[TS], col_iw[TS], col_out[TS]; // per column of the tile
    local int tap_at[TK], tap_h[TK], tap_w[TK], tap_a[TK];     // per tap of the k-step
    uint tx = get_local_id(0), ty = get_local_id(1), flat = ty * 16 + tx;
    uint j0 = get_group_id(0) * TS, i0 = get_group_id(1) * TS;
    uint taps = cin * kh_n * kw_n;
    if (flat < TS) {
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
    float acc[4][4];
    for (uint r = 0; r < 4; r++)
        for (uint c = 0; c < 4; c++)
            acc[r][c] = 0.0f;
    for (uint k0 = 0; k0 < taps; k0 += TK) {
        if (flat < TK) {
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
        for (uint l = flat; l < TS * TK; l += 256) { // W's row `row`, tap q
            uint row = l / TK, q = l % TK, k = k0 + q;
            as[q][row] =
                i0 + row < cout && k < taps ? w[wo + (i0 + row) * a_row + tap_a[q]] : 0.0f;
        }
        for (uint l = flat; l < TS * TK; l += 256) { // columns contiguous in the tile
            uint col = l % TS, q = l / TS;
            int ih = col_ih[col] + tap_h[q], iw = col_iw[col] + tap_w[q];
            bs[q][col] = ih >= 0 && ih < (int)h && iw >= 0 && iw < (int)wd
                             ? x[xo + (uint)(col_at[col] + tap_at[q])]
                             : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint q = 0; q < TK; q++) {
            float av[4], bv[4];
            for (uint r = 0; r < 4; r++)
                av[r] = as[q][ty + 16 * r], bv[r] = bs[q][tx + 16 * r];
            for (uint r = 0; r < 4; r++)
                for (uint c = 0; c < 4; c++)
                    acc[r][c] += av[r] * bv[c];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint r = 0; r < 4; r++)
        for (uint c = 0; c < 4; c++) {
            uint o = i0 + ty + 16 * r, jj = tx + 16 * c;
            if (o >= cout || j0 + jj >= columns) continue;
            float v = acc[r][c];
            if (has_bias) v += b[bo + o];
            y[yo + (uint)col_out[jj] + o * plane] = v;
        }
}

// ---- the weight gradient (table entry `implicit`, FCL_CONV_WEIGHTS) ----
// dW[o, k] += Σ_{(n, p)} dy[n, o, p] · cols[k, (n, p)]: a GEMM of dy [Cout, N·P] and cols(x)ᵀ
// [N·P, K] whose reduction runs over every output pixel of the batch (long: N·OH·OW), the
// columns again staged from x inside the kernel (no im2col buffer). Work-group (tap tile, row
// tile, z) sums slice z of the reduction (split-K: a few output tiles fill a GPU only so), 16
// pixels a step, with the 64x64 tiling above (rows: output channels; columns: taps).
// slices > 1: it writes its partial sums into its own slot part[z][o][k] (each slot written
// by exactly one work-group) and conv_implicit_wgrad_sum adds the slots in z order, so the
// result does not depend on how work-groups are scheduled. slices = 1: it adds onto dW.
// A tap's (c, kh, kw) is decoded once per work-group, a pixel's (n, oh, ow) once per step.
kernel __attribute__((reqd_work_group_size(16, 16, 1))) void
conv_implicit_wgrad(global const float *x, uint xo, global const float *dy, uint dyo,
                    global float *out, uint outo, uint cin, uint h, uint wd, uint cout, uint kh_n,
                    uint kw_n, uint stride, uint pad, uint ow_n, uint plane, uint columns,
                    uint slice, uint slices) {
    local float as[TK][TS + 1], bs[TK][TS + 1];
    local int tap_at[TS], tap_h[TS], tap_w[TS];                // per tap of the tile
    local int col_at[TK], col_ih[TK], col_iw[TK], col_dy[TK]; // per pixel of the step
    uint tx = get_local_id(0), ty = get_local_id(1), flat = ty * 16 + tx;
    uint k0 = get_group_id(0) * TS, i0 = get_group_id(1) * TS, z = get_group_id(2);
    uint taps = cin * kh_n * kw_n;
    uint j_begin = z * slice, j_end = min(columns, j_begin + slice);
    if (flat < TS) {
        uint k = k0 + flat;
        int at = 0, th = OUTSIDE, tw = OUTSIDE; // past the last tap: every pixel fails the test
        if (k < taps) {
            uint kw = k % kw_n, t = k / kw_n, kh = t % kh_n, c = t / kh_n;
            th = (int)kh, tw = (int)kw, at = (int)(c * h * wd + kh * wd + kw);
        }
        tap_at[flat] = at, tap_h[flat] = th, tap_w[flat] = tw;
    }
    float acc[4][4];
    for (uint r = 0; r < 4; r++)
        for (uint c = 0; c < 4; c++)
            acc[r][c] = 0.0f;
    for (uint j0 = j_begin; j0 < j_end; j0 += TK) {
        if (flat < TK) {
            uint j = j0 + flat;
            int ih0 = OUTSIDE, iw0 = OUTSIDE, at = 0, at_dy = 0;
            if (j < j_end) {
                uint n = j / plane, p = j % plane, oh = p / ow_n, ow = p % ow_n;
                ih0 = (int)(oh * stride) - (int)pad, iw0 = (int)(ow * stride) - (int)pad;
                at = (int)(n * cin * h * wd) + ih0 * (int)wd + iw0;
                at_dy = (int)(n * cout * plane + p);
            }
            col_at[flat] = at, col_ih[flat] = ih0, col_iw[flat] = iw0, col_dy[flat] = at_dy;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint l = flat; l < TS * TK; l += 256) { // dy's row `row`, pixel q: pixels contiguous
            uint row = l / TK, q = l % TK;
            as[q][row] = i0 + row < cout && j0 + q < j_end
                             ? dy[dyo + (uint)col_dy[q] + (i0 + row) * plane]
                             : 0.0f;
        }
        for (uint l = flat; l < TS * TK; l += 256) { // pixel q's column, taps contiguous
            uint tap = l % TS, q = l / TS;
            int ih = col_ih[q] + tap_h[tap], iw = col_iw[q] + tap_w[tap];
            bs[q][tap] = ih >= 0 && ih < (int)h && iw >= 0 && iw < (int)wd
                             ? x[xo + (uint)(col_at[q] + tap_at[tap])]
                             : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint q = 0; q < TK; q++) {
            float av[4], bv[4];
            for (uint r = 0; r < 4; r++)
                av[r] = as[q][ty + 16 * r], bv[r] = bs[q][tx + 16 * r];
            for (uint r = 0; r < 4; r++)
                for (uint c = 0; c < 4; c++)
                    acc[r][c] += av[r] * bv[c];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint r = 0; r < 4; r++)
        for (uint c = 0; c < 4; c++) {
            uint o = i0 + ty + 16 * r, k = k0 + tx + 16 * c;
            if (o >= cout || k >= taps) continue;
            if (slices > 1)
                out[outo + (z * cout + o) * taps + k] = acc[r][c];
            else
                out[outo + o * taps + k] += acc[r][c];
        }
}

// dW[i] += Σ_z part[z][i], z in order (one item per weight).
kernel void conv_implicit_wgrad_sum(global const float *part, uint po, global float *dw, uint dwo,
                                    uint count, uint slices) {
    uint i = get_global_id(0);
    if (i >= count) return;
    float s = 0.0f;
    for (uint z = 0; z < slices; z++)
        s += part[po + z * count + i];
    dw[dwo + i] += s;
}
